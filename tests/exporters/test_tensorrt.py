"""TensorRT: the TRT-bound ONNX variants (checked in ONNX Runtime on the CPU), lazy import,
availability reasons, and — where TensorRT and a GPU exist — engines and bad engine files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, numpy_helper

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.exporters import EXPORTERS
from edgeslim.exporters.tensorrt import tensorrt_status
from edgeslim.models.zoo import create_model
from edgeslim.quantizers import QUANTIZERS
from edgeslim.quantizers.base import validate_against_parent
from edgeslim.quantizers.tensorrt_onnx import tensorrt_onnx
from edgeslim.recipe import ExportCfg, QuantizeCfg
from edgeslim.targets.tensorrt_runner import TrtRunner

TRT_OK, TRT_WHY = tensorrt_status()
needs_trt = pytest.mark.skipif(not TRT_OK, reason=f"TensorRT path unavailable: {TRT_WHY}")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("resnet20", num_classes=10).eval()
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():  # non-zero BN shifts: the folded convolutions get biases
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.bias.data.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
    return m


@pytest.fixture(scope="module")
def calib():
    return np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_fp32(model, calib, tmp_path_factory):
    return EXPORTERS.get("onnx").export(model, calib[:4], tmp_path_factory.mktemp("onnx"), cfg=ExportCfg(),
                                        variant="baseline", method="none")


def _arrays(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def test_qdq_int8_onnx_is_what_tensorrt_expects(onnx_fp32, calib, tmp_path):
    art = tensorrt_onnx(onnx_fp32, "int8", tmp_path, cfg=QuantizeCfg(), calibration=calib)
    assert (art.format, art.precision, art.info["bound_for"]) == ("onnx", "int8", "tensorrt")
    assert art.info["activations"] == "int8 symmetric" and "21 int32 bias" in art.info["biases"]
    assert art.info["reduce_range"] is False  # full 8-bit weights for the GPU, whatever this CPU is
    m = onnx.load(str(art.path))
    inits = _arrays(m)
    q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert len(q) > 20 and len(dq) > len(q)
    for n in q + dq:  # symmetric INT8 everywhere: int8 zero points, all zero
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    for n in q:  # activations: one scale per tensor
        assert inits[n.input[1]].shape == ()
    weights = [n for n in dq if n.input[0] in inits]
    assert len(weights) == 22  # 21 convolutions + the classifier, nothing else (biases stay float)
    for n in weights:  # per-channel: one scale per output channel
        w = inits[n.input[0]]
        assert w.dtype == np.int8 and inits[n.input[1]].shape == (w.shape[0],)
    conv_biases = [inits[n.input[2]] for n in m.graph.node if n.op_type == "Conv" and len(n.input) > 2]
    assert len(conv_biases) == 21 and all(b.dtype == np.float32 for b in conv_biases)
    # runs in ONNX Runtime on the CPU, close to its FP32 parent
    report = validate_against_parent(art, onnx_fp32, calib)
    assert report["passed"] and report["cosine"] >= 0.95 and report["top1_agreement"] >= 0.9


def test_fp16_onnx_for_tensorrt(onnx_fp32, calib, tmp_path):
    art = tensorrt_onnx(onnx_fp32, "fp16", tmp_path, cfg=QuantizeCfg(), calibration=None)
    assert (art.precision, art.info["bound_for"], art.info["io_types"]) == ("fp16", "tensorrt", "fp32")
    m = onnx.load(str(art.path))
    conv_w = [m.graph.initializer[i] for i, t in enumerate(m.graph.initializer) if len(t.dims) == 4]
    assert conv_w and all(t.data_type == TensorProto.FLOAT16 for t in conv_w)
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert art.bytes < 0.6 * onnx_fp32.bytes
    report = validate_against_parent(art, onnx_fp32, calib)
    assert report["passed"] and report["cosine"] >= 0.999


def test_tensorrt_onnx_refuses_other_parents(onnx_fp32, tmp_path):
    from edgeslim.errors import QuantizeError

    with pytest.raises(QuantizeError, match="bf16"):
        tensorrt_onnx(onnx_fp32, "bf16", tmp_path, cfg=QuantizeCfg(), calibration=None)


def test_every_module_imports_without_tensorrt_and_none_tries_it():
    code = textwrap.dedent("""
        import importlib, importlib.abc, pkgutil, sys
        tried = []

        class NoTensorRT(importlib.abc.MetaPathFinder):  # as if tensorrt were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorrt":
                    tried.append(name)
                    raise ImportError("No module named 'tensorrt'")

        sys.meta_path.insert(0, NoTensorRT())
        sys.modules.pop("tensorrt", None)
        import edgeslim
        names = [m.name for m in pkgutil.walk_packages(edgeslim.__path__, "edgeslim.")
                 if not m.name.endswith("__main__")]  # importing __main__ runs the CLI
        for name in names:
            importlib.import_module(name)
        print(len(names), len(tried))         # lazy: importing the package never asks for it
        from edgeslim.exporters import EXPORTERS
        from edgeslim.quantizers import QUANTIZERS
        print(EXPORTERS.get("tensorrt").available())
        print(QUANTIZERS.get("tensorrt-int8").available())
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    counts, exp, quant = r.stdout.strip().splitlines()[-3:]
    modules, tried = map(int, counts.split())
    assert modules > 40 and tried == 0
    assert exp == quant == "(False, 'tensorrt is not installed')"


@pytest.mark.skipif(TRT_OK, reason="TensorRT is usable here")
def test_unavailable_reason_and_runner_error(tmp_path):
    ok, why = EXPORTERS.get("tensorrt").available()
    assert not ok and why in ("tensorrt is not installed", "no CUDA device",
                              "torch has no CUDA support (a CPU-only build)")
    assert QUANTIZERS.get("tensorrt-fp16").available() == (ok, why)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(TargetError) as e:
        TrtRunner(Artifact(engine, "tensorrt", "fp32", "baseline", "none")).load()
    assert ("tensorrt is not installed" in str(e.value) or "no CUDA device" in str(e.value))
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_missing_engine_file(tmp_path):
    with pytest.raises(TargetError, match="engine file not found"):
        TrtRunner(Artifact(tmp_path / "none.engine", "tensorrt", "fp32", "baseline", "none")).load()


@needs_trt
def test_engine_from_another_version_or_gpu_is_one_error_line(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ftrt" + bytes(range(256)) * 64)  # a plan header TensorRT will not accept
    with pytest.raises(TargetError) as e:
        TrtRunner(Artifact(engine, "tensorrt", "fp32", "baseline", "none")).load()
    assert "another TensorRT version or GPU" in str(e.value) and "\n" not in str(e.value)


@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engines_build_and_match(model, calib, tmp_path, precision):
    exp = tmp_path / "export"
    exp.mkdir()
    parent = EXPORTERS.get("tensorrt").export(model, calib[:4], exp, cfg=ExportCfg(),
                                               variant="baseline", method="none")
    assert (exp / "model.engine").is_file() and (exp / "model.timing.cache").is_file()
    assert parent.info["parity"]["passed"]
    art = parent
    if precision != "fp32":
        out = tmp_path / precision
        out.mkdir()
        art = QUANTIZERS.get(f"tensorrt-{precision}").quantize(parent, calib, out, cfg=QuantizeCfg())
        assert validate_against_parent(art, parent, calib)["passed"]
    with TrtRunner(art) as r:
        assert r.infer(calib[:3]).shape == (3, 10)
        assert r.time_cuda_events(calib[:1], 5)["p50"] > 0
        assert r.semantics()["precision_executed"] == precision
