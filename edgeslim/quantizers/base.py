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
from edgeslim.targets.profiler import accuracy
from edgeslim.targets.runner import RUNNERS

__all__ = ["MIN_COSINE", "QUANTIZERS", "Quantizer", "check_accuracy_drop", "check_against_parent",
           "drift_from", "register_quantizer", "validate_against_parent"]


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
                         what: str, reference: str = "FP32 parent") -> ParityReport:
    report = compare(parent_out, out, max_abs=None, min_cosine=MIN_COSINE[precision])
    if not report.passed:
        raise QuantizeError(f"{what} differs from its {reference} beyond tolerance: {report.summary()}")
    return report


def check_accuracy_drop(art: Artifact, parent: Artifact, x: np.ndarray, y: Optional[np.ndarray],
                        tolerance_points: float) -> dict:
    """``quantize.tolerance_points``: top-1 of the artifact and of its FP32 parent on the
    labelled val split, in their runtimes; a :class:`QuantizeError` when the artifact loses
    more than ``tolerance_points``. Unlabelled data cannot be judged and is recorded so.

    Example::

        check_accuracy_drop(int8, fp32, x, y, 1.0)   # {"parent": 0.99, "accuracy": 0.985, "drop_points": 0.5, ...}
    """
    if y is None:
        return {"tolerance_points": tolerance_points, "measured": False, "why": "the val split has no labels"}
    with RUNNERS.get(parent.format)(parent) as r:
        ref = accuracy(r, x, y)
    with RUNNERS.get(art.format)(art) as r:
        got = accuracy(r, x, y)
    drop = round(100 * (ref - got), 4)
    if drop > tolerance_points:
        raise QuantizeError(f"the {art.id} artifact loses {drop:.2f} points of top-1 against its FP32 parent "
                            f"({100 * ref:.2f}% -> {100 * got:.2f}% on {len(y)} val images), more than "
                            f"quantize.tolerance_points={tolerance_points:g}")
    return {"tolerance_points": tolerance_points, "measured": True, "parent": ref, "accuracy": got,
            "drop_points": drop, "samples": int(len(y))}


def _outputs(art: Artifact, x: np.ndarray) -> np.ndarray:
    with RUNNERS.get(art.format)(art) as r:
        return r.infer(x)


def validate_against_parent(art: Artifact, parent: Artifact, x: np.ndarray, *,
                            reference: str = "FP32 parent") -> dict:
    """Run both artifacts on ``x`` in their runtimes; fail when the child strays from its parent
    (``reference`` names the parent in the error)."""
    return check_against_parent(_outputs(parent, x), _outputs(art, x), art.precision, f"the {art.id} artifact",
                                reference).to_json()


def drift_from(art: Artifact, parent: Artifact, x: np.ndarray) -> dict:
    """The parity report of ``art`` against ``parent`` on ``x``, recorded and never raised: for an
    artifact whose weights trained after they left the parent (int8-qat)."""
    return compare(_outputs(parent, x), _outputs(art, x), max_abs=None,
                   min_cosine=MIN_COSINE[art.precision]).to_json()
