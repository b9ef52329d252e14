"""Quantization-aware training (edgeslim/quantizers/qat.py): BatchNorm folding, NNCF fake
quantizers, and the Q/DQ ONNX that ONNX Runtime runs in INT8 with int8 weights on disk."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edgeslim.errors import RecipeError
from edgeslim.models.zoo import create_model
from edgeslim.quantizers.qat import (
    _quantize,
    fold_batchnorm,
    int8_weight_count,
    prepare_qat,
    qat_to_onnx,
    quantizer_count,
    unsigned_activations,
)
from edgeslim.recipe import load_recipe


def _resnet(size: int = 16) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding has something to fold
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("override,names", [
    ("quantize.qat.epochs=0", "quantize.qat.epochs"),
    ("quantize.qat.lr=-0.1", "quantize.qat.lr"),
    ("quantize.qat.distill=maybe", "quantize.qat.distill"),
    ("quantize.qat.epoch=3", "did you mean"),
    ("quantize.precisions=[int8-qta]", "quantize.precisions"),
])
def test_bad_qat_settings_are_one_line_naming_the_field(override, names):
    with pytest.raises(RecipeError) as err:
        load_recipe(None, [override])
    assert names in str(err.value) and "\n" not in str(err.value)


def test_qat_defaults_are_two_epochs_at_a_hundredth_of_the_finetune_lr():
    q = load_recipe(None, ["quantize.precisions=[fp32,int8-qat]"]).quantize
    assert q.precisions == ["fp32", "int8-qat"]
    assert (q.qat.epochs, q.qat.lr, q.qat.distill) == (2, None, False)


def test_batchnorm_folds_into_its_convolution_without_changing_outputs():
    model = _resnet()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model) == bns == 19 + 2  # resnet20: 19 convs + 2 shortcut projections
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        assert torch.allclose(model(x), ref, atol=1e-4)


def test_a_model_fx_cannot_trace_keeps_its_batchnorm():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: symbolic tracing fails
                x = -x
            return self.bn(self.conv(x))

    model = Branchy()
    assert fold_batchnorm(model) == 0 and isinstance(model.bn, nn.BatchNorm2d)


@pytest.mark.parametrize("per_channel", [True, False])
def test_weight_folding_matches_onnx_quantize_linear_exactly(per_channel):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    scale = (np.array([0.01, 0.02, 0.05, 0.1], np.float32) if per_channel else np.array(0.02, np.float32))
    zero = np.zeros(scale.shape, np.int8)
    w[0, 0, 0, 0] = 0.5 * float(scale.flat[0])  # a tie: rounds to even (0), not away from zero
    w[1, 0, 0, 0] = 1e3  # saturates at 127
    node = helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], axis=0)
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("q", onnx.TensorProto.INT8, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(scale, "s"),
                               numpy_helper.from_array(zero, "z")])
    expected = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).run(None, {})[0]
    got = _quantize(w, scale, zero, 0)
    assert got.dtype == np.int8 and np.array_equal(got, expected)
    assert got[0, 0, 0, 0] == 0 and got[1, 0, 0, 0] == 127


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    """A resnet20 with NNCF fake quantizers, a few training steps, exported as Q/DQ ONNX."""
    model = _resnet()
    fold_batchnorm(model)
    calib = np.random.default_rng(0).normal(size=(16, 3, 16, 16)).astype(np.float32)
    qmodel = prepare_qat(model, calib)
    opt = torch.optim.SGD(qmodel.parameters(), lr=1e-3)
    qmodel.train()
    for _ in range(2):  # the quantizers and weights train (straight-through gradients)
        loss = nn.functional.cross_entropy(qmodel(torch.from_numpy(calib)), torch.arange(16) % 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
    qmodel.eval()
    path = qat_to_onnx(qmodel, calib, tmp_path_factory.mktemp("qat") / "model.onnx")
    with torch.no_grad():
        ref = qmodel(torch.from_numpy(calib)).numpy()
    return path, calib, ref


def test_the_qdq_onnx_stores_int8_weights_behind_dequantize_linear(qdq):
    path, _, _ = qdq
    g = onnx.load(str(path)).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    int8 = {t.name for t in g.initializer if t.data_type == onnx.TensorProto.INT8}
    producers = {o: n for n in g.node for o in n.output}
    weighted = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
    assert len(weighted) == 22 and int8_weight_count(path) == 22  # 21 convs + the classifier
    for n in weighted:  # every weight is DequantizeLinear of an int8 initializer, no float copy
        dq = producers[n.input[1]]
        assert dq.op_type == "DequantizeLinear" and dq.input[0] in int8
    floats = sum(numpy_helper.to_array(t).size for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT)
    ints = sum(numpy_helper.to_array(t).size for t in g.initializer if t.name in int8)
    assert floats < 0.05 * ints  # what stays float: biases and scales


def test_onnx_runtime_runs_it_as_int8_kernels_close_to_the_fake_quantized_model(qdq, tmp_path):
    path, calib, ref = qdq
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": calib})[0]
    fused = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert fused.count("QLinearConv") == 21 and "Conv" not in fused  # every conv runs in INT8
    assert out.shape == ref.shape == (16, 10)
    cos = float((out * ref).sum() / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos > 0.99  # the same rounding as training saw; only the runtime's requantization differs


class _Depthwise(nn.Module):
    """A mobilenet-like block: conv, ReLU6, depthwise conv, ReLU6, pointwise conv, classifier."""

    def __init__(self):
        super().__init__()
        self.conv, self.dw, self.pw = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 24, 1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = nn.functional.relu6(self.dw(nn.functional.relu6(self.conv(x))))
        return self.fc(self.pw(x).mean((2, 3)))


def _depthwise() -> nn.Module:
    torch.manual_seed(0)
    return _Depthwise().eval()


def _activation_scale_sizes(path) -> list[int]:
    """Sizes of every activation QuantizeLinear's scale (1: per tensor)."""
    g = onnx.load(str(path)).graph
    producers = {o: n for n in g.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}

    def value(name):
        if name in inits:
            return inits[name]
        return numpy_helper.to_array(producers[name].attribute[0].t)  # a Constant node

    return [int(value(n.input[1]).size) for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]


@pytest.mark.parametrize("per_channel", [False, True])
def test_qat_activations_are_per_tensor_so_onnx_runtime_fuses_depthwise_convs(per_channel, tmp_path):
    calib = np.random.default_rng(0).normal(size=(16, 3, 16, 16)).astype(np.float32)
    qmodel = prepare_qat(_depthwise(), calib, per_channel_activations=per_channel).eval()
    path = qat_to_onnx(qmodel, calib, tmp_path / "model.onnx")
    sizes = _activation_scale_sizes(path)
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"input": calib})
    fused = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    if per_channel:  # NNCF's own choice: the depthwise conv's input per channel, left in float by ORT
        assert max(sizes) == 16 and fused.count("QLinearConv") < 3
    else:  # the default: one scale per tensor, and all three convs run as INT8 kernels
        assert sizes and set(sizes) == {1}
        assert fused.count("QLinearConv") == 3 and "Conv" not in fused


class _Inverted(nn.Module):
    """A stem and one mobilenet_v2 inverted residual: its linear bottleneck (no ReLU, so signed
    activations) is added to the block's input, between unsigned ReLU6 activations."""

    def __init__(self):
        super().__init__()
        self.stem, self.expand = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 32, 1)
        self.dw, self.project = nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.Conv2d(32, 8, 1)
        self.head, self.fc = nn.Conv2d(8, 16, 1), nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(nn.functional.relu6(self.dw(nn.functional.relu6(self.expand(x)))))
        return self.fc(nn.functional.relu6(self.head(x)).mean((2, 3)))


def _ort(path, tmp_path, x, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    """(output, op types of the graph ONNX Runtime runs) for ``path`` at optimization ``level``."""
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.optimized_model_filepath = str(tmp_path / f"{path.stem}-optimized.onnx")
    out = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return out, [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


def _activation_zero_point_types(proto) -> set:
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in g.node if n.op_type == "Constant"}
    return {onnx.helper.tensor_dtype_to_np_dtype((inits.get(n.input[2]) or consts[n.input[2]]).data_type)
            for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in inits}


def test_activations_made_unsigned_let_onnx_runtime_fuse_every_conv_with_the_same_values(tmp_path):
    torch.manual_seed(0)
    calib = np.random.default_rng(0).normal(size=(16, 3, 12, 12)).astype(np.float32)
    qmodel = prepare_qat(_Inverted().eval(), calib).eval()
    signed = qat_to_onnx(qmodel, calib, tmp_path / "signed.onnx")
    proto = onnx.load(str(signed))
    assert _activation_zero_point_types(proto) == {np.dtype(np.int8), np.dtype(np.uint8)}  # NNCF mixes them
    _, ops = _ort(signed, tmp_path, calib)
    assert "Conv" in ops  # ONNX Runtime leaves the convolutions between the two types in float

    assert unsigned_activations(proto) > 0
    assert _activation_zero_point_types(proto) == {np.dtype(np.uint8)}
    unsigned = tmp_path / "unsigned.onnx"
    onnx.save(proto, str(unsigned))
    onnx.checker.check_model(str(unsigned))
    # the same grid of values: bit-identical outputs where the Q/DQ pairs run as written
    plain = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert np.array_equal(_ort(signed, tmp_path, calib, plain)[0], _ort(unsigned, tmp_path, calib, plain)[0])
    out, ops = _ort(unsigned, tmp_path, calib)
    assert ops.count("QLinearConv") == 5 and "Conv" not in ops  # every convolution runs as INT8
    with torch.no_grad():
        ref = qmodel(torch.from_numpy(calib)).numpy()
    cos = float((out * ref).sum() / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos > 0.99
    assert unsigned_activations(proto) == 0  # nothing signed is left to re-express


def test_a_bare_sequential_model_gets_fake_quantizers_and_exports(tmp_path):
    """NNCF keeps its hooks in a child of the top module, which nn.Sequential's forward would
    call as a layer ("HookStorage is missing forward"): prepare_qat gives it a top of its own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    calib = np.random.default_rng(0).normal(size=(8, 3, 8, 8)).astype(np.float32)
    qmodel = prepare_qat(model, calib)
    assert quantizer_count(qmodel) > 0
    opt = torch.optim.SGD(qmodel.parameters(), lr=1e-2)
    before = {k: v.detach().clone() for k, v in qmodel.named_parameters()}
    assert any(k.startswith("model.0.") for k in before)  # the user's layers, under the new top
    loss = nn.functional.cross_entropy(qmodel.train()(torch.from_numpy(calib)), torch.arange(8) % 10)
    loss.backward()
    opt.step()
    assert not torch.equal(qmodel.get_parameter("model.0.weight"), before["model.0.weight"])  # it trains
    path = qat_to_onnx(qmodel.eval(), calib, tmp_path / "model.onnx")
    out, ops = _ort(path, tmp_path, calib)
    assert ops.count("QLinearConv") == 2 and "Conv" not in ops
    with torch.no_grad():
        ref = qmodel(torch.from_numpy(calib)).numpy()
    np.testing.assert_allclose(out, ref, atol=0.05 * np.abs(ref).max())
