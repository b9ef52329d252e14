"""Exporters, each registered by format name in :data:`EXPORTERS`."""

from edgeslim.exporters.base import EXPORTERS, Exporter, register_exporter
from edgeslim.exporters import onnx  # noqa: E402,F401  (registers "onnx")

__all__ = ["EXPORTERS", "Exporter", "register_exporter"]
