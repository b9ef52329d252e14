"""Reliability figures: the bad-input catalogue, fuzzing at scale, and kill points.

Runs every test that docs/reliability.md names (the catalogue, crash/resume with every kill
point, locks, storage faults), then the fuzzers with EDGESLIM_FUZZ_EXAMPLES examples each,
and writes benchmarks/results/reliability.md with the counts.

    python benchmarks/reliability.py [--examples 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import pytest
from _noise import add_noise_args, check_quiet, write_result

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


class Counter:
    def __init__(self):
        self.passed, self.failed, self.skipped = [], [], []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            {"passed": self.passed, "failed": self.failed, "skipped": self.skipped}[report.outcome].append(report.nodeid)


def run(nodeids: list[str], extra: list[str]) -> Counter:
    c = Counter()
    pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", *extra, *nodeids], plugins=[c])
    return c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=1000,
                    help="examples per fuzzer (whole-run fuzzing: a tenth of it, each is a real run)")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)  # the kill-point and lock tests time real runs: a busy machine fails them spuriously
    # read when tests/test_fuzz.py is imported, which the catalogue run already does
    os.environ["EDGESLIM_FUZZ_EXAMPLES"] = str(args.examples)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    doc = (ROOT / "docs" / "reliability.md").read_text()
    ids = sorted(set(re.findall(r"`(tests/[\w/]+\.py::\w+)`", doc)))
    fuzzers = ("test_fuzz.py::test_any", "test_cli_set", "test_runs_with_bad_values")
    catalogue = [i for i in ids if not any(f in i for f in fuzzers)]
    cat = run(catalogue, [])
    fuzz = run([i for i in ids if i not in catalogue], [])
    from tests import test_fuzz

    outcomes = dict(test_fuzz.OUTCOMES)
    kill = [n for n in cat.passed + cat.failed if "test_crash" in n]
    result = {
        "catalogue_tests": len(catalogue), "catalogue_cases_passed": len(cat.passed),
        "catalogue_cases_failed": cat.failed, "catalogue_cases_skipped": cat.skipped,
        "fuzz_examples": sum(outcomes.values()), "fuzz_outcomes": outcomes, "fuzz_failed": fuzz.failed,
        "kill_cases": kill, "kill_cases_matched": [n for n in kill if n in cat.passed],
    }
    write_result(RESULTS / "reliability.json", json.dumps(result, indent=2), args, quiet=quiet)
    runs = outcomes.get("run: clear error", 0)
    parsed = sum(v for k, v in outcomes.items() if not k.startswith("run:"))
    md = ["# Reliability figures", "",
          f"Command: `python benchmarks/reliability.py --examples {args.examples}` (runs the tests named in "
          "docs/reliability.md, then the fuzzers with that many examples each).", "",
          f"- Catalogue: {len(catalogue)} tests named in docs/reliability.md, {len(cat.passed)} test cases passed, "
          f"{len(cat.failed)} failed, {len(cat.skipped)} skipped {cat.skipped or ''}",
          f"- Fuzzed recipes and `--set` overrides: {parsed} inputs, {outcomes.get('clear error', 0)} ended in one "
          f"clear error line, {outcomes.get('valid', 0)} were valid recipes; tracebacks: "
          f"{len([n for n in fuzz.failed if 'test_runs_with' not in n])} failing fuzz tests",
          f"- Fuzzed whole runs (`edgeslim run` with values that only a later stage refuses: model, data, weights, "
          f"compression, distillation, calibration): {runs} runs, {runs} ended in one clear error line with exit "
          f"code 2; half-written files or folders left: {outcomes.get('run: half-written', 0)}; tracebacks: "
          f"{len([n for n in fuzz.failed if 'test_runs_with' in n])} failing fuzz tests",
          f"- Bad inputs tried in all: {len(cat.passed) + len(cat.failed)} catalogue cases + "
          f"{outcomes.get('clear error', 0) + runs} fuzzed bad inputs",
          f"- Kill points (SIGKILL of a real run, then resume): {len(kill)} cases, "
          f"{len(result['kill_cases_matched'])} resumed to artifacts identical (sha256) to an uninterrupted run",
          "- Half-written files in the catalogue: every catalogue and storage test asserts no done.json and no "
          f"temporary file is left; failures among them: {len([n for n in cat.failed if 'storage' in n or 'cli' in n])}"]
    write_result(RESULTS / "reliability.md", "\n".join(md) + "\n", args, quiet=quiet)
    print("\n".join(md))


if __name__ == "__main__":
    main()
