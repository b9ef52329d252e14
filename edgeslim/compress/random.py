"""Random channel selection: the baseline every criterion has to beat.

Channels are ranked by seeded uniform noise (the recipe's seed), so a run is reproducible
and a benchmark can ask how far each real criterion is above chance.

Example::

    edgeslim run --set compress.method=random
"""

from __future__ import annotations

import torch
import torch_pruning as tp

from edgeslim.compress.base import register_method
from edgeslim.compress.pruner import StructuredMethod


class SeededRandomImportance(tp.importance.Importance):
    """Uniform random scores from a generator seeded once, so group order fixes the draw."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def __call__(self, group):
        _, idxs = group[0]
        return torch.rand(len(idxs), generator=self.generator)


@register_method
class RandomChannels(StructuredMethod):
    name = "random"
    description = "structured: remove randomly chosen channels (seeded; the baseline to beat)"

    def importance(self, model, job):
        return SeededRandomImportance(job.seed)
