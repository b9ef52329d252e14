"""Distillation losses (hinton, fitnet, attention, rkd) and distillation as compression."""

import copy
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from edgeslim.errors import CompressionError, RecipeError
from edgeslim.finetune.distill import LOSSES, build_distillation
from edgeslim.finetune.features import stage_ends
from edgeslim.finetune.train import add_loss
from edgeslim.io import read_json
from edgeslim.models import create_model
from edgeslim.models.checkpoint import load_model, save_model
from edgeslim.pipeline.run import run_recipe
from edgeslim.recipe import DistillCfg, load_recipe

ALL = ["attention", "fitnet", "hinton", "rkd"]
X = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
Y = torch.arange(8) % 10
QUICK = ["data.limit_train=128", "data.limit_val=64", "data.calibration_samples=32",
         "baseline.epochs=1", "finetune.epochs=1", "profile.max_seconds=0.2", "profile.sessions=1",
         "profile.min_iterations=5", "profile.warmup=2", "profile.warmup_seconds=0",
         "quantize.precisions=[fp32]"]


def model(name="resnet20", seed=0, **kw):
    torch.manual_seed(seed)
    return create_model(name, **kw).eval()


def fixed_head_student(num_classes=10):
    """A user builder that ignores num_classes (used by name below)."""
    return create_model("resnet20", num_classes=5)


def test_registry_lists_every_loss_with_its_options():
    assert LOSSES.names() == ALL
    fields = set(DistillCfg.model_fields)
    for name, cls in LOSSES.items():
        assert cls.name == name and cls.description
        help_ = cls.options_help()
        assert help_ and all(part.split("=")[0] in fields for part in help_.split(", "))
    assert "temperature=4.0" in LOSSES.get("hinton").options_help()


def test_methods_listing_shows_losses_and_the_distill_method():
    from typer.testing import CliRunner

    from edgeslim.cli import app

    r = CliRunner().invoke(app, ["methods"], terminal_width=250)
    assert r.exit_code == 0, r.output
    rows = {ln.split("│")[1].strip(): ln for ln in r.output.splitlines() if ln.count("│") > 3}
    for name in ALL:
        assert "distill loss" in rows[name]
    assert "temperature=4.0" in rows["hinton"] and "rkd_distance_weight=25.0" in r.output
    assert "student=None" in rows["distill"] and "loss='hinton'" in rows["distill"]


def test_default_layers_are_stage_ends_paired_from_the_deepest():
    assert stage_ends(model("resnet56"), X[:2]) == ["layer1.8", "layer2.8", "layer3.8"]
    fn, _ = build_distillation(DistillCfg(method="fitnet"), student=model("resnet20"),
                               teacher=model("resnet56"), example=X[:2])
    assert fn.loss.pairs == [("layer1.2", "layer1.8"), ("layer2.2", "layer2.8"), ("layer3.2", "layer3.8")]
    fn.close()


@pytest.mark.parametrize("name", ALL)
def test_zero_for_a_copy_of_the_teacher(name):
    teacher = model("resnet20")
    student = copy.deepcopy(teacher)  # eval mode: the same function as the teacher
    fn, _ = build_distillation(DistillCfg(method=name), student=student, teacher=teacher, example=X[:2])
    term, _ = fn(student, X, Y, student(X))
    assert abs(float(term)) < 1e-5
    fn.close()


@pytest.mark.parametrize("name", ALL)
def test_positive_and_trains_only_student_and_regressors(name):
    teacher, student = model("resnet20", seed=1), model("resnet20", seed=2).train()
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    fn, extra = build_distillation(DistillCfg(method=name), student=student, teacher=teacher,
                                   example=X[:2])
    assert len(extra) == (6 if name == "fitnet" else 0)  # 3 regressors: weight + bias
    logits = student(X)
    term, w = fn(student, X, Y, logits)
    assert float(term) > 1e-4
    assert w == pytest.approx(0.1 if name == "hinton" else 1.0)  # hinton: 1 - alpha on hard labels
    opt = torch.optim.SGD(list(student.parameters()) + extra, lr=0.1)
    add_loss(F.cross_entropy(logits, Y), (term, w)).backward()
    opt.step()
    assert student.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in extra)
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    assert all(torch.equal(frozen[k], v) for k, v in teacher.state_dict().items())
    fn.close()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in teacher.modules())


def test_fitnet_regressor_maps_widths_and_sizes():
    # at 16x16 input: plain_cnn features.7 is 128 ch at 4x4, features.4 is 64 ch at 8x8;
    # resnet20 layer3.2 is 64 ch at 4x4 (the 8x8 map is pooled down to it)
    student = model("plain_cnn")
    fn, extra = build_distillation(DistillCfg(method="fitnet", layers=["features.7:layer3.2",
                                                                       "features.4:layer3.2"]),
                                   student=student, teacher=model("resnet20"), example=X[:2])
    regs = fn.loss.regressors
    assert (regs[0].in_channels, regs[0].out_channels) == (128, 64)
    assert (regs[1].in_channels, regs[1].out_channels) == (64, 64)
    term, _ = fn(student, X, Y, student(X))
    assert torch.isfinite(term) and float(term) > 0
    fn.close()


def test_add_loss_weights_the_hard_label_term():
    task, term = torch.tensor(2.0), torch.tensor(3.0)
    assert float(add_loss(task, term)) == 5.0
    assert float(add_loss(task, (term, 0.25))) == 3.5
    assert float(add_loss(task, (term, 0.0))) == 3.0


def test_unknown_layer_names_the_layer_with_a_suggestion():
    with pytest.raises(CompressionError, match=r"student has no layer 'layer3\.9'; did you mean 'layer3\.2'"):
        build_distillation(DistillCfg(method="fitnet", layers=["layer3.9:layer3.8"]),
                           student=model(), teacher=model("resnet56"), example=X[:2])
    with pytest.raises(CompressionError, match=r"teacher has no layer 'layr3.8'"):
        build_distillation(DistillCfg(method="attention", layers=["layer3.2:layr3.8"]),
                           student=model(), teacher=model("resnet56"), example=X[:2])


def test_bad_input_fails_before_any_training(tmp_path):
    # checked in run_recipe's preflight: no stage folder is made
    with pytest.raises(CompressionError, match="'layer9'"):
        run_recipe(load_recipe(None, ["finetune.distill.method=fitnet",
                                      "finetune.distill.layers=[layer3.2:layer9]"]), tmp_path / "a")
    teacher = tmp_path / "teacher"
    save_model(create_model("resnet20", num_classes=5), teacher,
               {"name": "resnet20", "num_classes": 5, "kwargs": {}})
    with pytest.raises(CompressionError, match="outputs 10 classes but the teacher outputs 5"):
        run_recipe(load_recipe(None, [f"finetune.distill.teacher={teacher}"]), tmp_path / "b")
    with pytest.raises(CompressionError, match="outputs 5 classes but the teacher has 10"):
        run_recipe(load_recipe(None, ["compress.method=distill",
                                      "compress.student=tests.finetune.test_distill:fixed_head_student"]),
                   tmp_path / "c")
    with pytest.raises(RecipeError, match="does not exist"):
        run_recipe(load_recipe(None, [f"finetune.distill.teacher={tmp_path / 'nope.pt'}"]), tmp_path / "d")
    with pytest.raises(RecipeError, match=r"holds no saved model .*stage folder inside it \(teacher\)"):
        run_recipe(load_recipe(None, [f"finetune.distill.teacher={tmp_path}"]), tmp_path / "e")
    assert not any((tmp_path / d / "00-baseline").exists() for d in "abcde")


@pytest.mark.parametrize("overrides, message", [
    (["finetune.distill.method=hintn"], "finetune.distill.method: unknown distillation loss 'hintn'; did you mean 'hinton'"),
    (["compress.method=distill"], "compress.student is required"),
    (["compress.method=distill", "compress.student=resnt20"], "unknown model 'resnt20'; did you mean 'resnet20'"),
    (["compress.method=distill", "compress.student=resnet20", "compress.loss=fitnt"], "did you mean 'fitnet'"),
    (["compress.method=distill", "compress.student=resnet20", "compress.loss_options={temprature: 2}"],
     "unknown key 'temprature'; did you mean 'temperature'"),
    (["compress.method=distill", "compress.student=resnet20", "compress.student_kwargs={num_classes: 3}"],
     "must not set num_classes"),
])
def test_recipe_errors_name_the_input(overrides, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        load_recipe(None, overrides)


def test_cli_bad_layer_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(tmp_path / "run"),
                        "--set", "finetune.distill.method=attention",
                        "--set", "finetune.distill.layers=[layer3.2:layer3.9]"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "teacher has no layer 'layer3.9'" in lines[0]


def test_distilled_student_end_to_end(tmp_path):
    """resnet56 teacher → resnet20 student (compress: fitnet), then hinton fine-tuning.

    The teacher is left untrained (baseline.epochs=0) to keep this test in seconds: what is
    checked here is the plumbing, not the accuracy (benchmarks/distill.py measures that)."""
    out = tmp_path / "run"
    summary = run_recipe(load_recipe(None, QUICK + [
        "model.name=resnet56", "model.input_size=16", "baseline.epochs=0", "compress.method=distill",
        "compress.student=resnet20", "compress.loss=fitnet", "compress.epochs=1",
        "finetune.distill.method=hinton", "export.include_baseline=false"]), out)
    rows = {r["id"]: r for r in summary.rows}
    assert set(rows) == {"compressed/onnx/fp32"}
    assert all(r["status"] == "ok" and 0 <= r["accuracy"] <= 1 for r in rows.values())
    report = read_json(out / "10-compress" / "report.json")
    assert report["method"] == "distill" and report["family"] == "distill"
    # the saved structure describes the student (Method.output_spec), so export builds it
    assert read_json(out / "10-compress" / "structure.json")["spec"] == {"name": "resnet20", "num_classes": 10,
                                                                        "kwargs": {}}
    assert len(report["notes"]["history"]) == 1 and report["notes"]["loss"] == "fitnet"
    assert report["params_after"] == sum(p.numel() for p in create_model("resnet20").parameters())
    assert report["params_after"] < 0.35 * report["params_before"]
    assert rows["compressed/onnx/fp32"]["params"] == report["params_after"]
    # the saved model is the student, and its ONNX runs by itself in ONNX Runtime
    student = load_model(out / "20-finetune")
    assert len(student.layer1) == 3
    assert read_json(out / "20-finetune" / "history.json")[0]["train_loss"] > 0
    sess = ort.InferenceSession(str(out / rows["compressed/onnx/fp32"]["artifact"]),
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = student(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 10) and np.abs(got - want).max() < 1e-3


@pytest.mark.slow
def test_pruned_model_fine_tuned_with_hinton(tmp_path):
    summary = run_recipe(load_recipe(None, QUICK + ["finetune.distill.method=hinton"]), tmp_path)
    assert {r["id"] for r in summary.rows} == {"baseline/onnx/fp32", "compressed/onnx/fp32"}
    assert all(r["status"] == "ok" for r in summary.rows)
    assert {r["method"] for r in summary.rows} == {"none", "l1"}
    fine = next(st for st in summary.stages if st.name == "20-finetune")
    assert fine.outputs["distill"] == "hinton" and fine.outputs["epochs"] == 1
