"""Filter-norm magnitude criteria (Li et al. 2017, "Pruning Filters for Efficient ConvNets").

A channel's importance is the L1 or L2 norm of the weights that produce it, summed over
every layer coupled to it in the dependency graph.
"""

from __future__ import annotations

import torch_pruning as tp

from edgeslim.compress.base import register_method
from edgeslim.compress.pruner import StructuredMethod


@register_method
class L1Norm(StructuredMethod):
    name = "l1"
    description = "structured: remove channels with the smallest L1 filter norm"

    def importance(self, model, job):
        return tp.importance.MagnitudeImportance(p=1)


@register_method
class L2Norm(StructuredMethod):
    name = "l2"
    description = "structured: remove channels with the smallest L2 filter norm"

    def importance(self, model, job):
        return tp.importance.MagnitudeImportance(p=2)
