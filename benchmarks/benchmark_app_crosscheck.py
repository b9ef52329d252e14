"""edgeslim's median against OpenVINO's own ``benchmark_app`` on the same IR and settings.

One OpenVINO IR (resnet50 at 224, random weights, FP32; ``--precision int8`` adds the
NNCF INT8 IR) is timed by edgeslim's profiler through the OpenVINO runner and by
``benchmark_app``, both with: device CPU, f32 inference precision (so neither silently
runs bf16), ``--threads`` inference threads, LATENCY hint, 1 stream, batch 1, the
synchronous API, and the inputs set on every iteration. The two alternate for
``--rounds`` rounds so that a change in the machine's load hits both; the figure is the
ratio of the medians of their medians (target: within ±10%).

benchmark_app refuses ``-nthreads``/``-nstreams`` next to ``-hint latency``, so those go
in a ``-load_config`` file: the configuration both compile with is printed and compared.

    python benchmarks/benchmark_app_crosscheck.py                 # resnet50 fp32, 3 rounds
    python benchmarks/benchmark_app_crosscheck.py --quick         # mobilenet_v2, 2 short rounds
    python benchmarks/benchmark_app_crosscheck.py --precision int8 --threads 1

Writes benchmarks/results/benchmark_app_crosscheck.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from _artifacts import RESULTS, Builder, machine
from _benchmark_app import KEYS, LIMIT, edgeslim_compiled, run_benchmark_app
from _noise import add_noise_args, check_quiet, write_result


def run_edgeslim(art, sample: np.ndarray, threads: int, seconds: float) -> dict:
    from edgeslim.recipe import ProfileCfg
    from edgeslim.targets.profiler import profile_artifact

    cfg = ProfileCfg(accuracy=False, max_seconds=seconds, warmup_seconds=1.0)
    m = profile_artifact(art, sample[:1], cfg, None, threads=threads, device="cpu",
                         runner_options={"inference_precision": "f32", "performance_hint": "LATENCY",
                                         "streams": 1})
    return {"p50_ms": m["latency_ms"]["p50"], "iterations": m["iterations"],
            "median_ci95": m["median_ci95"], "semantics": m["semantics"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="zoo model (default resnet50; --quick: mobilenet_v2)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--precision", choices=["fp32", "int8"], action="append",
                    help="IR(s) to check (repeatable; default fp32)")
    ap.add_argument("--rounds", type=int, default=None, help="alternations (default 3; --quick: 2)")
    ap.add_argument("--seconds", type=float, default=None, help="time per measurement (default 10; --quick: 3)")
    ap.add_argument("--quick", action="store_true")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)
    model = args.model or ("mobilenet_v2" if args.quick else "resnet50")
    rounds = args.rounds or (2 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    precisions = args.precision or ["fp32"]

    results = {"machine": {**machine(), "noise_before": quiet}, "model": model, "input_size": args.size, "threads": args.threads,
               "rounds": rounds, "seconds": seconds, "limit": LIMIT, "checks": {}}
    with tempfile.TemporaryDirectory(prefix="edgeslim-crosscheck-") as tmp:
        work = Path(tmp)
        b = Builder(work, model, args.size, calibration=32 if args.quick else 64)
        fp32 = b.export(b.model, "openvino", "baseline")
        arts = {"fp32": fp32}
        if "int8" in precisions:
            arts["int8"] = b.quantize(fp32, "int8")
        for prec in precisions:
            art = arts[prec]
            ours, theirs = [], []
            for i in range(rounds):
                ours.append(run_edgeslim(art, b.sample, args.threads, seconds))
                theirs.append(run_benchmark_app(art.path, [1, 3, args.size, args.size], args.threads, seconds, work))
                print(f"{prec} round {i + 1}: edgeslim p50 {ours[-1]['p50_ms']:.3f} ms, "
                      f"benchmark_app median {theirs[-1]['p50_ms']:.3f} ms", flush=True)
            a = float(np.median([o["p50_ms"] for o in ours]))
            z = float(np.median([t["p50_ms"] for t in theirs]))
            results["checks"][prec] = {
                "edgeslim_p50_ms": a, "benchmark_app_median_ms": z, "ratio": a / z,
                "passed": abs(a / z - 1) <= LIMIT, "edgeslim_runs": ours, "benchmark_app_runs": theirs,
                "compiled_edgeslim": edgeslim_compiled(art, args.threads),
                "compiled_benchmark_app": theirs[0]["compiled"],
                "precision_executed": ours[0]["semantics"]["precision_executed"],
            }
    write_result(RESULTS / "benchmark_app_crosscheck.json", json.dumps(results, indent=2, default=str), args,
                 quiet=quiet)
    md = markdown(results, args)
    write_result(RESULTS / "benchmark_app_crosscheck.md", md, args, quiet=quiet)
    print(md)


def markdown(r: dict, args) -> str:
    mc = r["machine"]
    cmd = "python benchmarks/benchmark_app_crosscheck.py" + (" --quick" if args.quick else "") + "".join(
        f" --precision {p}" for p in (args.precision or []))
    lines = ["# edgeslim vs OpenVINO benchmark_app, same IR and settings", "",
             f"{r['model']} at {r['input_size']}×{r['input_size']}, random weights; CPU, {r['threads']} threads, "
             f"LATENCY hint, 1 stream, batch 1, sync API, f32 inference precision; {r['rounds']} alternating "
             f"rounds of {r['seconds']:g} s each. Machine: {mc['cpu']}, {mc['usable_cores']} usable cores.", "",
             f"Command: `{cmd}`", "",
             "| IR | precision executed | edgeslim p50 ms | benchmark_app median ms | ratio | within ±10% |",
             "|---|---|---|---|---|---|"]
    for prec, c in r["checks"].items():
        lines.append(f"| {prec} | {c['precision_executed']} | {c['edgeslim_p50_ms']:.3f} | "
                     f"{c['benchmark_app_median_ms']:.3f} | {c['ratio']:.3f} | {'yes' if c['passed'] else 'no'} |")
    for prec, c in r["checks"].items():
        lines += ["", f"Per round ({prec}): edgeslim " + ", ".join(f"{x['p50_ms']:.2f}" for x in c["edgeslim_runs"])
                  + "; benchmark_app " + ", ".join(f"{x['p50_ms']:.2f}" for x in c["benchmark_app_runs"]) + " ms.",
                  "", "| compiled property | edgeslim | benchmark_app |", "|---|---|---|",
                  *[f"| {k} | {c['compiled_edgeslim'].get(k)} | {c['compiled_benchmark_app'].get(k)} |" for k in KEYS]]
    return "\n".join(lines + [""])


if __name__ == "__main__":
    main()
