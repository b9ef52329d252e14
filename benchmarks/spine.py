"""Figures of the spine (issue: "The spine"), measured, written to benchmarks/results/spine.md.

1. The default run (`edgeslim run`, no recipe) in a fresh run directory: wall time, the
   pruned/baseline ONNX byte ratio, accuracy after fine-tuning vs the baseline, and INT8 vs
   its FP32 parent in bytes and accuracy.
2. resnet50 at 224×224, batch 1, random weights: L1 ratio 0.5 pruned vs unpruned ONNX
   Runtime p50 (realized speedup ÷ MAC reduction), and INT8 vs FP32 ONNX Runtime speedup.

    python benchmarks/spine.py            # both parts
    python benchmarks/spine.py --skip-default
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _noise import add_noise_args, check_quiet, write_result

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def default_run(work: Path) -> dict:
    out = work / "default"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(out)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"edgeslim run failed:\n{r.stderr[-2000:]}")
    rows = {x["id"]: x for x in json.loads((out / "results.json").read_text())}
    base = json.loads((out / "00-baseline" / "done.json").read_text())["outputs"]
    fine = json.loads((out / "20-finetune" / "done.json").read_text())["outputs"]
    b32, c32, c8 = rows["baseline/onnx/fp32"], rows["compressed/onnx/fp32"], rows["compressed/onnx/int8"]
    return {
        "wall_s": wall,
        "stage_seconds": {k: v for k, v in ((p.parent.relative_to(out).as_posix(),
                          json.loads(p.read_text())["seconds"]) for p in sorted(out.rglob("done.json")))},
        "baseline_accuracy": base["accuracy"],
        "finetuned_accuracy": fine["accuracy"],
        "pruned_vs_baseline_bytes": c32["bytes"] / b32["bytes"],
        "accuracy_drop_points": 100 * (b32["accuracy"] - c32["accuracy"]),
        "int8_vs_fp32_bytes": c8["bytes"] / c32["bytes"],
        "int8_accuracy_drop_points": 100 * (c32["accuracy"] - c8["accuracy"]),
        "rows": [{k: r.get(k) for k in ("id", "bytes", "accuracy", "params", "macs")} |
                 {"p50_ms": r["latency_ms"]["p50"]} for r in rows.values()],
    }


def resnet50_latency(work: Path) -> dict:
    from edgeslim.compress import METHODS, CompressJob
    from edgeslim.compress.pruner import count_macs_params
    from edgeslim.data import load_data
    from edgeslim.exporters import EXPORTERS
    from edgeslim.models import create_model
    from edgeslim.quantizers import QUANTIZERS
    from edgeslim.recipe import CompressCfg, ExportCfg, ProfileCfg, QuantizeCfg
    from edgeslim.targets.ort_runner import OrtRunner
    from edgeslim.targets.profiler import time_infer

    torch.manual_seed(0)
    data = load_data("synthetic", input_size=224, num_classes=1000, limit_train=64, limit_val=8)
    x = data.val_arrays(limit=2)[0]
    example = torch.from_numpy(x[:1])
    base = create_model("resnet50", num_classes=1000).eval()
    # Random weights: give BN sensible statistics so activations (and INT8 ranges) are realistic.
    from edgeslim.compress.pruner import recalibrate_bn

    recalibrate_bn(base, data.train_loader(16), 4)
    pruned = copy.deepcopy(base)
    job = CompressJob(model=pruned, example_inputs=example, data=data, cfg=CompressCfg(ratio=0.5),
                      options=None, spec={"name": "resnet50", "num_classes": 1000, "kwargs": {}},
                      batch_size=16)
    pruned = METHODS.get("l1").apply(job)
    macs0, _ = count_macs_params(base, example)
    macs1, _ = count_macs_params(pruned, example)
    cfg = ProfileCfg(warmup=10, warmup_seconds=1.0, min_iterations=30, max_iterations=400,
                     max_seconds=20, ci_threshold=0.01)
    ecfg = ExportCfg(parity={"max_abs": 1e-2, "min_cosine": 0.999})
    out = {}
    arts = {}
    for name, model in (("unpruned", base), ("pruned", pruned)):
        d = work / f"r50-{name}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        arts[name] = EXPORTERS.get("onnx").export(model, x, d, cfg=ecfg, variant=name, method="l1")
    q = work / "r50-int8"
    shutil.rmtree(q, ignore_errors=True)
    q.mkdir()
    arts["unpruned-int8"] = QUANTIZERS.get("onnx-int8").quantize(
        arts["unpruned"], data.calibration(64), q, cfg=QuantizeCfg())
    for name, art in arts.items():
        with OrtRunner(art) as r:
            stats = time_infer(r, x[:1], cfg)
        out[name] = {"p50_ms": stats["latency_ms"]["p50"], "p90_ms": stats["latency_ms"]["p90"],
                     "iterations": stats["iterations"], "bytes": art.bytes, "threads": r._threads}
    speedup = out["unpruned"]["p50_ms"] / out["pruned"]["p50_ms"]
    mac_reduction = macs0 / macs1
    return {
        "macs_unpruned": macs0, "macs_pruned": macs1, "mac_reduction": mac_reduction,
        "pruned_speedup": speedup, "speedup_over_mac_reduction": speedup / mac_reduction,
        "int8_speedup": out["unpruned"]["p50_ms"] / out["unpruned-int8"]["p50_ms"],
        "int8_vs_fp32_bytes": out["unpruned-int8"]["bytes"] / out["unpruned"]["bytes"],
        "artifacts": out,
    }


def write(results: dict, args: argparse.Namespace, quiet: dict) -> None:
    write_result(RESULTS / "spine.json", json.dumps(results, indent=2), args, rows=results, quiet=quiet)
    lines = ["# Spine figures", "", f"Machine: {results['machine']}", ""]
    d = results.get("default")
    if d:
        lines += [
            "## `edgeslim run` (embedded default: resnet20, digits, L1 0.5, ONNX fp32/fp16/int8, cpu)", "",
            "| figure | measured | target |", "|---|---|---|",
            f"| wall time (baseline training included) | {d['wall_s']:.0f} s | < 180 s |",
            f"| pruned FP32 ONNX bytes ÷ baseline ONNX bytes | {d['pruned_vs_baseline_bytes']:.3f} | ≤ 0.35 |",
            f"| accuracy drop after fine-tuning (artifact, points) | {d['accuracy_drop_points']:.2f} | ≤ 1.5 |",
            f"| INT8 bytes ÷ FP32 parent bytes | {d['int8_vs_fp32_bytes']:.3f} | ≤ 0.35 |",
            f"| INT8 accuracy drop vs FP32 parent (points) | {d['int8_accuracy_drop_points']:.2f} | ≤ 0.5 |",
            "", f"Baseline accuracy {100 * d['baseline_accuracy']:.2f}%, fine-tuned {100 * d['finetuned_accuracy']:.2f}%.",
            "", "| artifact | bytes | accuracy | p50 ms |", "|---|---|---|---|",
            *[f"| {r['id']} | {r['bytes']:,} | {100 * r['accuracy']:.2f}% | {r['p50_ms']:.3f} |" for r in d["rows"]],
            "", "Stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in d["stage_seconds"].items()), "",
        ]
    r = results.get("resnet50")
    if r:
        a = r["artifacts"]
        lines += [
            "## resnet50, 224×224, batch 1, ONNX Runtime CPU EP (random weights)", "",
            "| artifact | p50 ms | p90 ms | bytes |", "|---|---|---|---|",
            *[f"| {k} | {v['p50_ms']:.2f} | {v['p90_ms']:.2f} | {v['bytes']:,} |" for k, v in a.items()],
            "",
            f"- MAC reduction of L1 ratio 0.5: {r['mac_reduction']:.2f}× ({r['macs_unpruned']:,} → {r['macs_pruned']:,})",
            f"- realized speedup {r['pruned_speedup']:.2f}× → speedup ÷ MAC reduction = **{r['speedup_over_mac_reduction']:.2f}** (target ≥ 0.8)",
            f"- INT8 vs FP32 speedup: **{r['int8_speedup']:.2f}×** (target ≥ 2×); INT8 bytes ÷ FP32 = {r['int8_vs_fp32_bytes']:.3f} (target ≤ 0.27)",
            "",
        ]
    write_result(RESULTS / "spine.md", "\n".join(lines), args, rows=results, quiet=quiet)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-default", action="store_true")
    ap.add_argument("--skip-resnet50", action="store_true")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)
    from edgeslim.targets.base import cpu_info

    info = cpu_info()
    results: dict = {"machine": f"{info['cpu']}, {torch.get_num_threads()} threads, ISA {', '.join(info['isa'])}"}
    with tempfile.TemporaryDirectory(prefix="edgeslim-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_default:
            results["default"] = default_run(work)
            print(json.dumps({k: v for k, v in results["default"].items() if k != "rows"}, indent=1))
        if not args.skip_resnet50:
            results["resnet50"] = resnet50_latency(work)
            print(json.dumps({k: v for k, v in results["resnet50"].items() if k != "artifacts"}, indent=1))
    write(results, args, quiet)


if __name__ == "__main__":
    main()
