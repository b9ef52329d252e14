"""First-order Taylor importance (Molchanov et al. 2017, "Pruning Convolutional Neural
Networks for Resource Efficient Inference", ICLR).

Removing a channel sets its activation ``a`` to zero; to first order the loss changes by
``|mean over positions of a * dL/da|``. That is averaged over the images of
``taylor_batches`` training batches (one forward and backward pass each) and normalized
per group, so channels the loss does not depend on are removed first. Unlabelled data
(synthetic) back-propagates the loss against the model's own predictions.

Example::

    edgeslim run --set compress.method=taylor --set compress.taylor_batches=4
"""

from __future__ import annotations

from typing import Optional

import torch
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.compress.base import register_method
from edgeslim.compress.feature_maps import LayerScoreImportance, ScoreCache, collect_scores, model_signature
from edgeslim.compress.pruner import StructuredMethod


class TaylorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    taylor_batches: int = Field(4, ge=1)  # training batches with forward + backward


def taylor_per_channel(act: torch.Tensor, grad: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Sum over the batch of |spatial mean of activation x gradient| per channel."""
    if grad is None:
        return None
    prod = act.float() * grad.float()
    per_image = prod.mean(tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
    return per_image.abs().sum(0)


@register_method
class Taylor(StructuredMethod):
    name = "taylor"
    description = "structured: remove channels with the smallest first-order Taylor score |activation x gradient|"
    options = TaylorOptions

    def importance(self, model, job):
        batches = (job.options or TaylorOptions()).taylor_batches

        def compute(m):
            # per job: every trial of a MAC-target search scores the same model once
            cache = job.cache.setdefault(self.name, ScoreCache())
            return cache.get((batches, model_signature(m)), lambda: collect_scores(m, job, taylor_per_channel,
                                                               batches=batches, backward=True))

        return LayerScoreImportance(model, compute)
