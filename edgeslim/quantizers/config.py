"""The ``quantize`` section: precisions, INT8 calibration and accuracy control."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from edgeslim.config import StrictModel


class QuantizeCfg(StrictModel):
    precisions: list[Literal["fp32", "fp16", "bf16", "int8"]] = ["fp32", "fp16", "int8"]
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    symmetric_activations: bool = False  # TensorRT-style symmetric INT8 activations
    # 7-bit INT8 weights (ONNX Runtime's reduce_range): x86 CPUs without VNNI multiply
    # uint8 x int8 with VPMADDUBSW, whose int16 sums saturate at 8 bits; "auto" = on when
    # this CPU has AVX2 but neither AVX-512 VNNI nor AVX-VNNI (it builds for itself).
    reduce_range: Union[bool, Literal["auto"]] = "auto"
    # points of top-1 accuracy; set = accuracy-controlled PTQ (NNCF) on the labelled val split
    max_accuracy_drop: Optional[float] = Field(None, ge=0)
    # INT8 may lose this much accuracy (points) against its FP32 parent before the
    # quantize stage fails; null = record only.
    tolerance_points: Optional[float] = Field(None, ge=0)
    nncf_preset: Literal["performance", "mixed"] = "performance"
    nncf_fast_bias_correction: bool = True
    nncf_subset_size: Optional[int] = Field(None, gt=0)  # calibration images NNCF uses; null = all
