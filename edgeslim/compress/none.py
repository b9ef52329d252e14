"""``none``: keep the model as it is, to only export and quantize it.

"Just export and quantize my model" is a method like any other, so the pipeline needs no
special path: the compress stage saves the model unchanged (same parameters, same MACs,
no BN re-estimation), and the rest of a run treats it as the compressed variant. Two
consequences, decided here once:

- Fine-tuning an unchanged model would be plain extra training, not recovery, so the
  fine-tune stage trains 0 epochs (and no distillation) under ``none``
  (``FinetuneStage.slice``); it still evaluates and saves the model.
- The compressed variant then *is* the baseline, so the run exports it once: with
  ``export.include_baseline`` the matrix leaves the baseline variant out
  (:func:`edgeslim.pipeline.matrix.variants`) instead of exporting the same model twice.

``compress.ratio`` and the other pruning options are accepted and ignored.

Example::

    edgeslim run --set compress.method=none      # export + quantize + profile the model
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn as nn

from edgeslim.compress.base import CompressJob, Method, register_method

if TYPE_CHECKING:  # annotations only, as in base.py (config imports the registry)
    from edgeslim.compress.config import CompressCfg


@register_method
class NoCompression(Method):
    name = "none"
    description = "none: keep the model unchanged (export and quantize only; no fine-tuning)"
    family = "none"

    def apply(self, job: CompressJob) -> nn.Module:
        job.notes["unchanged"] = True
        return job.model

    def schedules(self, cfg: "CompressCfg") -> tuple[str, ...]:
        # compress.steps > 1 would fine-tune between steps of a method that removes nothing
        return ()
