"""HRank (Lin et al. 2020, "HRank: Filter Pruning using High-Rank Feature Map", CVPR).

A channel whose output feature maps have low matrix rank carries little information, and
the rank of a channel's maps is nearly the same whatever the input, so a few calibration
batches are enough to estimate it. A channel's importance is the average rank of its
output maps over ``hrank_batches`` training batches; the lowest ranks are pruned, per
layer (``scope: local``, the paper's setting).

Ranks are of each conv's output (before BatchNorm, which scales a channel and so keeps its
rank). Ties between equal ranks are broken by mean |activation| (a tiny addend that never
reorders different ranks). Linear layers have no 2-D maps and are not scored, so the
groups they root are left unpruned.

Example::

    edgeslim run --set compress.method=hrank --set compress.hrank_batches=5
"""

from __future__ import annotations

from typing import Optional

import torch
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.compress.base import register_method
from edgeslim.compress.feature_maps import LayerScoreImportance, ScoreCache, collect_scores, model_signature
from edgeslim.compress.pruner import StructuredMethod


class HRankOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hrank_batches: int = Field(5, ge=1)  # calibration batches whose feature-map ranks are averaged


def rank_per_channel(out: torch.Tensor, _grad: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """Sum over the batch of each channel's feature-map rank, plus a < 1e-3 tie-break."""
    if out.dim() != 4:
        return None
    maps = out.float()
    ranks = torch.linalg.matrix_rank(maps).float()  # [N, C]
    mag = maps.abs().mean((2, 3))  # [N, C]
    tie = 1e-3 * mag / (mag.max(1, keepdim=True).values + 1e-12)
    return (ranks + tie).sum(0)


@register_method
class HRank(StructuredMethod):
    name = "hrank"
    description = "structured: remove channels whose output feature maps have the lowest average rank (HRank)"
    options = HRankOptions

    def importance(self, model, job):
        batches = (job.options or HRankOptions()).hrank_batches

        def compute(m):
            # per job: every trial of a MAC-target search scores the same model once
            cache = job.cache.setdefault(self.name, ScoreCache())
            return cache.get((batches, model_signature(m)), lambda: collect_scores(m, job, rank_per_channel, batches=batches))

        return LayerScoreImportance(model, compute)
