"""ONNX Runtime: its version and execution providers.

Example::

    ok, why = provider_status("CUDAExecutionProvider")   # (False, "onnxruntime-gpu is not installed")
"""

from __future__ import annotations


def version() -> str:
    import onnxruntime as ort

    return ort.__version__


def provider_status(provider: str = "CUDAExecutionProvider") -> tuple[bool, str]:
    """(True, "") where this ONNX Runtime build has ``provider``, else (False, reason)."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return False, "onnxruntime-gpu is not installed"
    return True, ""
