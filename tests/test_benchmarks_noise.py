"""The benchmarks' load check (benchmarks/_noise.py): refuse to start on a busy machine, and
never replace a committed result with noisy figures unless told to.

No timing premise: the machine's share is either passed in, or the threshold is set where
the outcome cannot depend on the load (a share is always within 0..1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _noise  # noqa: E402
from edgeslim.targets.base import cpu_info  # noqa: E402

QUIET = {"noisy": False, "other_cpu_share": 0.02, "threshold": 0.15, "load_average_before": [0.5, 0.4, 0.3]}
BUSY = {"noisy": True, "other_cpu_share": 0.6, "threshold": 0.15, "load_average_before": [8.3, 6.0, 4.0]}
OLD = "# Old result\n\nfigures measured on a quiet machine\n"
NEW = "# New result\n\nfigures\n"


def args(allow_noisy: bool = False, max_other_cpu: float = 0.15) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    _noise.add_noise_args(ap)
    return ap.parse_args([f"--max-other-cpu={max_other_cpu}"] + (["--allow-noisy"] if allow_noisy else []))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one tracked (committed-looking) result, results/x.md."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.md").write_text(OLD)
    subprocess.run(["git", "add", "results/x.md"], cwd=tmp_path, check=True)
    return tmp_path / "results"


def test_busy_machine_refuses_to_start():
    # threshold below 0: any measured share (>= 0) is over it
    with pytest.raises(SystemExit, match=r"the machine is busy: other processes use \d+% of the cores"):
        _noise.check_quiet(args(max_other_cpu=-1.0), seconds=0.05)


def test_busy_machine_starts_with_allow_noisy():
    noise = _noise.check_quiet(args(allow_noisy=True, max_other_cpu=-1.0), seconds=0.05)
    assert noise["noisy"] is True and 0.0 <= noise["other_cpu_share"] <= 1.0


def test_quiet_machine_starts():
    # threshold 1: the share is capped at 1, so it is never over it
    noise = _noise.check_quiet(args(max_other_cpu=1.0), seconds=0.05)
    assert noise["noisy"] is False and noise["threshold"] == 1.0


def test_measured_share_passed_in_decides():
    with pytest.raises(SystemExit, match=r"60% of the cores \(limit 15%\)"):
        _noise.check_quiet(args(), noise=BUSY)
    assert _noise.check_quiet(args(), noise=QUIET) is QUIET


def test_noisy_result_does_not_replace_committed_one(repo: Path, capsys):
    assert _noise.committed(repo / "x.md")
    assert _noise.write_result(repo / "x.md", NEW, args(), quiet=BUSY) is False
    assert (repo / "x.md").read_text() == OLD
    alt = (repo / "x.md.noisy").read_text()
    assert alt.startswith("# New result\n\nLoad check: ") and "**Noisy**" in alt
    assert "not overwriting committed" in capsys.readouterr().err


def test_quiet_result_replaces_committed_one(repo: Path):
    assert _noise.write_result(repo / "x.md", NEW, args(), quiet=QUIET) is True
    lines = (repo / "x.md").read_text().split("\n")
    assert lines[0] == "# New result" and lines[4] == "figures"
    assert lines[2].startswith(f"Load check: {cpu_info()['cpu']} (")
    assert "load average 0.50/0.40/0.30 before the run" in lines[2] and "2% of the cores" in lines[2]
    assert "Noisy" not in lines[2]
    assert not (repo / "x.md.noisy").exists()


def test_allow_noisy_replaces_and_marks(repo: Path):
    assert _noise.write_result(repo / "x.md", NEW, args(allow_noisy=True), quiet=BUSY) is True
    text = (repo / "x.md").read_text()
    assert "**Noisy**: measured on a busy machine (--allow-noisy)." in text
    assert not (repo / "x.md.noisy").exists()


def test_noisy_result_replaces_an_uncommitted_file(repo: Path):
    (repo / "y.md").write_text(OLD)  # untracked: a previous local run, not a committed result
    assert _noise.write_result(repo / "y.md", NEW, args(), quiet=BUSY) is True
    assert (repo / "y.md").read_text().startswith("# New result")


def test_a_noisy_row_counts_as_noisy(repo: Path):
    (repo / "x.json").write_text("{}")
    subprocess.run(["git", "add", "results/x.json"], cwd=repo.parent, check=True)
    rows = [{"id": "a", "noise": {"noisy": False}}, {"id": "b", "noise": {"noisy": True}}]
    text = json.dumps({"rows": rows})
    assert _noise.write_result(repo / "x.json", text, args(), rows=rows, quiet=QUIET) is False
    assert (repo / "x.json").read_text() == "{}" and (repo / "x.json.noisy").read_text() == text


def test_rerender_keeps_the_measuring_runs_line(repo: Path):
    _noise.write_result(repo / "x.md", NEW, args(), quiet=QUIET)
    line = (repo / "x.md").read_text().split("\n")[2]
    _noise.write_result(repo / "x.md", "# New result\n\nreworded\n", args())  # no quiet: no new figures
    assert (repo / "x.md").read_text() == f"# New result\n\n{line}\n\nreworded\n"


def test_cpu_named_once(repo: Path):
    cpu = cpu_info()["cpu"]
    _noise.write_result(repo / "x.md", f"# R\n\nMachine: {cpu}.\n", args(), quiet=QUIET)
    assert (repo / "x.md").read_text().count(cpu) == 1
