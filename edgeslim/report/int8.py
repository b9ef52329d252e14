"""Explain a bad INT8 artifact, and list its most sensitive layers: two report.md sections.

An INT8 row (``int8`` or ``int8-qat``) is *bad* when it is slower than, or larger than, its
FP32/FP16 twin (same variant, format and target), or loses more top-1 accuracy against its
FP32 twin than the budget (``quantize.tolerance_points``, else ``quantize.max_accuracy_drop``, else
:data:`DEFAULT_BUDGET`). Each such fact gets one line with the likely cause, read from the
artifact itself: its graph (Q/DQ pairs around ops that have no INT8 kernel, depthwise
convolutions under per-tensor activation ranges, bytes of INT8 weights against the float and
int32 constants around them), what the runtime ran (OpenVINO's per-layer precisions), the MACs
(per-op overhead dominates a tiny model) and ``sensitivity.json`` (the worst layer).

Example::

    md += int8_sections(rows, run_dir, recipe.quantize)
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import onnx

from edgeslim.artifacts import is_int8
from edgeslim.io import format_bytes, read_json
from edgeslim.quantizers.config import QuantizeCfg

Row = dict[str, Any]
DEFAULT_BUDGET = 1.0  # points of top-1 accuracy, when the recipe sets none
TINY_MACS = 20e6  # below this, quantize/dequantize and per-op overhead weigh like the arithmetic
TOP = 3  # worst layers listed per artifact
# ops ONNX Runtime's CPU provider runs on INT8 between Q/DQ, or passes INT8 through (its QDQ
# fusions); a Q/DQ pair around any other op is a round trip to float and back
ORT_INT8_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "Sigmoid", "LeakyRelu",
                          "GlobalAveragePool", "AveragePool", "MaxPool", "Concat", "Softmax", "Where", "Relu",
                          "Clip", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Resize",
                          "Gather", "Slice", "Split", "Pad", "ArgMax"})
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_OV_CONSTANT_BYTES = {"i8": "int8", "u8": "int8", "i4": "int8", "u4": "int8"}


@lru_cache(maxsize=64)
def _onnx_facts(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """What an INT8 ONNX holds: float islands between Q/DQ, depthwise convs, bytes by kind."""
    m = onnx.load(path)
    g = m.graph
    dq_out = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    q_in = {i for n in g.node if n.op_type == "QuantizeLinear" for i in n.input[:1]}
    islands = Counter(n.op_type for n in g.node if n.op_type not in _QDQ | ORT_INT8_OPS
                      and (dq_out & set(n.input) or q_in & set(n.output)))
    depthwise = sum(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
                    for n in g.node)
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in g.node if n.op_type == "Constant" and n.attribute}

    def scale_size(name: str) -> int:
        t = inits.get(name) or consts.get(name)
        return math.prod(t.dims) if t is not None else 1

    per_channel = sum(n.op_type == "QuantizeLinear" and n.input[0] not in inits and scale_size(n.input[1]) > 1
                      for n in g.node)

    def zero_type(node: onnx.NodeProto) -> int:  # the integer type a Q works in (uint8 without a zero point)
        t = (inits.get(node.input[2]) or consts.get(node.input[2])) if len(node.input) > 2 else None
        return t.data_type if t is not None else onnx.TensorProto.UINT8

    activation_types = {zero_type(n) for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits
                        and n.input[0] not in consts}
    size = Counter()
    for t in g.initializer:
        kind = "int8" if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) else "other"
        size[kind] += len(t.raw_data) or t.ByteSize()
    return {"islands": dict(islands), "depthwise": depthwise, "int8_bytes": size["int8"],
            "other_bytes": size["other"], "fake_quantize": 0, "unfused": ort_unfused(path),
            "per_channel_activations": per_channel, "mixed_types": len(activation_types) > 1}


# ONNX Runtime's float compute ops that an INT8 graph wants fused: left in its optimized graph
# with a DequantizeLinear feeding them, they run in float on dequantized tensors
_FLOAT_COMPUTE = frozenset({"Conv", "FusedConv", "MatMul", "Gemm", "FusedGemm", "ConvTranspose"})
_INT8_COMPUTE = frozenset({"QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger"})


def ort_unfused(path: str) -> Optional[tuple[int, int]]:
    """(compute ops ONNX Runtime runs in float between Q/DQ, all compute ops) in the graph it
    optimizes ``path`` to (its QDQ fusions, no hardware-specific layouts); None where it cannot."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgeslim-int8-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.log_severity_level = 3
        try:
            ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            g = onnx.load(so.optimized_model_filepath).graph
        except Exception:  # a graph ONNX Runtime cannot load explains nothing here
            return None
    dq = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    unfused = sum(n.op_type in _FLOAT_COMPUTE and bool(dq & set(n.input)) for n in g.node)
    total = unfused + sum(n.op_type in _INT8_COMPUTE for n in g.node)
    return unfused, total


@lru_cache(maxsize=64)
def _openvino_facts(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """The same facts from an IR's XML: FakeQuantize ops, group convolutions, constant bytes."""
    layers = ET.parse(path).getroot().iter("layer")
    types: Counter = Counter()
    size: Counter = Counter()
    for layer in layers:
        types[layer.get("type")] += 1
        data = layer.find("data")
        if layer.get("type") == "Const" and data is not None and data.get("size"):
            size[_OV_CONSTANT_BYTES.get(data.get("element_type", ""), "other")] += int(data.get("size"))
    return {"islands": {}, "depthwise": types["GroupConvolution"], "int8_bytes": size["int8"],
            "other_bytes": size["other"], "fake_quantize": types["FakeQuantize"]}


def _facts(row: Row, run_dir: Path) -> dict[str, Any]:
    path = run_dir / str(row.get("artifact") or "")
    if not row.get("artifact") or not path.is_file():
        return {}
    read = {"onnx": _onnx_facts, "openvino": _openvino_facts}.get(row["format"])
    st = path.stat()  # rows repeat an artifact per target: read once, again if rewritten
    try:
        return read(str(path), (st.st_mtime_ns, st.st_size)) if read else {}
    except Exception:  # an unreadable artifact explains nothing; the table says what ran
        return {}


def _sensitivity(row: Row, run_dir: Path) -> Optional[dict[str, Any]]:
    path = run_dir / str(row.get("artifact") or "")
    file = path.parent / "sensitivity.json"
    return read_json(file) if row.get("artifact") and file.is_file() else None


def budget_points(cfg: QuantizeCfg) -> float:
    for b in (cfg.tolerance_points, cfg.max_accuracy_drop):
        if b is not None:
            return float(b)
    return DEFAULT_BUDGET


def _p50(row: Row) -> Optional[float]:
    return (row.get("latency_ms") or {}).get("p50")


def _ran_in_float(row: Row) -> str:
    """OpenVINO's compute layers that ran in floating point, e.g. "4 of 22 compute layers in f32"."""
    layers = (row.get("semantics") or {}).get("layer_precisions") or {}
    floats = {p: n for p, n in layers.items() if p != "int8" and n}
    if not floats:
        return ""
    total = sum(layers.values())
    return ", ".join(f"{n} of {total} compute layers in {p}" for p, n in floats.items())


def _tiny(row: Row) -> str:
    macs = row.get("macs")
    return (f"a tiny model ({macs / 1e6:.1f}M MACs): quantize/dequantize and per-op overhead weigh as much "
            "as the INT8 arithmetic saves") if macs is not None and macs < TINY_MACS else ""


def _slower_causes(row: Row, f: dict[str, Any]) -> list[str]:
    causes = []
    if f.get("islands"):
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(f["islands"].items()))
        causes.append(f"Q/DQ left unfused around ops without INT8 kernels ({ops}): a float round trip each")
    if f.get("per_channel_activations"):
        causes.append(f"{f['per_channel_activations']} activation(s) quantized per channel: ONNX Runtime's INT8 "
                      "kernels take one scale per tensor, so the ops reading them run in float "
                      "(for int8-qat: quantize.qat.activations per_tensor)")
    if f.get("unfused") and f["unfused"][0]:
        n, total = f["unfused"]
        mixed = (": the file mixes int8 and uint8 activations, and ONNX Runtime fuses a convolution only when its "
                 "input and output share a type (it turns int8 into uint8 itself only where a tensor has one "
                 "reader; edgeslim's int8-qat ONNX is uint8 throughout)"
                 if f.get("mixed_types") else "")
        causes.append(f"{n} of {total} convolution/matmul op(s) run in float in ONNX Runtime, between dequantized "
                      f"inputs (its optimized graph did not fuse them){mixed}")
    if row.get("format") == "openvino" and f.get("fake_quantize") and _ran_in_float(row):
        causes.append(f"OpenVINO ran {_ran_in_float(row)} despite FakeQuantize on them "
                      f"({f['fake_quantize']} FakeQuantize ops)")
    causes.append(_tiny(row))
    if f.get("depthwise"):
        causes.append(f"{f['depthwise']} depthwise convolutions, which gain little from INT8 kernels")
    return [c for c in causes if c]


def _larger_causes(row: Row, f: dict[str, Any]) -> list[str]:
    if not f or not (f["int8_bytes"] or f["other_bytes"]):
        return []
    what = ("FakeQuantize ranges, scales, biases" if row.get("format") == "openvino"
            else "scales, zero points, int32 biases")
    fq = f" around {f['fake_quantize']} FakeQuantize ops" if f.get("fake_quantize") else ""
    return [f"INT8 weights are only {format_bytes(f['int8_bytes'])}; float/int32 constants ({what}){fq} "
            f"take {format_bytes(f['other_bytes'])}", _tiny(row)]


def _accuracy_causes(row: Row, f: dict[str, Any], sens: Optional[dict[str, Any]]) -> list[str]:
    info = row.get("info") or {}
    causes = []
    if sens and sens.get("layers"):
        w = sens["layers"][0]
        lost = f"{w['loss_points']:.2f} pts" if "loss_points" in w else f"top-1 agreement {w['top1_agreement']:.3f}"
        causes.append(f"its most sensitive layer alone loses {lost}: `{w['layer']}` ({w['op']}, sensitivity.json)")
    if f.get("depthwise"):
        causes.append(f"{f['depthwise']} depthwise convolutions under per-tensor INT8 activation ranges")
    if info.get("preset") == "performance":
        causes.append("symmetric activations (quantize.nncf_preset: performance; `mixed` makes them asymmetric)")
    if info.get("reduce_range"):
        causes.append("7-bit weights (quantize.reduce_range)")
    ac = info.get("accuracy_control") or {}
    if row.get("precision") == "int8-qat":  # trained, no fallback: more training is the lever
        epochs = f"{info['epochs']} epoch(s)" if info.get("epochs") else "its epochs"
        causes.append(f"quantization-aware training ran {epochs}: more (`quantize.qat.epochs`), or "
                      "`quantize.qat.distill: true` to learn from the baseline")
    elif ac.get("met") is False and ac.get("why"):
        causes.append(f"the FP32 fallback could not meet its budget: {ac['why']}")
    elif not ac:
        causes.append("`quantize.max_accuracy_drop` would keep the most sensitive layers in FP32")
    return causes


def _line(row: Row, fact: str, causes: list[str]) -> str:
    why = "; ".join(c for c in causes if c) or "no cause found in the artifact"
    return f"- `{row['id']}` on {row['target']}: {fact} — likely: {why}"


def explain_lines(rows: list[Row], run_dir: Path, budget: float) -> list[str]:
    """One line per bad fact of each INT8 row (slower, larger, beyond the accuracy budget)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    out = []
    for r in (r for r in ok if is_int8(r.get("precision"))):
        twins = [t for t in ok if t.get("precision") in ("fp32", "fp16")
                 and (t["variant"], t["format"], t["target"]) == (r["variant"], r["format"], r["target"])]
        f = _facts(r, run_dir)
        faster = [t for t in twins if _p50(t) and _p50(r) and _p50(r) > _p50(t)]
        if faster:
            t = min(faster, key=_p50)
            out.append(_line(r, f"slower than its {t['precision'].upper()} twin "
                                f"({_p50(r):.3f} vs {_p50(t):.3f} ms p50)", _slower_causes(r, f)))
        smaller = [t for t in twins if t.get("bytes") and r.get("bytes") and r["bytes"] > t["bytes"]]
        if smaller:
            t = min(smaller, key=lambda t: t["bytes"])
            out.append(_line(r, f"larger than its {t['precision'].upper()} twin ({format_bytes(r['bytes'])} vs "
                                f"{format_bytes(t['bytes'])})", _larger_causes(r, f)))
        fp32 = next((t for t in twins if t["precision"] == "fp32" and t.get("accuracy") is not None), None)
        if fp32 and r.get("accuracy") is not None and 100 * (fp32["accuracy"] - r["accuracy"]) > budget:
            drop = 100 * (fp32["accuracy"] - r["accuracy"])
            out.append(_line(r, f"loses {drop:.2f} points against its FP32 twin (budget {budget:g})",
                             _accuracy_causes(r, f, _sensitivity(r, run_dir))))
    return out


def sensitivity_lines(rows: list[Row], run_dir: Path) -> list[str]:
    """Per INT8 artifact: the worst layers of sensitivity.json, and the FP32 fallback's outcome."""
    out, seen = [], set()
    for r in rows:
        if r.get("precision") != "int8" or not r.get("artifact") or r["artifact"] in seen:
            continue
        seen.add(r["artifact"])
        sens, ac = _sensitivity(r, run_dir), (r.get("info") or {}).get("accuracy_control") or {}
        if sens is None:
            out.append(f"- `{r['id']}`: not measured" + (" (ONNX Runtime INT8 only)" if r["format"] != "onnx"
                                                         else " (quantize.sensitivity.enabled is false)"))
            continue
        full = sens["full_int8"]
        head = (f"fully quantized it loses {full['loss_points']:.2f} pts" if "loss_points" in full
                else f"fully quantized: top-1 agreement {full['top1_agreement']:.3f}")
        worst = ", ".join(f"`{w['layer']}` ({w['op']}) " + (f"{w['loss_points']:.2f} pts" if "loss_points" in w
                                                           else f"agreement {w['top1_agreement']:.3f}")
                          + f", cosine {w['cosine']:.4f}" for w in sens["layers"][:TOP])
        out.append(f"- `{r['id']}` ({sens['measured']}; {head}): {worst or 'no quantizable layer'}")
        if ac.get("kept_fp32") is not None:
            cost = f", p50 {100 * ac['latency_cost']:+.0f}% (indicative)" if ac.get("latency_cost") is not None else ""
            out.append(f"  - FP32 fallback, budget {ac['max_drop_points']:g} pts "
                       f"{'met' if ac['met'] else 'NOT met'}: {len(ac['kept_fp32'])} of {ac['quantizable_layers']} "
                       f"layers kept in FP32 ({', '.join(f'`{n}`' for n in ac['kept_fp32']) or 'none'}), "
                       f"{ac['drop_points']:.2f} pts lost{cost}")
    return out


def int8_sections(rows: list[Row], run_dir: Path, cfg: QuantizeCfg) -> list[str]:
    """The two Markdown sections (headings included), or [] when the run has no INT8 artifact."""
    if not any(is_int8(r.get("precision")) and r.get("artifact") for r in rows):
        return []
    budget = budget_points(cfg)
    bad = explain_lines(rows, run_dir, budget)
    md = ["## INT8 against its FP32/FP16 twins", ""]
    sens = sensitivity_lines(rows, run_dir)  # post-training INT8 only (int8-qat is trained)
    md += bad or [f"- no INT8 artifact is slower or larger than a measured FP32/FP16 twin, or loses more than "
                  f"{budget:g} points against its FP32 twin"]
    return md + [""] + (["## Per-layer INT8 sensitivity", "", *sens, ""] if sens else [])
