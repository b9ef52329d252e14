"""The stage contract: a stage's cache key is its slice of the recipe plus its inputs.

For every registered compression method: running the compress stage with a trainer that
holds *only* the schedules in its slice succeeds (so the method cannot train with settings
its key does not cover), changing a field of a schedule it trains with changes the key,
and changing a field it does not read leaves the key alone.
"""

from __future__ import annotations

import pytest
import torch

from edgeslim.compress import METHODS
from edgeslim.io import sha256_json
from edgeslim.models.checkpoint import save_model
from edgeslim.models.zoo import create_model
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.run import run_recipe
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages import (BaselineStage, CompressStage, ExportStage, FinetuneStage,
                                      ProfileStage, QuantizeStage)
from edgeslim.pipeline.matrix import Cell, Variant
from edgeslim.recipe import load_recipe

TINY = ["model.name=resnet20", "model.input_size=16", "data.limit_train=64", "data.limit_val=16",
        "data.batch_size=32", "baseline.epochs=1", "finetune.epochs=1"]
# per method: options that keep each one to a second or two
FAST = {"slimming": ["compress.sparsity_epochs=1"], "hrank": ["compress.hrank_batches=1"],
        "taylor": ["compress.taylor_batches=1"], "latency": ["compress.latency_repeats=3"],
        "imp": ["compress.rounds=1", "compress.ratio=0.3"], "synflow": ["compress.iterations=2"],
        "distill": ["compress.student=plain_cnn"],
        "tucker": ["compress.refine_iters=1"], "cp": ["compress.iterations=5"]}
SCHEDULE_FIELDS = {"baseline": ["lr", "epochs", "weight_decay", "warmup_epochs", "optimizer"],
                   "finetune": ["lr", "epochs", "weight_decay", "warmup_epochs", "momentum", "optimizer"]}
OTHER = {"lr": 0.123, "epochs": 3, "weight_decay": 0.0123, "warmup_epochs": 0.5, "momentum": 0.5,
         "optimizer": "adamw"}
# fields no compress stage reads
UNRELATED = ["export.opset=17", "quantize.per_channel=false", "profile.warmup=3", "targets=[edge]",
             "finetune.distill={method: hinton}", "export.parity.samples=8", "constraints.max_bytes=1000",
             "data.calibration_samples=32"]


def _recipe(method, *extra):
    return load_recipe(None, TINY + [f"compress.method={method}"] + FAST.get(method, []) + list(extra))


def _key(recipe):
    return sha256_json(CompressStage().slice(recipe).key())


@pytest.mark.parametrize("method", METHODS.names())
def test_the_compress_key_covers_what_the_method_trains_with(method):
    r = _recipe(method)
    declared = set(METHODS.get(method).schedules(r.compress))
    base = _key(r)
    for schedule, fields in SCHEDULE_FIELDS.items():
        for f in fields:
            changed = _key(_recipe(method, f"{schedule}.{f}={OTHER[f]}"))
            assert (changed != base) == (schedule in declared), (method, schedule, f)
    for override in UNRELATED:
        assert _key(_recipe(method, override)) == base, (method, override)
    assert _key(_recipe(method, "seed=1")) != base
    assert _key(_recipe(method, "data.limit_train=48")) != base


def test_iterative_pruning_trains_between_steps_at_the_finetune_settings():
    r = _recipe("l1", "compress.steps=2")
    assert METHODS.get("l1").schedules(r.compress) == ("finetune",)
    assert _key(r) != _key(_recipe("l1", "compress.steps=2", "finetune.lr=0.2"))
    assert METHODS.get("l1").schedules(_recipe("l1").compress) == ()


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("baseline")
    save_model(create_model("resnet20", num_classes=10).eval(), d,
               {"name": "resnet20", "num_classes": 10, "kwargs": {}})
    return d


@pytest.mark.parametrize("method", [n for n in METHODS.names()
                                    if METHODS.get(n).schedules(_recipe(n).compress)])
def test_a_training_method_runs_with_only_its_declared_schedules(method, baseline_dir, tmp_path):
    """The stage gives the method a trainer of the slice's schedules only: a method that
    trained with anything else would fail here with 'was not declared'."""
    stage = CompressStage()
    cfg = stage.slice(_recipe(method))
    base = StageResult("00-baseline", baseline_dir, "k", {}, "h", True, 0.0)
    out = stage.run(tmp_path, {"baseline": base}, cfg, Context(run_dir=tmp_path))
    assert out["method"] == method and out["params_after"] > 0
    assert (tmp_path / "report.json").is_file()


def test_every_stage_key_ignores_fields_it_does_not_read():
    r = _recipe("l1")
    cell = Cell(Variant("compressed", "l1", "20-finetune"), "onnx", "int8")
    slices = {"baseline": lambda x: BaselineStage().slice(x), "finetune": lambda x: FinetuneStage().slice(x),
              "export": lambda x: ExportStage().slice(x, cell=cell),
              "quantize": lambda x: QuantizeStage().slice(x, cell=cell),
              "profile": lambda x: ProfileStage().slice(x)}
    reads = {"baseline": "baseline.lr=0.2", "finetune": "finetune.lr=0.2", "export": "export.opset=17",
             "quantize": "quantize.per_channel=false", "profile": "profile.warmup=3"}
    for name, sl in slices.items():
        key = sl(r).key()
        for other, override in reads.items():
            changed = sl(_recipe("l1", override)).key()
            assert (changed != key) == (other == name), (name, override)


def test_a_slimming_run_redoes_compression_when_the_finetune_lr_changes(tmp_path):
    """The bug this contract fixes: slimming's sparsity training runs at finetune.lr, and the
    compress stage used to report 'cached' after finetune.lr changed."""
    quick = ["export.include_baseline=false", "quantize.precisions=[fp32]", "profile.accuracy=false",
             "profile.min_seconds=0", "profile.max_seconds=0.05", "profile.sessions=1", "profile.min_iterations=2", "profile.warmup=1",
             "profile.warmup_seconds=0"]
    first = run_recipe(_recipe("slimming", *quick), tmp_path / "run")
    again = run_recipe(_recipe("slimming", *quick, "finetune.lr=0.2"), tmp_path / "run")
    cached = {s.name: s.cached for s in again.stages}
    assert cached["00-baseline"] and not cached["10-compress"] and not cached["20-finetune"]
    assert {s.name: s.key for s in first.stages}["10-compress"] != {s.name: s.key for s in again.stages}["10-compress"]
    same = run_recipe(_recipe("slimming", *quick, "finetune.lr=0.2", "quantize.per_channel=false"), tmp_path / "run")
    assert {s.name: s.cached for s in same.stages}["10-compress"]


def test_a_teacher_given_by_path_is_keyed_by_its_content(tmp_path):
    """The fine-tune stage reads a teacher file or folder: replacing it must rerun the
    distillation (the key once held only the path)."""
    weights = tmp_path / "teacher.pt"
    torch.manual_seed(0)
    torch.save(create_model("resnet20", num_classes=10).state_dict(), weights)
    r = _recipe("l1", f"finetune.distill={{method: hinton, teacher: {weights}}}")
    first = FinetuneStage().slice(r)
    assert first.teacher_sha256 is not None and len(first.teacher_sha256) == 64
    torch.manual_seed(1)
    torch.save(create_model("resnet20", num_classes=10).state_dict(), weights)
    assert FinetuneStage().slice(r).key() != first.key()
    folder = tmp_path / "stage"
    save_model(create_model("resnet20", num_classes=10).eval(), folder,
               {"name": "resnet20", "num_classes": 10, "kwargs": {}})
    in_folder = FinetuneStage().slice(_recipe("l1", f"finetune.distill={{teacher: {folder}}}"))
    assert in_folder.teacher_sha256 is not None and in_folder.teacher_sha256 != first.teacher_sha256
    # the baseline teacher is an input (its hash), not a path
    assert FinetuneStage().slice(_recipe("l1", "finetune.distill={method: hinton}")).teacher_sha256 is None
    assert not FinetuneStage.needs_teacher(FinetuneStage().slice(_recipe("none", "finetune.distill={}")))


def _slices(recipe):
    cell = Cell(Variant("compressed", "l1", "20-finetune"), "onnx", "int8")
    return {"baseline": BaselineStage().slice(recipe).key(), "compress": CompressStage().slice(recipe).key(),
            "finetune": FinetuneStage().slice(recipe).key(),
            "export": ExportStage().slice(recipe, cell=cell).key(),
            "quantize": QuantizeStage().slice(recipe, cell=cell).key(), "profile": ProfileStage().slice(recipe).key()}


def _changed(a, b):
    return sorted(k for k in a if a[k] != b[k])


def test_batch_and_calibration_sizes_reach_only_the_stages_that_use_them():
    base = _slices(_recipe("l1"))
    assert _changed(base, _slices(_recipe("l1", "data.calibration_samples=32"))) == ["quantize"]
    assert _changed(base, _slices(_recipe("l1", "data.batch_size=16"))) == ["baseline", "compress", "finetune"]
    assert _changed(base, _slices(_recipe("l1", "data.limit_val=8"))) == sorted(base)  # the data itself


def _image_folder(root, n):
    from PIL import Image

    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (40 * i, 200 if c == "a" else 0, 0)).save(root / c / f"{i}.png")


def test_an_image_folder_is_keyed_by_its_files(tmp_path):
    root = tmp_path / "imgs"
    _image_folder(root, 3)
    recipe = lambda: _recipe("l1", f"data.name=imagefolder:{root}", "model.num_classes=2")  # noqa: E731
    first = _slices(recipe())
    assert _slices(recipe()) == first  # listing again changes nothing
    _image_folder(root, 4)  # one more image per class
    assert _changed(first, _slices(recipe())) == sorted(first)


def test_a_user_model_is_keyed_by_its_source_file(tmp_path, monkeypatch):
    (tmp_path / "keyednets.py").write_text(
        "import torch.nn as nn\n\ndef build(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = lambda: _recipe("l1", "model.name=keyednets:build")  # noqa: E731
    first = _slices(recipe())
    with open(tmp_path / "keyednets.py", "a") as f:
        f.write("# edited\n")
    assert _changed(first, _slices(recipe())) == ["baseline", "compress"]  # the model stages


def test_an_exporter_that_becomes_available_redoes_its_stage(monkeypatch):
    from edgeslim.exporters import EXPORTERS

    cell = Cell(Variant("compressed", "l1", "20-finetune"), "onnx", "fp32")
    now = ExportStage().slice(_recipe("l1"), cell=cell)
    assert now.unavailable == ""
    monkeypatch.setattr(type(EXPORTERS.get("onnx")), "available", lambda self: (False, "onnx is not installed"))
    gone = ExportStage().slice(_recipe("l1"), cell=cell)
    assert gone.unavailable == "onnx is not installed" and gone.key() != now.key()
    assert ExportStage().run(None, {}, gone, Context(run_dir=None)) == {"skipped": "onnx is not installed"}
