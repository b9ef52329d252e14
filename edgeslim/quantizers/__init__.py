"""Quantizers, registered as ``<format>-<precision>`` in :data:`QUANTIZERS`."""

from edgeslim.quantizers.base import QUANTIZERS, Quantizer, register_quantizer
from edgeslim.quantizers import onnx_ort  # noqa: E402,F401  (registers onnx-int8, onnx-fp16)
from edgeslim.quantizers import openvino_nncf, openvino_float, tensorrt_onnx  # noqa: E402,F401

__all__ = ["QUANTIZERS", "Quantizer", "register_quantizer"]
