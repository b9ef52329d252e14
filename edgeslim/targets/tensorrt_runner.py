"""TensorRT runner: a serialized engine executed on the GPU, timed with CUDA events.

Device buffers are torch CUDA tensors (torch is a core dependency; no pycuda). A plan file
only loads in the TensorRT version and on the GPU family it was built for;
``deserialize_cuda_engine`` then returns None, which becomes one clear TargetError.

Example::

    with TrtRunner(artifact) as r:
        logits = r.infer(x)                          # host in, host out (copies included)
        stats = r.time_cuda_events(x[:1], iterations=200)   # GPU time of the engine alone
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeslim.backends.tensorrt import cuda_device_count, import_tensorrt, logger
from edgeslim.errors import TargetError
from edgeslim.targets.runner import RUNNERS, Runner


class TrtRunner(Runner):
    """Options: ``device`` (CUDA device index, default 0)."""

    format = "tensorrt"
    runtime = "tensorrt"
    kinds = ("gpu",)

    def load_impl(self) -> None:
        path = self.artifact.path
        if not path.is_file():
            raise TargetError(f"TensorRT engine file not found: {path}")
        trt = import_tensorrt(TargetError)
        import torch

        if cuda_device_count() == 0 or not torch.cuda.is_available():
            raise TargetError(f"cannot run TensorRT engine {path.name}: no CUDA device")
        self.torch = torch
        self.dev = torch.device("cuda", int(self.options.get("device") or 0))
        torch.cuda.set_device(self.dev)
        self.trt_runtime = trt.Runtime(logger(trt))
        self.engine = self.trt_runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise TargetError(f"TensorRT {trt.__version__} cannot load engine {path}: it was built for "
                              f"another TensorRT version or GPU, or the file is corrupt; rebuild it here")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        if len(ins) != 1 or not outs:
            raise TargetError(f"TensorRT engine {path.name} must have one input and an output, "
                              f"has inputs {ins} and outputs {outs}")
        self.input_name, self.output_name = ins[0], outs[0]
        self.dtypes = {n: self._torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.stream = torch.cuda.Stream(self.dev)
        self.trt_version = trt.__version__

    def _torch_dtype(self, trt: Any, dt: Any) -> Any:
        return self.torch.from_numpy(np.empty(0, dtype=trt.nptype(dt))).dtype

    def _enqueue(self, xt: Any) -> Any:
        """Bind ``xt`` (on the GPU) and an output buffer, launch on the stream; returns the output."""
        self.context.set_input_shape(self.input_name, tuple(xt.shape))
        out = self.torch.empty(tuple(self.context.get_tensor_shape(self.output_name)),
                               dtype=self.dtypes[self.output_name], device=self.dev)
        self.context.set_tensor_address(self.input_name, xt.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TargetError(f"TensorRT failed to execute {self.artifact.path.name} on input {tuple(xt.shape)}")
        return out

    def _to_device(self, x: np.ndarray) -> Any:
        with self.torch.cuda.stream(self.stream):
            return self.torch.from_numpy(x).to(self.dev, dtype=self.dtypes[self.input_name])

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        xt = self._to_device(x)
        with self.torch.cuda.stream(self.stream):  # buffers allocated for the engine's stream
            out = self._enqueue(xt)
        self.stream.synchronize()
        return out.float().cpu().numpy()

    def time_cuda_events(self, x: np.ndarray, iterations: int) -> dict[str, float]:
        """Per-iteration GPU time (ms) of the engine alone, input already on the device."""
        xt = self._to_device(x)
        times = []
        for _ in range(max(1, iterations)):
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            with self.torch.cuda.stream(self.stream):
                self._enqueue(xt)
            end.record(self.stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
        ms = np.asarray(times)
        return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "std": float(ms.std()),
                "min": float(ms.min())}

    def semantics(self) -> dict[str, Any]:
        return {
            "runtime": "tensorrt",
            "runtime_version": self.trt_version,
            "device_name": self.torch.cuda.get_device_name(self.dev),
            "cuda_device": self.dev.index,
            # strongly typed: the engine runs the precisions its ONNX declares
            "precision_executed": self.artifact.precision,
            "strongly_typed": self.artifact.info.get("strongly_typed"),
            "threads": 1,
            "sync": True,
        }

    def close(self) -> None:
        for name in ("context", "engine", "trt_runtime"):
            if hasattr(self, name):
                delattr(self, name)


RUNNERS.register("tensorrt", TrtRunner)
