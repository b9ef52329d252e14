"""The ``targets`` entries and the ``profile`` section (how latency is measured)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edgeslim.config import StrictModel


class ProfileCfg(StrictModel):
    warmup: int = Field(10, ge=0)  # warm-up iterations...
    warmup_seconds: float = Field(0.2, ge=0)  # ...and at least this long
    min_iterations: int = Field(20, ge=1)
    # ...and at least this long (bounded by max_seconds): a sub-millisecond model meets the CI
    # after 20 iterations, 5 ms of timing that one stray interrupt can move; measured on the
    # default plan, two builds of one architecture differed by 3-10% between such profiles.
    min_seconds: float = Field(0.5, ge=0)
    max_iterations: int = Field(100_000, ge=1)
    max_seconds: float = Field(3.0, gt=0)  # time budget for the timed loop
    ci_threshold: float = Field(0.02, gt=0)  # stop when the median's 95% CI is within ±2%
    # A fast artifact is timed in this many fresh sessions (runtime loads) and its row is the
    # median session: sub-millisecond ONNX Runtime sessions on 2 threads sometimes settle at
    # about twice their usual latency for the whole session (resnet20 INT8 at 28 px, 2-core
    # EPYC: 1 of 16 sessions at 0.465 ms among 0.18-0.25), which once made two builds of
    # one architecture differ 2.6x in a plan. Only below sessions_below_ms (p50 of the first).
    sessions: int = Field(3, ge=1)
    sessions_below_ms: float = Field(2.0, ge=0)
    batch_sizes: list[int] = [1]  # latency at the first; p50 latency and throughput at each
    # A row is marked noisy when other processes used more than this share of the cores it
    # ran on while it was timed (0..1; see edgeslim.targets.noise).
    noisy_share: float = Field(0.25, ge=0, le=1)
    accuracy: bool = True  # measure the artifact's accuracy on the validation split


class TargetCfg(BaseModel):
    """A deployment target: a registered name (cpu, edge, gpu) or ssh://user@host[:port]."""

    model_config = ConfigDict(extra="allow")
    name: str
