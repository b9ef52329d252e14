"""Storage faults: a full disk and a read-only run directory give one clear error and no done.json."""

import resource
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "data.limit_train=128", "--set", "data.limit_val=32", "--set", "baseline.epochs=1",
         "--set", "finetune.epochs=1", "--set", "quantize.precisions=[fp32]", "--set", "profile.max_seconds=0.1", "--set", "profile.sessions=1"]


def _run(out: Path, preexec=None):
    return subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(out), *QUICK],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=preexec)


def _one_error_line(r) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def _no_half_written(out: Path) -> None:
    assert not list(out.rglob("done.json"))
    assert not list(out.rglob(".*.tmp*")), list(out.rglob(".*.tmp*"))


@pytest.fixture
def tmpfs(tmp_path):
    """A 1 MiB tmpfs (root only); skipped where this process may not mount."""
    mnt = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_file_size_limit_mid_stage_is_one_error_and_nothing_half_written(tmp_path):
    # RLIMIT_FSIZE makes every write past 300 kB fail (EFBIG) in the run process only:
    # the baseline checkpoint (1.1 MB) cannot be written.
    out = tmp_path / "run"
    r = _run(out, preexec=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000)))
    line = _one_error_line(r)
    assert "00-baseline" in line and "File too large" in line
    _no_half_written(out)


def test_full_disk_is_one_error_and_nothing_half_written(tmpfs):
    out = tmpfs / "run"
    line = _one_error_line(_run(out))
    assert "No space left" in line
    _no_half_written(out)
    assert not (out / "00-baseline").exists()


def test_read_only_run_directory(tmpfs):
    (tmpfs / "run").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    line = _one_error_line(_run(tmpfs / "run"))
    assert "Read-only file system" in line and str(tmpfs / "run") in line


def test_run_directory_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    line = _one_error_line(_run(tmp_path / "afile" / "run"))
    assert "afile" in line
