"""Weight masks shared by every unstructured method (magnitude, imp, snip, grasp, synflow).

A mask is a boolean tensor per prunable layer (True = the weight survives), keyed by the
layer's qualified name. Masks never live inside the model: pruning multiplies them into
the weights, so a pruned model is an ordinary dense model whose pruned weights are
exactly zero — nothing to fold at export, and no ``weight_mask`` parameters to strip.
Fine-tuning keeps the zeros at zero with :class:`MaskKeeper`, which re-applies the masks
after every optimizer step; :func:`masks_from_zeros` rebuilds the masks of a saved model
from its zeros, so no extra state travels between pipeline stages.

Example::

    layers = prunable_layers(model, num_classes=10)
    masks = magnitude_masks(layer_weights(layers), sparsity=0.9, scope="global")
    apply_masks(model, masks)                 # 90% of the prunable weights are now 0
    keep = MaskKeeper(masks_from_zeros(model))
    train(model, data, spec, after_step=keep)  # and stay 0
"""

from __future__ import annotations

from typing import Callable, ClassVar, Optional

import torch
import torch.nn as nn

from edgeslim.compress.base import CompressJob, Method
from edgeslim.errors import CompressionError
from edgeslim.compress.pruner import classifier_layers
from edgeslim.registry import suggest

Masks = dict[str, torch.Tensor]
_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module, *, num_classes: int | None = None,
                    ignored: list[str] | tuple[str, ...] = (),
                    include_classifier: bool = False) -> dict[str, nn.Module]:
    """Conv and linear layers whose weights may be masked, by qualified name.

    The classifier (the last Linear, or the layer producing ``num_classes`` outputs) is
    left dense by default: it is a tiny share of the weights and pruning it costs the most
    accuracy per weight.
    """
    modules = dict(model.named_modules())
    for name in ignored:
        if name not in modules:
            raise CompressionError(f"compress.ignored_layers: no layer named '{name}'{suggest(name, list(modules))}")
    heads = set() if include_classifier else {id(m) for m in classifier_layers(model, num_classes)}
    out = {n: m for n, m in modules.items()
           if isinstance(m, _PRUNABLE) and id(m) not in heads and n not in ignored}
    if not out:
        raise CompressionError("the model has no conv or linear layer left to prune "
                               "(all are ignored or the classifier)")
    return out


def layer_weights(layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {n: m.weight for n, m in layers.items()}


def check_sparsity(sparsity: float, what: str = "compress.ratio") -> float:
    if not 0.0 <= float(sparsity) < 1.0:
        raise CompressionError(f"{what} (the fraction of weights removed) must be in [0, 1), got {sparsity}; "
                               "1.0 would remove every weight")
    return float(sparsity)


def _keep_top(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """A boolean mask keeping exactly ``n_keep`` of the highest scores (ties by position)."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    if n_keep > 0:
        mask[torch.topk(scores.reshape(-1), n_keep, sorted=False).indices] = True
    return mask.reshape(scores.shape)


def score_masks(scores: dict[str, torch.Tensor], sparsity: float, scope: str = "global",
                previous: Masks | None = None) -> Masks:
    """Keep the highest-scoring weights so that exactly ``sparsity`` of them are removed.

    ``scope="global"`` ranks all layers together; ``"local"`` removes the same fraction in
    each layer. Weights already pruned in ``previous`` stay pruned (iterative pruning).
    Layers are never emptied under ``local``; under ``global`` they may be (reported by
    :func:`empty_layers`), as in the papers.
    """
    check_sparsity(sparsity)
    prepared = {}
    for name, s in scores.items():
        s = s.detach().to(torch.float64).reshape(-1).clone()
        s[torch.isnan(s)] = -float("inf")
        if previous is not None and name in previous:
            s[~previous[name].reshape(-1)] = -float("inf")
        prepared[name] = s
    if scope == "global":
        flat = torch.cat(list(prepared.values()))
        keep = _keep_top(flat, int(round((1.0 - sparsity) * flat.numel())))
        out, start = {}, 0
        for name, s in prepared.items():
            out[name] = keep[start:start + s.numel()].reshape(scores[name].shape)
            start += s.numel()
        return out
    if scope != "local":
        raise CompressionError(f"compress.scope must be 'global' or 'local', got {scope!r}")
    return {name: _keep_top(s, max(1, int(round((1.0 - sparsity) * s.numel())))).reshape(scores[name].shape)
            for name, s in prepared.items()}


def magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float, scope: str = "global",
                    previous: Masks | None = None) -> Masks:
    """Masks removing the ``sparsity`` fraction of weights with the smallest |w| (L1)."""
    return score_masks({n: w.detach().abs() for n, w in weights.items()}, sparsity, scope, previous)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Zero the masked weights of ``model`` in place; returns the model."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        w = modules[name].weight
        w.mul_(mask.to(device=w.device, dtype=w.dtype))
    return model


def masks_from_zeros(model: nn.Module) -> Masks:
    """The masks of an already-pruned model: every conv/linear weight that is exactly 0.

    Layers without any zero are left out, so a dense model gives no masks.
    """
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, _PRUNABLE):
            nz = m.weight.detach() != 0
            if not bool(nz.all()):
                out[name] = nz.cpu()
    return out


class MaskKeeper:
    """``after_step`` hook: re-apply fixed masks so pruned weights stay exactly zero.

    Example::

        train(model, data, spec, after_step=MaskKeeper(masks))
    """

    def __init__(self, masks: Masks):
        self.masks = masks
        self._cache: tuple[tuple[int, str], list[tuple[nn.Parameter, torch.Tensor]]] | None = None

    def _pairs(self, model: nn.Module) -> list[tuple[nn.Parameter, torch.Tensor]]:
        # keyed by the device too: train() moves the model to its placement and back
        where = (id(model), str(next(model.parameters()).device))
        if self._cache is None or self._cache[0] != where:
            modules = dict(model.named_modules())
            pairs = []
            for name, mask in self.masks.items():
                w = modules[name].weight
                pairs.append((w, mask.to(device=w.device, dtype=w.dtype)))
            self._cache = (where, pairs)
        return self._cache[1]

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        for w, mask in self._pairs(model):
            w.mul_(mask)


def sparsity_of(model: nn.Module, names: list[str] | None = None) -> float:
    """Fraction of exactly-zero weights over ``names`` (default: every conv/linear layer)."""
    modules = dict(model.named_modules())
    names = names if names is not None else [n for n, m in modules.items() if isinstance(m, _PRUNABLE)]
    zeros = total = 0
    for n in names:
        w = modules[n].weight
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / max(1, total)


def layer_sparsity(model: nn.Module, names: list[str]) -> dict[str, float]:
    modules = dict(model.named_modules())
    return {n: round(float((modules[n].weight == 0).float().mean()), 4) for n in names}


def empty_layers(masks: Masks) -> list[str]:
    """Layers whose every weight is pruned: the network is cut there (layer collapse)."""
    return [n for n, m in masks.items() if not bool(m.any())]


def fold_masks(model: nn.Module) -> nn.Module:
    """Make the masks permanent for export.

    edgeslim's own methods already store pruned weights as zeros, so this only removes
    ``torch.nn.utils.prune`` re-parametrizations (``weight_orig`` × ``weight_mask``) that
    a user-supplied model may carry, leaving plain ``weight`` tensors with the zeros in.
    """
    from torch.nn.utils import prune

    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
    return model


class SparseMethod(Method):
    """Base of the unstructured methods: masks on weights, kept through fine-tuning."""

    family: ClassVar[str] = "unstructured"

    def prunable(self, model: nn.Module, job: CompressJob) -> dict[str, nn.Module]:
        return prunable_layers(model, num_classes=job.spec.get("num_classes"),
                               ignored=list(job.cfg.ignored_layers))

    def after_step(self, model: nn.Module) -> Optional[Callable[[nn.Module], None]]:
        # The masks are the zeros the compress stage left: no state beyond the weights.
        masks = masks_from_zeros(model)
        return MaskKeeper(masks) if masks else None

    def record(self, model: nn.Module, layers: dict[str, nn.Module], job: CompressJob,
               masks: Masks | None = None) -> None:
        """Facts for the compression report: sparsity reached, per layer and overall."""
        names = list(layers)
        job.notes["sparsity"] = round(sparsity_of(model, names), 6)
        job.notes["prunable_weights"] = int(sum(layers[n].weight.numel() for n in names))
        job.notes["layer_sparsity"] = layer_sparsity(model, names)
        collapsed = empty_layers(masks) if masks else []
        if collapsed:
            job.notes["empty_layers"] = collapsed
            job.log(f"{self.name}: every weight of {len(collapsed)} layer(s) was pruned: {', '.join(collapsed[:5])}")
