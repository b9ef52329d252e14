"""Lottery tickets: ``imp``, iterative magnitude pruning with rewinding.

Frankle & Carbin 2019: train, prune ``prune_per_round`` of the remaining weights by
magnitude, rewind the survivors, repeat until ``compress.ratio`` of the prunable weights
are gone (the last round prunes exactly what is left to reach it). Rewinding (``rewind``):

- ``init`` (= ``0``): back to the initialization (the original lottery ticket);
- ``k`` (an int): back to the weights after **epoch** k of the dense run, and the rest
  of the schedule replayed from there (Frankle et al. 2020, "Linear mode connectivity";
  it stabilizes larger nets). We count epochs, not iterations: a recipe then means the
  same thing at any batch size;
- ``lr`` / ``lr:k``: keep the trained weights and replay the learning-rate schedule from
  epoch k (0 by default; Renda et al. 2020, "Comparing rewinding and fine-tuning").

``init`` and ``k`` re-run the dense training from the seeded initialization (the same
one the baseline stage starts from) to record the rewind point; ``lr`` starts from the
trained baseline. Every round trains ``epochs`` (default ``baseline.epochs``) minus k
epochs with the baseline's hyperparameters.

Which weights survive (``mask_criterion``, Zhou et al. 2019, "Deconstructing lottery
tickets"): ``magnitude`` and its synonym ``large_final`` keep the largest trained |w|;
``large_final_same_sign`` keeps the largest trained |w| among weights whose sign equals
their sign at the rewind point (the start of the round, for ``lr``), pruning the others
first.

Example::

    edgeslim run --set compress.method=imp --set compress.ratio=0.8 --set compress.rewind=1
"""

from __future__ import annotations

import copy
import math
from typing import Literal, Optional, Union

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgeslim.compress.base import CompressJob, register_method
from edgeslim.compress.masks import (MaskKeeper, SparseMethod, apply_masks, check_sparsity,
                                     layer_weights, prunable_layers, score_masks, sparsity_of)
from edgeslim.errors import CompressionError
from edgeslim.finetune.train import evaluate


def parse_rewind(value: Union[int, str]) -> tuple[str, int]:
    """``"init"`` → (weights, 0); ``3`` → (weights, 3); ``"lr"`` → (lr, 0); ``"lr:2"`` → (lr, 2)."""
    if isinstance(value, bool):
        raise ValueError(f"compress.rewind must be init, an epoch number, lr or lr:K, got {value!r}")
    if isinstance(value, int):
        kind, k = "weights", value
    else:
        text = str(value).strip().lower()
        if text == "init":
            return "weights", 0
        if text.isdigit():
            kind, k = "weights", int(text)
        elif text == "lr":
            return "lr", 0
        elif text.startswith("lr:") and text[3:].strip().isdigit():
            kind, k = "lr", int(text[3:])
        else:
            raise ValueError(f"compress.rewind must be init, an epoch number, lr or lr:K, got {value!r}")
    if k < 0:
        raise ValueError(f"compress.rewind: the epoch must be >= 0, got {k}")
    return kind, k


class ImpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prune_per_round: float = Field(0.2, gt=0, lt=1)  # fraction of the remaining weights per round
    rounds: Optional[int] = Field(None, ge=1)  # instead: this many equal rounds to compress.ratio
    rewind: Union[int, str] = "init"  # init | <epoch k> | lr | lr:<epoch k>
    epochs: Optional[int] = Field(None, ge=1)  # training epochs per round; default baseline.epochs
    mask_criterion: Literal["magnitude", "large_final", "large_final_same_sign"] = "magnitude"

    @field_validator("rewind")
    @classmethod
    def _rewind(cls, v):
        parse_rewind(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ImpOptions":
        if self.rounds is not None and "prune_per_round" in self.model_fields_set:
            raise ValueError("set compress.rounds or compress.prune_per_round, not both "
                             "(compress.ratio fixes the final sparsity)")
        _, k = parse_rewind(self.rewind)
        if self.epochs is not None and k >= self.epochs:
            raise ValueError(rewind_error(k, self.epochs))
        return self


def rewind_error(k: int, epochs: int) -> str:
    return (f"compress.rewind: epoch {k} is beyond training ({epochs} epochs per round); "
            f"use init, an epoch in 0..{epochs - 1}, lr or lr:K")


def keep_schedule(sparsity: float, *, per_round: float = 0.2, rounds: int | None = None) -> list[float]:
    """Fractions of the prunable weights remaining after each round, ending at ``1 - sparsity``.

    Example: ``keep_schedule(0.5)`` → ``[0.8, 0.64, 0.512, 0.5]``.
    """
    target = 1.0 - check_sparsity(sparsity)
    if rounds is not None:
        return [target ** ((r + 1) / rounds) for r in range(rounds)]
    n = max(1, math.ceil(math.log(target) / math.log(1.0 - per_round) - 1e-9))
    return [max(target, (1.0 - per_round) ** (r + 1)) for r in range(n)]


def _criterion_scores(name: str, current: dict[str, torch.Tensor],
                      reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    scores = {n: w.detach().abs() for n, w in current.items()}
    if name == "large_final_same_sign":
        for n, s in scores.items():
            same = torch.sign(current[n].detach()) == torch.sign(reference[n])
            # Sign-flipped weights rank below every kept one but keep their order among themselves.
            scores[n] = torch.where(same, s + 1.0 + s.max(), s)
    return scores


def _accuracy(model: nn.Module, job: CompressJob) -> float | None:
    return evaluate(model, job.data.val_loader(job.batch_size)) if job.data.labelled else None


class _SnapshotAt:
    """``after_step`` hook of the dense run: copy the state once epoch ``k`` has ended."""

    def __init__(self, step: int):
        self.step, self.seen, self.state = step, 0, None

    def __call__(self, model: nn.Module) -> None:
        self.seen += 1
        if self.seen == self.step:
            self.state = copy.deepcopy(model.state_dict())


def iterative_magnitude_pruning(job: CompressJob, *, keep: list[float], rewind: Union[int, str] = "init",
                                epochs: int | None = None, criterion: str = "magnitude") -> nn.Module:
    """Run IMP through the remaining fractions ``keep``; returns the last round's trained ticket.

    Every round is recorded in ``job.notes["rounds"]`` (remaining fraction, validation
    accuracy after its training), so one run gives the whole accuracy-vs-sparsity curve.
    """
    trainer = job.require_trainer("imp")
    if job.build_fresh is None:
        raise CompressionError("imp trains inside the compress stage and needs CompressJob.build_fresh "
                               "(the pipeline provides it)")
    kind, k = parse_rewind(rewind)
    total = epochs or trainer.epochs("baseline")
    if not total:
        raise CompressionError("imp needs training epochs per round: set compress.epochs or baseline.epochs > 0")
    if k >= total:
        raise CompressionError(rewind_error(k, total))
    rounds: list[dict] = []
    if kind == "weights":
        model = job.build_fresh()
        # train() runs full batches only: len(train) // batch_size steps per epoch.
        snap = _SnapshotAt(k * max(1, len(job.data.train) // job.batch_size))
        start_state = copy.deepcopy(model.state_dict()) if k == 0 else None
        job.log(f"imp: dense training, {total} epochs (rewind point: epoch {k})")
        trainer.fit(model, schedule="baseline", epochs=total, after_step=snap if k > 0 else None,
                    description="imp dense")
        start_state = start_state if k == 0 else snap.state
    else:
        model = job.model
        start_state = None
    layers = prunable_layers(model, num_classes=job.spec.get("num_classes"), ignored=list(job.cfg.ignored_layers))
    rounds.append({"round": 0, "remaining": 1.0, "accuracy": _accuracy(model, job)})
    reference = {n: w.detach().clone() for n, w in layer_weights(layers).items()}
    if start_state is not None:
        reference = {n: start_state[f"{n}.weight"].clone() for n in layers}
    masks = None
    for r, remaining in enumerate(keep, start=1):
        scores = _criterion_scores(criterion, layer_weights(layers), reference)
        masks = score_masks(scores, 1.0 - remaining, job.cfg.scope, previous=masks)
        if kind == "weights":
            model.load_state_dict(start_state)
        apply_masks(model, masks)
        if kind == "lr":
            reference = {n: w.detach().clone() for n, w in layer_weights(layers).items()}
        job.log(f"imp round {r}/{len(keep)}: {100 * remaining:.1f}% of weights remain")
        trainer.fit(model, schedule="baseline", epochs=total - k, after_step=MaskKeeper(masks),
                    start_epoch=k, description=f"imp round {r}")
        rounds.append({"round": r, "remaining": round(remaining, 6),
                       "sparsity": round(sparsity_of(model, list(layers)), 6),
                       "accuracy": _accuracy(model, job)})
    job.notes["rounds"] = rounds
    job.notes.update({"rewind": str(rewind), "epochs_per_round": total - k, "mask_criterion": criterion})
    return model


@register_method
class IMP(SparseMethod):
    name = "imp"
    description = "lottery ticket: iterative magnitude pruning with rewinding (init, epoch k, lr)"
    options = ImpOptions
    trains = True

    def schedules(self, cfg) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("baseline",) + super().schedules(cfg)))  # trains from scratch

    def apply(self, job: CompressJob) -> nn.Module:
        opts = job.options or ImpOptions()
        keep = keep_schedule(job.cfg.ratio, per_round=opts.prune_per_round, rounds=opts.rounds)
        model = iterative_magnitude_pruning(job, keep=keep, rewind=opts.rewind, epochs=opts.epochs,
                                            criterion=opts.mask_criterion)
        layers = self.prunable(model, job)
        self.record(model, layers, job, {n: layers[n].weight != 0 for n in layers})
        return model
