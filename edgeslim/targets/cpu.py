"""The ``cpu`` target: every usable core of this machine, in the artifact's own runtime."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from pydantic import Field

from edgeslim.artifacts import Artifact
from edgeslim.targets.base import Target, register_target, usable_cores
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.profiler import profile_artifact
from edgeslim.targets.runtime_options import LocalRuntimeOptions


class CpuOptions(LocalRuntimeOptions):
    """``threads`` plus the runtime settings of :mod:`edgeslim.targets.runtime_options`."""

    threads: Optional[int] = Field(None, ge=1)  # default: all usable cores


@register_target
class CpuTarget(Target):
    name = "cpu"
    description = "this machine's CPU, all usable cores"
    kind = "cpu"  # runs every format whose runner runs on a CPU
    options = CpuOptions

    def threads(self) -> int:
        return self.opts.threads or usable_cores()

    def runner_options(self, artifact: Artifact) -> dict[str, Any]:
        return self.opts.runner_options(artifact.format)

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        # The same measurement the edge/ssh agent makes, so every target's row reads alike.
        return profile_artifact(artifact, sample, cfg, val, threads=self.threads(), device="cpu",
                                runner_options=self.runner_options(artifact))
