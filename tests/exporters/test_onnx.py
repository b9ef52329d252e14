"""ONNX export: dynamic batch, parity against PyTorch, artifact files, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.errors import ExportError, ParityError
from edgeslim.exporters import EXPORTERS
from edgeslim.exporters.onnx_files import check_onnx, external_files, load_onnx, onnx_artifact_files
from edgeslim.exporters.parity import compare
from edgeslim.models.zoo import create_model
from edgeslim.recipe import ExportCfg
from edgeslim.targets.ort_runner import OrtRunner


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


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
def exported(model, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    art = EXPORTERS.get("onnx").export(model, sample, out, cfg=ExportCfg(), variant="baseline", method="none")
    return art


def test_writes_model_onnx_artifact(exported):
    assert exported.path.name == "model.onnx" and exported.path.is_file()
    assert (exported.format, exported.precision, exported.variant, exported.method) == ("onnx", "fp32", "baseline", "none")
    assert exported.id == "baseline/onnx/fp32"
    # the temporary raw export is cleaned up
    assert sorted(p.name for p in exported.path.parent.iterdir()) == ["model.onnx"]
    onnx.checker.check_model(str(exported.path))
    assert exported.info["exporter"] in ("torch.export", "torchscript")
    assert isinstance(exported.info["opset"], int) and exported.info["opset"] >= 13


def test_graph_input_has_symbolic_batch(exported):
    m = onnx.load(str(exported.path))
    assert [i.name for i in m.graph.input] == ["input"]
    assert [o.name for o in m.graph.output] == ["logits"]
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param != "" and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32]
    out_dims = m.graph.output[0].type.tensor_type.shape.dim
    assert out_dims[0].dim_param != "" and out_dims[1].dim_value == 10


@pytest.mark.parametrize("batch", [1, 5])
def test_runs_in_onnxruntime_at_any_batch(exported, model, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    (out,) = _session(exported.path).run(None, {"input": x})
    assert out.shape == (batch, 10)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_parity_report_recorded_and_passed(exported):
    p = exported.info["parity"]
    assert exported.info["parity_reference"] == "pytorch"
    assert p["passed"] is True
    assert 0 <= p["max_abs"] < 1e-3
    assert p["cosine"] >= 0.999
    assert p["top1_agreement"] == 1.0
    assert p["max_abs_tolerance"] == ExportCfg().parity.max_abs


def test_bytes_is_sum_of_files(exported):
    assert exported.files == [exported.path]
    assert onnx_artifact_files(exported.path) == [exported.path]
    assert exported.bytes == exported.path.stat().st_size
    # resnet20 has 0.27M float32 parameters: the file holds them
    assert 1.0e6 < exported.bytes < 1.5e6


@pytest.fixture
def external_copy(exported, tmp_path):
    m = onnx.load(str(exported.path))
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.data", size_threshold=0)
    return path


def test_external_data_file_is_listed_and_counted(external_copy, exported, sample):
    data = external_copy.parent / "w.data"
    assert data.is_file()
    files = onnx_artifact_files(external_copy)
    assert [f.name for f in files] == ["ext.onnx", "w.data"]
    assert external_files(external_copy) == [data.resolve()]
    art = Artifact(external_copy, "onnx", "fp32", "baseline", "none", files=files)
    assert art.bytes == external_copy.stat().st_size + data.stat().st_size
    assert data.stat().st_size > 1.0e6 > external_copy.stat().st_size  # the weights moved out
    assert art.bytes >= 0.95 * exported.bytes
    check_onnx(external_copy)
    loaded = load_onnx(external_copy)  # external data read back in
    assert sum(len(t.raw_data) for t in loaded.graph.initializer) >= 0.9 * data.stat().st_size


def test_external_data_model_runs_identically(exported, sample, tmp_path):
    # size_threshold=1024 keeps small constants inline: ORT's shape inference needs them there
    path = tmp_path / "ext1k.onnx"
    onnx.save_model(onnx.load(str(exported.path)), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext1k.onnx.data", size_threshold=1024)
    art = Artifact(path, "onnx", "fp32", "baseline", "none", files=onnx_artifact_files(path))
    assert len(art.files) == 2
    with OrtRunner(art, threads=1) as r, OrtRunner(exported, threads=1) as r0:
        np.testing.assert_array_equal(r.infer(sample), r0.infer(sample))


def test_external_data_escaping_the_folder_is_refused(external_copy, tmp_path):
    sub = tmp_path / "inner"
    sub.mkdir()
    # a real file at the escaping location, so only the path check can refuse it
    (tmp_path / "evil.data").write_bytes((external_copy.parent / "w.data").read_bytes())
    m = onnx.load(str(external_copy), load_external_data=False)
    n = 0
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../evil.data"
                n += 1
    assert n > 0
    evil = sub / "model.onnx"
    onnx.save_model(m, str(evil))
    for fn in (external_files, load_onnx, onnx_artifact_files, check_onnx):
        with pytest.raises(ExportError, match=r"'\.\./evil\.data' escapes") as err:
            fn(evil)
        assert str(evil) in str(err.value)


def test_missing_external_data_file(external_copy):
    (external_copy.parent / "w.data").unlink()
    with pytest.raises(ExportError, match="'w.data' is missing"):
        load_onnx(external_copy)


def test_truncated_onnx_is_one_export_error(exported, tmp_path):
    raw = exported.path.read_bytes()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ExportError, match="not a valid ONNX file") as err:
        load_onnx(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_not_onnx_and_missing_file(tmp_path):
    txt = tmp_path / "notes.onnx"
    txt.write_text("hello, this is not a protobuf")
    with pytest.raises(ExportError, match="not a valid ONNX file"):
        load_onnx(txt)
    with pytest.raises(ExportError, match="ONNX file not found") as err:
        load_onnx(tmp_path / "absent.onnx")
    assert "absent.onnx" in str(err.value)


def test_compare_identical_passes():
    ref = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
    r = compare(ref, ref.copy(), max_abs=1e-3, min_cosine=0.999)
    assert r.passed and bool(r)
    assert r.max_abs == 0.0 and r.mean_abs == 0.0 and r.max_rel == 0.0
    assert r.cosine == pytest.approx(1.0, abs=1e-12)
    assert r.top1_agreement == 1.0
    assert "max abs error 0" in r.summary() and "(tolerance 0.001)" in r.summary()


def test_compare_fails_on_different_outputs():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((8, 10))
    other = rng.standard_normal((8, 10))
    r = compare(ref, other, max_abs=None, min_cosine=0.999)
    assert not r.passed and not bool(r)
    assert r.cosine < 0.999
    assert r.max_abs == pytest.approx(float(np.abs(ref - other).max()))
    # within cosine but beyond max_abs
    scaled = compare(ref, ref * 1.01, max_abs=1e-4, min_cosine=0.999)
    assert scaled.cosine > 0.9999 and not scaled.passed
    assert compare(ref, ref * 1.01, max_abs=None, min_cosine=0.999).passed
    # negated: cosine -1, top-1 agreement ~0
    neg = compare(ref, -ref, max_abs=None, min_cosine=0.5)
    assert neg.cosine == pytest.approx(-1.0) and not neg.passed


def test_compare_shape_mismatch_and_nan():
    ref = np.ones((2, 10))
    r = compare(ref, np.ones((3, 10)), max_abs=1.0, min_cosine=0.0)
    assert not r.passed and r.max_abs == float("inf")
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert not compare(ref, nan, max_abs=None, min_cosine=-1.0).passed


class _Eig(nn.Module):
    """linalg.eig has no ONNX mapping in either exporter."""

    def forward(self, x):
        return torch.linalg.eig(x.flatten(1)[:, :4].reshape(-1, 2, 2))[0].real.flatten(1)


class _PythonBranch(nn.Module):
    """Python-side control flow on a data-dependent float: torch.export refuses it and the
    TorchScript fallback bakes in the branch the trace example took."""

    def forward(self, x):
        if float(x.mean()) > 0.5:
            return x.flatten(1)[:, :10] * 2
        return x.flatten(1)[:, :10]


def test_unexportable_model_is_one_line_export_error(tmp_path):
    sample = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ExportError) as err:
        EXPORTERS.get("onnx").export(_Eig().eval(), sample, tmp_path, cfg=ExportCfg(), variant="baseline", method="none")
    msg = str(err.value)
    assert msg.startswith("the model cannot be exported to ONNX")
    assert "\n" not in msg and len(msg) < 400
    assert not (tmp_path / "model.onnx").exists()


def test_unexportable_model_error_names_the_operator_without_escape_codes(tmp_path):
    sample = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ExportError) as err:
        EXPORTERS.get("onnx").export(_Eig().eval(), sample, tmp_path, cfg=ExportCfg(), variant="baseline", method="none")
    msg = str(err.value)
    assert "\x1b" not in msg
    assert "eig" in msg


def test_data_dependent_python_branch_fails_parity(tmp_path):
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    sample[1:] += 3.0  # the batch mean is > 0.5, the first image's (the trace example) is not
    with pytest.raises(ExportError) as err:
        EXPORTERS.get("onnx").export(_PythonBranch().eval(), sample, tmp_path, cfg=ExportCfg(),
                                     variant="compressed", method="l1")
    assert isinstance(err.value, ParityError)
    msg = str(err.value)
    assert "differs from PyTorch" in msg and "compressed" in msg and "\n" not in msg
