"""Channel alignment (``compress.round_to``) against the CPU's vector width.

ONNX Runtime's CPU kernels (MLAS) and OpenVINO's (oneDNN) keep convolution activations in a
blocked channel layout whose block is the SIMD width in fp32 lanes: 8 channels on AVX2,
16 on AVX-512. A layer whose channel count is not a multiple of the block leaves that
layout (reorders around it, or a plain-layout kernel), which can cost more than the MACs
pruning saved. This benchmark prunes the same random-weight models (L1 unless a spec names
another criterion) at the same ratios, keeping channel counts at multiples of 8 and of 16, and times every artifact
(ONNX FP32/INT8, OpenVINO FP32/INT8) on ``cpu`` and ``edge`` in interleaved rounds (median
of rounds), next to the unpruned model.

    python benchmarks/alignment.py                 # resnet20, resnet56 at 32; mobilenet_v2 at 224
    python benchmarks/alignment.py --models resnet20:32:0.5 --rounds 3
    python benchmarks/alignment.py --models resnet20:32:0.5:latency --append   # add rows to the results
    python benchmarks/alignment.py --rewrite       # only the Markdown, from alignment.json

Writes benchmarks/results/alignment.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _artifacts import RESULTS, Builder, machine, spread
from _noise import add_noise_args, check_quiet, write_result

MODELS = "resnet20:32:0.5,resnet20:32:0.7,resnet56:32:0.5,mobilenet_v2:224:0.5"


def build(spec: str, work: Path, formats: list[str]) -> list[dict]:
    import torch

    from edgeslim.compress.pruner import count_macs_params

    name, size, ratio, method = (spec.split(":") + ["l1"])[:4]
    b = Builder(work / spec.replace(":", "-"), name, int(size), calibration=32)
    example = torch.from_numpy(b.sample[:1])
    variants = [("unpruned", None, b.model)]
    for align in (8, 16):
        variants.append((f"{method} {ratio}, round_to {align}", align,
                         b.pruned(method, float(ratio), round_to=align)))
    arts = []
    for label, align, model in variants:
        macs, params = count_macs_params(model, example)
        widths = sorted({m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)})
        for fmt in formats:
            fp32 = b.export(model, fmt, f"{label.replace(' ', '').replace(',', '-')}")
            for art in (fp32, b.quantize(fp32)):
                arts.append({"model": f"{name}@{size}", "method": method, "ratio": float(ratio), "variant": label,
                             "round_to": align,
                             "format": fmt, "precision": art.precision, "macs": macs, "params": params,
                             "bytes": art.bytes, "widths": widths, "artifact": art, "sample": b.sample[:1]})
    return arts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=MODELS, help="name:input_size:ratio[:method], comma-separated")
    ap.add_argument("--append", action="store_true",
                    help="keep the other models' rows of alignment.json (rows of the same model, method and ratio "
                         "are replaced)")
    ap.add_argument("--formats", default="onnx,openvino")
    ap.add_argument("--targets", default="cpu,edge")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rewrite", action="store_true", help="only rewrite alignment.md from alignment.json")
    add_noise_args(ap)
    args = ap.parse_args()
    if args.rewrite:  # no new figures: keeps the load check line of the run that measured them
        write_result(RESULTS / "alignment.md", markdown(json.loads((RESULTS / "alignment.json").read_text())), args)
        return
    quiet = check_quiet(args)

    from edgeslim.recipe import ProfileCfg
    from edgeslim.targets import parse_target

    cfg = ProfileCfg(accuracy=False, warmup=5, warmup_seconds=0.3, min_seconds=0.5, max_seconds=3.0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        arts = [a for spec in args.models.split(",") for a in build(spec, Path(tmp), args.formats.split(","))]
        print(f"{len(arts)} artifacts built in {time.perf_counter() - t0:.0f} s", flush=True)
        targets = {t: parse_target(t) for t in args.targets.split(",")}
        times: dict[tuple[int, str], list[float]] = {}
        executed: dict[tuple[int, str], str] = {}
        for r in range(args.rounds):
            for i, a in enumerate(arts):
                for tname, t in targets.items():
                    m = t.profile(a["artifact"], a["sample"], cfg, None)
                    if m["status"] != "ok":
                        raise SystemExit(f"{a['model']} {a['variant']} {a['format']} {a['precision']} on {tname}: "
                                         f"{m['reason']}")
                    times.setdefault((i, tname), []).append(m["latency_ms"]["p50"])
                    executed[(i, tname)] = m["semantics"].get("precision_executed", a["precision"])
            print(f"round {r + 1}/{args.rounds} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for (i, tname), ps in times.items():
        a = arts[i]
        rows.append({k: v for k, v in a.items() if k not in ("artifact", "sample")} |
                    {"target": tname, "p50_ms": statistics.median(ps), "rounds_p50_ms": ps,
                     "spread": spread(ps), "precision_executed": executed[(i, tname)]})
    results = {"machine": {**machine(), "noise_before": quiet}, "rounds": args.rounds, "profile": cfg.model_dump(), "rows": rows,
               "wall_s": round(time.perf_counter() - t0, 1)}
    if args.append and (RESULTS / "alignment.json").is_file():
        old = json.loads((RESULTS / "alignment.json").read_text())
        new = {(r["model"], r["method"], r["ratio"]) for r in rows}
        results["rows"] = [r for r in old["rows"] if (r["model"], r.get("method", "l1"), r["ratio"]) not in new] + rows
        results["wall_s"] = round(old["wall_s"] + results["wall_s"], 1)
    write_result(RESULTS / "alignment.json", json.dumps(results, indent=1), args, quiet=quiet)
    md = markdown(results)
    write_result(RESULTS / "alignment.md", md, args, quiet=quiet)
    print(md)


def markdown(results: dict) -> str:
    mc = results["machine"]
    rows = results["rows"]
    out = ["# Channel alignment: `round_to` 8 vs 16", "",
           f"Machine: {mc['cpu']}, {mc['usable_cores']} usable cores, ISA {', '.join(mc['isa'])}. "
           f"Median p50 of {results['rounds']} interleaved rounds (batch 1; `cpu` = all cores, `edge` = 1 thread "
           f"pinned to one core). Random weights, BatchNorm statistics from synthetic data. {results['wall_s']:.0f} s.",
           ""]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r.get("method", "l1"), r["ratio"], r["target"]), []).append(r)
    verdicts = []
    for (model, method, ratio, target), rs in groups.items():
        out += [f"## {model}, {method} {ratio}, `{target}`", "",
                "| variant | MACs | conv widths | format | precision (executed) | bytes | p50 ms | spread "
                "| vs unpruned |",
                "|---|---|---|---|---|---|---|---|---|"]
        ref = {(r["format"], r["precision"]): r["p50_ms"] for r in rs if r["round_to"] is None}
        for r in rs:
            base = ref[(r["format"], r["precision"])]
            out.append(f"| {r['variant']} | {r['macs'] / 1e6:.1f}M | {', '.join(map(str, r['widths'][:8]))} | "
                       f"{r['format']} | {r['precision']} ({r['precision_executed']}) | {r['bytes']:,} | "
                       f"{r['p50_ms']:.3f} | {100 * r['spread']:.1f}% | {base / r['p50_ms']:.2f}x |")
        out.append("")
        for fmt, prec in ref:
            by = {r["round_to"]: r for r in rs if r["format"] == fmt and r["precision"] == prec}
            if 8 in by and 16 in by:
                verdicts.append((model, f"{method} {ratio}", target, fmt, prec, by[8]["p50_ms"] / by[16]["p50_ms"],
                                 by[8]["macs"] / by[16]["macs"]))
    out += ["## round_to 8 ÷ round_to 16", "",
            "p50 ratio > 1: aligning to 16 is faster although it keeps more MACs (MAC ratio < 1).", "",
            "| model | pruning | target | format | precision | p50 (8) ÷ p50 (16) | MACs (8) ÷ MACs (16) |",
            "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        out.append(f"| {v[0]} | {v[1]} | {v[2]} | {v[3]} | {v[4]} | {v[5]:.2f} | {v[6]:.2f} |")
    out.append("")
    for prec in sorted({v[4] for v in verdicts}):
        vs = [v for v in verdicts if v[4] == prec]
        ratios = [v[5] for v in vs]
        out.append(f"- **{prec}**: round_to 16 faster by more than 5% in {sum(r > 1.05 for r in ratios)} of "
                   f"{len(vs)} comparisons, round_to 8 faster by more than 5% in {sum(r < 0.95 for r in ratios)}; "
                   f"p50 (8) ÷ p50 (16) from {min(ratios):.2f} to {max(ratios):.2f}.")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
