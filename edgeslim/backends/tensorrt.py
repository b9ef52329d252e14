"""TensorRT and CUDA: the lazy import, whether engines can run here, the logger, the flags.

TensorRT is optional: nothing here imports it at module level, and
:func:`tensorrt_status` says why it is unavailable ("tensorrt is not installed", "no
CUDA device") instead of crashing. The exporter builds engines, the runner runs them and
the quantizers rebuild them at lower precision, all through these functions.

Example::

    ok, why = tensorrt_status()
    trt = import_tensorrt(TargetError)   # or one TargetError line without TensorRT
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.errors import EdgeslimError, ExportError


def import_tensorrt(error: type[EdgeslimError] = ExportError) -> Any:
    """``import tensorrt``, or one clear error line when it is not installed."""
    try:
        import tensorrt as trt
    except ImportError:
        raise error("tensorrt is not installed (pip install 'edgeslim[tensorrt]')") from None
    return trt


def cuda_device_count() -> int:
    """CUDA GPUs visible here (torch's view, else the NVIDIA driver's /proc listing)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except Exception:
        pass
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def tensorrt_installed() -> bool:
    """Whether ``import tensorrt`` would find a module, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):  # a finder refusing it, or a broken stub in sys.modules
        return False


def tensorrt_status() -> tuple[bool, str]:
    """(True, "") where engines can be built and run here, else (False, reason)."""
    if not tensorrt_installed():
        return False, "tensorrt is not installed"
    if cuda_device_count() == 0:
        return False, "no CUDA device"
    try:
        import torch

        if not torch.cuda.is_available():  # TensorRT runs through torch's CUDA tensors here
            return False, "torch has no CUDA support (a CPU-only build)"
    except Exception:
        return False, "torch has no CUDA support"
    return True, ""


def logger(trt: Any) -> Any:
    """TensorRT's logger at ERROR: its INFO/WARNING lines would flood the pipeline's output."""
    return trt.Logger(trt.Logger.ERROR)


def strongly_typed_flag(trt: Any) -> int | None:
    """The network-creation bit for strong typing, or None on a TensorRT without it (8.x)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return None if flag is None else 1 << int(flag)
