"""Where training runs: the ``train`` section resolved per machine, and what train() does with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from edgeslim.data import load_data
from edgeslim.errors import RecipeError
from edgeslim.finetune import device as dev
from edgeslim.finetune.config import TrainCfg
from edgeslim.finetune.device import Placement, resolve
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.pipeline.stage import stage_key
from edgeslim.pipeline.stages.baseline import BaselineStage
from edgeslim.recipe import load_recipe

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA is not available on this machine")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error given where CUDA is absent")


@pytest.fixture(scope="module")
def data():
    return load_data("digits", input_size=8, num_classes=10, limit_train=128, limit_val=32)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("isa, precision", [(["avx2", "avx512f", "avx512_bf16"], "bf16"),
                                            (["avx2", "amx_tile", "amx_bf16"], "bf16"),
                                            (["avx2", "avx512f"], "fp32"), ([], "fp32")])
def test_auto_follows_the_cpu_flags(cpu_only, monkeypatch, isa, precision):
    monkeypatch.setattr(dev, "cpu_info", lambda: {"cpu": "test", "isa": isa, "machine": "x86_64"})
    p = resolve(TrainCfg())
    assert (p.device, p.precision) == ("cpu", precision)
    assert p.channels_last is (precision == "bf16")  # channels_last only pays with bf16 kernels on CPU
    assert resolve(TrainCfg(channels_last=False)).channels_last is False
    assert resolve(TrainCfg(precision="fp32")).precision == "fp32"


@pytest.mark.parametrize("affinity, workers", [({0}, 0), ({0, 1}, 1), ({0, 1, 2, 3}, 3)])
def test_auto_workers_feed_a_gpu_and_leave_the_cpu_to_training(monkeypatch, affinity, workers):
    monkeypatch.setattr(dev.os, "sched_getaffinity", lambda pid: affinity)
    monkeypatch.setattr(dev, "_device", lambda name: "cuda:0" if name != "cpu" else "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve(TrainCfg(device="cuda")).workers == workers  # cores - 1, 0 on one core
    assert resolve(TrainCfg(device="cpu")).workers == 0  # a worker would take the step's cores
    assert resolve(TrainCfg(device="cpu", workers=5)).workers == 5


@pytest.mark.parametrize("name, words", [("tpu", "'tpu' is not a device; use auto, cpu, cuda or cuda:N"),
                                         ("cuda:x", "'cuda:x' is not a device")])
def test_an_unknown_device_is_one_clear_error(name, words):
    with pytest.raises(RecipeError, match=words):
        resolve(TrainCfg(device=name))


@no_cuda
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(RecipeError, match="'cuda' asks for CUDA, but no CUDA device is available"):
        resolve(TrainCfg(device="cuda"))


def test_fp16_needs_cuda(cpu_only):
    with pytest.raises(RecipeError, match="fp16 training needs a CUDA device"):
        resolve(TrainCfg(device="cpu", precision="fp16"))


def test_bad_values_are_recipe_errors():
    with pytest.raises(RecipeError, match="train.precision"):
        load_recipe(overrides=["train.precision=fp8"])
    with pytest.raises(RecipeError, match="train.workers must be >= 0"):
        load_recipe(overrides=["train.workers=-1"])


def test_the_resolved_placement_is_in_the_training_stage_keys(cpu_only, monkeypatch):
    recipe = load_recipe()
    keys = {}
    for isa in (["avx512_bf16"], []):
        monkeypatch.setattr(dev, "cpu_info", lambda isa=isa: {"cpu": "t", "isa": isa, "machine": "x86_64"})
        cfg = BaselineStage().slice(recipe)
        assert cfg.key()["placement"]["precision"] == ("bf16" if isa else "fp32")
        keys[tuple(isa)] = stage_key("00-baseline", cfg.key(), [])
    assert len(set(keys.values())) == 2  # auto resolved differently is another stage


def _dtypes(model):
    """The dtype and memory format of the first conv's output, recorded on each training forward."""
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(
        (o.dtype, i[0].is_contiguous(memory_format=torch.channels_last))) if m.training else None)
    return seen


def test_bf16_autocast_and_channels_last_really_run_on_the_cpu(data):
    model = _tiny()
    seen = _dtypes(model)
    hist = train(model, data, TrainSpec(2, 0.05, batch_size=32),
                 placement=Placement("cpu", "bf16", channels_last=True, workers=0))
    assert len(seen) == 8 and set(seen) == {(torch.bfloat16, True)}
    row = hist[-1]
    assert (row["device"], row["precision"], row["channels_last"], row["workers"]) == ("cpu", "bf16", True, 0)
    assert row["images_per_s"] > 0 and row["train_loss"] == row["train_loss"]  # finite, not NaN
    # the weights stay fp32, on the CPU, in the default memory format (checkpoints as before)
    w = model[0].weight
    assert w.dtype == torch.float32 and w.device.type == "cpu" and w.is_contiguous()


def test_without_a_placement_training_is_fp32_as_before(data):
    model = _tiny()
    seen = _dtypes(model)
    hist = train(model, data, TrainSpec(1, 0.05, batch_size=32))
    assert set(seen) == {(torch.float32, False)}
    assert (hist[0]["precision"], hist[0]["channels_last"], hist[0]["workers"]) == ("fp32", False, 0)


def test_ema_changes_the_weights_that_ship(data):
    spec = TrainSpec(2, 0.05, batch_size=32)
    plain, averaged = _tiny(), _tiny()
    train(plain, data, spec)
    hist = train(averaged, data, spec, placement=Placement(ema=0.9))
    assert hist[-1]["ema"] == 0.9
    diff = max(float((a - b).abs().max()) for a, b in zip(plain.state_dict().values(),
                                                          averaged.state_dict().values()))
    assert diff > 1e-3
    # same seed, same batches: the raw weights are those of the plain run, the EMA lags them
    again = _tiny()
    train(again, data, spec)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), again.state_dict().values()))


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_training_comes_back_on_the_cpu(data, precision):
    model = _tiny()
    p = resolve(TrainCfg(device="cuda", precision=precision, workers=0))
    hist = train(model, data, TrainSpec(2, 0.05, batch_size=32), placement=p)
    assert hist[-1]["device"] == "cuda:0" and hist[-1]["precision"] == precision
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert hist[-1]["val_accuracy"] is not None


def test_off_a_terminal_each_epoch_is_one_line():
    script = textwrap.dedent("""
        import torch, torch.nn as nn
        from rich.console import Console
        from edgeslim.cli import RichReporter
        from edgeslim.data import load_data
        from edgeslim.finetune.train import TrainSpec, train
        data = load_data("digits", input_size=8, num_classes=10, limit_train=64, limit_val=16)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        rep = RichReporter(Console(stderr=True))
        with rep.progress:
            train(model, data, TrainSpec(3, 0.05, batch_size=16), reporter=rep, description="fine-tune")
            with rep.task("profile", total=4) as advance:
                advance(4)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    epochs = [l for l in lines if "fine-tune epoch" in l]
    assert [l.split(" · ")[0] for l in epochs] == [f"· fine-tune epoch {i}/3" for i in (1, 2, 3)]
    assert all("img/s (cpu, fp32)" in l and "ETA" in l and "val " in l for l in epochs)
    assert epochs[-1].endswith("ETA 0m00s")
    assert [l for l in lines if l.startswith("· profile: 4/4 in ")] and len(lines) == 4
    assert "\x1b[" not in proc.stderr and "━" not in proc.stderr  # no bars, no escape codes
