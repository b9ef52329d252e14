"""Lottery tickets (imp): schedules, each rewinding, mask criteria, and bad rewind points."""

from __future__ import annotations

import copy

import pytest
import torch

from edgeslim.compress import METHODS, CompressJob
from edgeslim.compress.lottery import ImpOptions, _criterion_scores, keep_schedule, parse_rewind
from edgeslim.compress.masks import MaskKeeper, prunable_layers, sparsity_of
from edgeslim.data import load_data
from edgeslim.errors import CompressionError, RecipeError
from edgeslim.finetune.trainer import LoopTrainer
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.models.zoo import create_model
from edgeslim.recipe import CompressCfg, load_recipe

SPEC = {"name": "plain_cnn", "num_classes": 10, "kwargs": {}}
EXAMPLE = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
BATCH = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data():
    # 64 samples, batch 32: 2 steps per epoch
    return load_data("digits", input_size=32, num_classes=10, limit_train=64, limit_val=32)


def fresh():
    torch.manual_seed(0)
    return create_model("plain_cnn", num_classes=10)


class Recorder(LoopTrainer):
    """The pipeline's trainer (baseline schedule: 2 epochs), recording each call's starting state."""

    def __init__(self, data):
        super().__init__(data, {"baseline": TrainSpec(2, 0.05, batch_size=BATCH)})
        self.calls = []

    def fit(self, model, *, schedule="finetune", epochs=None, after_step=None, start_epoch=0, **kw):
        self.calls.append({"state": copy.deepcopy(model.state_dict()), "epochs": epochs, "schedule": schedule,
                           "start_epoch": start_epoch, "masked": isinstance(after_step, MaskKeeper)})
        return super().fit(model, schedule=schedule, epochs=epochs, after_step=after_step,
                           start_epoch=start_epoch, **kw)


def _imp(data, base=None, ratio=0.5, **opts):
    cfg = CompressCfg(method="imp", ratio=ratio, scope="global", **opts)
    rec = Recorder(data)
    job = CompressJob(model=copy.deepcopy(base) if base is not None else fresh(), example_inputs=EXAMPLE,
                      data=data, cfg=cfg, options=cfg.method_options(), spec=SPEC, batch_size=BATCH,
                      trainer=rec, build_fresh=fresh)
    return METHODS.get("imp").apply(job), job, rec


def _layers(model):
    return prunable_layers(model, num_classes=10)


def test_keep_schedule_prunes_20_percent_of_what_remains_and_lands_exactly():
    assert keep_schedule(0.5) == pytest.approx([0.8, 0.64, 0.512, 0.5])
    assert keep_schedule(0.2) == pytest.approx([0.8])
    assert keep_schedule(0.75, per_round=0.5) == pytest.approx([0.5, 0.25])
    assert keep_schedule(0.75, rounds=2) == pytest.approx([0.5, 0.25])


def test_parse_rewind():
    assert parse_rewind("init") == ("weights", 0)
    assert parse_rewind(3) == ("weights", 3)
    assert parse_rewind("2") == ("weights", 2)
    assert parse_rewind("lr") == ("lr", 0)
    assert parse_rewind("lr:1") == ("lr", 1)
    for bad in ("banana", "lr:x", -1, True):
        with pytest.raises(ValueError, match="compress.rewind"):
            parse_rewind(bad)


def test_rewind_init_restores_the_init_of_surviving_weights(data):
    model, job, rec = _imp(data, ratio=0.75, prune_per_round=0.5, rewind="init")
    init = fresh().state_dict()
    sparse_calls = [c for c in rec.calls if c["masked"]]
    assert len(sparse_calls) == 2 and not rec.calls[0]["masked"]  # dense run, then 2 rounds
    names = list(_layers(model))
    for call, keep in zip(sparse_calls, (0.5, 0.25)):
        assert call["epochs"] == 2 and call["start_epoch"] == 0
        zeros = total = 0
        for n in names:
            w, w0 = call["state"][f"{n}.weight"], init[f"{n}.weight"]
            alive = w != 0
            assert torch.equal(w[alive], w0[alive]), n  # survivors are back at their init
            zeros += int((~alive).sum())
            total += w.numel()
        assert abs(zeros / total - (1 - keep)) < 0.01
        assert torch.equal(call["state"]["classifier.2.weight"], init["classifier.2.weight"])
    assert abs(sparsity_of(model, names) - 0.75) < 0.01
    rounds = job.notes["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[-1]["remaining"] == pytest.approx(0.25)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rounds)


def test_rewind_to_epoch_k_restores_the_epoch_k_weights_and_replays_the_schedule(data):
    model, job, rec = _imp(data, ratio=0.5, prune_per_round=0.5, rewind=1)
    # the dense run, replayed independently: weights after epoch 1 of the 2-epoch schedule
    ref = fresh()
    snaps = []
    steps = len(data.train) // BATCH
    train(ref, data, TrainSpec(2, 0.05, batch_size=BATCH),
          after_step=lambda m: snaps.append(copy.deepcopy(m.state_dict())))
    at_k = snaps[steps - 1]
    call = [c for c in rec.calls if c["masked"]][0]
    assert call["start_epoch"] == 1 and call["epochs"] == 1
    for n in _layers(model):
        w = call["state"][f"{n}.weight"]
        alive = w != 0
        assert torch.equal(w[alive], at_k[f"{n}.weight"][alive]), n
        assert not torch.equal(at_k[f"{n}.weight"], fresh().state_dict()[f"{n}.weight"])  # not the init
    assert job.notes["rewind"] == "1" and job.notes["epochs_per_round"] == 1


def test_lr_rewinding_keeps_the_trained_weights(data):
    base = fresh()
    train(base, data, TrainSpec(1, 0.05, batch_size=BATCH))
    model, job, rec = _imp(data, base=base, ratio=0.5, prune_per_round=0.5, rewind="lr")
    assert len(rec.calls) == 1  # no dense re-run: lr rewinding starts from the trained model
    call = rec.calls[0]
    assert call["masked"] and call["start_epoch"] == 0 and call["epochs"] == 2
    trained = base.state_dict()
    for n in _layers(model):
        w = call["state"][f"{n}.weight"]
        alive = w != 0
        assert torch.equal(w[alive], trained[f"{n}.weight"][alive])
        # magnitude: the survivors are the largest trained weights
        assert trained[f"{n}.weight"][alive].abs().min() >= trained[f"{n}.weight"][~alive].abs().max() - 1e-12


def test_start_epoch_replays_the_tail_of_the_schedule(data):
    full = train(fresh(), data, TrainSpec(2, 0.05, batch_size=BATCH))
    tail = train(fresh(), data, TrainSpec(1, 0.05, batch_size=BATCH, start_epoch=1))
    assert tail[0]["lr"] == pytest.approx(full[1]["lr"])
    assert tail[0]["lr"] < 0.01 < full[0]["lr"]


def test_large_final_same_sign_prunes_sign_flips_first():
    final = {"w": torch.tensor([3.0, -2.0, 1.0, 0.5])}
    init = {"w": torch.tensor([-1.0, -1.0, 1.0, 1.0])}  # the 3.0 flipped sign
    mag = _criterion_scores("magnitude", final, init)["w"]
    same = _criterion_scores("large_final_same_sign", final, init)["w"]
    assert int(mag.argmax()) == 0
    assert same[0] < min(same[1], same[2], same[3])
    assert same[1] > same[2] > same[3]  # magnitude order among same-sign weights
    assert torch.equal(_criterion_scores("large_final", final, init)["w"], mag)


def test_mask_criteria_give_different_tickets(data):
    a, _, _ = _imp(data, ratio=0.5, prune_per_round=0.5, rewind="init")
    b, _, _ = _imp(data, ratio=0.5, prune_per_round=0.5, rewind="init", mask_criterion="large_final_same_sign")
    names = list(_layers(a))
    assert abs(sparsity_of(b, names) - 0.5) < 0.01
    ma = torch.cat([(dict(a.named_modules())[n].weight != 0).flatten() for n in names])
    mb = torch.cat([(dict(b.named_modules())[n].weight != 0).flatten() for n in names])
    assert (ma != mb).any()


def test_rewind_beyond_training_is_one_line(data):
    with pytest.raises(CompressionError, match=r"compress.rewind: epoch 2 is beyond training \(2 epochs"):
        _imp(data, rewind=2)  # train_epochs=2: epochs 0..1 exist
    with pytest.raises(ValueError, match="beyond training"):
        ImpOptions(rewind=5, epochs=3)
    with pytest.raises(RecipeError) as e:
        load_recipe(None, ["compress.method=imp", "compress.rewind=9", "compress.epochs=4"])
    assert str(e.value).startswith("compress.rewind: epoch 9 is beyond training (4 epochs")


def test_conflicting_round_options_and_missing_callbacks(data):
    with pytest.raises(RecipeError, match="compress.rounds or compress.prune_per_round, not both"):
        load_recipe(None, ["compress.method=imp", "compress.rounds=3", "compress.prune_per_round=0.3"])
    cfg = CompressCfg(method="imp")
    job = CompressJob(model=fresh(), example_inputs=EXAMPLE, data=data, cfg=cfg, options=None, spec=SPEC)
    with pytest.raises(CompressionError, match="'imp' trains, but no trainer was given"):
        METHODS.get("imp").apply(job)
