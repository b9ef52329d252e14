"""Is a profile reproducible? Five profiles of one artifact; their medians within ±5%.

One exported artifact (mobilenet_v2 at 224, random weights, ONNX FP32) is profiled
``--repeats`` times on each target with the recipe's default profile settings (warm-up by
count and time, CI-based stopping), each profile a fresh load as a user's run would do.
The figure is the largest distance of one p50 from the median of the p50s.

    python benchmarks/profiler_stability.py                    # cpu and edge, 5 repeats
    python benchmarks/profiler_stability.py --quick            # shorter time budgets
    python benchmarks/profiler_stability.py --model resnet50 --targets cpu

Writes benchmarks/results/profiler_stability.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _artifacts import RESULTS, Builder, machine, spread
from _noise import add_noise_args, check_quiet, write_result

LIMIT = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--targets", default="cpu,edge", help="comma-separated target names")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1 s time budget per profile instead of 3 s")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)

    from edgeslim.recipe import ProfileCfg
    from edgeslim.targets import parse_target

    cfg = ProfileCfg(accuracy=False, **({"max_seconds": 1.0} if args.quick else {}))
    results = {"machine": {**machine(), "noise_before": quiet}, "model": args.model, "input_size": args.size, "repeats": args.repeats,
               "profile": cfg.model_dump(), "limit": LIMIT, "targets": {}}
    with tempfile.TemporaryDirectory(prefix="edgeslim-stability-") as tmp:
        b = Builder(Path(tmp), args.model, args.size, calibration=8)
        art = b.export(b.model, "onnx", "baseline")
        for name in args.targets.split(","):
            target = parse_target(name)
            runs = []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                m = target.profile(art, b.sample[:1], cfg, None)
                if m["status"] != "ok":
                    raise SystemExit(f"profile {i} on {name} failed: {m['reason']}")
                runs.append({"p50_ms": m["latency_ms"]["p50"], "p90_ms": m["latency_ms"]["p90"],
                             "iterations": m["iterations"], "median_ci95": m["median_ci95"],
                             "threads": m["semantics"]["threads"], "wall_s": time.perf_counter() - t0,
                             "loadavg_1m": os.getloadavg()[0]})
                print(f"{name} #{i + 1}: p50 {runs[-1]['p50_ms']:.3f} ms ({m['iterations']} iterations, "
                      f"CI ±{100 * m['median_ci95']:.1f}%)", flush=True)
            p50s = [r["p50_ms"] for r in runs]
            results["targets"][name] = {"runs": runs, "spread": spread(p50s), "passed": spread(p50s) <= LIMIT}
    write_result(RESULTS / "profiler_stability.json", json.dumps(results, indent=2), args, quiet=quiet)
    md = markdown(results, args)
    write_result(RESULTS / "profiler_stability.md", md, args, quiet=quiet)
    print(md)


def markdown(r: dict, args) -> str:
    mc = r["machine"]
    lines = ["# Profiler stability: repeated profiles of one artifact", "",
             f"{r['model']} at {r['input_size']}×{r['input_size']}, ONNX FP32, batch 1, {r['repeats']} profiles "
             f"per target, each a fresh load. Machine: {mc['cpu']}, {mc['usable_cores']} usable cores.",
             "", f"Command: `python benchmarks/profiler_stability.py {'--quick ' if args.quick else ''}"
             f"--model {args.model} --targets {args.targets}`", "",
             "| target | p50 of each profile (ms) | largest distance from their median | within ±5% |",
             "|---|---|---|---|"]
    for name, t in r["targets"].items():
        p50s = ", ".join(f"{x['p50_ms']:.2f}" for x in t["runs"])
        lines.append(f"| {name} | {p50s} | {100 * t['spread']:.1f}% | {'yes' if t['passed'] else 'no'} |")
    lines += ["", "Iterations per profile: " + "; ".join(
        f"{n}: {', '.join(str(x['iterations']) for x in t['runs'])}" for n, t in r["targets"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
