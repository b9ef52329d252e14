"""Exporters, each registered by format name in :data:`EXPORTERS`."""

from edgeslim.exporters.base import EXPORTERS, Exporter, register_exporter
from edgeslim.exporters import onnx  # noqa: E402,F401  (registers "onnx")
from edgeslim.exporters import openvino, tensorrt  # noqa: E402,F401  (registers "openvino", "tensorrt")

__all__ = ["EXPORTERS", "Exporter", "register_exporter"]
