"""The ``cpu`` target: every usable core of this machine, in the artifact's own runtime."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.artifacts import Artifact
from edgeslim.targets.base import Target, cpu_info, register_target
from edgeslim.targets.ort_runner import usable_cores
from edgeslim.targets.profiler import profile_runner
from edgeslim.targets.runner import RUNNERS


class CpuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: Optional[int] = Field(None, ge=1)  # default: all usable cores


@register_target
class CpuTarget(Target):
    name = "cpu"
    description = "this machine's CPU, all usable cores"
    options = CpuOptions

    @property
    def formats(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(n for n in RUNNERS.names() if n != "tensorrt")

    def threads(self) -> int:
        return self.opts.threads or usable_cores()

    def runner_options(self, artifact: Artifact) -> dict[str, Any]:
        return {}

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: Any,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        runner_cls = RUNNERS.get(artifact.format)
        with runner_cls(artifact, threads=self.threads(), **self.runner_options(artifact)) as runner:
            measured = profile_runner(runner, sample, cfg, val)
            semantics = runner.semantics()
        semantics.update(cpu_info())
        semantics.update({"device": "cpu", "batch": measured.pop("batch"),
                          "iterations": measured["iterations"],
                          "warmup_iterations": measured["warmup_iterations"],
                          "input_copy_included": True, "timer": "time.perf_counter"})
        return {"status": "ok", "reason": "", **measured, "semantics": semantics}
