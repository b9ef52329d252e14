"""``onnx-bf16``: registered so that asking for it says why there is no such artifact.

ONNX Runtime's CPU execution provider has no bf16 kernels for convolutions and matrix
products (a bf16 graph would fail to load or be cast back to f32 around every op), so a
bf16 ONNX artifact could never execute in bf16 here. Rather than the generic "no bf16
quantizer for onnx", its rows are skipped with this reason; bf16 execution on a CPU is
OpenVINO's (``openvino-bf16``).

Example::

    QUANTIZERS.get("onnx-bf16").available()
    # (False, "ONNX Runtime's CPU execution provider has no bf16 execution ...")
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.quantizers.base import Quantizer, register_quantizer
from edgeslim.quantizers.config import QuantizeCfg

REASON = ("ONNX Runtime's CPU execution provider has no bf16 execution (no bf16 convolution or "
          "matrix-product kernels); bf16 on a CPU is measured as openvino-bf16")


@register_quantizer
class OnnxBf16(Quantizer):
    format = "onnx"
    precision = "bf16"
    description = "not made: ONNX Runtime's CPU provider has no bf16 execution (see openvino-bf16)"

    def available(self) -> tuple[bool, str]:
        return False, REASON

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        raise QuantizeError(f"onnx-bf16: {REASON}")
