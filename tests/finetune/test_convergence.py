"""The patience rule of a converged baseline, and the "trained longer" control stage."""

from __future__ import annotations

import json

import torch
import torch.nn as nn

from edgeslim.finetune.convergence import EarlyStop, verdict
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.pipeline.run import run_recipe
from edgeslim.recipe import load_recipe
from tests.finetune.test_train import _tiny, data  # noqa: F401 (a fixture)


def _rows(accs):
    return [{"epoch": i + 1, "val_accuracy": a} for i, a in enumerate(accs)]


def test_verdict_converged_when_the_rule_ended_it():
    v = verdict(_rows([0.8, 0.85, 0.85, 0.849, 0.8505]), patience=3, cap=10, min_delta=0.001)
    assert v["converged"] is True and v["best_epoch"] == 2 and v["epochs_run"] == 5


def test_verdict_not_converged_when_still_improving_at_the_cap():
    v = verdict(_rows([0.8, 0.82, 0.84, 0.86]), patience=3, cap=4)
    assert v["converged"] is False and "did not converge" in v["reason"] and "baseline.epochs" in v["reason"]


def test_verdict_unchecked_without_patience_and_without_labels():
    assert verdict(_rows([0.8, 0.9]), patience=None, cap=2)["converged"] is None
    assert verdict([{"epoch": 1, "val_accuracy": None}], patience=3, cap=1)["converged"] is None


def test_early_stop_keeps_the_best_weights():
    model = nn.Linear(2, 2)
    stop = EarlyStop(patience=2, min_delta=0.0)
    states = []
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.65], 1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        states.append(model.state_dict())
        if stop.update(epoch, acc, model.state_dict()):
            break
    assert epoch == 4 and stop.best_epoch == 2
    stop.restore(model)
    assert torch.all(model.weight == 2)


def test_train_stops_by_patience_and_returns_the_best_epoch(data, monkeypatch):
    import edgeslim.finetune.train as t

    accs = iter([0.5, 0.6, 0.55, 0.58, 0.9, 0.9])  # no gain after epoch 2 for 2 epochs
    seen = {}

    def fake_eval(model, loader):
        acc = next(accs)
        seen[acc] = model[0].weight.detach().clone()
        return acc

    monkeypatch.setattr(t, "evaluate", fake_eval)
    model = _tiny()
    history = train(model, data, TrainSpec(epochs=6, lr=0.05, batch_size=32, patience=2))
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]  # stopped before the cap
    assert torch.equal(model[0].weight, seen[0.6])  # the epoch-2 weights came back


OVERRIDES = ["data.limit_train=96", "data.limit_val=32", "model.input_size=16", "baseline.epochs=2",
             "finetune.epochs=1", "data.calibration_samples=8", "quantize.precisions=[]", "profile.min_seconds=0.01"]


def test_default_run_has_a_control_and_states_the_cost(tmp_path):
    recipe = load_recipe(overrides=OVERRIDES)
    summary = run_recipe(recipe, tmp_path / "run")
    assert (tmp_path / "run" / "25-control" / "done.json").is_file()
    assert summary.control is not None and summary.control.outputs["epochs"] == 1
    md = (tmp_path / "run" / "report.md").read_text()
    assert '"trained longer" control' in md and "what compression cost" in md
    assert "NOT converged" in md or "converged:" in md  # the baseline line says which
    # switching the control off removes the stage and says what the figure may contain
    off = run_recipe(load_recipe(overrides=[*OVERRIDES, "control.enabled=false"]), tmp_path / "off")
    assert off.control is None and "control.enabled is false" in (tmp_path / "off" / "report.md").read_text()
