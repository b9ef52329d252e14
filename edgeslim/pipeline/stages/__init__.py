"""The stages of a run, one per file, each a :class:`~edgeslim.pipeline.stages.base.Stage`.

``STAGES`` lists them in pipeline order; the runner (:mod:`edgeslim.pipeline.run`) wires
their inputs, and their slices are their cache keys.
"""

from edgeslim.pipeline.stages.base import DataSlice, ModelSpec, Slice, Stage
from edgeslim.pipeline.stages.baseline import BaselineStage
from edgeslim.pipeline.stages.compress import CompressStage
from edgeslim.pipeline.stages.export import ExportStage
from edgeslim.pipeline.stages.finetune import FinetuneStage
from edgeslim.pipeline.stages.profile import ProfileInputs, ProfileStage
from edgeslim.pipeline.stages.quantize import QuantizeStage

STAGES: tuple[Stage, ...] = (BaselineStage(), CompressStage(), FinetuneStage(), ExportStage(),
                             QuantizeStage(), ProfileStage())

__all__ = ["STAGES", "Stage", "Slice", "DataSlice", "ModelSpec", "BaselineStage", "CompressStage",
           "FinetuneStage", "ExportStage", "QuantizeStage", "ProfileStage", "ProfileInputs"]
