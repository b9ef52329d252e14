"""One recipe, every format: ONNX and OpenVINO rows side by side in one results table,
TensorRT and the gpu target as skipped rows with their reasons (where they cannot run)."""

from __future__ import annotations

import re

import pytest

from edgeslim.exporters.tensorrt import tensorrt_status
from edgeslim.io import read_json
from edgeslim.pipeline.run import run_recipe
from edgeslim.quantizers.onnx_bf16 import REASON as ONNX_BF16_REASON
from edgeslim.recipe import load_recipe
from edgeslim.targets.openvino_runner import supports
from tests.pipeline.test_e2e import QUICK

FORMATS = QUICK + ["export.formats=[onnx, openvino, tensorrt]", "export.include_baseline=false",
                   "quantize.precisions=[fp32, fp16, bf16, int8]", "targets=[cpu, gpu]"]
BF16 = supports("bf16")


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("formats")
    summary = run_recipe(load_recipe(None, FORMATS), out)
    assert read_json(out / "results.json") == summary.rows
    return out, {(r["format"], r["precision"], r["target"]): r for r in summary.rows}


def test_one_row_per_format_precision_target(rows):
    _, by = rows
    assert set(by) == {(f, p, t) for f in ("onnx", "openvino", "tensorrt")
                       for p in ("fp32", "fp16", "bf16", "int8") for t in ("cpu", "gpu")}
    for (fmt, precision, target), r in by.items():
        assert r["id"] == f"compressed/{fmt}/{precision}" and r["method"] == "l1"
        assert r["status"] in ("ok", "skipped") and (r["status"] == "ok" or r["reason"]), r


def test_openvino_rows_ok_with_the_precision_executed(rows):
    _, by = rows
    expected = {"fp32": "f32", "fp16": "f32" if not supports("f16") else "f16", "int8": "int8"}
    if BF16:
        expected["bf16"] = "bf16"
    else:
        assert by[("openvino", "bf16", "cpu")]["status"] == "skipped"
        assert "bf16" in by[("openvino", "bf16", "cpu")]["reason"]
    for precision, executed in expected.items():
        r = by[("openvino", precision, "cpu")]
        assert r["status"] == "ok", r
        sem = r["semantics"]
        assert sem["runtime"] == "openvino" and sem["precision_executed"] == executed
        assert sem["inference_precision"] in ("f32", "bf16", "f16") and sem["threads"] >= 1
        assert 0 < r["latency_ms"]["p50"] and 0.0 <= r["accuracy"] <= 1.0
        assert [f.rsplit("/", 1)[1] for f in r["files"]] == ["model.xml", "model.bin"]
        assert r["parity"]["passed"] is True
    # the cpu target's auto precision: an INT8 IR's float layers at the fastest the CPU lists
    assert by[("openvino", "int8", "cpu")]["semantics"]["inference_precision"] == ("bf16" if BF16 else "f32")
    fp32 = by[("openvino", "fp32", "cpu")]
    assert fp32["info"]["weights"] == "fp32" and fp32["parity"]["max_abs"] < 1e-3
    out, _ = rows
    weights = {p: (out / by[("openvino", p, "cpu")]["files"][1]).stat().st_size for p in ("fp32", "fp16", "int8")}
    # the .bin holds the weights: INT8 a quarter, FP16 half (on a model this small the
    # FakeQuantize ranges in the .xml weigh as much again, so compare the .bin)
    assert weights["int8"] < 0.3 * weights["fp32"] and 0.45 < weights["fp16"] / weights["fp32"] < 0.55
    assert by[("openvino", "int8", "cpu")]["bytes"] < fp32["bytes"]


def test_onnx_rows_and_the_same_calibration_for_both_int8(rows):
    _, by = rows
    for precision in ("fp32", "fp16", "int8"):
        r = by[("onnx", precision, "cpu")]
        assert r["status"] == "ok" and r["semantics"]["runtime"] == "onnxruntime", r
    # skipped with the reason ONNX Runtime cannot, not a generic "no quantizer"
    assert by[("onnx", "bf16", "cpu")]["status"] == "skipped"
    assert by[("onnx", "bf16", "cpu")]["reason"] == ONNX_BF16_REASON
    onnx_int8, ov_int8 = by[("onnx", "int8", "cpu")], by[("openvino", "int8", "cpu")]
    assert onnx_int8["info"]["calibration_samples"] == ov_int8["info"]["calibration_samples"] == 32
    assert ov_int8["info"]["quantizer"] == "nncf.quantize"
    # INT8 in either runtime stays close to its FP32 parent on the val split
    for fmt in ("onnx", "openvino"):
        assert abs(by[(fmt, "int8", "cpu")]["accuracy"] - by[(fmt, "fp32", "cpu")]["accuracy"]) <= 0.05


def test_tensorrt_and_gpu_rows_are_skipped_with_reasons(rows):
    _, by = rows
    trt_ok, trt_why = tensorrt_status()
    for precision in ("fp32", "fp16", "bf16", "int8"):
        for target in ("cpu", "gpu"):
            r = by[("tensorrt", precision, target)]
            if not trt_ok:
                assert r["status"] == "skipped" and r["reason"] == trt_why and r["bytes"] is None
    for (fmt, precision, target), r in by.items():
        if target == "gpu" and not trt_ok:
            assert r["status"] == "skipped" and r["latency_ms"] is None
            if r["bytes"] is not None:  # an artifact exists: the target is what is missing
                assert r["reason"].startswith("no CUDA device") or "not installed" in r["reason"]
        if target == "cpu" and fmt == "tensorrt" and trt_ok:
            assert r["reason"] in ("target 'cpu' does not run tensorrt artifacts", "no bf16 quantizer for tensorrt")


def test_report_has_both_formats(rows):
    out, _ = rows
    md = (out / "report.md").read_text()
    assert md.count("| l1 | openvino |") == 8 and md.count("| l1 | onnx |") == 8
    # the table says what ran where it differs from the artifact's precision; a row timed on
    # a busy machine reads "ok (noisy)" (2 shared cores under a parallel test run)
    ok = r" \| ok(?: \(noisy\))? \|"
    assert len(re.findall(r"\| l1 \| openvino \| fp16 \(ran f32\) \| cpu" + ok, md)) == (0 if supports("f16") else 1)
    assert len(re.findall(r"\| l1 \| openvino \| int8 \| cpu" + ok, md)) == 1
