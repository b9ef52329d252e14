"""Quantizers, registered as ``<format>-<precision>`` in :data:`QUANTIZERS`."""

from edgeslim.quantizers.base import QUANTIZERS, Quantizer, register_quantizer
from edgeslim.quantizers import onnx_ort  # noqa: E402,F401  (registers onnx-int8, onnx-fp16)
from edgeslim.quantizers import openvino_nncf, openvino_float, tensorrt_onnx  # noqa: E402,F401
from edgeslim.quantizers import onnx_bf16  # noqa: E402,F401  (onnx-bf16: skipped, with the reason)

__all__ = ["QUANTIZERS", "Quantizer", "register_quantizer"]
