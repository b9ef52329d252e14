"""The int8-qat ONNX against its PTQ twin in ONNX Runtime: as NNCF exports it (signed and
unsigned activations mixed) and as edgeslim ships it (every activation uint8, the same values).

ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv only where the convolution's input and
output activations share one integer type; NNCF exports int8 where an activation can be
negative and uint8 after a ReLU, so a mobilenet_v2 keeps its linear-bottleneck convolutions
and the ones after them in float. For every quant run cached by ``benchmarks/fashion.py``
(``--parts quant``, first seed) this times, with ``edgeslim bench --compare`` (interleaved
rounds, the ratio to the first file with a 95 % interval):

1. the PTQ INT8 ONNX (``40-quantize/compressed-onnx-int8``),
2. the QAT Q/DQ ONNX as trained and exported (``35-qat/compressed/model.onnx``),
3. the int8-qat ONNX artifact (``40-quantize/compressed-onnx-int8-qat``),

and counts the Conv/Gemm/MatMul ops ONNX Runtime leaves in float in each (its optimized graph,
``edgeslim.report.int8.ort_unfused``: the same count report.md gives).

    .venv/bin/python benchmarks/qat_onnx.py              # ~4 min on 2 cores
    .venv/bin/python benchmarks/qat_onnx.py --rounds 3   # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402
from _noise import add_noise_args, check_quiet, write_result  # noqa: E402

from edgeslim.report.int8 import ort_unfused  # noqa: E402
from edgeslim.targets.base import cpu_info  # noqa: E402
from edgeslim.targets.bench import bench  # noqa: E402

RUNS = (("fashion-mnist", "fashion", "mobilenet_v2"), ("fashion-mnist", "fashion", "resnet20"),
        ("digits", "digits", "mobilenet_v2"), ("digits", "digits", "resnet20"))
FILES = (("PTQ INT8", "40-quantize/compressed-onnx-int8/model.onnx"),
         ("QAT as exported (int8 and uint8 activations)", "35-qat/compressed/model.onnx"),
         ("int8-qat artifact (uint8 activations)", "40-quantize/compressed-onnx-int8-qat/model.onnx"))


def measure(args) -> list[dict]:
    out = []
    for dataset, work, model in RUNS:
        run = args.work / work / "quant" / model / "s0"
        paths = [run / rel for _, rel in FILES]
        if not all(p.is_file() for p in paths):
            print(f"  {dataset} {model}: not cached under {run}; run benchmarks/fashion.py --parts quant first",
                  file=sys.stderr)
            continue
        print(f"  {dataset} {model}: {args.rounds} interleaved rounds", file=sys.stderr)
        rows = bench(paths, compare=True, rounds=args.rounds)
        failed = [f"{p.name}: {r.get('reason') or r.get('error')}"
                  for p, r in zip(paths, rows) if r.get("status") != "ok"]
        if failed:
            sys.exit(f"{dataset} {model}: bench failed: {'; '.join(failed)}")
        for (label, rel), path, row in zip(FILES, paths, rows):
            floats, convs = ort_unfused(str(path))
            out.append({"dataset": dataset, "model": model, "artifact": label, "path": rel,
                        "bytes": path.stat().st_size, "float_convs": floats, "convs": convs,
                        "p50_ms": row["latency_ms"]["p50"], "compare": row.get("compare"),
                        "noisy": bool((row.get("noise") or {}).get("noisy")),
                        "row": row})
    return out


def markdown(rows: list[dict], args) -> str:
    info = cpu_info()
    lines = ["# int8-qat ONNX in ONNX Runtime: as NNCF exports it vs as edgeslim ships it", "",
             f"CPU: {info['cpu']} ({', '.join(info['isa'])}), target `cpu`, batch 1, ONNX Runtime {ort.__version__}. "
             f"Command: `python benchmarks/qat_onnx.py --rounds {args.rounds}`; each model's three files are timed "
             f"by `edgeslim bench --compare` in {args.rounds} interleaved rounds (order rotating); the ratio is "
             f"to the PTQ file, median with its 95 % interval. Files: the first fine-tune seed's run of "
             f"`benchmarks/fashion.py --parts quant` (fashion-quant.md, digits-quant.md).", "",
             "| data | model | ONNX | bytes | Conv/Gemm/MatMul ops ONNX Runtime runs in float | p50 ms | vs PTQ INT8 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["compare"] or {}
        ratio = (f"{c['ratio_p50']:.2f}x [{c['ratio_ci95'][0]:.2f}, {c['ratio_ci95'][1]:.2f}]"
                 if c.get("ratio_p50") is not None else "—")
        lines.append(f"| {r['dataset']} | {r['model']} | {r['artifact']} | {r['bytes']:,} | "
                     f"{r['float_convs']} of {r['convs']} | {r['p50_ms']:.3f} | {ratio} |")
    lines += ["", "The two QAT files hold the same values (every int8 activation Q/DQ pair re-expressed as "
              "uint8 with its zero point + 128: `edgeslim.quantizers.qat.unsigned_activations`; run as written, "
              "with ONNX Runtime's graph optimizations off, they give bit-identical outputs); what differs is "
              "which convolutions ONNX Runtime fuses into INT8 kernels."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    ap.add_argument("--out", type=Path, default=RESULTS / "qat_onnx.md")
    add_noise_args(ap)
    args = ap.parse_args(argv)
    quiet = check_quiet(args)
    rows = measure(args)
    if not rows:
        sys.exit("no cached quant runs found: run benchmarks/fashion.py --parts quant first")
    text = markdown(rows, args)
    if write_result(args.out, text, args, rows=[r["row"] for r in rows], quiet=quiet):
        args.out.with_suffix(".json").write_text(json.dumps({"cpu": cpu_info(), "rounds": args.rounds,
                                                             "rows": rows}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
