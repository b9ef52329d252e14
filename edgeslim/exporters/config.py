"""The ``export`` section: formats, opset and the parity tolerance against PyTorch."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from edgeslim.config import StrictModel


class ParityCfg(StrictModel):
    max_abs: float = Field(1e-3, gt=0)  # FP32 artifact vs PyTorch
    min_cosine: float = Field(0.999, gt=0, le=1)
    samples: int = Field(32, gt=0)


class ExportCfg(StrictModel):
    formats: list[str] = ["onnx"]
    opset: Optional[int] = Field(None, ge=13)
    include_baseline: bool = True  # also export the uncompressed model, for comparison
    parity: ParityCfg = ParityCfg()
    openvino_weights: Literal["fp32", "fp16"] = "fp32"

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        # the names are checked against the exporter registry where the recipe is composed
        if not v:
            raise ValueError("export.formats is empty")
        return list(dict.fromkeys(v))
