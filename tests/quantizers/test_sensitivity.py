"""Per-layer INT8 sensitivity (sensitivity.json) and the FP32 fallback of ONNX Runtime INT8,
on a small trained parent, through the real quantizer and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.io import read_json
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import Cell, Variant
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages import QuantizeStage
from edgeslim.quantizers import QUANTIZERS
from edgeslim.quantizers.sensitivity import Reference, infer, worst_first
from edgeslim.recipe import QuantizeCfg, load_recipe
from edgeslim.select.plan import candidate_recipe, plan_inputs
from edgeslim.select.prior import propose

SAMPLES = 48  # of the 64 val images: the subset sensitivity scores on


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def val(data):
    return data.val_arrays()


@pytest.fixture(scope="module")
def calib(data):
    return data.calibration(64, seed=0)


def _quantize(parent, calib, out, val, **cfg):
    out.mkdir(parents=True, exist_ok=True)
    return QUANTIZERS.get("onnx-int8").quantize(parent, calib, out, cfg=QuantizeCfg(**cfg), val=val)


@pytest.fixture(scope="module")
def sensitive(parent, calib, val, tmp_path_factory):
    art = _quantize(parent, calib, tmp_path_factory.mktemp("sens"), val,
                    sensitivity={"enabled": True, "samples": SAMPLES})
    return art, read_json(art.path.parent / "sensitivity.json")


def _weighted_layers(path) -> dict[str, str]:
    return {n.name: n.op_type for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm")}


def test_sensitivity_file_lists_every_quantizable_layer_worst_first(sensitive, parent):
    art, result = sensitive
    assert sorted(p.name for p in art.path.parent.iterdir()) == ["calibration.json", "model.onnx",
                                                                 "sensitivity.json"]
    assert art.files == [art.path]  # beside the artifact, not part of it
    assert result["samples"] == SAMPLES and result["labelled"] is True
    assert result["measured"] == ("top-1 accuracy lost (points) against the FP32 parent on the first "
                                  f"{SAMPLES} val images")
    layers = result["layers"]
    # resnet20: 21 convolutions (BN folded into them) and the classifier, each listed once
    assert len(layers) == 22
    assert {r["layer"]: r["op"] for r in layers} == _weighted_layers(parent.path)
    for r in layers:
        assert set(r) == {"layer", "op", "top1_agreement", "cosine", "accuracy", "loss_points"}
        assert r["loss_points"] == pytest.approx(100 * (result["fp32_accuracy"] - r["accuracy"]), abs=1e-3)
        assert 0.9 < r["cosine"] <= 1.0 + 1e-6 and 0.0 <= r["top1_agreement"] <= 1.0
    assert layers == sorted(layers, key=worst_first)
    losses = [r["loss_points"] for r in layers]
    assert losses == sorted(losses, reverse=True)
    # one layer alone disturbs the output less than all of them together
    assert max(r["cosine"] for r in layers) > result["full_int8"]["cosine"]
    assert art.info["sensitivity"]["worst"] == layers[:3]
    assert art.info["sensitivity"]["file"] == "sensitivity.json"


def test_quantizing_nothing_loses_nothing(sensitive):
    _, result = sensitive
    floor = result["none_quantized"]  # the pre-processed FP32 model the candidates start from
    assert floor["loss_points"] == 0.0 and floor["top1_agreement"] == 1.0
    assert floor["cosine"] > 0.99999


def test_full_int8_figure_is_the_artifacts_own(sensitive, val):
    art, result = sensitive
    x, y = val[0][:SAMPLES], val[1][:SAMPLES]
    acc = float((infer(art, x).argmax(1) == y).mean())
    assert result["full_int8"]["accuracy"] == pytest.approx(acc, abs=5e-7)  # stored to 6 decimals
    # without accuracy control the artifact is the fully quantized model: no FP32 weights left
    assert "accuracy_control" not in art.info
    assert not _float_weights(art.path)


def test_sensitivity_on_unlabelled_data_scores_agreement_and_cosine(parent, calib, val, tmp_path):
    art = _quantize(parent, calib, tmp_path, (val[0], None), sensitivity={"enabled": True, "samples": 16})
    result = read_json(tmp_path / "sensitivity.json")
    assert result["labelled"] is False and result["fp32_accuracy"] is None and result["samples"] == 16
    assert "top-1 agreement and output cosine" in result["measured"]
    assert len(result["layers"]) == 22
    assert all(set(r) == {"layer", "op", "top1_agreement", "cosine"} for r in result["layers"])
    keys = [(r["top1_agreement"], r["cosine"]) for r in result["layers"]]
    assert keys == sorted(keys)  # worst first: least agreement, then least cosine
    assert art.info["sensitivity"]["samples"] == 16


def _float_weights(path) -> list[str]:
    """Conv/Gemm weights still stored in float32 (layers kept in FP32)."""
    m = onnx.load(str(path))
    return [i.name for i in m.graph.initializer
            if i.data_type == TensorProto.FLOAT and len(i.dims) >= 2 and i.dims[0] > 1]


def _one_fragile_conv(parent, tmp_path) -> tuple[Artifact, str]:
    """``parent`` with the first conv's output channel 0 scaled 1000x and divided back right
    after it (Div is not quantized): the same function in float, but per-tensor INT8 weights
    and the conv's output range are ruined by that one channel, and by nothing else."""
    m = onnx.load(str(parent.path))
    g = m.graph
    conv = next(n for n in g.node if n.op_type == "Conv")
    inits = {i.name: i for i in g.initializer}
    for name in conv.input[1:]:
        a = numpy_helper.to_array(inits[name]).copy()
        a[0] *= 1000
        inits[name].CopyFrom(numpy_helper.from_array(a, name))
    channels = inits[conv.input[1]].dims[0]
    d = np.ones((1, channels, 1, 1), np.float32)
    d[0, 0] = 1000
    g.initializer.append(numpy_helper.from_array(d, "fragile_divisor"))
    out = conv.output[0]
    for n in g.node:
        n.input[:] = ["fragile_scaled" if i == out else i for i in n.input]
    conv.output[0] = "fragile_out"
    div = onnx.helper.make_node("Div", ["fragile_out", "fragile_divisor"], ["fragile_scaled"], name="fragile_div")
    g.node.insert(list(g.node).index(conv) + 1, div)
    path = tmp_path / "fragile.onnx"
    onnx.save_model(m, str(path))
    return Artifact(path, "onnx", "fp32", "compressed", "l1"), conv.name


def test_fallback_keeps_the_sensitive_layer_fp32_and_meets_the_budget(parent, calib, val, tmp_path):
    fragile, conv = _one_fragile_conv(parent, tmp_path)
    np.testing.assert_allclose(infer(fragile, val[0][:8]), infer(parent, val[0][:8]), rtol=1e-3, atol=1e-3)
    art = _quantize(fragile, calib, tmp_path / "q", val, max_accuracy_drop=5.0, per_channel=False,
                    sensitivity={"samples": 32})
    ranking = read_json(tmp_path / "q" / "sensitivity.json")["layers"]
    assert ranking[0]["layer"] == conv and ranking[0]["loss_points"] > 20  # found as the worst
    rec = art.info["accuracy_control"]
    assert rec["steps"][0]["drop_points"] > 20  # the fully quantized model
    assert rec["met"] is True and rec["kept_fp32"] == [conv] and rec["drop_points"] <= 5.0
    assert [s["added"] for s in rec["steps"]] == [None, conv]
    assert rec["accuracy"] == rec["steps"][-1]["accuracy"] >= rec["fp32_accuracy"] - 0.05
    assert all(s["p50_ms"] > 0 for s in rec["steps"]) and "indicative" in rec["latency_note"]
    assert rec["latency_cost"] == pytest.approx(rec["steps"][1]["p50_ms"] / rec["steps"][0]["p50_ms"] - 1, abs=1e-3)
    assert rec["validation"] == "val split, 64 labelled images" and rec["quantizable_layers"] == 22
    # the artifact is the last step's model: that one conv keeps float32 weights, no other does
    assert len(_float_weights(art.path)) == 1
    assert Reference.of(fragile, *val).score(art)["accuracy"] == pytest.approx(rec["accuracy"], abs=1e-9)


def test_fallback_that_cannot_meet_a_zero_budget_says_so(parent, calib, val, tmp_path):
    # one calibration image 40x too bright stretches every activation range, those of the
    # residual Adds too, which no kept layer brings back: the record must say so
    bad = calib.copy()
    bad[0] *= 40
    art = _quantize(parent, bad, tmp_path, val, max_accuracy_drop=0.0, sensitivity={"samples": 16})
    rec = art.info["accuracy_control"]
    ranking = [r["layer"] for r in read_json(tmp_path / "sensitivity.json")["layers"]]
    steps = rec["steps"]
    assert steps[0]["kept_fp32"] == 0 and steps[0]["drop_points"] > 5
    assert rec["met"] is False and rec["kept_fp32"] == ranking and len(ranking) == 22  # all, worst first
    assert [s["kept_fp32"] for s in steps] == list(range(23)) and [s["added"] for s in steps[1:]] == ranking
    assert rec["drop_points"] == steps[-1]["drop_points"] > 0
    assert "all 22 quantizable layers are kept in FP32" in rec["why"]
    assert len(_float_weights(art.path)) == 22


def test_fallback_within_budget_keeps_nothing(parent, calib, val, tmp_path):
    art = _quantize(parent, calib, tmp_path, val, max_accuracy_drop=100.0, sensitivity={"samples": 16})
    rec = art.info["accuracy_control"]
    assert rec["met"] is True and rec["kept_fp32"] == [] and len(rec["steps"]) == 1
    assert rec["latency_cost"] == 0.0 and rec["quantizable_layers"] == 22
    assert not _float_weights(art.path)


def test_fallback_without_labels_is_one_quantize_error(parent, calib, val, tmp_path):
    with pytest.raises(QuantizeError, match="max_accuracy_drop needs labelled validation data") as err:
        _quantize(parent, calib, tmp_path, (val[0], None), max_accuracy_drop=0.5)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "model.onnx").exists()


def test_without_a_val_split_nothing_is_scored(parent, calib, tmp_path):
    # TensorRT's ONNX path quantizes without the val split: sensitivity is skipped, and says so
    art = _quantize(parent, calib, tmp_path, None, sensitivity={"enabled": True})
    assert art.info["sensitivity"] == "not measured: no validation split was given"
    assert not (tmp_path / "sensitivity.json").exists()


def test_sensitivity_settings_are_validated_and_in_the_stage_slice():
    with pytest.raises(ValueError, match="samples"):
        QuantizeCfg(sensitivity={"samples": 0})
    with pytest.raises(ValueError, match="extra"):
        QuantizeCfg(sensitivity={"enable": True})
    stage = QuantizeStage()
    a = stage.slice(load_recipe(None, []), cell=_cell())
    b = stage.slice(load_recipe(None, ["quantize.sensitivity.samples=64"]), cell=_cell())
    assert a.quantize.sensitivity.samples == 512 and b.quantize.sensitivity.samples == 64
    assert a.model_dump() != b.model_dump()  # the cache key changes with it


def _cell():
    return Cell(Variant("compressed", "l1", "20-finetune"), "onnx", "int8")


def test_quantize_stage_writes_sensitivity_beside_the_artifact(parent, tmp_path):
    recipe = load_recipe(None, ["data.calibration_samples=32", "data.limit_train=64", "data.limit_val=24",
                                "quantize.sensitivity.enabled=true"])
    stage = QuantizeStage()
    cfg = stage.slice(recipe, cell=_cell())
    up = StageResult("30-export/compressed-onnx", parent.path.parent, "k",
                     {"artifact": parent.to_json(parent.path.parent)}, "h", True, 0.0)
    out = stage.run(tmp_path, {"parent": up}, cfg, Context(run_dir=tmp_path))
    art = Artifact.from_json(out["artifact"], tmp_path)
    result = read_json(tmp_path / "sensitivity.json")
    assert result["samples"] == 24 and len(result["layers"]) == 22  # the val split is smaller than 512
    assert art.info["sensitivity"]["samples"] == 24 and art.info["parity"]["passed"]


@pytest.mark.parametrize("drop, controlled", [(0.5, True), (100.0, False), (None, False)])
def test_the_plan_proposes_the_fallback_under_an_accuracy_budget(drop, controlled):
    # the post-training candidate's INT8 becomes the FP32 fallback when the budget can bind
    recipe, c = plan_inputs(None, ["constraints.max_accuracy_drop=null"], targets=["cpu"], max_accuracy_drop=drop)
    ptq = next(x for x in propose(recipe, c) if x.name == "ptq")
    r = candidate_recipe(recipe, ptq)
    assert r.quantize.max_accuracy_drop == (drop if controlled else None)
    assert ("most sensitive layers kept in FP32" in ptq.reason) is controlled
    assert r.quantize.precisions == ["fp32", "fp16", "int8", *(["bf16"] if "bf16" in ptq.precisions else [])]
