"""Compare an artifact's outputs with its reference: the parity report.

Example::

    report = compare(torch_logits, ort_logits, max_abs=1e-3, min_cosine=0.999)
    if not report.passed: raise ParityError(report.summary())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

# How close a reduced-precision artifact must stay to its reference on real inputs: a
# quantized artifact to its FP32 parent, an FP16-weights export to PyTorch. An int8-qat
# artifact is held to the trained Q/DQ ONNX it was made from, and that ONNX to the trained
# fake-quantized model (its weights moved in training: the FP32 parent is only recorded)
MIN_COSINE = {"fp16": 0.999, "bf16": 0.99, "int8": 0.95, "int8-qat": 0.95}


@dataclass
class ParityReport:
    max_abs: float
    mean_abs: float
    max_rel: float  # max |a-b| / max |a|: relative to the output's scale, not per element
    cosine: float
    top1_agreement: float
    max_abs_tolerance: Optional[float]
    min_cosine: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        tol = f" (tolerance {self.max_abs_tolerance:g})" if self.max_abs_tolerance is not None else ""
        return (f"max abs error {self.max_abs:.3g}{tol}, cosine {self.cosine:.6f} "
                f"(min {self.min_cosine}), top-1 agreement {self.top1_agreement:.3f}")

    def to_json(self) -> dict:
        return asdict(self)


def compare(reference: np.ndarray, output: np.ndarray, *, max_abs: Optional[float],
            min_cosine: float) -> ParityReport:
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        return ParityReport(float("inf"), float("inf"), float("inf"), 0.0, 0.0, max_abs, min_cosine, False)
    diff = np.abs(ref - out)
    finite = bool(np.isfinite(out).all())
    scale = float(np.abs(ref).max()) or 1.0
    a, b = ref.ravel(), out.ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))
    top1 = float((ref.argmax(-1) == out.argmax(-1)).mean()) if ref.ndim >= 2 else 1.0
    mx = float(diff.max()) if diff.size else 0.0
    passed = finite and cosine >= min_cosine and (max_abs is None or mx <= max_abs)
    return ParityReport(mx, float(diff.mean()) if diff.size else 0.0, mx / scale, cosine, top1,
                        max_abs, min_cosine, passed)
