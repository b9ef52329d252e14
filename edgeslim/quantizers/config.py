"""The ``quantize`` section: precisions, INT8 calibration and accuracy control."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from edgeslim.config import StrictModel
from edgeslim.quantizers.qat import QatCfg


class SensitivityCfg(StrictModel):
    """``quantize.sensitivity``: per-layer INT8 sensitivity, written as ``sensitivity.json``."""

    enabled: bool = False
    # the first this many val images: each quantizable layer is quantized alone and scored on
    # them, so the cost is (layers + 2) evaluations of this many images
    samples: int = Field(512, gt=0)


class QuantizeCfg(StrictModel):
    # int8-qat: quantization-aware training (edgeslim/quantizers/qat.py), trained per variant
    precisions: list[Literal["fp32", "fp16", "bf16", "int8", "int8-qat"]] = ["fp32", "fp16", "int8"]
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    symmetric_activations: bool = False  # TensorRT-style symmetric INT8 activations
    # 7-bit INT8 weights (ONNX Runtime's reduce_range): x86 CPUs without VNNI multiply
    # uint8 x int8 with VPMADDUBSW, whose int16 sums saturate at 8 bits; "auto" = on when
    # this CPU has AVX2 but neither AVX-512 VNNI nor AVX-VNNI (it builds for itself).
    reduce_range: Union[bool, Literal["auto"]] = "auto"
    # points of top-1 accuracy; set = accuracy-controlled PTQ on the labelled val split (NNCF for
    # OpenVINO; for ONNX Runtime the most sensitive layers stay FP32 one by one, see fallback.py)
    max_accuracy_drop: Optional[float] = Field(None, ge=0)
    # a quantized artifact may lose this much top-1 (points) against its FP32 parent on the
    # labelled val split before its quantize stage fails (a gate); null = no check
    tolerance_points: Optional[float] = Field(None, ge=0)
    nncf_preset: Literal["performance", "mixed"] = "performance"
    nncf_fast_bias_correction: bool = True
    nncf_subset_size: Optional[int] = Field(None, gt=0)  # calibration images NNCF uses; null = all
    sensitivity: SensitivityCfg = SensitivityCfg()
    qat: QatCfg = QatCfg()  # how int8-qat trains (epochs, lr, distillation)
