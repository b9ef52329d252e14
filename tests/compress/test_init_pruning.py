"""Pruning at initialization: snip, grasp, synflow (and random_init) on a fresh network."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from edgeslim.compress import METHODS, CompressJob
from edgeslim.compress.masks import MaskKeeper, prunable_layers, sparsity_of
from edgeslim.data import load_data
from edgeslim.errors import CompressionError
from edgeslim.finetune.trainer import LoopTrainer
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.models.zoo import create_model
from edgeslim.recipe import CompressCfg

SPEC = {"name": "resnet20", "num_classes": 10, "kwargs": {}}
EXAMPLE = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
METHODS_AT_INIT = ["snip", "grasp", "synflow", "random_init"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return load_data("digits", input_size=32, num_classes=10, limit_train=64, limit_val=32)


def fresh():
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=10)


@pytest.fixture(scope="module")
def trained(data):
    m = fresh()
    train(m, data, TrainSpec(1, 0.05, batch_size=32))
    return m


class RecordingTrainer(LoopTrainer):
    """The pipeline's trainer (baseline schedule: 3 epochs), recording each call."""

    def __init__(self, data, calls):
        super().__init__(data, {"baseline": TrainSpec(3, 0.05, batch_size=32)})
        self.calls = calls

    def fit(self, model, *, schedule="finetune", epochs=None, after_step=None, **kw):
        if self.calls is not None:
            self.calls.append({"epochs": epochs, "schedule": schedule, "after_step": after_step})
        return super().fit(model, schedule=schedule, epochs=epochs, after_step=after_step, **kw)


def _run(method, data, trained, ratio=0.9, calls=None, **opts):
    opts.setdefault("epochs", 0)
    if method == "synflow":
        opts.setdefault("iterations", 10)
    cfg = CompressCfg(method=method, ratio=ratio, scope="global", **opts)

    job = CompressJob(model=copy.deepcopy(trained), example_inputs=EXAMPLE, data=data, cfg=cfg,
                      options=cfg.method_options(), spec=SPEC, batch_size=32,
                      trainer=RecordingTrainer(data, calls), build_fresh=fresh)
    return METHODS.get(method).apply(job), job


@pytest.fixture(scope="module")
def pruned(data, trained):
    return {m: _run(m, data, trained)[0] for m in METHODS_AT_INIT}


def _mask(model):
    mods = dict(model.named_modules())
    return torch.cat([(mods[n].weight != 0).flatten() for n in prunable_layers(model, num_classes=10)])


@pytest.mark.parametrize("method", METHODS_AT_INIT)
def test_requested_sparsity_on_the_fresh_init_not_the_trained_model(pruned, trained, method):
    model = pruned[method]
    names = list(prunable_layers(model, num_classes=10))
    assert abs(sparsity_of(model, names) - 0.9) < 0.01
    init, tr = fresh().state_dict(), trained.state_dict()
    state = model.state_dict()
    for n in names:
        w = state[f"{n}.weight"]
        alive = w != 0
        assert torch.equal(w[alive], init[f"{n}.weight"][alive])  # epochs=0: untouched init
    assert not torch.equal(state["layer1.0.conv1.weight"], tr["layer1.0.conv1.weight"])
    # scoring must not move the init: BN statistics are the fresh ones
    assert torch.equal(state["bn1.running_mean"], init["bn1.running_mean"])
    assert METHODS.get(method).trains and METHODS.get(method).family == "unstructured"


def test_the_methods_choose_different_weights(pruned):
    masks = {m: _mask(pruned[m]) for m in METHODS_AT_INIT}
    for a, b in itertools.combinations(METHODS_AT_INIT, 2):
        overlap = (masks[a] & masks[b]).sum() / masks[a].sum()
        assert overlap < 0.9, (a, b, float(overlap))


def test_synflow_is_data_free(trained):
    # no data at all: an all-ones input is enough
    model, job = _run("synflow", None, trained, ratio=0.5)
    assert abs(job.notes["sparsity"] - 0.5) < 0.01


def test_synflow_iterations_matter_and_avoid_layer_collapse(data, trained):
    one, _ = _run("synflow", data, trained, ratio=0.98, iterations=1)
    many, job = _run("synflow", data, trained, ratio=0.98, iterations=20)
    assert not torch.equal(_mask(one), _mask(many))
    assert "empty_layers" not in job.notes  # iterative synflow keeps every layer connected


def test_sparse_network_is_trained_with_masks_kept(data, trained):
    calls = []
    model, job = _run("snip", data, trained, ratio=0.8, calls=calls, epochs=1)
    assert len(calls) == 1 and calls[0]["epochs"] == 1 and calls[0]["schedule"] == "baseline"
    assert isinstance(calls[0]["after_step"], MaskKeeper)
    names = list(prunable_layers(model, num_classes=10))
    assert abs(sparsity_of(model, names) - 0.8) < 0.01  # still sparse after training
    init = fresh().state_dict()
    assert not torch.equal(model.state_dict()["layer2.0.conv1.weight"], init["layer2.0.conv1.weight"])
    assert job.notes["train_epochs"] == 1


def test_epochs_default_to_the_baseline_epochs(data, trained):
    calls = []
    _run("random_init", data, trained, ratio=0.5, calls=calls, epochs=None)
    assert calls[0]["epochs"] == 3  # the baseline schedule's epochs (= baseline.epochs in the pipeline)


def test_needs_a_fresh_network_and_a_trainer(data, trained):
    cfg = CompressCfg(method="snip", ratio=0.5)
    job = CompressJob(model=trained, example_inputs=EXAMPLE, data=data, cfg=cfg, options=None, spec=SPEC)
    with pytest.raises(CompressionError, match="'snip' trains, but no trainer was given"):
        METHODS.get("snip").apply(job)
    job.trainer = RecordingTrainer(data, None)
    with pytest.raises(CompressionError, match="snip prunes a fresh network"):
        METHODS.get("snip").apply(job)
