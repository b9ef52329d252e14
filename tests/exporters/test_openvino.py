"""OpenVINO IR: export, parity at forced f32, weight storage, the runner's precision, bad IR."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.errors import EdgeslimError, ExportError, TargetError
from edgeslim.exporters import EXPORTERS
from edgeslim.exporters.openvino import check_ir, onnx_to_ir
from edgeslim.models.zoo import create_model
from edgeslim.recipe import ExportCfg
from edgeslim.targets.openvino_runner import OpenVinoRunner, capabilities, core, supports


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("resnet20", num_classes=10).eval()
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():  # non-trivial BN, so folding mistakes would show
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


@pytest.fixture(scope="module")
def sample():
    return np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def ir(model, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov")
    return EXPORTERS.get("openvino").export(model, sample, out, cfg=ExportCfg(), variant="baseline", method="none")


def _torch(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_ir_files_and_bytes(ir):
    assert (ir.format, ir.precision, ir.id) == ("openvino", "fp32", "baseline/openvino/fp32")
    assert [f.name for f in ir.files] == ["model.xml", "model.bin"]
    assert sorted(p.name for p in ir.path.parent.iterdir()) == ["model.bin", "model.xml"]
    assert ir.bytes == sum(f.stat().st_size for f in ir.files)
    # resnet20's 0.27M FP32 parameters live in the .bin
    assert 1.0e6 < ir.files[1].stat().st_size < 1.2e6
    assert ir.info["converter"] == "openvino.convert_model from pytorch" and ir.info["weights"] == "fp32"


def test_parity_at_forced_f32(ir):
    p = ir.info["parity"]
    assert p["passed"] is True and p["max_abs"] < 1e-4 and p["top1_agreement"] == 1.0
    assert ir.info["parity_inference_precision"] == "f32" and ir.info["parity_reference"] == "pytorch"


@pytest.mark.parametrize("batch", [1, 5])
def test_dynamic_batch_and_names(ir, model, batch):
    m = core().read_model(str(ir.path))
    assert m.inputs[0].get_any_name() == "input" and m.outputs[0].get_any_name() == "logits"
    assert m.inputs[0].get_partial_shape()[0].is_dynamic
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    with OpenVinoRunner(ir, threads=1) as r:
        out = r.infer(x)
    assert out.shape == (batch, 10)
    np.testing.assert_allclose(out, _torch(model, x), atol=1e-4, rtol=0)


def test_a_dynamic_batch_ir_runs_compiled_static_for_each_batch_size(ir, model):
    # the IR keeps its dynamic batch; the runner compiles one static shape per batch size it
    # is given (faster kernels than the dynamic compilation), each one right
    with OpenVinoRunner(ir, threads=1) as r:
        compiled_at_load = [tuple(i.get_shape()) for i in r.compiled.inputs]
        for batch in (1, 3, 1, 3):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
            np.testing.assert_allclose(r.infer(x), _torch(model, x), atol=1e-4, rtol=0)
        sem = r.semantics()
    assert compiled_at_load == [(1, 3, 32, 32)]  # static: get_shape() raises on a dynamic one
    assert sem["shapes"].startswith("static per input shape")
    assert core().read_model(str(ir.path)).inputs[0].get_partial_shape()[0].is_dynamic  # the file is unchanged


def test_fp16_weights_halve_the_bin(model, sample, ir, tmp_path):
    art = EXPORTERS.get("openvino").export(model, sample, tmp_path, cfg=ExportCfg(openvino_weights="fp16"),
                                           variant="baseline", method="none")
    assert art.info["weights"] == "fp16" and art.precision == "fp32"
    assert b'element_type="f16"' in art.path.read_bytes()
    assert 0.45 < art.files[1].stat().st_size / ir.files[1].stat().st_size < 0.55
    assert art.info["parity"]["passed"] and art.info["parity"]["cosine"] >= 0.999


@pytest.mark.slow  # a second export (torch.export is the slow part); the e2e run covers ONNX+IR together
def test_from_onnx_artifact_matches(model, sample, ir, tmp_path):
    onnx_art = EXPORTERS.get("onnx").export(model, sample, tmp_path, cfg=ExportCfg(), variant="baseline", method="none")
    files = onnx_to_ir(onnx_art.path, tmp_path / "from_onnx.xml")
    art = Artifact(files[0], "openvino", "fp32", "baseline", "none", files=files)
    with OpenVinoRunner(art, threads=1) as a, OpenVinoRunner(ir, threads=1) as b:
        np.testing.assert_allclose(a.infer(sample), b.infer(sample), atol=1e-4, rtol=0)


def test_runner_forces_f32_and_records_it(ir):
    with OpenVinoRunner(ir, threads=1) as r:
        r.infer(np.zeros((1, 3, 32, 32), np.float32))
        sem = r.semantics()
    assert sem["runtime"] == "openvino" and sem["runtime_version"]
    assert sem["precision_executed"] == "f32" and sem["inference_precision"] == "f32"
    assert sem["layer_precisions"] == {"f32": 22}  # 21 convolutions + the classifier
    assert sem["threads"] == 1 and sem["performance_hint"] == "LATENCY" and sem["streams"] == 1
    if supports("bf16"):  # why the runner must set it: OpenVINO's own default here is bf16
        assert core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name() == "bf16"


@pytest.mark.skipif(not supports("bf16"), reason="this CPU has no bf16 arithmetic in OpenVINO")
def test_bf16_is_executed_and_recorded(ir, sample):
    with OpenVinoRunner(ir, threads=1, inference_precision="bf16") as r, \
            OpenVinoRunner(ir, threads=1, inference_precision="f32") as r32:
        out, ref = r.infer(sample), r32.infer(sample)
        sem = r.semantics()
    assert sem["precision_executed"] == "bf16" and sem["layer_precisions"] == {"bf16": 22}
    assert any("bf16" in k for k in sem["kernels"])
    diff = np.abs(out - ref).max()
    assert 1e-5 < diff < 0.2  # bf16 rounding shows, but the logits agree
    assert (out.argmax(1) == ref.argmax(1)).all()


@pytest.mark.skipif(supports("f16"), reason="this CPU computes in FP16: f16 is a valid precision here")
def test_unsupported_precision_is_one_error_line(ir):
    with pytest.raises(TargetError) as e:
        OpenVinoRunner(ir, inference_precision="f16").load()
    msg = str(e.value)
    assert "f16" in msg and "cannot run" in msg and "\n" not in msg and e.value.exit_code == 2
    assert all(c in msg for c in capabilities())


def test_unknown_precision_and_hint(ir):
    with pytest.raises(TargetError, match="int4"):
        OpenVinoRunner(ir, inference_precision="int4").load()
    with pytest.raises(TargetError, match="performance hint"):
        OpenVinoRunner(ir, performance_hint="fastest").load()


@pytest.fixture
def ir_copy(ir, tmp_path):
    for f in ir.files:
        shutil.copy(f, tmp_path / f.name)
    return Artifact(tmp_path / "model.xml", "openvino", "fp32", "baseline", "none",
                    files=[tmp_path / "model.xml", tmp_path / "model.bin"])


def test_missing_bin_is_one_error_line(ir_copy):
    (ir_copy.path.parent / "model.bin").unlink()
    with pytest.raises(TargetError) as e:
        OpenVinoRunner(ir_copy).load()
    msg = str(e.value)
    assert "model.bin" in msg and "missing" in msg and "\n" not in msg
    assert isinstance(e.value, EdgeslimError) and e.value.exit_code == 2


def test_truncated_bin_is_one_error_line(ir_copy):
    binf = ir_copy.path.parent / "model.bin"
    data = binf.read_bytes()
    binf.write_bytes(data[: len(data) // 2])
    with pytest.raises(TargetError) as e:
        OpenVinoRunner(ir_copy).load()
    msg = str(e.value)
    assert "model.bin" in msg and "truncated" in msg and str(len(data)) in msg and "\n" not in msg
    with pytest.raises(ExportError, match="truncated"):
        check_ir(ir_copy.path)


def test_not_an_ir(tmp_path):
    bad = tmp_path / "model.xml"
    bad.write_text("hello")
    with pytest.raises(ExportError, match="not an OpenVINO IR"):
        check_ir(bad)
    with pytest.raises(ExportError, match="not found"):
        check_ir(tmp_path / "none.xml")


@pytest.mark.skipif(supports("f16"), reason="this CPU computes in FP16: f16 is a valid precision here")
def test_recipe_asking_an_unsupported_precision_is_one_line_exit_2():
    from edgeslim.errors import RecipeError
    from edgeslim.recipe import load_recipe

    with pytest.raises(RecipeError) as e:  # the CLI prints exactly this line and exits 2
        load_recipe(None, ["targets=[{name: cpu, openvino_precision: f16}]"])
    msg = str(e.value)
    assert e.value.exit_code == 2 and "\n" not in msg
    assert "openvino_precision" in msg and "f16" in msg and "cannot run" in msg
