"""``compress.method: none``: export and quantize the model as it is."""

import onnxruntime as ort
import torch

from edgeslim.compress import METHODS
from edgeslim.io import read_json
from edgeslim.models.checkpoint import load_model
from edgeslim.pipeline.matrix import variants
from edgeslim.pipeline.run import run_recipe
from edgeslim.pipeline.stages import FinetuneStage
from edgeslim.recipe import load_recipe

QUICK = ["model.input_size=16", "data.limit_train=64", "data.limit_val=32", "data.calibration_samples=16",
         "baseline.epochs=1", "finetune.epochs=3", "profile.max_seconds=0.05", "profile.sessions=1", "profile.min_iterations=2",
         "profile.warmup=1", "profile.warmup_seconds=0", "profile.min_seconds=0"]


def test_none_is_registered_and_exports_the_model_once():
    m = METHODS.get("none")
    assert m.family == "none" and m.schedules(load_recipe(None, ["compress.steps=3"]).compress) == ()
    r = load_recipe(None, ["compress.method=none", "export.include_baseline=true",
                           "finetune.distill={method: hinton}"])
    assert [v.name for v in variants(r)] == ["compressed"]
    ft = FinetuneStage().slice(r).finetune
    assert ft.epochs == 0 and ft.distill is None
    # every other method keeps the baseline variant and its fine-tuning epochs
    l1 = load_recipe(None, ["export.include_baseline=true"])
    assert [v.name for v in variants(l1)] == ["baseline", "compressed"]
    assert FinetuneStage().slice(l1).finetune.epochs == l1.finetune.epochs


def test_a_run_with_none_exports_and_quantizes_the_unchanged_model(tmp_path):
    summary = run_recipe(load_recipe(None, QUICK + ["compress.method=none"]), tmp_path)
    rows = {r["id"]: r for r in read_json(tmp_path / "results.json")}
    assert sorted(rows) == sorted(f"compressed/onnx/{p}" for p in ("fp32", "fp16", "int8"))
    for r in rows.values():
        assert r["status"] == "ok" and r["method"] == "none", r
        ort.InferenceSession(str(tmp_path / r["artifact"]), providers=["CPUExecutionProvider"])
    report = read_json(tmp_path / "10-compress" / "report.json")
    assert report["family"] == "none" and report["params_after"] == report["params_before"]
    assert report["macs_after"] == report["macs_before"]
    assert rows["compressed/onnx/fp32"]["params"] == report["params_before"]
    assert rows["compressed/onnx/int8"]["bytes"] < 0.5 * rows["compressed/onnx/fp32"]["bytes"]
    # no training after "compression": the fine-tuned weights are the baseline's, bit for bit
    assert read_json(tmp_path / "20-finetune" / "history.json") == []
    base = load_model(tmp_path / "00-baseline").state_dict()
    fine = load_model(tmp_path / "20-finetune").state_dict()
    assert base.keys() == fine.keys() and all(torch.equal(base[k], fine[k]) for k in base)
    assert {s.name: s.cached for s in summary.stages}["20-finetune"] is False
