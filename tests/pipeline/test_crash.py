"""Crash and resume for real: SIGKILL a running `edgeslim run` mid-stage, then run it again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "data.limit_train=256", "--set", "data.limit_val=64", "--set", "data.calibration_samples=64",
         "--set", "baseline.epochs=2", "--set", "finetune.epochs=1", "--set", "profile.max_seconds=0.1", "--set", "profile.sessions=1",
         "--set", "profile.min_iterations=5", "--set", "profile.warmup=2", "--set", "profile.warmup_seconds=0",
         "--set", "quantize.precisions=[fp32,int8]"]
# profiling long enough to be caught in the act (artifacts do not depend on profile settings)
SLOW_PROFILE = ["--set", "profile.max_seconds=1.0", "--set", "profile.sessions=1", "--set", "profile.min_iterations=200",
                "--set", "profile.ci_threshold=0.0001"]

# where a run is, seen from outside: the temporary folder of the stage in progress
KILL_POINTS = {
    "baseline training": ".00-baseline.tmp-*",
    "export": "30-export/.compressed-onnx.tmp-*",
    "quantization": "40-quantize/.compressed-onnx-int8.tmp-*",
    "profiling": ".50-profile.tmp-*",
}


def _start(out: Path, extra=()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeslim", "run", "--out", str(out), *QUICK, *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_at(out: Path, pattern: str, timeout: float = 240, extra=()) -> None:
    proc = _start(out, extra)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if list(out.glob(pattern)):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return
            if proc.poll() is not None:
                pytest.fail(f"run ended before reaching {pattern}: {proc.stderr.read()[-2000:]}")
            time.sleep(0.02)
        pytest.fail(f"never reached {pattern}")
    finally:
        if proc.poll() is None:
            proc.kill()


def _finish(out: Path, extra=(), log: list | None = None) -> dict:
    r = subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(out), *QUICK, *extra],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    if log is not None:
        log.append(" ".join(r.stderr.split()))  # the console wraps long lines
    return json.loads((out / "manifest.json").read_text())


def _artifact_hashes(manifest: dict) -> dict:
    return manifest["files"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _artifact_hashes(_finish(tmp_path_factory.mktemp("ref") / "run"))


def _check_killed(out: Path, stage: str) -> None:
    # the stage that was killed is not done, and no temporary folder looks finished
    assert not (out / stage / "done.json").exists()
    assert (out / ".lock").exists()  # the killed process still "holds" it: stale, taken over


def test_killed_during_training_then_quantization_resumes_to_identical_artifacts(tmp_path, reference):
    out = tmp_path / "run"
    _kill_at(out, KILL_POINTS["baseline training"])
    _check_killed(out, "00-baseline")
    _kill_at(out, KILL_POINTS["quantization"])  # the second run resumes, and is killed again
    assert (out / "00-baseline" / "done.json").exists()
    _check_killed(out, "40-quantize/compressed-onnx-int8")
    manifest = _finish(out)
    assert manifest["stages"]["00-baseline"]["cached"] and manifest["stages"]["30-export/compressed-onnx"]["cached"]
    assert not manifest["stages"]["40-quantize/compressed-onnx-int8"]["cached"]
    assert _artifact_hashes(manifest) == reference
    assert not list(out.rglob(".*.tmp-*"))


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_every_kill_point_resumes_to_identical_artifacts(tmp_path, reference, point):
    out = tmp_path / "run"
    _kill_at(out, KILL_POINTS[point], extra=SLOW_PROFILE if point == "profiling" else ())
    manifest = _finish(out)
    assert _artifact_hashes(manifest) == reference
    assert not list(out.rglob(".*.tmp-*"))


# Resume inside a stage: fine-tuning long enough to be killed between two epochs.
FINETUNE = ["--set", "finetune.epochs=4"]
EPOCH_STATE = ".resume/20-finetune/*/state.pt"  # written at each epoch end (edgeslim.finetune.resume)


def _stage_weights(out: Path, stage: str) -> str:
    return json.loads((out / stage / "done.json").read_text())["files"]["model.safetensors"]


@pytest.mark.slow  # ~4 min: two real runs and a killed one (benchmarks: pytest -m slow -k killed_mid)
def test_killed_mid_finetuning_resumes_at_the_next_epoch_to_identical_artifacts(tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref-finetune") / "run"
    reference = _artifact_hashes(_finish(ref, FINETUNE))
    assert not (ref / ".resume").exists()  # a finished stage leaves no training state behind

    out = tmp_path_factory.mktemp("killed-finetune") / "run"
    _kill_at(out, EPOCH_STATE, extra=FINETUNE)  # SIGKILL once the first epoch is checkpointed
    _check_killed(out, "20-finetune")
    [state] = out.glob(EPOCH_STATE)
    done = torch.load(state, map_location="cpu", weights_only=True)["epoch"]  # finished at the kill
    assert 1 <= done < 4
    log: list[str] = []
    manifest = _finish(out, FINETUNE, log)
    assert f"fine-tune: resumed after epoch {done}, continuing at epoch {done + 1}" in log[0]
    assert manifest["stages"]["10-compress"]["cached"] and not manifest["stages"]["20-finetune"]["cached"]
    assert _stage_weights(out, "20-finetune") == _stage_weights(ref, "20-finetune")
    assert _artifact_hashes(manifest) == reference
    assert json.loads((out / "20-finetune" / "done.json").read_text())["outputs"]["epochs"] == 4
    assert not (out / ".resume").exists() and not list(out.rglob(".*.tmp-*"))
