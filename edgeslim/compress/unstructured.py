"""Unstructured pruning of a trained model: ``magnitude`` (L1) and ``random_unstructured``.

``compress.ratio`` is the fraction of prunable weights (conv and linear weights, the
classifier excepted) set to zero; ``compress.scope`` ranks them across all layers
(``global``, Han et al. 2015) or removes the same fraction from each layer (``local``).
The pruned weights stay zero through fine-tuning (:class:`~edgeslim.compress.masks.MaskKeeper`).

What this buys: the exported file is just as large and, in a dense runtime (ONNX Runtime,
OpenVINO, TensorRT), just as slow — the zeros are stored and multiplied. It compresses
far better (zip), which is what the report shows next to the dense size.

Example::

    edgeslim run --set compress.method=magnitude --set compress.ratio=0.9 --set compress.scope=global
"""

from __future__ import annotations

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict

from edgeslim.compress.base import CompressJob, register_method
from edgeslim.compress.masks import SparseMethod, apply_masks, check_sparsity, layer_weights, magnitude_masks, score_masks
from edgeslim.compress.pruner import recalibrate_bn


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Unstructured(SparseMethod):
    options = _NoOptions

    def scores(self, layers: dict[str, nn.Module], job: CompressJob) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def apply(self, job: CompressJob) -> nn.Module:
        sparsity = check_sparsity(job.cfg.ratio)
        model = job.model
        layers = self.prunable(model, job)
        masks = score_masks(self.scores(layers, job), sparsity, job.cfg.scope)
        apply_masks(model, masks)
        if job.cfg.bn_recalibration:
            # Removing most weights shrinks activations; stale BN statistics would then
            # hide how much of the accuracy survived before fine-tuning.
            recalibrate_bn(model, job.data.train_loader(job.batch_size, seed=job.seed),
                           job.cfg.recalibration_batches)
        self.record(model, layers, job, masks)
        job.notes["scope"] = job.cfg.scope
        return model


@register_method
class Magnitude(_Unstructured):
    name = "magnitude"
    description = "unstructured: zero the weights of smallest |w| (L1), global or per layer"

    def scores(self, layers, job):
        return {n: w.detach().abs() for n, w in layer_weights(layers).items()}


@register_method
class RandomUnstructured(_Unstructured):
    name = "random_unstructured"
    description = "unstructured: zero a random fraction of weights (the baseline magnitude must beat)"

    def scores(self, layers, job):
        g = torch.Generator().manual_seed(job.seed)
        return {n: torch.rand(m.weight.shape, generator=g) for n, m in layers.items()}


__all__ = ["Magnitude", "RandomUnstructured", "magnitude_masks"]
