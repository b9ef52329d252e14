"""The one structured pruner every channel criterion plugs into.

Torch-Pruning's dependency graph finds the coupled layers (a residual add ties the
channels of every conv feeding it; a depthwise conv ties its input and output), the
criterion scores each group's channels, and the pruner physically removes the lowest.
Criteria are Torch-Pruning importance callables; nothing else changes between them.
:mod:`edgeslim.compress.safety` keeps the result honest: channel-sliced layers are left
out, an emptied layer is an error, and the pruned model must still run.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import torch
import torch.nn as nn
import torch_pruning as tp

from edgeslim.compress.base import CompressJob, Method
from edgeslim.compress.safety import (EmptyLayerError, channel_indexing_layers, check_still_runs,
                                      fix_rounding, output_shape, refuse_emptying)
from edgeslim.errors import CompressionError
from edgeslim.registry import suggest


def count_macs_params(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulates of one forward pass on ``example_inputs``, and parameters."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    model.train(was_training)
    return int(macs), int(params)


def classifier_layers(model: nn.Module, num_classes: int | None = None) -> list[nn.Module]:
    """The output layer(s): the last Linear, or layers whose output is the class count."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if num_classes is not None:
        heads = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))
                 and getattr(m, "out_features", getattr(m, "out_channels", None)) == num_classes]
        if heads:
            return heads[-1:]
    return linears[-1:]


def resolve_ignored(model: nn.Module, names: list[str], num_classes: int | None) -> list[nn.Module]:
    modules = dict(model.named_modules())
    ignored = classifier_layers(model, num_classes)
    for name in names:
        if name not in modules:
            raise CompressionError(
                f"compress.ignored_layers: no layer named '{name}'{suggest(name, list(modules))}"
            )
        ignored.append(modules[name])
    return ignored


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader, batches: int) -> int:
    """Re-estimate BatchNorm running statistics on training batches; returns batches used.

    Removing channels shifts every downstream activation distribution; stale running
    statistics then wreck accuracy until fine-tuning. A cumulative average over a few
    batches (momentum=None) fixes that without any training.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    for x, _ in loader:
        model(x)
        used += 1
        if used >= batches:
            break
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    return used


def _make_pruner(model, job: CompressJob, importance, ratio: float, steps: int, ignored,
                 ratio_dict: dict | None = None) -> tp.pruner.MetaPruner:
    def build(ignored_layers):
        try:
            return tp.pruner.MetaPruner(
                model,
                job.example_inputs,
                importance=importance,
                global_pruning=job.cfg.scope == "global",
                pruning_ratio=ratio,
                pruning_ratio_dict=ratio_dict,
                iterative_steps=steps,
                ignored_layers=ignored_layers,
                round_to=job.cfg.round_to,
                max_pruning_ratio=0.95,
            )
        except Exception as err:  # the graph tracer fails on unsupported structures
            raise CompressionError(f"cannot build the pruning dependency graph of this model: {err}") from None

    pruner = build(ignored)
    # Layers feeding a channel slice/split would be silently mis-pruned: leave them out.
    unsafe = channel_indexing_layers(pruner.DG, ignored)
    if unsafe:
        names = {m: n for n, m in model.named_modules()}
        job.notes["auto_ignored"] = {names[m]: why for m, why in unsafe.items()}
        job.log(f"not pruned (channel slicing): {', '.join(job.notes['auto_ignored'])}")
        pruner = build(ignored + list(unsafe))
    fix_rounding(pruner)
    refuse_emptying(pruner)
    return pruner


def prune_structured(
    job: CompressJob,
    importance_fn: Callable[[nn.Module, CompressJob], Any],
    *,
    ratio: float | None = None,
    ratio_dict: dict[str, float] | None = None,
    explain_global: bool = True,
) -> nn.Module:
    """Prune ``job.model`` in place by ``ratio`` (or ``job.cfg.target_macs``) and return it.

    ``importance_fn(model, job)`` builds the criterion for the model being pruned; it is
    called once per model so data-driven criteria see the current weights. With
    ``scope=global`` (and ``explain_global``) a pruning whose widths equal local's says why
    in ``job.notes["global_as_local"]``.
    """
    cfg = job.cfg
    num_classes = job.spec.get("num_classes")
    if cfg.target_macs is not None and ratio is None and ratio_dict is None:
        ratio = search_ratio_for_macs(job, importance_fn, cfg.target_macs)
    ratio = cfg.ratio if ratio is None else ratio
    model = job.model
    ignored = resolve_ignored(model, cfg.ignored_layers, num_classes)
    modules = dict(model.named_modules())
    rdict = {modules[n]: r for n, r in (ratio_dict or {}).items()} or None
    local_widths = (_local_widths(job, importance_fn, ratio, rdict is not None)
                    if explain_global and cfg.scope == "global" and cfg.steps == 1 else None)
    expected = output_shape(model, job.example_inputs)
    base_macs = count_macs_params(model, job.example_inputs)[0] if "ratio_searched" in job.notes else 0
    pruner = _make_pruner(model, job, importance_fn(model, job), ratio, cfg.steps, ignored, rdict)
    for step in range(cfg.steps):
        pruner.step()
        check_still_runs(model, job.example_inputs, expected)
        if cfg.bn_recalibration:
            recalibrate_bn(model, job.data.train_loader(job.batch_size, seed=job.seed + step), cfg.recalibration_batches)
        if step < cfg.steps - 1:
            job.log(f"step {step + 1}/{cfg.steps}: fine-tuning between steps")
            job.require_trainer("iterative pruning (compress.steps > 1)").fit(
                model, schedule="finetune", epochs=1, description="prune-step fine-tune")
    _check_not_empty(model)
    if local_widths is not None and local_widths == _widths(model):
        job.notes["global_as_local"] = (
            "scope=global gave the same widths as local: the criterion's scores are normalized by "
            "each layer's mean (a conv's weight scale before a BatchNorm means nothing), so one "
            "threshold cuts layers whose score distributions look alike (an untrained model, or "
            f"layers differing only in scale) by the same fraction, and round_to={cfg.round_to} "
            "snaps what differs back to the same multiples")
        job.log(job.notes["global_as_local"])
    if "ratio_searched" in job.notes:  # what the searched ratio did to this model, for the report
        job.notes["macs_reduction"] = round(1 - count_macs_params(model, job.example_inputs)[0] / base_macs, 4)
    return model


def _widths(model: nn.Module) -> dict[str, int]:
    return {n: m.weight.shape[0] for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _local_widths(job: CompressJob, importance_fn, ratio: float, has_dict: bool) -> dict[str, int] | None:
    """Widths a local-scope pruning at ``ratio`` would give (None when it cannot be compared)."""
    if has_dict:
        return None
    trial = copy.deepcopy(job.model)
    local = dataclasses.replace(job, model=trial, cfg=job.cfg.model_copy(update={"scope": "local"}),
                                notes={}, log=lambda msg: None)
    try:
        p = _make_pruner(trial, local, importance_fn(trial, local), ratio, 1,
                         resolve_ignored(trial, job.cfg.ignored_layers, job.spec.get("num_classes")))
        p.step()
    except CompressionError:  # local would fail where global does not: they differ
        return None
    return _widths(trial)


def _check_not_empty(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and (m.out_channels == 0 or m.in_channels == 0):
            raise CompressionError(f"pruning removed every channel of layer '{name}'; lower the ratio")
        if isinstance(m, nn.Linear) and (m.in_features == 0 or m.out_features == 0):
            raise CompressionError(f"pruning removed every feature of layer '{name}'; lower the ratio")


# A searched ratio whose MAC reduction is farther than this from target_macs is reported.
MACS_TOLERANCE = 0.02


def search_ratio_for_macs(job: CompressJob, importance_fn, target: float, iters: int = 12) -> float:
    """Search the channel ratio whose pruned model removes closest to ``target`` of the MACs.

    The MAC reduction is a staircase in the ratio: with ``round_to`` every layer's width moves
    in whole steps, so a small model's reduction can jump from 55 % to 60 % to 70 %. Bisection
    finds the step edge around ``target``; the nearer of its two sides wins (a tie: the side
    that meets the target). ``job.notes`` records ``ratio_searched`` and the
    ``macs_reduction`` it reached; when that is farther than :data:`MACS_TOLERANCE` from the
    target, ``target_macs_missed`` says why, and the log says so too.
    """
    base_macs, _ = count_macs_params(job.model, job.example_inputs)
    expected = output_shape(job.model, job.example_inputs)
    lo, hi = 0.0, 0.95
    below, above = (0.0, 0.0), None  # (ratio, reduction) on each side of the target

    def reduction(ratio: float) -> float | None:
        trial = copy.deepcopy(job.model)
        ignored = resolve_ignored(trial, job.cfg.ignored_layers, job.spec.get("num_classes"))
        p = _make_pruner(trial, job, importance_fn(trial, job), ratio, 1, ignored)
        try:
            p.step()
        except EmptyLayerError:  # this ratio empties a layer
            return None
        check_still_runs(trial, job.example_inputs, expected)
        return 1 - count_macs_params(trial, job.example_inputs)[0] / base_macs

    for _ in range(iters):
        mid = (lo + hi) / 2
        removed = reduction(mid)
        if removed is None:
            hi = mid
        elif removed >= target:
            above, hi = (mid, removed), mid
        else:
            below, lo = (mid, removed), mid
    if above is None or target - below[1] < above[1] - target:
        best, reached = below
    else:
        best, reached = above
    job.notes.update(ratio_searched=round(best, 4), ratio_for_target_macs=round(best, 4),
                     target_macs=target, macs_reduction_searched=round(reached, 4))
    if abs(reached - target) > MACS_TOLERANCE:
        sides = [f"{100 * r:.1f}% (ratio {q:.4f})" for q, r in (below, above) if r is not None and q > 0]
        why = (f"compress.target_macs={target}: one ratio for every layer reaches only "
               f"{' or '.join(sides) or 'no reduction'} of the MACs here (round_to="
               f"{job.cfg.round_to}, scope={job.cfg.scope}); kept {100 * reached:.1f}%. A smaller "
               f"round_to or scope=global gives finer steps")
        job.notes["target_macs_missed"] = why
        job.log(why)
    return best


class StructuredMethod(Method):
    """A channel criterion: subclasses implement :meth:`importance` only."""

    family = "structured"

    def importance(self, model: nn.Module, job: CompressJob) -> Any:
        raise NotImplementedError

    def apply(self, job: CompressJob) -> nn.Module:
        return prune_structured(job, self.importance)
