"""ONNX Runtime INT8 (QDQ, per-channel) and FP16 quantizers, checked on the files they write."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.quantizers import QUANTIZERS
from edgeslim.quantizers.base import check_against_parent, validate_against_parent
from edgeslim.quantizers.onnx_graph import compact_names
from edgeslim.recipe import QuantizeCfg


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def _run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def val_x(data):
    return data.val_arrays()[0]


@pytest.fixture(scope="module")
def calib(data):
    return data.calibration(64, seed=0)


def _quantize(parent, calib, out_dir, **cfg):
    out_dir.mkdir(parents=True, exist_ok=True)
    return QUANTIZERS.get("onnx-int8").quantize(parent, calib, out_dir, cfg=QuantizeCfg(**cfg))


@pytest.fixture(scope="module")
def int8(parent, calib, tmp_path_factory):
    return _quantize(parent, calib, tmp_path_factory.mktemp("int8"))


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in model.graph.initializer}


def test_int8_artifact_metadata_and_files(int8, parent, calib):
    assert (int8.format, int8.precision) == ("onnx", "int8")
    assert (int8.variant, int8.method, int8.parent) == ("compressed", "l1", parent.id)
    assert int8.info["calibration_samples"] == len(calib) == 64
    assert int8.info["calibration_method"] == "minmax" and int8.info["per_channel"] is True
    assert int8.info["activations"] == "uint8 asymmetric"
    # intermediate files (pre-processed, raw quantized) are removed; the activation ranges
    # used are kept beside the artifact, and are not part of it
    assert sorted(p.name for p in int8.path.parent.iterdir()) == ["calibration.json", "model.onnx"]
    assert int8.files == [int8.path]
    onnx.checker.check_model(str(int8.path))


def test_int8_has_qdq_nodes_and_int8_weights(int8):
    m = onnx.load(str(int8.path))
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["QuantizeLinear"] > 10 and ops["DequantizeLinear"] > 10
    assert ops["Conv"] == 21  # resnet20: 19 3x3 + 2 projection convs, BN folded
    assert ops["BatchNormalization"] == 0
    inits = _inits(m)
    conv_weights = [i for i in inits.values() if len(i.dims) == 4]
    assert len(conv_weights) == 21
    assert all(i.data_type == TensorProto.INT8 for i in conv_weights)
    assert not any(i.data_type == TensorProto.FLOAT and len(i.dims) == 4 for i in inits.values())


def test_int8_weights_are_per_channel(int8):
    m = onnx.load(str(int8.path))
    inits = _inits(m)
    producer = {o: n for n in m.graph.node for o in n.output}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        w = inits[dq.input[0]]
        assert w.data_type == TensorProto.INT8
        out_ch = w.dims[0]
        scale = numpy_helper.to_array(inits[dq.input[1]])
        assert scale.shape == (out_ch,), (conv.name, scale.shape)
        assert (scale > 0).all()
        zp = numpy_helper.to_array(inits[dq.input[2]])
        assert zp.shape == (out_ch,) and not zp.any()  # symmetric weights
        axis = {a.name: a.i for a in dq.attribute}.get("axis", 1)
        assert axis == 0


def test_int8_is_small(int8, parent):
    assert int8.bytes == int8.path.stat().st_size
    assert int8.bytes <= 0.35 * parent.bytes, (int8.bytes, parent.bytes)


def test_int8_validates_against_parent(int8, parent, val_x):
    report = validate_against_parent(int8, parent, val_x)
    assert report["passed"] is True
    assert report["cosine"] >= 0.95 and report["min_cosine"] == 0.95
    assert report["top1_agreement"] >= 0.8
    assert report["max_abs"] > 0  # it really is a different (quantized) model


def test_check_against_parent_rejects_a_stray_child():
    ref = np.random.default_rng(0).standard_normal((16, 10))
    with pytest.raises(QuantizeError, match="the child differs from its FP32 parent"):
        check_against_parent(ref, -ref, "int8", "the child")
    assert check_against_parent(ref, ref * 1.001, "fp16", "x").passed


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_each_calibration_method_gives_a_loadable_model(parent, calib, val_x, tmp_path, method):
    art = _quantize(parent, calib, tmp_path / method, calibration_method=method)
    assert art.info["calibration_method"] == method
    out = _run(art.path, val_x[:4])
    assert out.shape == (4, 10) and np.isfinite(out).all()
    assert validate_against_parent(art, parent, val_x)["passed"]


def _activation_scales(path) -> list[float]:
    m = onnx.load(str(path))
    inits = _inits(m)
    return [float(numpy_helper.to_array(inits[n.input[1]])) for n in m.graph.node if n.op_type == "QuantizeLinear"]


def test_percentile_ranges_differ_from_minmax(parent, calib, int8, tmp_path):
    pct = _quantize(parent, calib, tmp_path / "pct", calibration_method="percentile")
    a, b = _activation_scales(int8.path), _activation_scales(pct.path)
    assert len(a) == len(b)
    assert a != b
    # percentile clips outliers: never a wider range than min/max on the same data
    assert sum(b) <= sum(a) * 1.0001


def test_entropy_ranges_differ_from_minmax(parent, calib, int8, tmp_path):
    ent = _quantize(parent, calib, tmp_path / "ent", calibration_method="entropy")
    assert _activation_scales(ent.path) != _activation_scales(int8.path)


def _activation_zero_points(path) -> list[np.ndarray]:
    m = onnx.load(str(path))
    inits = _inits(m)
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert zps
    return zps


def test_symmetric_activations_are_int8_with_zero_points_zero(parent, calib, val_x, tmp_path):
    art = _quantize(parent, calib, tmp_path / "sym", symmetric_activations=True)
    assert art.info["activations"] == "int8 symmetric"
    zps = _activation_zero_points(art.path)
    assert all(z.data_type == TensorProto.INT8 for z in zps)
    assert all(not numpy_helper.to_array(z).any() for z in zps)
    assert validate_against_parent(art, parent, val_x)["passed"]


def test_default_activations_are_uint8_asymmetric(int8):
    zps = _activation_zero_points(int8.path)
    assert all(z.data_type == TensorProto.UINT8 for z in zps)
    # post-ReLU tensors are one-sided: an asymmetric range puts the zero point off 128
    values = np.concatenate([numpy_helper.to_array(z).ravel() for z in zps]).astype(int)
    assert (values != 128).any()


def test_int8_without_calibration_is_refused(parent, tmp_path):
    for calib in (None, np.zeros((0, 3, 32, 32), np.float32)):
        with pytest.raises(QuantizeError, match="needs calibration samples"):
            QUANTIZERS.get("onnx-int8").quantize(parent, calib, tmp_path, cfg=QuantizeCfg())


def test_int8_of_a_corrupt_parent_is_one_quantize_error(calib, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    art = Artifact(bad, "onnx", "fp32", "baseline", "none")
    out = tmp_path / "q"
    out.mkdir()
    with pytest.raises(QuantizeError, match=r"INT8 quantization of baseline/onnx/fp32 failed") as err:
        QUANTIZERS.get("onnx-int8").quantize(art, calib, out, cfg=QuantizeCfg())
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def fp16(parent, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16")
    return QUANTIZERS.get("onnx-fp16").quantize(parent, None, out, cfg=QuantizeCfg())


def test_fp16_weights_are_half_and_io_float32(fp16, parent):
    assert (fp16.precision, fp16.parent) == ("fp16", parent.id)
    m = onnx.load(str(fp16.path))
    float_inits = [i for i in m.graph.initializer if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert float_inits
    assert all(i.data_type == TensorProto.FLOAT16 for i in float_inits)
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert 0.4 * parent.bytes < fp16.bytes < 0.6 * parent.bytes


def test_fp16_outputs_close_to_parent(fp16, parent, val_x):
    ref = _run(parent.path, val_x)
    out = _run(fp16.path, val_x)
    assert out.dtype == np.float32 and out.shape == ref.shape == (len(val_x), 10)
    diff = float(np.abs(out - ref).max())
    assert 0 < diff < 1e-2
    assert validate_against_parent(fp16, parent, val_x)["passed"]


def test_compact_names_keeps_io_names_and_outputs(parent, val_x, tmp_path):
    original = onnx.load(str(parent.path))
    compact = compact_names(onnx.load(str(parent.path)))
    assert [i.name for i in compact.graph.input] == [i.name for i in original.graph.input] == ["input"]
    assert [o.name for o in compact.graph.output] == [o.name for o in original.graph.output] == ["logits"]
    assert all(re.fullmatch(r"n[0-9a-f]+", n.name) for n in compact.graph.node)
    assert all(re.fullmatch(r"[0-9a-f]+", i.name) for i in compact.graph.initializer)
    assert len(compact.graph.value_info) == 0
    assert compact.ByteSize() < original.ByteSize()
    onnx.checker.check_model(compact)
    path = tmp_path / "compact.onnx"
    onnx.save_model(compact, str(path))
    np.testing.assert_array_equal(_run(path, val_x[:8]), _run(parent.path, val_x[:8]))
