"""Data-driven channel scores: statistics of each layer's output feature maps.

HRank (rank of feature maps) and first-order Taylor (activation x gradient) both score a
channel by what it *produces* on real inputs, not by its weights. This module does the
shared part: hook every conv/linear output over a few training batches, reduce each
output to one number per channel, and hand Torch-Pruning a group importance that looks
the scores up by layer name.

Scores are recomputed whenever the model changed (shapes or weights), so iterative
pruning (``steps: n``) scores the model as it is at each step, while the deep copies the
``target_macs`` search prunes reuse the scores of the identical original.

Example::

    def rank_per_channel(out, grad):            # out: [N, C, H, W] -> [C]
        return torch.linalg.matrix_rank(out).float().sum(0)
    imp = LayerScoreImportance(model, lambda m: collect_scores(m, job, rank_per_channel, batches=5))
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp
from torch_pruning.pruner import function

# per_channel(output, grad_or_None) -> per-channel sums over the batch, shape [C]
PerChannel = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
_OUT_FNS = (function.prune_conv_out_channels, function.prune_linear_out_channels)


def model_signature(model: nn.Module) -> tuple:
    """Content key: equal for a model and its deep copy, different once a shape or value changes."""
    with torch.no_grad():
        tensors = list(model.named_parameters()) + list(model.named_buffers())
        shapes = tuple((n, tuple(t.shape)) for n, t in tensors)
        total = sum(float(t.float().sum()) for _, t in tensors if t.is_floating_point())
    return shapes, round(total, 6)


def _identity(model: nn.Module) -> tuple:
    """Cheap check that nothing changed: tensor storage and in-place version counters (an
    optimizer step or a BatchNorm statistics update bumps ``_version``; pruning swaps storage)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)


def collect_scores(model: nn.Module, job, per_channel: PerChannel, *, batches: int,
                   backward: bool = False) -> dict[str, torch.Tensor]:
    """Mean per-channel score of every Conv2d/Linear output over ``batches`` training batches.

    With ``backward`` the task loss is back-propagated and ``per_channel`` also gets the
    gradient of the loss w.r.t. the output. Unlabelled data (synthetic) uses the model's
    own predictions as targets, so the gradient still says what the output depends on.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    sums: dict[str, torch.Tensor] = {}
    count = 0

    def add(name: str, value: Optional[torch.Tensor]) -> None:
        if value is not None:  # None: the criterion does not score this kind of layer
            sums[name] = sums[name] + value if name in sums else value

    def hook(mod, _inp, out, name: str) -> None:
        if backward:
            act = out.detach()
            # a·g is the same before and after an in-place ReLU (g is 0 where it clips),
            # so reading the activation when the gradient arrives is safe.
            out.register_hook(lambda g: add(name, per_channel(act, g.detach())))
        else:
            add(name, per_channel(out.detach(), None))

    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name))
             for name, m in layers.items()]
    was = model.training
    model.eval()  # running BN statistics and no dropout: score the model as it will run
    try:
        loader = job.data.train_loader(job.batch_size, seed=job.seed)
        labelled = getattr(job.data, "labelled", True)
        for x, y in loader:
            if backward:
                with torch.enable_grad():
                    logits = model(x)
                    target = y if labelled else logits.argmax(1).detach()
                    F.cross_entropy(logits, target).backward()
                model.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    model(x)
            count += int(x.shape[0])
            if count >= batches * job.batch_size:
                break
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {n: s / max(1, count) for n, s in sums.items()}


class LayerScoreImportance(tp.importance.GroupMagnitudeImportance):
    """Group importance from per-layer output-channel scores, recomputed when the model changes.

    ``compute(model)`` returns ``{layer name: scores [C]}``; a group's importance is the
    mean over the layers whose output channels it removes, normalized by its mean (as
    Torch-Pruning's magnitude criteria are), so global scope compares like with like.
    """

    def __init__(self, model: nn.Module, compute: Callable[[nn.Module], dict[str, torch.Tensor]]):
        super().__init__(p=1, group_reduction="mean", normalizer="mean")
        self.model = model
        self.compute = compute
        self._signature: tuple | None = None
        self.scores: dict[str, torch.Tensor] = {}

    def _refresh(self) -> None:
        sig = _identity(self.model)  # per group call: must be cheap on a 25M-parameter model
        if sig != self._signature:
            self.scores = self.compute(self.model)
            self._signature = sig
            self._names = {m: n for n, m in self.model.named_modules()}

    @torch.no_grad()
    def __call__(self, group):
        self._refresh()
        imps, roots = [], []
        for i, (dep, idxs) in enumerate(group):
            if dep.handler not in _OUT_FNS:
                continue
            scores = self.scores.get(self._names.get(dep.target.module, ""))
            if scores is None or len(scores) <= max(idxs, default=-1):
                continue
            imps.append(scores[idxs].float())
            roots.append(group[i].root_idxs)
        if not imps:
            return None  # no scored layer produces these channels: the group is not pruned
        return self._normalize(self._reduce(imps, roots), self.normalizer)


class ScoreCache:
    """One-entry cache of computed scores, keyed by the job and the model's signature."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: dict[str, torch.Tensor] = {}

    def get(self, key: tuple, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if key != self._key:
            self._value = compute()
            self._key = key
        return self._value
