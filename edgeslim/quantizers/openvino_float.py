"""OpenVINO FP16 and BF16 artifacts from the FP32 IR.

- ``openvino-fp16``: the IR with weights stored in FP16 (half the bytes). OpenVINO runs it
  at f16 where the device computes in FP16 and otherwise decompresses the weights and runs
  f32; the runner records which.
- ``openvino-bf16``: bf16 is a runtime inference precision, not a file format: the artifact
  is the FP32 IR (same weights) marked for bf16, and the runner compiles it with
  ``INFERENCE_PRECISION_HINT=bf16``. Unavailable where the CPU has no bf16 arithmetic, so
  its rows are skipped with the reason instead of silently measuring f32.

Example::

    art = QUANTIZERS.get("openvino-bf16").quantize(ir, None, out_dir, cfg=QuantizeCfg())
    art.precision   # "bf16"
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.backends.openvino import capabilities, check_ir, core, supports
from edgeslim.errors import QuantizeError
from edgeslim.quantizers.base import Quantizer, register_quantizer
from edgeslim.quantizers.config import QuantizeCfg


def _resave(parent: Artifact, out_dir: Path, precision: str, *, fp16_weights: bool) -> Artifact:
    import openvino as ov

    if parent.format != "openvino":
        raise QuantizeError(f"openvino-{precision} converts OpenVINO IR, got a {parent.format} artifact")
    check_ir(parent.path, error=QuantizeError)
    model = core().read_model(str(parent.path))
    # Recorded in the IR so a deployed file says how it is meant to run.
    model.set_rt_info(precision, ["edgeslim", "precision"])
    xml = out_dir / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=fp16_weights)
    return Artifact(xml, "openvino", precision, parent.variant, parent.method, files=check_ir(xml),
                    parent=parent.id)


@register_quantizer
class OpenVinoFp16(Quantizer):
    format = "openvino"
    precision = "fp16"
    description = "OpenVINO IR with FP16-compressed weights"

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        art = _resave(parent, out_dir, "fp16", fp16_weights=True)
        art.info = {"quantizer": "openvino.save_model(compress_to_fp16=True)", "weights": "fp16"}
        return art


@register_quantizer
class OpenVinoBf16(Quantizer):
    format = "openvino"
    precision = "bf16"
    description = "OpenVINO IR run at bf16 inference precision (same weights as FP32)"

    def available(self) -> tuple[bool, str]:
        if not supports("bf16"):
            return False, (f"OpenVINO CPU has no bf16 arithmetic on this machine "
                           f"(it supports {', '.join(capabilities()) or 'nothing'})")
        return True, ""

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        art = _resave(parent, out_dir, "bf16", fp16_weights=False)
        art.info = {"quantizer": "none: bf16 is the runtime's inference precision",
                    "weights": parent.info.get("weights", "fp32"), "inference_precision": "bf16"}
        return art
