"""The channel criteria (slimming, hrank, taylor, random, latency) and the pruning schedules
(BN recalibration, iterative steps, target MACs, round_to) they share."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from edgeslim.compress import METHODS, CompressJob
from edgeslim.compress.hrank import rank_per_channel
from edgeslim.compress.layer_latency import LayerShape, LayerTimer
from edgeslim.compress.pruner import count_macs_params, recalibrate_bn
from edgeslim.compress.report import channels
from edgeslim.compress.slimming import has_residual_adds
from edgeslim.data import load_data
from edgeslim.errors import CompressionError, RecipeError
from edgeslim.finetune.trainer import LoopTrainer
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.models.zoo import create_model
from edgeslim.recipe import CompressCfg, load_recipe

CRITERIA = ["slimming", "hrank", "taylor", "random", "latency"]
SPEC = {"name": "resnet20", "num_classes": 10, "kwargs": {}}
EXAMPLE = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
FAST = {"slimming": {"sparsity_epochs": 0}, "hrank": {"hrank_batches": 1}, "taylor": {"taylor_batches": 1},
        "latency": {"latency_repeats": 5}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return load_data("digits", input_size=32, num_classes=10, limit_train=64, limit_val=32)


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=10).eval()


def _trainer(data):
    return LoopTrainer(data, {"finetune": TrainSpec(1, 0.01, batch_size=32),
                              "baseline": TrainSpec(1, 0.01, batch_size=32)})


def _job(model, data, method, spec=SPEC, example=EXAMPLE, **cfg):
    cfg = CompressCfg(method=method, **{"recalibration_batches": 2, **FAST.get(method, {}), **cfg})
    return CompressJob(model=model, example_inputs=example, data=data, cfg=cfg, options=cfg.method_options(),
                       spec=spec, batch_size=32, seed=0, trainer=_trainer(data))


def _tiny(in_ch=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_ch, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()


TINY = {"name": "tiny", "num_classes": 10, "kwargs": {}}


def _kept(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Indices of ``before``'s rows that survive in ``after``."""
    return [i for i in range(before.shape[0]) if any(torch.equal(before[i], a) for a in after)]


# --------------------------------------------------------------------------- registry and options


@pytest.mark.parametrize("name", CRITERIA)
def test_registered_as_structured_with_description(name):
    m = METHODS.get(name)
    assert m.family == "structured" and m.description.startswith("structured: ")


def test_options_are_recipe_keys():
    r = load_recipe(overrides=["compress.method=hrank", "compress.hrank_batches=3"])
    assert r.compress.method_options().hrank_batches == 3
    r = load_recipe(overrides=["compress.method=slimming", "compress.slimming_lambda=0.001"])
    assert r.compress.method_options().slimming_lambda == 0.001
    with pytest.raises(RecipeError, match=r"compress\.hrank_batch'.*did you mean 'hrank_batches'"):
        load_recipe(overrides=["compress.method=hrank", "compress.hrank_batch=3"])
    with pytest.raises(RecipeError, match="taylor_batches"):
        load_recipe(overrides=["compress.method=taylor", "compress.taylor_batches=0"])


def _cli(*args):
    from typer.testing import CliRunner

    from edgeslim.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_methods_lists_options_and_descriptions():
    r = _cli("methods")
    assert r.exit_code == 0, r.output
    rows: dict[str, list[str]] = {}  # rich wraps long cells onto continuation lines
    for line in r.output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 4:
            continue
        if cells[0]:
            current = rows.setdefault(cells[0], ["", "", ""])
        current[:] = [f"{a} {b}".strip() for a, b in zip(current, cells[1:])]
    for name, option in [("slimming", "slimming_lambda=None"), ("slimming", "sparsity_epochs=2"),
                         ("hrank", "hrank_batches=5"), ("taylor", "taylor_batches=4"),
                         ("latency", "latency_probe=0.5"), ("random", "—")]:
        family, description, options = rows[name]
        assert family == "structured" and option in options, rows[name]
        assert description == METHODS.get(name).description


# --------------------------------------------------------------------------- criteria


def test_random_is_seeded(resnet20, data):
    def kept(seed):
        job = _job(copy.deepcopy(resnet20), data, "random", bn_recalibration=False)
        job.seed = seed
        return _kept(resnet20.conv1.weight, METHODS.get("random").apply(job).conv1.weight)

    assert kept(0) == kept(0)
    assert kept(0) != kept(1)


def test_taylor_removes_channels_the_loss_ignores_even_with_large_weights(data):
    model = _tiny()
    with torch.no_grad():
        model[0].weight[:4] *= 10  # large filters: L1 would keep channels 0-3...
        model[3].weight[:, :4] = 0  # ...but nothing downstream reads them: a·dL/da = 0
    kept = {}
    for method in ("taylor", "l1"):
        job = _job(copy.deepcopy(model), data, method, spec=TINY, round_to=None)
        kept[method] = _kept(model[0].weight, METHODS.get(method).apply(job)[0].weight)
    assert kept["taylor"] == [4, 5, 6, 7]
    assert kept["l1"] == [0, 1, 2, 3]


def test_hrank_scores_are_feature_map_ranks():
    low = torch.outer(torch.arange(1.0, 9.0), torch.ones(8))  # rank 1
    maps = torch.stack([low, torch.eye(8), torch.zeros(8, 8)])[None]  # [1, 3, 8, 8]
    scores = rank_per_channel(maps)
    assert scores.round().tolist() == [1.0, 8.0, 0.0]
    assert rank_per_channel(torch.randn(4, 5)) is None  # linear outputs have no maps


def test_hrank_removes_low_rank_channels(data):
    model = _tiny()
    with torch.no_grad():  # channels 0-3 output a constant map (rank 1) however large the filter
        model[0].weight[:4] = 0
        model[0].bias[:4] = 5.0
    job = _job(copy.deepcopy(model), data, "hrank", spec=TINY, round_to=None)
    pruned = METHODS.get("hrank").apply(job)
    assert _kept(model[0].weight, pruned[0].weight) == [4, 5, 6, 7]


def test_slimming_needs_batchnorm(data):
    model = create_model("plain_cnn", num_classes=10)
    job = _job(model, data, "slimming", spec={"name": "plain_cnn", "num_classes": 10, "kwargs": {}})
    with pytest.raises(CompressionError, match=r"'slimming' needs BatchNorm.*'plain_cnn' has none"):
        METHODS.get("slimming").apply(job)


def test_slimming_lambda_defaults_by_residual_adds(resnet20, data):
    assert has_residual_adds(resnet20, EXAMPLE) and not has_residual_adds(_tiny(), EXAMPLE)
    for model, spec, lam in [(copy.deepcopy(resnet20), SPEC, 1e-5), (_tiny(), TINY, 1e-4)]:
        job = _job(model, data, "slimming", spec=spec)
        METHODS.get("slimming").apply(job)
        assert job.notes["slimming_lambda"] == lam


def test_slimming_threshold_is_global(data):
    model = _tiny()
    with torch.no_grad():  # small scales: 6 in the first BN, 2 in the second
        model[1].weight.copy_(torch.tensor([.01, .02, .03, .04, .05, .06, 1.0, 1.1]))
        model[4].weight.copy_(torch.tensor([.07, .08, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]))
    job = _job(copy.deepcopy(model), data, "slimming", spec=TINY, round_to=None, ratio=0.5)
    pruned = METHODS.get("slimming").apply(job)
    # 8 of 16 channels go, all below one threshold: 6 from the first layer, 2 from the second
    assert _kept(model[0].weight, pruned[0].weight) == [6, 7]
    assert _kept(model[3].weight[:, [6, 7]], pruned[3].weight) == [2, 3, 4, 5, 6, 7]


def test_slimming_sparsity_training_shrinks_gammas(data):
    sums = {}
    for lam in (0.0, 1.0):
        model = _tiny()
        job = _job(model, data, "slimming", spec=TINY, sparsity_epochs=1, slimming_lambda=lam, round_to=None)
        METHODS.get("slimming").apply(job)
        assert job.notes["slimming_lambda"] == lam and len(job.notes["sparsity_training"]) == 1
        sums[lam] = float(sum(m.weight.abs().sum() / m.num_features for m in job.model.modules()
                              if isinstance(m, nn.BatchNorm2d)))
    assert sums[1.0] < sums[0.0] - 0.02


class _TwoResolutions(nn.Module):
    """Two groups of 32 channels: one at 64x64 (expensive per channel), one at 8x8 (cheap).

    The 64x64 conv reads 16 channels, not the image's 3: a 3-input conv is memory-bound, and
    on an AVX-512 Xeon ONNX Runtime ran it at 16 outputs *slower* than at 32, so its channels
    were worth no latency at all. The stem that makes the 16 channels is left unpruned."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.big = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(8))
        self.small = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.small(self.big(self.stem(x))).mean((2, 3)))


def test_latency_spends_the_budget_where_channels_are_slow():
    data64 = load_data("digits", input_size=64, num_classes=10, limit_train=32, limit_val=8)
    torch.manual_seed(0)
    model = _TwoResolutions().eval()
    job = _job(model, data64, "latency", spec=TINY, example=torch.randn(1, 3, 64, 64), ratio=0.5,
               ignored_layers=["stem.0"], latency_repeats=20)
    pruned = METHODS.get("latency").apply(job)
    ratios = job.notes["latency"]["ratios"]
    assert set(ratios) == {"big.0", "small.0"}  # the ignored stem is not a group
    assert ratios["big.0"] > ratios["small.0"]
    assert pruned.stem[0].out_channels == 16
    assert pruned.big[0].out_channels < pruned.small[0].out_channels
    assert pruned.big[0].out_channels + pruned.small[0].out_channels <= 32  # same channel budget as l1
    est = job.notes["latency"]
    assert 0 < est["estimated_ms_after"] < est["estimated_ms_before"]


def test_latency_meets_target_macs(resnet20, data):
    job = _job(copy.deepcopy(resnet20), data, "latency", target_macs=0.5)
    pruned = METHODS.get("latency").apply(job)
    macs0, _ = count_macs_params(resnet20, EXAMPLE)
    macs1, _ = count_macs_params(pruned, EXAMPLE)
    assert 0.49 <= 1 - macs1 / macs0 <= 0.65
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d):
            assert m.out_channels % 8 == 0


def test_layer_timer_and_shapes():
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)
    shape = LayerShape.of(conv, (1, 16, 20, 20))
    assert shape.out_hw() == (10, 10)
    assert shape.macs() == count_macs_params(conv, torch.randn(1, 16, 20, 20))[0] - 32 * 100  # tp adds bias
    dw = LayerShape.of(nn.Conv2d(32, 32, 3, padding=1, groups=32), (1, 32, 8, 8)).with_widths(16, 16)
    assert dw.groups == dw.cin == dw.cout == 16
    timer = LayerTimer(threads=1, repeats=3)
    ms = timer.time(shape)
    assert ms > 0 and timer.time(shape) == ms and timer.measured == 1
    assert LayerShape.of(nn.ReLU(), (1, 3)) is None


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("method", ["l1"] + CRITERIA)
def test_bn_recalibrated_after_pruning(method, resnet20, data):
    job = _job(copy.deepcopy(resnet20), data, method)
    pruned = METHODS.get(method).apply(job)
    again = copy.deepcopy(pruned)  # recalibrating again on the same batches changes nothing
    recalibrate_bn(again, data.train_loader(32, seed=0), 2)
    for a, b in zip(pruned.modules(), again.modules()):
        if isinstance(a, nn.BatchNorm2d):
            assert torch.allclose(a.running_mean, b.running_mean, atol=1e-5)
            assert torch.allclose(a.running_var, b.running_var, atol=1e-5)
    # without recalibration the statistics are the original ones, sliced; with it they are new
    stale = METHODS.get(method).apply(_job(copy.deepcopy(resnet20), data, method, bn_recalibration=False))
    original = resnet20.layer3[2].bn2.running_var
    assert torch.isin(stale.layer3[2].bn2.running_var, original).all()
    assert not torch.isin(pruned.layer3[2].bn2.running_var, original).any()


def test_iterative_steps_finetune_between(resnet20, data):
    widths = []
    job = _job(copy.deepcopy(resnet20), data, "taylor", steps=2)

    class Watch(LoopTrainer):  # the real trainer, noting the width it fine-tunes at
        def fit(self, m, *, schedule="finetune", epochs=None, **kw):
            widths.append((m.layer3[2].conv2.out_channels, schedule, epochs))
            return super().fit(m, schedule=schedule, epochs=epochs, **kw)

    job.trainer = Watch(data, {"finetune": TrainSpec(1, 0.01, batch_size=32)})
    pruned = METHODS.get("taylor").apply(job)
    assert widths == [(48, "finetune", 1)]  # halfway: 64 -> 48, then one epoch of fine-tuning
    one_shot = METHODS.get("taylor").apply(_job(copy.deepcopy(resnet20), data, "taylor"))
    assert channels(pruned) == channels(one_shot)  # same final widths


@pytest.mark.parametrize("method", ["hrank", "slimming"])
def test_target_macs_for_data_driven_criteria(method, resnet20, data):
    job = _job(copy.deepcopy(resnet20), data, method, target_macs=0.5)
    pruned = METHODS.get(method).apply(job)
    macs0, _ = count_macs_params(resnet20, EXAMPLE)
    macs1, _ = count_macs_params(pruned, EXAMPLE)
    assert 0.45 <= 1 - macs1 / macs0 <= 0.65


def test_ratio_that_empties_a_layer_names_it(resnet20, data):
    job = _job(copy.deepcopy(resnet20), data, "l1", ratio=0.97, round_to=None)
    with pytest.raises(CompressionError, match=r"every channel of layer '[\w.]+' \(\d+ channels"):
        METHODS.get("l1").apply(job)


def test_round_to_keeps_small_and_grouped_layers_valid(data):
    torch.manual_seed(0)
    dense = create_model("densenet_tiny", num_classes=10).eval()
    job = _job(copy.deepcopy(dense), data, "l1", spec={"name": "densenet_tiny", "num_classes": 10, "kwargs": {}})
    pruned = METHODS.get("l1").apply(job)
    assert pruned.features[1].conv2.out_channels == 8  # 12 * 0.5 = 6 rounds up to 8, not down to 0
    resnext = create_model("resnext_tiny", num_classes=10).eval()
    job = _job(copy.deepcopy(resnext), data, "l1", spec={"name": "resnext_tiny", "num_classes": 10, "kwargs": {}})
    pruned = METHODS.get("l1").apply(job)
    conv = pruned.layers[0].conv2[0]  # grouped 3x3 (groups=4), 32 -> 16 channels, 4 per group
    assert conv.groups == 4 and conv.out_channels == 16 and conv.weight.shape == (16, 4, 3, 3)


@pytest.fixture(scope="module")
def trained_resnet20():
    full = load_data("digits", input_size=32, num_classes=10)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    train(model, full, TrainSpec(3, 0.05, batch_size=64))
    return model.eval(), full


@pytest.mark.slow
@pytest.mark.parametrize("method", ["l1"] + CRITERIA)
def test_recalibration_rescues_accuracy_after_pruning(method, trained_resnet20):
    from edgeslim.finetune.train import evaluate

    model, full = trained_resnet20
    assert evaluate(model, full.val_loader(256)) > 0.9
    acc = {}
    # 10% of channels: stale BN statistics alone take a 94% model to near chance (measured
    # for l1: 15% without, 87% with recalibration); wider cuts break it even with recalibration.
    for recal in (True, False):
        job = _job(copy.deepcopy(model), full, method, ratio=0.1, round_to=None, bn_recalibration=recal,
                   recalibration_batches=10)
        acc[recal] = evaluate(METHODS.get(method).apply(job), full.val_loader(256))
    assert acc[True] > acc[False] + 0.15, acc


def test_cli_run_slimming_on_a_model_without_batchnorm_exits_2(tmp_path):
    r = _cli("run", "--out", str(tmp_path / "run"), "--set", "model.name=plain_cnn",
             "--set", "compress.method=slimming", "--set", "baseline.epochs=0",
             "--set", "data.limit_train=32", "--set", "data.limit_val=16")
    assert r.exit_code == 2, r.output
    last = [line for line in r.output.splitlines() if line.strip()][-1]
    assert last.startswith("error:") and "'slimming' needs BatchNorm" in last and "'plain_cnn'" in last
    assert not (tmp_path / "run" / "10-compress").exists()  # no half-written stage
