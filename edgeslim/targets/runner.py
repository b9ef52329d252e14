"""Runners: load an artifact in its runtime and run inference, one class per backend.

As in Polygraphy, the base class owns input checks, load timing and the context-manager
protocol; a backend implements only ``load_impl`` and ``infer_impl``. The profiler times
every runner the same way, so figures are comparable across runtimes by construction.

Example::

    with OrtRunner(artifact, threads=2) as r:
        logits = r.infer(x)      # x: float32 [batch, 3, H, W]
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.registry import Registry


class Runner:
    format: ClassVar[str]
    runtime: ClassVar[str]
    # The kinds of device (cpu, gpu, edge) it runs on: a target runs the formats whose
    # runner lists the target's kind.
    kinds: ClassVar[tuple[str, ...]]

    def __init__(self, artifact: Artifact, *, threads: Optional[int] = None, **options: Any):
        self.artifact = artifact
        self.threads = threads
        self.options = options
        self.load_seconds: Optional[float] = None
        self._loaded = False

    # -- backend hooks
    def load_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def semantics(self) -> dict[str, Any]:
        """Runtime, version, device, threads and the precision actually executed."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- shared behaviour
    def load(self) -> float:
        t0 = time.perf_counter()
        self.load_impl()
        self.load_seconds = time.perf_counter() - t0
        self._loaded = True
        return self.load_seconds

    def infer(self, x: np.ndarray) -> np.ndarray:
        if not self._loaded:
            self.load()
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
            raise TargetError(f"runner input must be a float32 [N,C,H,W] array, got "
                              f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        return self.infer_impl(np.ascontiguousarray(x))

    def __enter__(self) -> "Runner":
        if not self._loaded:
            self.load()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


RUNNERS: Registry[type[Runner]] = Registry("runner")
