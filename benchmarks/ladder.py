"""The compression ladder: every stage and precision as a row, on ``cpu`` and ``edge``.

For resnet50 and mobilenet_v2 at 224×224 (random weights, BatchNorm statistics estimated
on synthetic data): PyTorch eager FP32, the exported FP32 artifact, the L1-pruned one
(ratio 0.5), INT8, and pruned + INT8, in ONNX Runtime and OpenVINO, each with its p50
latency at batch 1, its speedup over PyTorch eager FP32 on the same target, and its bytes.
Artifacts come from the pipeline's registered exporters, pruning method and quantizers,
and are measured by the targets themselves (``edge``: one thread pinned to one core, in
the agent subprocess). PyTorch eager on ``edge`` runs in a subprocess pinned the same way.

    python benchmarks/ladder.py                     # both models, onnx + openvino, cpu + edge
    python benchmarks/ladder.py --quick             # short time budgets, fewer calibration images
    python benchmarks/ladder.py --models resnet50 --formats onnx --targets cpu

Writes benchmarks/results/ladder.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _artifacts import RESULTS, ROOT, Builder, machine
from _noise import add_noise_args, check_quiet, write_result


def profile_cfg(quick: bool):
    from edgeslim.recipe import ProfileCfg

    if quick:
        return ProfileCfg(accuracy=False, warmup=2, warmup_seconds=0.2, min_iterations=10, max_seconds=2.0)
    return ProfileCfg(accuracy=False, warmup=5, warmup_seconds=1.0, min_iterations=20, max_seconds=10.0)


def eager_worker(spec: dict) -> None:
    """Subprocess entry: pin first (before torch starts threads), then time PyTorch eager."""
    os.sched_setaffinity(0, {spec["core"]})
    import numpy as np
    import torch

    from edgeslim.models import create_model
    from edgeslim.recipe import ProfileCfg
    from edgeslim.targets.profiler import process_affinity, time_infer
    from edgeslim.targets.torch_runner import TorchRunner

    model = create_model(spec["model"], num_classes=1000)
    model.load_state_dict(torch.load(spec["weights"], weights_only=True))
    x = np.load(spec["sample"])
    with TorchRunner(None, model=model, device="cpu", threads=spec["threads"]) as r:
        stats = time_infer(r, x, ProfileCfg(**spec["cfg"]))
        stats["semantics"] = {**r.semantics(), "affinity": process_affinity()}
    print(json.dumps(stats))


def eager(b: Builder, target: str, cfg, work: Path) -> dict:
    import numpy as np
    import torch

    from edgeslim.targets.ort_runner import usable_cores
    from edgeslim.targets.profiler import time_infer
    from edgeslim.targets.torch_runner import TorchRunner

    x = np.ascontiguousarray(b.sample[:1])
    if target == "cpu":
        with TorchRunner(None, model=b.model, device="cpu", threads=usable_cores()) as r:
            stats = time_infer(r, x, cfg)
            stats["semantics"] = r.semantics()
        return stats
    edge = parse(target)
    weights, sample = work / f"{b.name}-eager.pt", work / f"{b.name}-sample.npy"
    torch.save(b.model.state_dict(), weights)
    np.save(sample, x)
    spec = {"model": b.name, "weights": str(weights), "sample": str(sample), "core": edge.core,
            "threads": edge.opts.threads, "cfg": cfg.model_dump()}
    r = subprocess.run([sys.executable, __file__, "--eager-worker", json.dumps(spec)], capture_output=True,
                       text=True, timeout=1800, env={**os.environ, "OMP_NUM_THREADS": str(edge.opts.threads)})
    if r.returncode != 0:
        raise SystemExit(f"eager worker failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def parse(name: str):
    from edgeslim.targets import parse_target

    return parse_target(name)


def model_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def ladder(model_name: str, args, work: Path) -> list[dict]:
    from edgeslim.compress.pruner import count_macs_params
    import torch

    cfg = profile_cfg(args.quick)
    t0 = time.perf_counter()
    b = Builder(work, model_name, args.size, calibration=16 if args.quick else 64)
    pruned = b.pruned("l1", args.ratio)
    example = torch.from_numpy(b.sample[:1])
    macs = {"baseline": count_macs_params(b.model, example)[0], "pruned": count_macs_params(pruned, example)[0]}
    arts = []  # (row name, variant, artifact)
    for fmt in args.formats.split(","):
        base = b.export(b.model, fmt, "baseline")
        small = b.export(pruned, fmt, "compressed", "l1")
        arts += [(f"exported FP32 ({fmt})", "baseline", base), (f"pruned {args.ratio} FP32 ({fmt})", "pruned", small),
                 (f"INT8 ({fmt})", "baseline", b.quantize(base)),
                 (f"pruned {args.ratio} + INT8 ({fmt})", "pruned", b.quantize(small))]
    print(f"{model_name}: artifacts built in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for target in args.targets.split(","):
        e = eager(b, target, cfg, work)
        eager_p50 = e["latency_ms"]["p50"]
        rows.append({"model": model_name, "target": target, "row": "PyTorch eager FP32", "format": "pytorch",
                     "precision": "fp32", "p50_ms": eager_p50, "p90_ms": e["latency_ms"]["p90"], "speedup": 1.0,
                     "bytes": model_bytes(b.model), "macs": macs["baseline"], "iterations": e["iterations"],
                     "threads": e["semantics"]["threads"], "precision_executed": "f32"})
        print(f"  {target}: eager p50 {eager_p50:.2f} ms", flush=True)
        t = parse(target)
        for name, variant, art in arts:
            m = t.profile(art, b.sample[:1], cfg, None)
            if m["status"] != "ok":
                raise SystemExit(f"{name} on {target} failed: {m['reason']}")
            p50 = m["latency_ms"]["p50"]
            rows.append({"model": model_name, "target": target, "row": name, "format": art.format,
                         "precision": art.precision, "p50_ms": p50, "p90_ms": m["latency_ms"]["p90"],
                         "speedup": eager_p50 / p50, "bytes": art.bytes, "macs": macs[variant],
                         "iterations": m["iterations"], "threads": m["semantics"]["threads"],
                         "precision_executed": m["semantics"]["precision_executed"]})
            print(f"  {target}: {name} p50 {p50:.2f} ms ({eager_p50 / p50:.1f}x)", flush=True)
    return rows


def markdown(results: dict, args) -> str:
    mc = results["machine"]
    cmd = "python benchmarks/ladder.py" + (" --quick" if args.quick else "")
    lines = ["# The compression ladder", "",
             f"Input 224×224 (--size {args.size}), batch 1, random weights; L1 structured pruning ratio {args.ratio}; "
             "INT8 = ONNX Runtime static QDQ (onnx) / NNCF (openvino), calibrated on synthetic data. "
             "`cpu`: all usable cores; `edge`: 1 thread pinned to one core (agent subprocess). "
             f"Machine: {mc['cpu']} ({', '.join(mc['isa'])}), {mc['usable_cores']} usable cores.", "",
             f"Command: `{cmd}` ({results['seconds']:.0f} s)", ""]
    for model in dict.fromkeys(r["model"] for r in results["rows"]):
        lines += [f"## {model}", "", "| target | row | precision executed | threads | p50 ms | p90 ms | "
                  "speedup over eager FP32 | bytes | MACs |", "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in results["rows"] if r["model"] == model):
            lines.append(f"| {r['target']} | {r['row']} | {r['precision_executed']} | {r['threads']} | "
                         f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['speedup']:.2f}× | {r['bytes']:,} | "
                         f"{r['macs'] / 1e6:,.0f}M |")
        lines.append("")
    lines += ["## Best artifact per model and target", "", "| model | target | best row | speedup |", "|---|---|---|---|"]
    for (model, target), best in results["best"].items():
        lines.append(f"| {model} | {target} | {best['row']} | {best['speedup']:.2f}× |")
    return "\n".join(lines + [""])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--eager-worker":
        eager_worker(json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--targets", default="cpu,edge")
    ap.add_argument("--formats", default="onnx,openvino")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--ratio", type=float, default=0.5, help="L1 pruning ratio")
    ap.add_argument("--quick", action="store_true", help="2 s per profile, 16 calibration images")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)  # a busy machine gives the artifacts' neighbours' figures, not theirs
    t0 = time.perf_counter()
    results = {"machine": {**machine(), "noise_before": quiet}, "args": vars(args), "rows": []}
    with tempfile.TemporaryDirectory(prefix="edgeslim-ladder-") as tmp:
        for model in args.models.split(","):
            results["rows"] += ladder(model, args, Path(tmp))
    best = {}
    for r in results["rows"]:
        k = (r["model"], r["target"])
        if r["format"] != "pytorch" and (k not in best or r["speedup"] > best[k]["speedup"]):
            best[k] = r
    results["best"] = best
    results["seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_result(RESULTS / "ladder.json", json.dumps({**results, "best": {f"{m}/{t}": v for (m, t), v in best.items()}},
                                                     indent=2), args, rows=results["rows"], quiet=quiet)
    md = markdown(results, args)
    write_result(RESULTS / "ladder.md", md, args, rows=results["rows"], quiet=quiet)
    print(md)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
