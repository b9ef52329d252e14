"""The ``cpu`` target: every usable core of this machine, in the artifact's own runtime."""

from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeslim.artifacts import Artifact
from edgeslim.backends.openvino import capabilities, supports
from edgeslim.targets.base import Target, register_target, usable_cores
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.profiler import profile_artifact


class CpuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: Optional[int] = Field(None, ge=1)  # default: all usable cores
    # OpenVINO inference precision for every openvino artifact; default: the artifact's own
    openvino_precision: Optional[Literal["f32", "bf16", "f16"]] = None

    @field_validator("openvino_precision")
    @classmethod
    def _device_has_it(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not supports(v):
            raise ValueError(f"OpenVINO CPU cannot run inference precision {v} on this machine "
                             f"(it supports {', '.join(capabilities()) or 'nothing'})")
        return v


@register_target
class CpuTarget(Target):
    name = "cpu"
    description = "this machine's CPU, all usable cores"
    kind = "cpu"  # runs every format whose runner runs on a CPU
    options = CpuOptions

    def threads(self) -> int:
        return self.opts.threads or usable_cores()

    def runner_options(self, artifact: Artifact) -> dict[str, Any]:
        if artifact.format == "openvino" and getattr(self.opts, "openvino_precision", None):
            return {"inference_precision": self.opts.openvino_precision}
        return {}

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        # The same measurement the edge/ssh agent makes, so every target's row reads alike.
        return profile_artifact(artifact, sample, cfg, val, threads=self.threads(), device="cpu",
                                runner_options=self.runner_options(artifact))
