"""The training loop used by baseline training, sparsity training and fine-tuning.

SGD with momentum (or AdamW) under a cosine learning-rate schedule, one progress bar per
epoch, validation accuracy after each epoch in the returned history. A ``loss_fn`` hook
lets distillation and sparsity regularizers add their terms without another loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeslim.errors import EdgeslimError
from edgeslim.finetune import distributed
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

    @classmethod
    def of(cls, section: Any, *, batch_size: int, seed: int, epochs: Optional[int] = None) -> "TrainSpec":
        """The recipe's ``baseline`` or ``finetune`` section as a spec (``epochs`` overrides its own).

        Example::

            spec = TrainSpec.of(recipe.finetune, batch_size=recipe.data.batch_size, seed=recipe.seed)
        """
        momentum = getattr(section, "momentum", 0.9)  # the baseline section has none: it trains at 0.9
        return cls(section.epochs if epochs is None else epochs, section.lr, section.optimizer, momentum,
                   section.weight_decay, batch_size, seed, warmup_epochs=section.warmup_epochs)


def make_optimizer(params, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum,
                           weight_decay=spec.weight_decay, nesterov=spec.momentum > 0)


def cosine_lr(step: int, total: int, base: float, warmup: int = 0) -> float:
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> Optional[float]:
    """Top-1 accuracy (fraction) over ``loader``; None when the data has no labels."""
    if loader is None:
        return None
    model.eval()
    correct = total = 0
    for x, y in loader:
        pred = model(x).argmax(1)
        correct += int((pred == y).sum())
        total += int(y.numel())
    return correct / total if total else None


def train(
    model: nn.Module,
    data: Any,
    spec: TrainSpec,
    *,
    reporter: Reporter | None = None,
    loss_fn: LossFn | None = None,
    extra_params: list[nn.Parameter] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    description: str = "train",
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``data.train``; returns one history row per epoch.

    ``after_step(model)`` runs after every optimizer step (unstructured pruning re-applies
    its masks there). Under torchrun the same call trains data-parallel: each rank takes
    ``batch_size / world_size`` of every global batch, gradients and BatchNorm statistics
    are reduced across ranks, and the history holds global metrics.
    """
    from torch.utils.data import DistributedSampler

    reporter = reporter or NullReporter()
    torch.manual_seed(spec.seed)
    params = [p for p in model.parameters() if p.requires_grad] + list(extra_params or [])
    opt = make_optimizer(params, spec)
    history: list[dict[str, float]] = []
    if spec.epochs <= 0:
        return history
    labelled = getattr(data, "labelled", True)
    rank, size = distributed.world()
    if spec.batch_size % size:
        raise EdgeslimError(f"data.batch_size {spec.batch_size} is not divisible by {size} processes")
    # One sampler in every mode, so a 1-process run and an N-process run see the same global
    # batches (rank r takes positions r, r+N, ... of the same permutation); only full batches.
    sampler = DistributedSampler(data.train, num_replicas=size, rank=rank, shuffle=True,
                                 seed=spec.seed, drop_last=True)
    per_rank = spec.batch_size // size
    steps_per_epoch = max(1, len(sampler) // per_rank)
    total_steps = steps_per_epoch * (spec.start_epoch + spec.epochs)
    warmup = round(min(spec.warmup_epochs * steps_per_epoch, total_steps / 4))
    dm = distributed.prepare(model)
    step = steps_per_epoch * spec.start_epoch
    try:
        for epoch in range(spec.epochs):
            sampler.set_epoch(spec.start_epoch + epoch)
            loader = data.train_loader(per_rank, sampler=sampler, drop_last=len(sampler) >= per_rank)
            model.train()
            sums = [0.0, 0.0, 0.0]  # loss*n, correct, n
            with reporter.task(f"{description} epoch {epoch + 1}/{spec.epochs}", total=steps_per_epoch) as advance:
                for x, y in loader:
                    for g in opt.param_groups:
                        g["lr"] = cosine_lr(step, total_steps, spec.lr, warmup)
                    logits = dm.module(x)
                    loss = F.cross_entropy(logits, y) if labelled else logits.pow(2).mean() * 0
                    if loss_fn is not None:
                        loss = add_loss(loss, loss_fn(model, x, y, logits))
                    if not torch.isfinite(loss):
                        raise EdgeslimError(f"{description}: the loss became {float(loss)} at epoch {epoch + 1}; lower the learning rate")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if after_step is not None:
                        after_step(model)
                    n = int(y.numel())
                    sums[0] += loss.item() * n
                    sums[1] += int((logits.argmax(1) == y).sum())
                    sums[2] += n
                    step += 1
                    advance(1)
            sums = distributed.all_sum(sums)
            val = evaluate(model, data.val_loader(spec.batch_size)) if labelled else None
            history.append({
                "epoch": epoch + 1,
                "lr": cosine_lr(step - 1, total_steps, spec.lr, warmup),
                "train_loss": sums[0] / max(1, sums[2]),
                "train_accuracy": sums[1] / max(1, sums[2]) if labelled else None,
                "val_accuracy": val,
            })
    finally:
        dm.restore()
    model.eval()
    return history
