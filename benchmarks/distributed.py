"""Fine-tuning with 1 and 2 processes (torchrun, gloo on this machine): wall time and accuracy.

Runs the default recipe twice, each in a fresh run directory, once plain and once with
``--nproc 2``, and reads the stage times and accuracies from the run directories.

    python benchmarks/distributed.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _noise import add_noise_args, check_quiet, write_result

RESULTS = Path(__file__).resolve().parent / "results"


def run(nproc: int, out: Path) -> dict:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "edgeslim", "run", "--out", str(out)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    wall = time.perf_counter() - t0
    done = lambda s: json.loads((out / s / "done.json").read_text())  # noqa: E731
    rows = {x["id"]: x for x in json.loads((out / "results.json").read_text())}
    return {"nproc": nproc, "wall_s": wall,
            "baseline_s": done("00-baseline")["seconds"], "finetune_s": done("20-finetune")["seconds"],
            "baseline_accuracy": done("00-baseline")["outputs"]["accuracy"],
            "finetune_accuracy": done("20-finetune")["outputs"]["accuracy"],
            "int8_accuracy": rows["compressed/onnx/int8"]["accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)  # wall times of a busy machine are its neighbours'
    with tempfile.TemporaryDirectory(prefix="edgeslim-ddp-") as tmp:
        results = [run(n, Path(tmp) / f"n{n}") for n in (1, 2)]
    write_result(RESULTS / "distributed.json", json.dumps(results, indent=2), args, quiet=quiet)
    lines = ["# Distributed training: default recipe, 1 vs 2 processes on this machine", "",
             "| processes | baseline training s | fine-tune s | baseline acc | fine-tuned acc | INT8 acc | run wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['nproc']} | {r['baseline_s']:.1f} | {r['finetune_s']:.1f} | "
                     f"{100 * r['baseline_accuracy']:.2f}% | {100 * r['finetune_accuracy']:.2f}% | "
                     f"{100 * r['int8_accuracy']:.2f}% | {r['wall_s']:.0f} |")
    lines += ["", "Two processes on two cores each run one thread (torchrun sets OMP_NUM_THREADS=1), so on",
              "this machine the gain is bounded by what one process already got from two threads; the",
              "same command scales across GPUs or machines with torchrun's rendezvous arguments."]
    write_result(RESULTS / "distributed.md", "\n".join(lines) + "\n", args, quiet=quiet)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
