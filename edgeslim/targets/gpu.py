"""The ``gpu`` target: an NVIDIA GPU through ONNX Runtime's CUDA/TensorRT providers or TensorRT.

- ``onnx`` artifacts run in ONNX Runtime with ``CUDAExecutionProvider`` (or
  ``TensorrtExecutionProvider`` with ``onnx_provider: tensorrt``); needs onnxruntime-gpu.
- ``tensorrt`` artifacts run as engines (:class:`~edgeslim.targets.tensorrt_runner.TrtRunner`),
  their latency taken with CUDA events around the engine alone; the host-timed latency
  (copies included) is kept as ``host_latency_ms``. Needs tensorrt.
- :func:`profile_torch_eager` times the PyTorch model itself on the GPU: the baseline
  every exported artifact is compared with.

Where no CUDA device is visible (or neither runtime is installed) the target is
unavailable with the reason, and its rows are ``skipped``, never a crash.

Example::

    targets: [cpu, {name: gpu, onnx_provider: tensorrt}]
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.artifacts import Artifact
from edgeslim.backends.onnxruntime import provider_status
from edgeslim.backends.tensorrt import cuda_device_count, tensorrt_installed, tensorrt_status
from edgeslim.errors import TargetError
from edgeslim.targets.base import Target, register_target
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.ort_runner import OrtRunner
from edgeslim.targets.profiler import profile_runner, time_infer
from edgeslim.targets.tensorrt_runner import TrtRunner
from edgeslim.targets.torch_runner import TorchRunner

_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class GpuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: int = Field(0, ge=0)  # CUDA device index
    onnx_provider: Literal["cuda", "tensorrt"] = "cuda"  # ONNX Runtime execution provider


def ort_gpu_status(provider: str = "CUDAExecutionProvider") -> tuple[bool, str]:
    """(True, "") where ONNX Runtime has ``provider``, else (False, reason)."""
    return provider_status(provider)


def _gpu_name(index: int) -> str:
    try:
        import torch

        return torch.cuda.get_device_name(index)
    except Exception:
        return "unknown"


@register_target
class GpuTarget(Target):
    name = "gpu"
    description = "an NVIDIA GPU: ONNX Runtime CUDA/TensorRT providers, TensorRT engines"
    kind = "gpu"  # runs the formats whose runner runs on a GPU: onnx, tensorrt
    options = GpuOptions

    def available(self) -> tuple[bool, str]:
        reasons = []
        if cuda_device_count() <= self.opts.device:
            reasons.append("no CUDA device" if cuda_device_count() == 0
                           else f"no CUDA device {self.opts.device}")
        ort_ok, ort_why = ort_gpu_status(_PROVIDERS[self.opts.onnx_provider])
        trt_ok = tensorrt_installed()
        if not ort_ok and not trt_ok:
            reasons += [ort_why, "tensorrt is not installed"]
        return (not reasons), "; ".join(reasons)

    def runs(self, artifact: Artifact) -> tuple[bool, str]:
        ok, why = super().runs(artifact)
        if not ok:
            return ok, why
        if artifact.format == "onnx":
            return ort_gpu_status(_PROVIDERS[self.opts.onnx_provider])
        return tensorrt_status()

    def _runner(self, artifact: Artifact) -> Any:  # OrtRunner | TrtRunner
        if artifact.format == "tensorrt":
            return TrtRunner(artifact, device=self.opts.device)
        provider = _PROVIDERS[self.opts.onnx_provider]
        return OrtRunner(artifact, threads=None,
                         providers=[(provider, {"device_id": self.opts.device}), "CPUExecutionProvider"])

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        with self._runner(artifact) as runner:
            semantics = runner.semantics()
            if artifact.format == "onnx" and semantics["provider"] != _PROVIDERS[self.opts.onnx_provider]:
                raise TargetError(f"ONNX Runtime fell back to {semantics['provider']} for {artifact.id}")
            measured = profile_runner(runner, sample, cfg, val)
            timer = "time.perf_counter"
            if artifact.format == "tensorrt":
                measured["host_latency_ms"] = measured["latency_ms"]
                measured["latency_ms"] = runner.time_cuda_events(sample[:1], measured["iterations"])
                timer = "cuda events (engine only)"
        semantics.update({"device": f"cuda:{self.opts.device}", "gpu": _gpu_name(self.opts.device),
                          "batch": measured.pop("batch"), "iterations": measured["iterations"],
                          "warmup_iterations": measured["warmup_iterations"],
                          "input_copy_included": timer == "time.perf_counter", "timer": timer})
        return {"status": "ok", "reason": "", **measured, "semantics": semantics}


def profile_torch_eager(model: Any, sample: np.ndarray, cfg: ProfileCfg, *,
                        device: str = "cuda") -> dict[str, Any]:
    """Latency of the PyTorch model itself (eager, FP32) on ``device``: the GPU baseline."""
    with TorchRunner(None, model=model, device=device) as runner:
        stats = time_infer(runner, np.ascontiguousarray(sample[:1]), cfg)
        stats["semantics"] = runner.semantics()
    return stats
