"""OpenVINO INT8 through NNCF, and the FP16/BF16 OpenVINO artifacts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeslim.errors import DataError, EdgeslimError, QuantizeError
from edgeslim.exporters import EXPORTERS
from edgeslim.models.zoo import create_model
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages import QuantizeStage
from edgeslim.pipeline.context import Context
from edgeslim.quantizers import QUANTIZERS
from edgeslim.quantizers.base import validate_against_parent
from edgeslim.recipe import ExportCfg, QuantizeCfg, load_recipe
from edgeslim.targets.openvino_runner import OpenVinoRunner, core, supports
from edgeslim.targets.profiler import accuracy


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def calib():
    # shifted so the network input is not centred: symmetric and asymmetric ranges differ
    return np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32) + 0.7


@pytest.fixture(scope="module")
def ir(calib, tmp_path_factory):
    torch.manual_seed(0)
    m = create_model("resnet20", num_classes=10).eval()
    return EXPORTERS.get("openvino").export(m, calib[:4], tmp_path_factory.mktemp("ir"), cfg=ExportCfg(),
                                            variant="baseline", method="none")


@pytest.fixture(scope="module")
def int8(ir, calib, tmp_path_factory):
    return QUANTIZERS.get("openvino-int8").quantize(ir, calib, tmp_path_factory.mktemp("q"),
                                                    cfg=QuantizeCfg(nncf_subset_size=12))


def _input_range(art):
    """(low, high) of the FakeQuantize on the network input."""
    for op in core().read_model(str(art.path)).get_ordered_ops():
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() == "Parameter":
            return (float(op.input_value(1).get_node().get_data().ravel()[0]),
                    float(op.input_value(2).get_node().get_data().ravel()[0]))
    raise AssertionError("no FakeQuantize on the input")


def test_int8_artifact_is_quantized_smaller_and_runs_int8(int8, ir, calib):
    assert (int8.format, int8.precision, int8.parent) == ("openvino", "int8", ir.id)
    assert [f.name for f in int8.files] == ["model.xml", "model.bin"]
    assert int8.info["quantizer"] == "nncf.quantize" and int8.info["fake_quantize_ops"] > 20
    assert int8.info["subset_size"] == 12 and int8.info["calibration_samples"] == 16
    assert int8.info["preset"] == "performance" and int8.info["fast_bias_correction"] is True
    assert int8.bytes < 0.45 * ir.bytes  # INT8 weights: a quarter, plus scales
    with OpenVinoRunner(int8, threads=1) as r:
        r.infer(calib[:2])
        sem = r.semantics()
    assert sem["precision_executed"] == "int8" and sem["layer_precisions"] == {"int8": 22}
    assert sem["inference_precision"] == "f32"  # what is left in floating point runs f32
    report = validate_against_parent(int8, ir, calib)
    assert report["passed"] and report["cosine"] >= 0.95


def test_preset_sets_activation_symmetry(int8, ir, calib, tmp_path):
    lo, hi = _input_range(int8)
    assert lo == pytest.approx(-hi * 128 / 127, rel=1e-5)  # performance: symmetric
    mixed = QUANTIZERS.get("openvino-int8").quantize(ir, calib, tmp_path, cfg=QuantizeCfg(nncf_preset="mixed"))
    lo_m, hi_m = _input_range(mixed)
    assert mixed.info["preset"] == "mixed" and lo_m > lo + 0.1  # asymmetric: the real minimum
    assert float(calib.min()) <= lo_m + 1e-3 and hi_m <= float(calib.max()) + 1e-3


def test_subset_larger_than_calibration_names_both(ir, calib, tmp_path):
    with pytest.raises(QuantizeError) as e:
        QUANTIZERS.get("openvino-int8").quantize(ir, calib, tmp_path, cfg=QuantizeCfg(nncf_subset_size=17))
    assert "nncf_subset_size=17" in str(e.value) and "16 calibration samples" in str(e.value)


def test_accuracy_control_keeps_the_drop_within_bound(ir, tmp_path):
    vx = np.random.default_rng(1).standard_normal((50, 3, 32, 32)).astype(np.float32) + 0.7
    with OpenVinoRunner(ir, threads=1) as r:
        vy = r.infer(vx).argmax(1)  # the FP32 model is 100% right on its own predictions
    cfg = QuantizeCfg(max_accuracy_drop=2.0)
    art = QUANTIZERS.get("openvino-int8").quantize(ir, vx[:16], tmp_path, cfg=cfg, val=(vx, vy))
    assert art.info["quantizer"] == "nncf.quantize_with_accuracy_control"
    assert art.info["accuracy_control"] == {"max_drop_points": 2.0, "validation": "val split, 50 labelled images"}
    with OpenVinoRunner(art, threads=1) as r:
        assert accuracy(r, vx, vy) >= 0.98  # at most one of the 50 labels lost


def test_accuracy_control_needs_labels(ir, calib, tmp_path):
    with pytest.raises(QuantizeError, match="needs labelled validation data"):
        QUANTIZERS.get("openvino-int8").quantize(ir, calib, tmp_path, cfg=QuantizeCfg(max_accuracy_drop=1.0),
                                                 val=(calib, None))


def test_fp16_and_bf16_artifacts(ir, calib, tmp_path):
    (tmp_path / "h").mkdir()
    (tmp_path / "b").mkdir()
    fp16 = QUANTIZERS.get("openvino-fp16").quantize(ir, None, tmp_path / "h", cfg=QuantizeCfg())
    assert fp16.precision == "fp16" and fp16.info["weights"] == "fp16"
    assert 0.45 < fp16.bytes / ir.bytes < 0.55
    assert validate_against_parent(fp16, ir, calib)["cosine"] >= 0.999
    with OpenVinoRunner(fp16, threads=1) as r:
        expected = "f16" if supports("f16") else "f32"  # FP16 storage; arithmetic where the CPU has it
        assert r.semantics()["precision_executed"] == expected
        assert r.semantics()["weights_precision"] == "fp16"
    ok, why = QUANTIZERS.get("openvino-bf16").available()
    if not ok:
        assert "bf16" in why
        return
    bf16 = QUANTIZERS.get("openvino-bf16").quantize(ir, None, tmp_path / "b", cfg=QuantizeCfg())
    assert bf16.precision == "bf16" and abs(bf16.bytes - ir.bytes) < 1024  # same FP32 weights
    with OpenVinoRunner(bf16, threads=1) as r:
        assert r.semantics()["precision_executed"] == "bf16"
    assert validate_against_parent(bf16, ir, calib)["cosine"] >= 0.99


def _quantize_stage(ir, recipe, workdir):
    """The pipeline's quantize stage on ``ir``, with the recipe's slice."""
    stage = QuantizeStage()
    cfg = stage.slice(recipe, cell=_cell("int8"))
    parent = StageResult("30-export/baseline-openvino", ir.path.parent, "k",
                         {"artifact": ir.to_json(ir.path.parent)}, "h", True, 0.0)
    return stage.run(workdir, {"parent": parent}, cfg, Context(run_dir=workdir))


def _cell(precision):
    from edgeslim.pipeline.matrix import Cell, Variant

    return Cell(Variant("baseline", "none", "00-baseline"), "openvino", precision)


def test_calibration_set_smaller_than_asked(ir, tmp_path):
    recipe = load_recipe(None, ["data.calibration_samples=64", "data.limit_train=20", "data.limit_val=8"])
    with pytest.raises(DataError) as e:
        _quantize_stage(ir, recipe, tmp_path)
    msg = str(e.value)
    assert "only 20 training samples" in msg and "64" in msg and "data.calibration_samples" in msg
    assert isinstance(e.value, EdgeslimError) and e.value.exit_code == 2


def test_quantize_stage_passes_the_val_split_for_accuracy_control(ir, tmp_path):
    recipe = load_recipe(None, ["data.calibration_samples=8", "quantize.max_accuracy_drop=5",
                                "data.limit_train=16", "data.limit_val=12"])
    out = _quantize_stage(ir, recipe, tmp_path)
    info = out["artifact"]["info"]
    assert info["quantizer"] == "nncf.quantize_with_accuracy_control"
    assert info["accuracy_control"]["validation"] == "val split, 12 labelled images"
    assert info["calibration_samples"] == 8 and info["parity"]["passed"]
