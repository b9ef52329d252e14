"""report.md's INT8 sections: a bad INT8 row explained from its artifact, and per-layer sensitivity."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeslim.io import write_json
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.report.int8 import budget_points, explain_lines, int8_sections, sensitivity_lines


def _qdq_onnx(path):
    """A small INT8 QDQ graph: a depthwise conv (2 groups) on INT8 weights, then Tanh between
    a DequantizeLinear and a QuantizeLinear (no INT8 kernel: a float island)."""
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.int8), "w_q")
    inits = [w, numpy_helper.from_array(np.array([0.1, 0.1], np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(2, np.int8), "w_z"),
             numpy_helper.from_array(np.array(0.02, np.float32), "a_s"),
             numpy_helper.from_array(np.array(0, np.uint8), "a_z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], group=2),
             helper.make_node("QuantizeLinear", ["c", "a_s", "a_z"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "a_s", "a_z"], ["cd"]),
             helper.make_node("Tanh", ["cd"], ["t"]),
             helper.make_node("QuantizeLinear", ["t", "a_s", "a_z"], ["tq"]),
             helper.make_node("DequantizeLinear", ["tq", "a_s", "a_z"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]), str(path))


def _row(variant, precision, *, p50, size, acc, artifact=None, fmt="onnx", macs=1_000_000, **extra):
    return {"id": f"{variant}/{fmt}/{precision}", "variant": variant, "format": fmt, "precision": precision,
            "target": "cpu", "status": "ok", "bytes": size, "macs": macs, "accuracy": acc,
            "latency_ms": {"p50": p50}, "artifact": artifact, "info": {}, **extra}


SENSITIVITY = {
    "measured": "top-1 accuracy lost (points) against the FP32 parent on the first 64 val images",
    "samples": 64, "labelled": True, "fp32_accuracy": 0.95,
    "full_int8": {"top1_agreement": 0.9, "cosine": 0.99, "accuracy": 0.9, "loss_points": 5.0},
    "layers": [{"layer": f"conv{i}", "op": "Conv", "top1_agreement": 0.9 + i / 100, "cosine": 0.99,
                "accuracy": 0.9, "loss_points": 5.0 - i} for i in range(5)],
}


@pytest.fixture
def run(tmp_path):
    """A run folder: a bad INT8 (slower, larger, 5 points down) and a good one, with FP32 twins."""
    for v in ("compressed", "baseline"):
        (tmp_path / v).mkdir()
        _qdq_onnx(tmp_path / v / "model.onnx")
    write_json(tmp_path / "compressed" / "sensitivity.json", SENSITIVITY)
    rows = [_row("compressed", "fp32", p50=1.0, size=1000, acc=0.95),
            _row("compressed", "int8", p50=1.2, size=2000, acc=0.90, artifact="compressed/model.onnx"),
            _row("baseline", "fp32", p50=2.0, size=4000, acc=0.95),
            _row("baseline", "int8", p50=0.9, size=1500, acc=0.948, artifact="baseline/model.onnx")]
    return tmp_path, rows


def test_a_bad_int8_row_gets_one_line_per_fact_with_its_cause(run):
    run_dir, rows = run
    lines = explain_lines(rows, run_dir, budget=1.0)
    assert len(lines) == 3 and all(line.startswith("- `compressed/onnx/int8` on cpu: ") for line in lines)
    slower, larger, acc = lines
    assert "slower than its FP32 twin (1.200 vs 1.000 ms p50)" in slower
    assert "Q/DQ left unfused around ops without INT8 kernels (Tanh ×1)" in slower
    assert "a tiny model (1.0M MACs)" in slower and "1 depthwise convolutions" in slower
    assert "larger than its FP32 twin (2.0 KiB vs 1.0 KiB)" in larger
    assert "INT8 weights are only" in larger and "scales, zero points, int32 biases" in larger
    assert "loses 5.00 points against its FP32 twin (budget 1)" in acc
    assert "its most sensitive layer alone loses 5.00 pts: `conv0` (Conv, sensitivity.json)" in acc
    assert "depthwise convolutions under per-tensor INT8 activation ranges" in acc
    assert "`quantize.max_accuracy_drop` would keep the most sensitive layers in FP32" in acc


def test_a_good_int8_row_gets_no_line(run):
    run_dir, rows = run
    good = [r for r in rows if r["variant"] == "baseline"]
    assert explain_lines(good, run_dir, budget=1.0) == []
    md = int8_sections(good, run_dir, QuantizeCfg())
    assert md[:3] == ["## INT8 against its FP32/FP16 twins", "", "- no INT8 artifact is slower or larger than a "
                      "measured FP32/FP16 twin, or loses more than 1 points against its FP32 twin"]


def test_the_budget_is_the_recipes(run):
    run_dir, rows = run
    assert budget_points(QuantizeCfg()) == 1.0
    assert budget_points(QuantizeCfg(max_accuracy_drop=0.5)) == 0.5
    assert budget_points(QuantizeCfg(tolerance_points=6, max_accuracy_drop=0.5)) == 6.0
    lines = explain_lines(rows, run_dir, budget=budget_points(QuantizeCfg(tolerance_points=6)))
    assert len(lines) == 2 and not any("loses" in line for line in lines)
    # 0.2 points down: beyond a 0.1 budget only
    assert any("baseline/onnx/int8" in line and "loses 0.20 points" in line
               for line in explain_lines(rows, run_dir, budget=0.1))


def test_rows_that_did_not_run_are_not_judged(run):
    run_dir, rows = run
    rows[1]["status"] = "failed"
    assert explain_lines(rows, run_dir, budget=1.0) == []


IR = """<?xml version="1.0"?>
<net name="m" version="11"><layers>
<layer id="0" name="w" type="Const"><data element_type="i8" shape="8,1,3,3" offset="0" size="72"/></layer>
<layer id="1" name="lo" type="Const"><data element_type="f32" shape="1" offset="72" size="4000"/></layer>
<layer id="2" name="fq0" type="FakeQuantize"/><layer id="3" name="fq1" type="FakeQuantize"/>
<layer id="4" name="dw" type="GroupConvolution"/>
</layers></net>"""


def test_openvino_int8_explained_from_its_ir_and_what_the_runtime_ran(tmp_path):
    (tmp_path / "ov").mkdir()
    (tmp_path / "ov" / "model.xml").write_text(IR)
    rows = [_row("compressed", "fp16", p50=1.0, size=3000, acc=0.95, fmt="openvino"),
            _row("compressed", "fp32", p50=1.1, size=6000, acc=0.95, fmt="openvino"),
            _row("compressed", "int8", p50=1.5, size=4100, acc=0.89, fmt="openvino", macs=50_000_000,
                 artifact="ov/model.xml", semantics={"layer_precisions": {"int8": 2, "f32": 3}})]
    rows[2]["info"] = {"preset": "performance", "fake_quantize_ops": 2}
    slower, larger, acc = explain_lines(rows, tmp_path, budget=1.0)
    assert "slower than its FP16 twin (1.500 vs 1.000 ms p50)" in slower
    assert "OpenVINO ran 3 of 5 compute layers in f32 despite FakeQuantize on them (2 FakeQuantize ops)" in slower
    assert "tiny model" not in slower  # 50M MACs
    assert "larger than its FP16 twin" in larger and "INT8 weights are only 0.1 KiB" in larger
    assert "FakeQuantize ranges" in larger and "around 2 FakeQuantize ops take 3.9 KiB" in larger
    assert "loses 6.00 points" in acc and "quantize.nncf_preset: performance" in acc
    assert "1 depthwise convolutions" in acc


def test_sensitivity_section_lists_the_worst_layers_and_the_fallback(run):
    run_dir, rows = run
    rows[1]["info"]["accuracy_control"] = {"max_drop_points": 0.5, "met": True, "kept_fp32": ["conv0"],
                                           "quantizable_layers": 22, "drop_points": 0.31, "latency_cost": 0.08}
    rows.append(_row("compressed", "int8", p50=1.0, size=1, acc=0.9, fmt="openvino", artifact="ov/model.xml"))
    lines = sensitivity_lines(rows, run_dir)
    assert len(lines) == 4
    worst, fb, base, ov = lines
    assert worst.startswith(f"- `compressed/onnx/int8` ({SENSITIVITY['measured']}; fully quantized it loses 5.00 pts)")
    assert worst.index("`conv0`") < worst.index("`conv1`") < worst.index("`conv2`") and "`conv3`" not in worst
    assert fb == ("  - FP32 fallback, budget 0.5 pts met: 1 of 22 layers kept in FP32 (`conv0`), "
                  "0.31 pts lost, p50 +8% (indicative)")
    assert base == "- `baseline/onnx/int8`: not measured (quantize.sensitivity.enabled is false)"
    assert ov == "- `compressed/openvino/int8`: not measured (ONNX Runtime INT8 only)"


def test_no_int8_artifact_no_section(run):
    run_dir, rows = run
    assert int8_sections([r for r in rows if r["precision"] == "fp32"], run_dir, QuantizeCfg()) == []
    md = int8_sections(rows, run_dir, QuantizeCfg())
    assert md.index("## INT8 against its FP32/FP16 twins") < md.index("## Per-layer INT8 sensitivity")


def test_a_qat_int8_row_is_judged_too_but_has_no_sensitivity_line(run):
    run_dir, rows = run
    for r in rows:
        if r["variant"] == "compressed" and r["precision"] == "int8":
            r["precision"], r["id"] = "int8-qat", "compressed/onnx/int8-qat"
            r["info"]["epochs"] = 2
    lines = explain_lines(rows, run_dir, budget=1.0)
    assert len(lines) == 3
    (acc,) = [line for line in lines if "int8-qat" in line and "loses" in line]
    assert "quantization-aware training ran 2 epoch(s): more (`quantize.qat.epochs`)" in acc
    assert "max_accuracy_drop" not in acc  # a PTQ fallback does not apply to a trained artifact
    assert [line for line in sensitivity_lines(rows, run_dir) if "int8-qat" in line] == []


def test_convs_onnx_runtime_cannot_fuse_are_named_as_the_cause(tmp_path):
    """An activation quantized per channel feeds a conv with no QuantizeLinear after it (as an
    NNCF QAT export with per-channel activations gives): ONNX Runtime's optimized graph keeps
    the conv in float, and the report counts it from that graph."""
    inits = [numpy_helper.from_array(np.ones((2, 2, 3, 3), np.int8), "w_q"),
             numpy_helper.from_array(np.array([0.1, 0.1], np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(2, np.int8), "w_z"),
             numpy_helper.from_array(np.array([0.02, 0.03], np.float32), "a_s"),  # per channel
             numpy_helper.from_array(np.zeros(2, np.uint8), "a_z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"], axis=1),
             helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"], axis=1),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"]),
             helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    (tmp_path / "c").mkdir()
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]), str(tmp_path / "c" / "model.onnx"))
    rows = [_row("compressed", "fp32", p50=1.0, size=1000, acc=0.95, macs=50_000_000),
            _row("compressed", "int8", p50=3.0, size=500, acc=0.95, artifact="c/model.onnx", macs=50_000_000)]
    (slower,) = explain_lines(rows, tmp_path, budget=1.0)
    assert "1 activation(s) quantized per channel" in slower and "quantize.qat.activations per_tensor" in slower
    assert "1 of 1 convolution/matmul op(s) run in float in ONNX Runtime" in slower
    # the well-formed graph of the other tests has neither
    _qdq_onnx(tmp_path / "good.onnx")
    rows[1]["artifact"] = "good.onnx"
    (good,) = explain_lines(rows, tmp_path, budget=1.0)
    assert "per channel" not in good and "run in float in ONNX Runtime" not in good


def test_a_conv_between_int8_and_uint8_activations_is_named_as_the_cause(tmp_path):
    """uint8 in, int8 out to two readers (as NNCF exports a residual block's projection conv):
    ONNX Runtime rewrites a one-reader int8 pair to uint8 itself, not this one, and leaves the
    conv in float; the same graph in uint8 is fused."""
    def graph(out_zero: np.ndarray) -> onnx.ModelProto:
        inits = [numpy_helper.from_array(np.ones((2, 2, 1, 1), np.int8), "w_q"),
                 numpy_helper.from_array(np.array(0.1, np.float32), "w_s"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "a_s"),
                 numpy_helper.from_array(np.array(0, np.uint8), "a_z"),
                 numpy_helper.from_array(out_zero, "o_z")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["wd"]),
                 helper.make_node("Conv", ["xd", "wd"], ["c"]),
                 helper.make_node("QuantizeLinear", ["c", "a_s", "o_z"], ["cq"]),
                 helper.make_node("DequantizeLinear", ["cq", "a_s", "o_z"], ["y"]),
                 helper.make_node("DequantizeLinear", ["cq", "a_s", "o_z"], ["skip"])]  # a second reader
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("skip", TensorProto.FLOAT, None)], inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])

    rows = [_row("compressed", "fp32", p50=1.0, size=1000, acc=0.95, macs=50_000_000),
            _row("compressed", "int8", p50=3.0, size=500, acc=0.95, artifact="mixed.onnx", macs=50_000_000)]
    onnx.save_model(graph(np.array(0, np.int8)), str(tmp_path / "mixed.onnx"))
    (slower,) = explain_lines(rows, tmp_path, budget=1.0)
    assert "1 of 1 convolution/matmul op(s) run in float in ONNX Runtime" in slower
    assert "mixes int8 and uint8 activations" in slower
    onnx.save_model(graph(np.array(128, np.uint8)), str(tmp_path / "same.onnx"))
    rows[1]["artifact"] = "same.onnx"
    (same,) = explain_lines(rows, tmp_path, budget=1.0)
    assert "run in float" not in same and "mixes" not in same  # one type: ONNX Runtime fuses it
