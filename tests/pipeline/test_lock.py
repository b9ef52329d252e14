"""One run per run directory: busy, stale and waited-for locks, with real processes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeslim.errors import RunDirError
from edgeslim.pipeline.context import NullReporter
from edgeslim.pipeline.lock import LOCK, RunLock, recipe_change
from edgeslim.pipeline.run import run_recipe
from edgeslim.recipe import dump_recipe, load_recipe

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "data.limit_train=256", "--set", "data.limit_val=32", "--set", "baseline.epochs=3",
         "--set", "finetune.epochs=1", "--set", "quantize.precisions=[fp32]", "--set", "profile.max_seconds=0.1", "--set", "profile.sessions=1",
         "--set", "export.include_baseline=false"]


def test_second_lock_names_the_holder_and_release_frees_it(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunDirError, match=f"in use by pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK).exists()
    with RunLock(tmp_path):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp_path / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    with RunLock(tmp_path) as lock:
        assert lock.held and json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


def test_wait_blocks_until_the_holder_releases(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    threading.Timer(0.5, first.release).start()
    t0 = time.perf_counter()
    with RunLock(tmp_path, wait=True, poll=0.05):
        waited = time.perf_counter() - t0
    assert 0.4 < waited < 5


def test_wait_says_once_for_which_process_and_lock_it_waits(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    threading.Timer(0.3, first.release).start()
    heard = []
    with RunLock(tmp_path, wait=True, poll=0.02, log=heard.append):
        pass
    assert len(heard) == 1, heard  # one line, not one per poll
    assert f"waiting for pid {os.getpid()}" in heard[0] and str(tmp_path / LOCK) in heard[0]


def test_recipe_change_names_the_sections_that_differ(tmp_path):
    base = dump_recipe(load_recipe(None))
    assert recipe_change(tmp_path, base) is None  # nothing ran here yet
    (tmp_path / "recipe.yaml").write_text(base)
    assert recipe_change(tmp_path, base) is None
    other = dump_recipe(load_recipe(None, ["finetune.lr=0.2", "compress.ratio=0.3"]))
    note = recipe_change(tmp_path, other)
    assert "changed: compress, finetune)" in note and "redone" in note and str(tmp_path) in note


class _Heard(NullReporter):
    def __init__(self):
        self.lines = []

    def log(self, message):
        self.lines.append(message)


def test_a_run_into_a_directory_of_another_recipe_says_what_changed(tmp_path):
    quick = ["model.input_size=16", "data.limit_train=64", "data.limit_val=16", "baseline.epochs=1",
             "finetune.epochs=1", "export.include_baseline=false", "quantize.precisions=[fp32]",
             "profile.accuracy=false", "profile.min_seconds=0", "profile.max_seconds=0.05", "profile.sessions=1",
             "profile.min_iterations=2", "profile.warmup=1", "profile.warmup_seconds=0"]
    first = _Heard()
    run_recipe(load_recipe(None, quick), tmp_path, reporter=first)
    assert not [line for line in first.lines if "another recipe" in line]
    again = _Heard()
    run_recipe(load_recipe(None, quick + ["profile.warmup=2"]), tmp_path, reporter=again)
    notes = [line for line in again.lines if "another recipe" in line]
    assert len(notes) == 1 and "(changed: profile)" in notes[0], again.lines


def test_unreadable_lock_from_a_crash_mid_write_is_taken_over_when_old(tmp_path):
    (tmp_path / LOCK).write_text("")
    old = time.time() - 60
    os.utime(tmp_path / LOCK, (old, old))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()  # taken over
    assert not (tmp_path / LOCK).exists()


def test_two_real_runs_into_one_directory(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "edgeslim", "run", "--out", str(out), *QUICK], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / LOCK).exists():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        t0 = time.perf_counter()
        second = subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(out), *QUICK], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"in use by pid {first.pid}" in errors[0] and "--wait" in errors[0]
        assert time.perf_counter() - t0 < 60  # fails at once, it does not wait
        assert first.poll() is None  # and it did not disturb the running one
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run left a stale lock: a new run takes it over and finishes
    third = subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(out), *QUICK], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert not (out / LOCK).exists()
    assert json.loads((out / "results.json").read_text())[0]["status"] == "ok"
