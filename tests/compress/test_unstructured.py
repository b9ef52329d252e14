"""Unstructured pruning: magnitude / random_unstructured, the shared masks, what sparsity buys."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from edgeslim.compress import METHODS, CompressJob
from edgeslim.compress.masks import (MaskKeeper, apply_masks, check_sparsity, fold_masks, magnitude_masks,
                                     masks_from_zeros, prunable_layers, sparsity_of)
from edgeslim.compress.sparsity import deflated_bytes, sparsity_section
from edgeslim.data import load_data
from edgeslim.errors import CompressionError
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.models.checkpoint import load_model, save_model
from edgeslim.models.zoo import create_model
from edgeslim.recipe import CompressCfg

SPEC = {"name": "resnet20", "num_classes": 10, "kwargs": {}}
EXAMPLE = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return load_data("digits", input_size=32, num_classes=10, limit_train=64, limit_val=32)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=10).eval()


def _prune(base, data, method="magnitude", **cfg):
    cfg = CompressCfg(method=method, **cfg)
    job = CompressJob(model=copy.deepcopy(base), example_inputs=EXAMPLE, data=data, cfg=cfg,
                      options=cfg.method_options(), spec=SPEC, batch_size=32)
    return METHODS.get(method).apply(job), job


def _names(model):
    return list(prunable_layers(model, num_classes=10))


@pytest.mark.parametrize("scope", ["global", "local"])
@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_sparsity_reached_exactly_and_classifier_dense(base, data, scope, ratio):
    pruned, job = _prune(base, data, ratio=ratio, scope=scope)
    assert abs(sparsity_of(pruned, _names(pruned)) - ratio) < 0.01
    assert abs(job.notes["sparsity"] - ratio) < 0.01
    assert bool((pruned.fc.weight != 0).all())  # the classifier is left dense
    # no mask parameters or buffers: the zeros are in the plain weights
    assert not any("mask" in k or "orig" in k for k in pruned.state_dict())
    assert sum(p.numel() for p in pruned.parameters()) == sum(p.numel() for p in base.parameters())
    out = pruned.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_magnitude_removes_the_smallest_weights(base, data):
    pruned, _ = _prune(base, data, ratio=0.5, scope="local")
    w0, w1 = base.layer2[0].conv1.weight.detach(), pruned.layer2[0].conv1.weight.detach()
    kept, removed = w0[w1 != 0].abs(), w0[w1 == 0].abs()
    assert kept.min() >= removed.max()


def test_global_and_local_differ(base, data):
    glob, _ = _prune(base, data, ratio=0.8, scope="global")
    loc, _ = _prune(base, data, ratio=0.8, scope="local")
    names = _names(glob)
    per_local = [float((dict(loc.named_modules())[n].weight == 0).float().mean()) for n in names]
    per_global = [float((dict(glob.named_modules())[n].weight == 0).float().mean()) for n in names]
    assert max(abs(s - 0.8) for s in per_local) < 0.02  # every layer loses 80%
    assert max(per_global) - min(per_global) > 0.2  # global ranks across layers
    assert not torch.equal(glob.layer3[0].conv1.weight, loc.layer3[0].conv1.weight)


def test_random_unstructured_reaches_sparsity_but_not_by_magnitude(base, data):
    rnd, _ = _prune(base, data, method="random_unstructured", ratio=0.7, scope="global")
    mag, _ = _prune(base, data, ratio=0.7, scope="global")
    assert abs(sparsity_of(rnd, _names(rnd)) - 0.7) < 0.01
    a, b = rnd.layer1[0].conv1.weight != 0, mag.layer1[0].conv1.weight != 0
    assert (a != b).float().mean() > 0.2


def test_masks_stay_zero_through_finetuning_and_a_save_load(base, data, tmp_path):
    pruned, _ = _prune(base, data, ratio=0.75, scope="global")
    save_model(pruned, tmp_path, SPEC)
    model = load_model(tmp_path)
    zeros_before = {n: m.weight == 0 for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    before = copy.deepcopy(model)
    hook = METHODS.get("magnitude").after_step(model)  # what the fine-tune stage installs
    assert isinstance(hook, MaskKeeper)
    train(model, data, TrainSpec(1, 0.05, batch_size=32), after_step=hook)
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            assert bool((m.weight[zeros_before[n]] == 0).all()), n
    # ...and the surviving weights did train
    assert not torch.equal(model.layer2[0].conv1.weight, before.layer2[0].conv1.weight)
    assert abs(sparsity_of(model, _names(model)) - 0.75) < 0.01


def test_without_the_hook_training_refills_the_zeros(base, data):
    # the hook is what keeps the zeros; this guards the test above against a vacuous pass
    pruned, _ = _prune(base, data, ratio=0.75, scope="global")
    train(pruned, data, TrainSpec(1, 0.05, batch_size=32))
    assert sparsity_of(pruned, _names(pruned)) < 0.5


def test_masks_from_zeros_and_apply_masks_roundtrip():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    assert masks_from_zeros(net) == {}  # dense: nothing to keep
    masks = magnitude_masks({"0": net[0].weight}, 0.5, "local")
    apply_masks(net, masks)
    again = masks_from_zeros(net)
    assert set(again) == {"0"} and torch.equal(again["0"], masks["0"])


def test_fold_masks_removes_torch_prune_reparametrization():
    from torch.nn.utils import prune

    lin = nn.Sequential(nn.Linear(16, 16))
    prune.l1_unstructured(lin[0], "weight", amount=0.5)
    assert "0.weight_orig" in lin.state_dict()
    fold_masks(lin)
    keys = set(lin.state_dict())
    assert keys == {"0.weight", "0.bias"}
    assert int((lin[0].weight == 0).sum()) == 128


def test_onnx_keeps_the_zeros_same_size_smaller_zipped(base, data, tmp_path):
    pruned, _ = _prune(base, data, ratio=0.9, scope="global")
    dense_p, sparse_p = tmp_path / "dense.onnx", tmp_path / "sparse.onnx"
    for model, path in ((base, dense_p), (pruned, sparse_p)):  # TorchScript exporter: fast
        torch.onnx.export(model.eval(), (EXAMPLE,), str(path), dynamo=False, opset_version=17)
    zeros = sum(int((numpy_helper.to_array(t) == 0).sum()) for t in onnx.load(str(sparse_p)).graph.initializer)
    expected = sum(int((m.weight == 0).sum()) for m in pruned.modules() if isinstance(m, nn.Conv2d))
    assert zeros >= expected  # every pruned weight is a stored zero (BN folding keeps zeros zero)
    d, s = dense_p.stat().st_size, sparse_p.stat().st_size
    assert abs(d - s) / d < 0.02  # dense storage: the same bytes
    dz, sz = deflated_bytes([dense_p]), deflated_bytes([sparse_p])
    assert dz > 0.85 * d  # random float32 weights barely compress...
    assert sz < 0.4 * s  # ...90% zeros do


def test_sparsity_section_says_dense_runtimes_do_not_skip_zeros():
    rows = [{"id": "compressed/onnx/fp32", "target": "cpu", "bytes": 1000, "bytes_zipped": 200,
             "latency_ms": {"p50": 1.0}}]
    text = "\n".join(sparsity_section(rows, {"notes": {"sparsity": 0.9, "prunable_weights": 100},
                                            "nonzero_params_after": 10, "params_after": 100}))
    assert "0.20" in text and "90.0%" in text
    assert "does not make inference faster" in text


def test_bad_sparsity_is_one_line():
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(CompressionError, match=r"compress.ratio .* must be in \[0, 1\)") as e:
            check_sparsity(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="weights: the sparsity"):
        CompressCfg(method="magnitude", ratio=1.0)


def test_recipe_rejects_full_sparsity_in_one_line():
    from edgeslim.errors import RecipeError
    from edgeslim.recipe import load_recipe

    with pytest.raises(RecipeError) as e:
        load_recipe(None, ["compress.method=magnitude", "compress.ratio=1.0"])
    assert str(e.value).startswith("compress.ratio must be in (0, 1), got 1.0") and "\n" not in str(e.value)


@pytest.mark.slow
def test_cli_rejects_full_sparsity_with_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeslim", "run", "--out", str(tmp_path / "r"),
                        "--set", "compress.method=magnitude", "--set", "compress.ratio=1.0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "compress.ratio must be in (0, 1), got 1.0" in lines[0]
    assert not (tmp_path / "r").exists()


def test_unknown_ignored_layer_is_named(base, data):
    with pytest.raises(CompressionError, match="no layer named 'layer9'"):
        _prune(base, data, ratio=0.5, ignored_layers=["layer9"])


def test_ignored_layers_stay_dense(base, data):
    pruned, _ = _prune(base, data, ratio=0.5, ignored_layers=["conv1"])
    assert bool((pruned.conv1.weight != 0).all())
    assert np.isclose(sparsity_of(pruned, _names(pruned)), 0.5, atol=0.01)


@pytest.mark.slow
def test_pipeline_reports_dense_and_zipped_bytes(tmp_path):
    from edgeslim.io import read_json
    from edgeslim.models.checkpoint import load_model as load
    from edgeslim.pipeline.run import run_recipe
    from edgeslim.recipe import load_recipe

    quick = ["data.limit_train=192", "data.limit_val=64", "data.calibration_samples=32", "baseline.epochs=1",
             "finetune.epochs=1", "profile.max_seconds=0.2", "profile.sessions=1", "profile.min_iterations=5", "profile.warmup=2",
             "compress.method=magnitude", "compress.ratio=0.9", "compress.scope=global"]
    run_recipe(load_recipe(None, quick), tmp_path)
    rows = {r["id"]: r for r in read_json(tmp_path / "results.json")}
    dense, sparse = rows["baseline/onnx/fp32"], rows["compressed/onnx/fp32"]
    assert abs(sparse["bytes"] - dense["bytes"]) / dense["bytes"] < 0.02
    assert sparse["bytes_zipped"] < 0.4 * dense["bytes_zipped"]
    for v in ("baseline", "compressed"):
        assert rows[f"{v}/onnx/int8"]["bytes_zipped"] <= rows[f"{v}/onnx/int8"]["bytes"]
    model = load(tmp_path / "20-finetune")  # fine-tuning kept the zeros
    assert abs(sparsity_of(model, _names(model)) - 0.9) < 0.01
    report = (tmp_path / "report.md").read_text()
    assert "## What sparsity buys" in report and "does not make inference faster" in report
