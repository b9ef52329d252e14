"""The training loop's schedule: cosine decay after an optional linear warm-up."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from edgeslim.data import load_data
from edgeslim.finetune.train import TrainSpec, cosine_lr, train
from edgeslim.recipe import load_recipe


@pytest.fixture(scope="module")
def data():
    return load_data("digits", input_size=8, num_classes=10, limit_train=256, limit_val=32)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


@pytest.fixture
def lrs(data, monkeypatch):
    """lrs(spec): the learning rate of every optimizer step (read in the loss hook, before the step)."""
    import edgeslim.finetune.train as t

    groups = []
    make = t.make_optimizer

    def spy(params, s):  # the loop sets the lr on its optimizer's param groups: keep a handle
        opt = make(params, s)
        groups.append(opt.param_groups[0])
        return opt

    monkeypatch.setattr(t, "make_optimizer", spy)

    def run(spec: TrainSpec) -> list[float]:
        seen: list[float] = []

        def hook(m, x, y, logits):
            seen.append(groups[-1]["lr"])
            return logits.sum() * 0

        train(_tiny(), data, spec, loss_fn=hook)
        return seen

    return run


def test_warmup_rises_linearly_then_decays(lrs):
    lrs = lrs(TrainSpec(4, 0.1, batch_size=64, warmup_epochs=1))  # 256 images: 4 steps per epoch
    assert len(lrs) == 16
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lrs[4] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[-1] < 0.01


def test_warmup_is_capped_at_a_quarter_of_the_schedule(lrs):
    lrs = lrs(TrainSpec(1, 0.1, batch_size=64, warmup_epochs=1))  # 4 steps: 1 of warm-up
    # uncapped, the whole epoch would be warm-up (0.025, 0.05, ...) and the lr would never decay
    assert lrs[0] == pytest.approx(0.1)  # one warm-up step reaches the peak at once
    assert lrs[1] == pytest.approx(0.1) and lrs[3] < lrs[2] < lrs[1]


def test_no_warmup_starts_at_the_peak(lrs):
    lrs = lrs(TrainSpec(2, 0.1, batch_size=64))
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] < lrs[0]


def test_cosine_lr_endpoints():
    assert cosine_lr(0, 100, 1.0) == pytest.approx(1.0)
    assert cosine_lr(100, 100, 1.0) == pytest.approx(0.0)
    assert cosine_lr(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(10, 100, 1.0, warmup=10) == pytest.approx(1.0)


def test_recipe_defaults_warm_the_baseline_only():
    r = load_recipe()
    assert r.baseline.warmup_epochs == 1 and r.finetune.warmup_epochs == 0


def test_spec_of_a_recipe_section():
    r = load_recipe(overrides=["finetune.momentum=0.8", "baseline.epochs=3"])
    b = TrainSpec.of(r.baseline, batch_size=32, seed=5)
    assert (b.epochs, b.lr, b.momentum, b.weight_decay, b.warmup_epochs, b.batch_size, b.seed) == \
        (3, r.baseline.lr, 0.9, r.baseline.weight_decay, 1, 32, 5)
    f = TrainSpec.of(r.finetune, batch_size=32, seed=5, epochs=2)
    assert (f.epochs, f.lr, f.momentum, f.weight_decay, f.warmup_epochs) == \
        (2, r.finetune.lr, 0.8, r.finetune.weight_decay, 0)


@pytest.mark.parametrize("name,reference", [
    ("sgd", lambda ps, s: torch.optim.SGD(ps, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                                           nesterov=True, foreach=False)),
    ("adamw", lambda ps, s: torch.optim.AdamW(ps, lr=s.lr, weight_decay=s.weight_decay, foreach=False)),
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_optimizer_is_fused_on_the_cpu_and_steps_like_the_loop(name, reference, channels_last):
    """One fused kernel per step on the CPU, the same weights as torch's per-tensor loop, with
    channels_last weights too (the training engine's default placement on the CPU)."""
    from edgeslim.finetune.train import make_optimizer

    spec = TrainSpec(1, 0.1, name)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fused_model, loop_model = _tiny().to(memory_format=fmt), _tiny().to(memory_format=fmt)
    fused, loop = make_optimizer(fused_model.parameters(), spec), reference(loop_model.parameters(), spec)
    assert fused.defaults["fused"] is True and not loop.defaults.get("fused")
    x = torch.randn(6, 3, 8, 8).contiguous(memory_format=fmt)
    assert fused_model[0].weight.is_contiguous(memory_format=fmt)
    for _ in range(4):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fused_model[0].weight, _tiny()[0].weight)  # it did step



def test_optimizer_takes_param_groups_and_leaves_meta_tensors_unfused():
    from edgeslim.finetune.train import make_optimizer

    model = _tiny()
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[4].parameters()), "lr": 0.01}]
    opt = make_optimizer(groups, TrainSpec(1, 0.1))
    assert opt.defaults["fused"] is True and [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    meta = make_optimizer([nn.Parameter(torch.empty(3, device="meta"))], TrainSpec(1, 0.1))
    assert not meta.defaults["fused"]  # no fused kernel there: torch's own loop
