"""What a quantizer is: (format, precision) -> a smaller artifact checked against its parent.

Registered under ``"<format>-<precision>"`` (``onnx-int8``, ``openvino-int8``, ...).
Calibration data always comes from the training split (``DataBundle.calibration``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.exporters.parity import MIN_COSINE, ParityReport, compare
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.registry import Registry
from edgeslim.targets.runner import RUNNERS

__all__ = ["MIN_COSINE", "QUANTIZERS", "Quantizer", "check_against_parent", "register_quantizer",
           "validate_against_parent"]


class Quantizer:
    format: ClassVar[str]
    precision: ClassVar[str]
    description: ClassVar[str]
    needs_calibration: ClassVar[bool] = False
    # True when quantize() also accepts ``val=(x, y|None)``, the labelled validation split
    # (accuracy-controlled quantization); quantizers without it are never passed ``val``.
    uses_validation: ClassVar[bool] = False

    def available(self) -> tuple[bool, str]:
        return True, ""

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        raise NotImplementedError


QUANTIZERS: Registry[Quantizer] = Registry("quantizer")


def register_quantizer(cls: type[Quantizer]) -> type[Quantizer]:
    QUANTIZERS.register(f"{cls.format}-{cls.precision}", cls())
    return cls


def check_against_parent(parent_out: np.ndarray, out: np.ndarray, precision: str,
                         what: str) -> ParityReport:
    report = compare(parent_out, out, max_abs=None, min_cosine=MIN_COSINE[precision])
    if not report.passed:
        raise QuantizeError(f"{what} differs from its FP32 parent beyond tolerance: {report.summary()}")
    return report


def validate_against_parent(art: Artifact, parent: Artifact, x: np.ndarray) -> dict:
    """Run both artifacts on ``x`` in their runtimes; fail when the child strays from its parent."""
    with RUNNERS.get(parent.format)(parent) as r:
        ref = r.infer(x)
    with RUNNERS.get(art.format)(art) as r:
        out = r.infer(x)
    return check_against_parent(ref, out, art.precision, f"the {art.id} artifact").to_json()
