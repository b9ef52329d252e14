"""PyTorch eager runner: the un-exported model, as the reference point of a format table.

Not a registered format runner (a PyTorch module is no deployment artifact); it exists so
the eager baseline is timed by the same profiler code as every runtime.

Example::

    with TorchRunner(None, model=model, device="cpu", threads=2) as r:
        stats = time_infer(r, x, ProfileCfg())
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeslim.errors import TargetError
from edgeslim.targets.runner import Runner


class TorchRunner(Runner):
    """Options: ``model`` (nn.Module, required), ``device`` ("cpu" or "cuda[:N]")."""

    format = "pytorch"
    runtime = "pytorch"
    kinds = ("cpu", "gpu")

    def load_impl(self) -> None:
        import torch

        self.torch = torch
        model = self.options.get("model")
        if model is None:
            raise TargetError("TorchRunner needs model=<nn.Module>")
        self.device = torch.device(self.options.get("device") or "cpu")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise TargetError("cannot run PyTorch on the GPU: no CUDA device")
        if self.device.type == "cpu" and self.threads:
            torch.set_num_threads(int(self.threads))
        self.model = model.eval().to(self.device)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()  # .cpu() synchronizes a CUDA device

    def semantics(self) -> dict[str, Any]:
        import torch

        return {"runtime": "pytorch", "runtime_version": torch.__version__, "mode": "eager",
                "device": str(self.device), "threads": torch.get_num_threads(),
                "precision_executed": "f32", "sync": True}
