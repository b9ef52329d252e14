"""Targets (where artifacts run) and runners (how each format runs)."""

from edgeslim.targets.base import TARGETS, Target, cpu_info, parse_target, register_target
from edgeslim.targets.runner import RUNNERS, Runner
from edgeslim.targets import ort_runner, cpu  # noqa: E402,F401  (register)
from edgeslim.targets import openvino_runner, tensorrt_runner, gpu  # noqa: E402,F401  (register)
from edgeslim.targets import edge, remote  # noqa: E402,F401  (register)

__all__ = ["TARGETS", "Target", "RUNNERS", "Runner", "parse_target", "register_target", "cpu_info"]
