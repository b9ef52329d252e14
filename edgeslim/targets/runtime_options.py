"""Runtime settings a CPU-like target (``cpu``, ``edge``, ``ssh://``) passes to its runners.

The defaults are the settings measured fastest on a 2-core AVX-512 host
(``benchmarks/runtime_settings.py`` compares them in interleaved rounds; rerun it on a new
kind of machine). Every setting is recorded in each row's ``semantics``, and each can be
overridden per target in the recipe::

    targets:
      - {name: cpu, ort_spinning: false, openvino_hint: THROUGHPUT}
      - {name: edge, openvino_precision: f32}

``openvino_precision: auto`` runs each OpenVINO artifact in its own precision, except that
the floating-point layers an INT8 IR keeps run at the device's fastest precision (bf16 on a
CPU listing BF16, as OpenVINO itself would); ``f32``/``bf16``/``f16`` force one precision on
every OpenVINO artifact (on ``cpu`` and ``edge`` a precision this CPU lacks is a recipe
error; an ``ssh://`` device answers for itself with a failed row). Export parity and quantizer checks never read these options: they
run f32.

Example::

    RuntimeOptions(ort_spinning=False).runner_options("onnx")
    # {'graph_optimization': 'all', 'spinning': False}
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeslim.backends.openvino import capabilities, supports

OvPrecision = Literal["auto", "f32", "bf16", "f16"]


class RuntimeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # OpenVINO inference precision; auto: the artifact's own, INT8's float layers at the fastest
    openvino_precision: Optional[OvPrecision] = "auto"
    openvino_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"  # PERFORMANCE_HINT
    openvino_streams: Optional[int] = Field(None, ge=1)  # NUM_STREAMS; default: the hint's (1 for LATENCY)
    openvino_pinning: Optional[bool] = None  # ENABLE_CPU_PINNING; default: OpenVINO's own choice
    # ONNX Runtime graph optimization level
    ort_optimization: Literal["all", "extended", "basic", "disabled"] = "all"
    # session.intra_op.allow_spinning: pool threads spin between ops; default: ONNX Runtime's (on)
    ort_spinning: Optional[bool] = None

    def runner_options(self, fmt: str) -> dict[str, Any]:
        """The options the ``fmt`` runner takes from this target."""
        if fmt == "openvino":
            out: dict[str, Any] = {"inference_precision": self.openvino_precision or "auto",
                                   "performance_hint": self.openvino_hint}
            if self.openvino_streams is not None:
                out["streams"] = self.openvino_streams
            if self.openvino_pinning is not None:
                out["pinning"] = self.openvino_pinning
            return out
        if fmt == "onnx":
            out = {"graph_optimization": self.ort_optimization}
            if self.ort_spinning is not None:
                out["spinning"] = self.ort_spinning
            return out
        return {}


class LocalRuntimeOptions(RuntimeOptions):
    """For targets on this machine (``cpu``, ``edge``): a precision its CPU lacks is a recipe error."""

    @field_validator("openvino_precision")
    @classmethod
    def _device_has_it(cls, v: Optional[str]) -> Optional[str]:
        if v not in (None, "auto") and not supports(v):
            raise ValueError(f"OpenVINO CPU cannot run inference precision {v} on this machine "
                             f"(it supports {', '.join(capabilities()) or 'nothing'})")
        return v
