"""The training loop used by baseline training, sparsity training and fine-tuning.

SGD with momentum (or AdamW) under a cosine learning-rate schedule, one progress bar per
epoch, validation accuracy after each epoch in the returned history. A ``loss_fn`` hook
lets distillation and sparsity regularizers add their terms without another loop.
Where it runs (device, autocast precision, channels_last, loader workers, weight EMA) is a
resolved :class:`~edgeslim.finetune.device.Placement`; the model always comes back on the
CPU, and with a ``resume`` store the loop checkpoints each epoch and continues after the
last finished one.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeslim.errors import EdgeslimError
from edgeslim.finetune import distributed
from edgeslim.finetune.convergence import EarlyStop
from edgeslim.finetune.device import Placement, local_device
from edgeslim.finetune.resume import rng_states, set_rng_states
from edgeslim.pipeline.context import NullReporter, Reporter

# loss_fn(model, x, y, logits) -> extra loss tensor, added to the task loss; or
# (extra, w): the task loss is weighted by w first (distillation's 1 - alpha; 0 replaces it).
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], Any]


def add_loss(task: torch.Tensor, extra: Any) -> torch.Tensor:
    """``task + extra``, or ``w * task + term`` when ``extra`` is ``(term, w)``."""
    if isinstance(extra, tuple):
        term, w = extra
        return float(w) * task + term
    return task + extra


@dataclass
class TrainSpec:
    epochs: int
    lr: float
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    seed: int = 0
    # Linear lr warm-up, in epochs, never more than a quarter of the schedule: a 1-2 epoch run
    # still decays its lr.
    warmup_epochs: float = 0.0
    # Resume the schedule at this epoch: the lr follows the cosine over start_epoch + epochs
    # epochs from there (lottery-ticket rewinding replays the rest of a schedule).
    start_epoch: int = 0
    # Stop when val accuracy has not gained min_delta for this many epochs, keeping the best
    # epoch's weights (edgeslim.finetune.convergence); None trains every epoch.
    patience: Optional[int] = None
    min_delta: float = 0.0

    @classmethod
    def of(cls, section: Any, *, batch_size: int, seed: int, epochs: Optional[int] = None) -> "TrainSpec":
        """The recipe's ``baseline`` or ``finetune`` section as a spec (``epochs`` overrides its own).

        Example::

            spec = TrainSpec.of(recipe.finetune, batch_size=recipe.data.batch_size, seed=recipe.seed)
        """
        momentum = getattr(section, "momentum", 0.9)  # the baseline section has none: it trains at 0.9
        return cls(section.epochs if epochs is None else epochs, section.lr, section.optimizer, momentum,
                   section.weight_decay, batch_size, seed, warmup_epochs=section.warmup_epochs,
                   patience=getattr(section, "patience", None), min_delta=getattr(section, "min_delta", 0.0))


def make_optimizer(params, spec: TrainSpec) -> torch.optim.Optimizer:
    """SGD (nesterov when there is momentum) or AdamW, as one fused kernel per step where every
    parameter is a float tensor on the CPU or a CUDA device: torch's default on the CPU loops over
    the tensors (four small ops each), 7 ms of a 700 ms resnet50 bf16 step on 2 cores."""
    params = list(params)
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]  # param groups too
    fused = bool(tensors) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=fused or None)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay,
                           nesterov=spec.momentum > 0, fused=fused or None)


def cosine_lr(step: int, total: int, base: float, warmup: int = 0) -> float:
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, t)))


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> Optional[float]:
    """Top-1 accuracy (fraction) over ``loader``, in fp32 on the model's device; None when
    the data has no labels."""
    if loader is None:
        return None
    model.eval()
    device = _device_of(model)
    correct = total = 0
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += int(y.numel())
    return correct / total if total else None


class WeightEma:
    """Exponential moving average of every float tensor of a model's state (weights and
    BatchNorm statistics, as timm's ModelEmaV2); integer buffers are copied.

    Example::

        ema = WeightEma(model, 0.999); ...; ema.update(model)  # after each optimizer step
        model.load_state_dict(ema.state)                       # ship the averaged weights
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            e = self.state[k]
            if e.is_floating_point():
                e.lerp_(v.detach(), 1.0 - self.decay)  # decay * e + (1 - decay) * v
            else:
                e.copy_(v)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader) -> Optional[float]:
        """Accuracy of the averaged weights (the model's own are put back after)."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            return evaluate(model, loader)
        finally:
            model.load_state_dict(own)


def _cpu(obj: Any) -> Any:
    """``obj`` with every tensor copied to the CPU: checkpoints load on a CPU-only machine."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _carried(loss_fn: Any) -> list[nn.Module]:
    """The modules a loss hook runs (a distillation teacher, FitNet regressors): they go
    where the model goes."""
    if isinstance(loss_fn, nn.Module):
        return [loss_fn]
    return [v for v in getattr(loss_fn, "__dict__", {}).values() if isinstance(v, nn.Module)]


def _move(modules: list[nn.Module], params: list[nn.Parameter], device: torch.device,
          channels_last: Optional[bool]) -> None:
    """Move modules and loose parameters in place (Parameter objects keep their identity,
    so hooks and optimizers holding them stay valid)."""
    fmt = {True: torch.channels_last, False: torch.contiguous_format}.get(channels_last)
    for m in modules:
        m.to(device)
        if fmt is not None:
            m.to(memory_format=fmt)
    for p in params:
        if p.device != device:
            p.data = p.data.to(device)


def _train_loader(data: Any, batch: int, sampler, drop_last: bool, workers: int, pin: bool):
    """``data.train_loader`` with workers and pinned memory where the bundle takes them."""
    accepted = inspect.signature(data.train_loader).parameters
    extra = {k: v for k, v in (("workers", workers), ("pin_memory", pin)) if k in accepted}
    return data.train_loader(batch, sampler=sampler, drop_last=drop_last, **extra)


def _eta(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


def epoch_line(description: str, row: dict[str, Any], epochs: int, eta_s: float) -> str:
    """One progress line per epoch (what non-terminal output shows instead of bars)."""
    parts = [f"{description} epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4f}"]
    if row.get("train_accuracy") is not None:
        parts.append(f"train {row['train_accuracy']:.2%}")
    if row.get("val_accuracy") is not None:
        parts.append(f"val {row['val_accuracy']:.2%}")
    parts += [f"{row['images_per_s']:.1f} img/s ({row['device']}, {row['precision']})", f"ETA {_eta(eta_s)}"]
    return " · ".join(parts)


def train(
    model: nn.Module,
    data: Any,
    spec: TrainSpec,
    *,
    placement: Placement | None = None,
    resume: Any = None,
    reporter: Reporter | None = None,
    loss_fn: LossFn | None = None,
    extra_params: list[nn.Parameter] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    description: str = "train",
) -> list[dict[str, Any]]:
    """Train ``model`` in place on ``data.train``; returns one history row per epoch.

    ``placement`` says where and how (None: fp32 on the CPU without workers, as a library
    call always did); the model (and a distillation teacher) come back on the CPU.
    ``resume`` (an :class:`~edgeslim.finetune.resume.EpochCheckpoints`) gets the training
    state at every epoch end and gives it back on a rerun, which continues at the next epoch.
    ``after_step(model)`` runs after every optimizer step (unstructured pruning re-applies
    its masks there). Under torchrun the same call trains data-parallel: each rank takes
    ``batch_size / world_size`` of every global batch, gradients and BatchNorm statistics
    are reduced across ranks, and the history holds global metrics.

    Example::

        history = train(model, data, TrainSpec(epochs=2, lr=0.05),
                        placement=resolve(TrainCfg(precision="bf16")))
        history[-1]["precision"]  # 'bf16'
    """
    from torch.utils.data import DistributedSampler

    reporter = reporter or NullReporter()
    place = placement or Placement()
    torch.manual_seed(spec.seed)
    history: list[dict[str, Any]] = []
    if spec.epochs <= 0:
        return history
    labelled = getattr(data, "labelled", True)
    rank, size = distributed.world()
    if spec.batch_size % size:
        raise EdgeslimError(f"data.batch_size {spec.batch_size} is not divisible by {size} processes")
    device = local_device(place.device)
    cuda = device.type == "cuda"
    carried = [model] + _carried(loss_fn)
    extra = list(extra_params or [])
    _move(carried, extra, device, True if place.channels_last else None)
    params = [p for p in model.parameters() if p.requires_grad] + extra
    opt = make_optimizer(params, spec)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and place.precision == "fp16")
    autocast = dict(device_type=device.type, dtype=place.autocast_dtype or torch.float32,
                    enabled=place.autocast_dtype is not None)
    ema = WeightEma(model, place.ema) if place.ema else None
    augment = getattr(data, "augment_batch", None)
    gen = torch.Generator(device=device).manual_seed(spec.seed)  # augmentation draws
    stop = EarlyStop(spec.patience, spec.min_delta)
    # One sampler in every mode, so a 1-process run and an N-process run see the same global
    # batches (rank r takes positions r, r+N, ... of the same permutation); only full batches.
    sampler = DistributedSampler(data.train, num_replicas=size, rank=rank, shuffle=True,
                                 seed=spec.seed, drop_last=True)
    per_rank = spec.batch_size // size
    steps_per_epoch = max(1, len(sampler) // per_rank)
    total_steps = steps_per_epoch * (spec.start_epoch + spec.epochs)
    warmup = round(min(spec.warmup_epochs * steps_per_epoch, total_steps / 4))
    step, first = steps_per_epoch * spec.start_epoch, 0
    state = resume.load() if resume is not None else None
    if state is not None:  # continue after the last finished epoch, exactly
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.state = {k: v.to(device) for k, v in state["ema"].items()}
        with torch.no_grad():
            for p, saved in zip(extra, state.get("extra", [])):
                p.copy_(saved)
        set_rng_states(state["rng"])
        if "augment" in state["rng"]:
            gen.set_state(state["rng"]["augment"])
        first, step, history = int(state["epoch"]), int(state["step"]), list(state["history"])
        stop.load_state(state.get("early_stop"))
        if state.get("stopped"):
            first = spec.epochs  # the patience rule had ended it
    dm = distributed.prepare(model)
    seconds: list[float] = []
    try:
        for epoch in range(first, spec.epochs):
            began = time.perf_counter()
            sampler.set_epoch(spec.start_epoch + epoch)
            loader = _train_loader(data, per_rank, sampler, len(sampler) >= per_rank, place.workers, cuda)
            model.train()
            sums = [0.0, 0.0, 0.0]  # loss*n, correct, n
            with reporter.task(f"{description} epoch {epoch + 1}/{spec.epochs}", total=steps_per_epoch) as advance:
                for x, y in loader:
                    x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
                    if augment is not None:
                        x, y = augment(x, y, gen)
                    if place.channels_last and x.dim() == 4:
                        x = x.contiguous(memory_format=torch.channels_last)
                    for g in opt.param_groups:
                        g["lr"] = cosine_lr(step, total_steps, spec.lr, warmup)
                    with torch.autocast(**autocast):
                        logits = dm.module(x)
                        # the task loss in fp32 (a no-op without autocast): bf16 logits lose the
                        # small differences cross-entropy is made of
                        loss = F.cross_entropy(logits.float(), y) if labelled else logits.float().pow(2).mean() * 0
                        if loss_fn is not None:
                            loss = add_loss(loss, loss_fn(model, x, y, logits))
                    if not torch.isfinite(loss):
                        raise EdgeslimError(f"{description}: the loss became {float(loss)} at epoch {epoch + 1}; lower the learning rate")
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    if after_step is not None:
                        after_step(model)
                    if ema is not None:
                        ema.update(model)
                    n = int(y.numel())
                    sums[0] += loss.item() * n
                    sums[1] += int((logits.argmax(1) == y).sum())
                    sums[2] += n
                    step += 1
                    advance(1)
                # inside the epoch's task: its line (val accuracy, img/s, ETA) closes the task
                sums = distributed.all_sum(sums)
                train_s = time.perf_counter() - began
                val_loader = data.val_loader(spec.batch_size) if labelled else None
                val = (ema.evaluate(model, val_loader) if ema is not None else evaluate(model, val_loader)) if labelled else None
                history.append({
                    "epoch": epoch + 1,
                    "lr": cosine_lr(step - 1, total_steps, spec.lr, warmup),
                    "train_loss": sums[0] / max(1, sums[2]),
                    "train_accuracy": sums[1] / max(1, sums[2]) if labelled else None,
                    "val_accuracy": val,
                    "device": str(device), "precision": place.precision,
                    "channels_last": place.channels_last, "workers": place.workers, "ema": place.ema,
                    "augmentation": getattr(data, "augmentation", None),
                    "images_per_s": sums[2] / max(train_s, 1e-9),
                })
                seconds.append(time.perf_counter() - began)
                stopped = stop.update(epoch + 1, val, ema.state if ema is not None else model.state_dict())
                if resume is not None:
                    resume.save(_cpu({
                        "epoch": epoch + 1, "step": step, "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                        "ema": ema.state if ema is not None else None, "extra": [p.detach() for p in extra],
                        "rng": {**rng_states(), "augment": gen.get_state()}, "history": history,
                        "early_stop": stop.to_state() if stop.active else None, "stopped": stopped}))
                if rank == 0:
                    eta = sum(seconds) / len(seconds) * (spec.epochs - epoch - 1)
                    reporter.log(epoch_line(description, history[-1], spec.epochs, eta))
            if stopped:
                if rank == 0:
                    reporter.log(f"{description}: no gain for {spec.patience} epochs after epoch "
                                 f"{stop.best_epoch}; stopping, keeping the epoch-{stop.best_epoch} weights")
                break
        if ema is not None:  # what ships is the average
            model.load_state_dict(ema.state)
        if stop.active:  # the best epoch's weights (the EMA's, when on)
            stop.restore(model)
        if (ema is not None or stop.active) and after_step is not None:
            after_step(model)
    finally:
        dm.restore()
        # device-free results: the model, its teacher and extra parameters back on the CPU
        _move(carried, extra, torch.device("cpu"), False if place.channels_last else None)
    model.eval()
    return history
