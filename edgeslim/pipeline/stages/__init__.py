"""The stages of a run, one per file, each a :class:`~edgeslim.pipeline.stages.base.Stage`.

The runner (:mod:`edgeslim.pipeline.run`) wires their inputs in pipeline order — baseline,
compress, fine-tune, control, export, quantize (and int8-qat, stages/qat.py), profile — and
their slices are their cache keys.
"""

from edgeslim.pipeline.stages.base import DataSlice, ModelSpec, Slice, Stage
from edgeslim.pipeline.stages.baseline import BaselineStage
from edgeslim.pipeline.stages.compress import CompressStage
from edgeslim.pipeline.stages.control import ControlStage
from edgeslim.pipeline.stages.export import ExportStage
from edgeslim.pipeline.stages.finetune import FinetuneStage
from edgeslim.pipeline.stages.profile import ProfileInputs, ProfileStage
from edgeslim.pipeline.stages.qat import QatStage, QatTrainStage
from edgeslim.pipeline.stages.quantize import QuantizeStage

__all__ = ["Stage", "Slice", "DataSlice", "ModelSpec", "BaselineStage", "CompressStage",
           "FinetuneStage", "ControlStage", "ExportStage", "QuantizeStage", "QatTrainStage", "QatStage", "ProfileStage", "ProfileInputs"]
