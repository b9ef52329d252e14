"""ONNX Runtime runner (CPU execution provider by default).

Options: ``providers`` (default CPU), ``graph_optimization`` (all|extended|basic|disabled,
default all), ``spinning`` (bool: ``session.intra_op.allow_spinning``; default ONNX
Runtime's, on). Every one is recorded in :meth:`OrtRunner.semantics`.

Example::

    with OrtRunner(artifact, threads=2, spinning=False) as r:
        r.infer(x)
        r.semantics()["spinning"]   # False
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeslim.errors import TargetError, first_line
from edgeslim.targets.base import usable_cores
from edgeslim.targets.runner import RUNNERS, Runner

__all__ = ["OrtRunner", "OPTIMIZATION_LEVELS", "usable_cores"]

_LEVEL_NAMES = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                "disabled": "ORT_DISABLE_ALL"}
OPTIMIZATION_LEVELS = tuple(_LEVEL_NAMES)
_SPINNING = "session.intra_op.allow_spinning"


class OrtRunner(Runner):
    format = "onnx"
    runtime = "onnxruntime"
    kinds = ("cpu", "edge", "gpu")  # the gpu target passes CUDA/TensorRT providers

    def load_impl(self) -> None:
        import onnxruntime as ort

        level = str(self.options.get("graph_optimization") or "all")
        if level not in OPTIMIZATION_LEVELS:
            raise TargetError(f"ONNX Runtime graph optimization must be one of {', '.join(OPTIMIZATION_LEVELS)}, "
                              f"got '{level}'")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads or usable_cores()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVEL_NAMES[level])
        so.log_severity_level = 3
        # ONNX Runtime spins its pool threads between ops unless told not to
        self._spinning = True if self.options.get("spinning") is None else bool(self.options["spinning"])
        if self.options.get("spinning") is not None:
            so.add_session_config_entry(_SPINNING, "1" if self._spinning else "0")
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.artifact.path), so, providers=providers)
        except Exception as err:
            raise TargetError(f"ONNX Runtime cannot load {self.artifact.path}: {first_line(err)}") from None
        self.input_name = self.session.get_inputs()[0].name
        self._threads = so.intra_op_num_threads
        self._level = level

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def semantics(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "runtime": "onnxruntime",
            "runtime_version": ort.__version__,
            "provider": self.session.get_providers()[0],
            "threads": self._threads,
            # ORT's CPU provider runs FP16 graphs by casting to FP32 where it lacks kernels,
            # so what executed is what the artifact declares only for fp32/int8.
            "precision_executed": self.artifact.precision,
            # the layers an INT8 QDQ graph leaves in float run f32: the CPU provider has no bf16
            "inference_precision": "f32",
            "graph_optimization": self._level,
            "spinning": self._spinning,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "sync": True,
        }


RUNNERS.register("onnx", OrtRunner)
