"""ONNX Runtime runner (CPU execution provider by default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeslim.errors import TargetError, first_line
from edgeslim.targets.base import usable_cores
from edgeslim.targets.runner import RUNNERS, Runner

__all__ = ["OrtRunner", "usable_cores"]


class OrtRunner(Runner):
    format = "onnx"
    runtime = "onnxruntime"
    kinds = ("cpu", "edge", "gpu")  # the gpu target passes CUDA/TensorRT providers

    def load_impl(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads or usable_cores()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.artifact.path), so, providers=providers)
        except Exception as err:
            raise TargetError(f"ONNX Runtime cannot load {self.artifact.path}: {first_line(err)}") from None
        self.input_name = self.session.get_inputs()[0].name
        self._threads = so.intra_op_num_threads

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
            "graph_optimization": "all",
            "sync": True,
        }


RUNNERS.register("onnx", OrtRunner)
