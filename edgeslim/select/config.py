"""The ``constraints`` section: what the deployment allows, used by ``plan``."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator

from edgeslim.config import StrictModel


class ConstraintsCfg(StrictModel):
    latency_ms: Optional[Union[float, dict[str, float]]] = None  # one budget or per target
    latency_percentile: Literal["p50", "p90", "p99"] = "p50"
    max_bytes: Optional[int] = Field(None, gt=0)
    max_accuracy_drop: Optional[float] = None  # points vs the baseline
    retrain: Literal["none", "short", "full"] = "full"
    # Runs of every candidate that trains, at finetune seeds s, s+1, ...: accuracy as mean ± sd,
    # and overlapping intervals are a tie. Not a budget of the device, but of the evidence.
    seeds: int = 1

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"constraints.seeds (--seeds) must be >= 1 run per candidate, got {v}")
        return v

    @field_validator("max_accuracy_drop")
    @classmethod
    def _drop(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and v < 0:
            raise ValueError(f"constraints.max_accuracy_drop must be >= 0, got {v}")
        return v

    @field_validator("latency_ms")
    @classmethod
    def _latency(cls, v):
        values = v.values() if isinstance(v, dict) else [v] if v is not None else []
        for x in values:
            if x <= 0:
                raise ValueError(f"constraints.latency_ms must be > 0, got {x}")
        return v
