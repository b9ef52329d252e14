"""Per-layer INT8 sensitivity: what each quantizable layer costs when it alone is quantized.

Backend-neutral: a quantizer hands over the layers it can quantize and a function that
builds an artifact with only the named layers quantized (ONNX Runtime: ``nodes_to_quantize``
over ranges calibrated once); each candidate is run in its runtime on the first
``quantize.sensitivity.samples`` val images and scored against the FP32 parent's outputs
there: accuracy lost in points when the split is labelled, top-1 agreement and output
cosine always. Layers are sorted worst first (most points lost; ties and unlabelled data
by lowest agreement, then lowest cosine).

Example::

    ref = Reference.of(parent, x, y)
    result = layer_sensitivity(layers, quantize_only, ref, full=int8, floor=fp32_preprocessed)
    write_sensitivity(out_dir, result)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.exporters.parity import compare
from edgeslim.io import write_json
from edgeslim.targets.runner import RUNNERS

FILE = "sensitivity.json"
BATCH = 64


def infer(art: Artifact, x: np.ndarray, *, batch: int = BATCH) -> np.ndarray:
    """``art``'s outputs on ``x`` in its runtime, ``batch`` images at a time."""
    with RUNNERS.get(art.format)(art) as r:
        return np.concatenate([r.infer(x[i:i + batch]) for i in range(0, len(x), batch)])


@dataclass
class Reference:
    """The FP32 parent's outputs on the val images every INT8 candidate is scored on."""

    x: np.ndarray
    y: Optional[np.ndarray]  # None: unlabelled, only agreement and cosine are scored
    logits: np.ndarray

    @classmethod
    def of(cls, parent: Artifact, x: np.ndarray, y: Optional[np.ndarray]) -> "Reference":
        return cls(x, y, infer(parent, x))

    @property
    def labelled(self) -> bool:
        return self.y is not None

    @property
    def accuracy(self) -> Optional[float]:
        return None if self.y is None else float((self.logits.argmax(1) == self.y).mean())

    def score(self, art: Artifact) -> dict[str, Any]:
        """Top-1 agreement and cosine against the parent; accuracy and points lost when labelled."""
        out = infer(art, self.x)
        rep = compare(self.logits, out, max_abs=None, min_cosine=0.0)
        s: dict[str, Any] = {"top1_agreement": round(rep.top1_agreement, 6), "cosine": round(rep.cosine, 6)}
        if self.y is not None:
            acc = float((out.argmax(1) == self.y).mean())
            s.update(accuracy=round(acc, 6), loss_points=round(100 * (self.accuracy - acc), 4))
        return s

    def describe(self) -> str:
        what = "top-1 accuracy lost (points)" if self.labelled else "top-1 agreement and output cosine"
        return f"{what} against the FP32 parent on the first {len(self.x)} val images"


def worst_first(row: dict[str, Any]) -> tuple:
    """Sort key: most points lost, then lowest agreement, then lowest cosine, then name."""
    return (-row.get("loss_points", 0.0), row["top1_agreement"], row["cosine"], row.get("layer", ""))


def layer_sensitivity(layers: list[tuple[str, str]], quantize_only: Callable[[list[str]], Artifact],
                      ref: Reference, *, full: Artifact, floor: Optional[Artifact] = None) -> dict[str, Any]:
    """Score each ``(name, op)`` layer quantized alone; ``full`` is the fully quantized model and
    ``floor`` the unquantized model the candidates start from (their difference to the parent
    is the measurement's own noise: graph rewrites such as Conv+BN fusion)."""
    rows = [{"layer": name, "op": op, **ref.score(quantize_only([name]))} for name, op in layers]
    rows.sort(key=worst_first)
    result: dict[str, Any] = {
        "measured": ref.describe(), "samples": int(len(ref.x)), "labelled": ref.labelled,
        "fp32_accuracy": ref.accuracy, "full_int8": ref.score(full),
        "layers": rows,
    }
    if floor is not None:
        result["none_quantized"] = ref.score(floor)
    return result


def write_sensitivity(out_dir: Path, result: dict[str, Any]) -> Path:
    path = out_dir / FILE
    write_json(path, result)
    return path


def summary(result: dict[str, Any], top: int = 3) -> dict[str, Any]:
    """What the artifact's info keeps of a sensitivity result: the file, the worst few layers."""
    return {"file": FILE, "measured": result["measured"], "samples": result["samples"],
            "full_int8": result["full_int8"], "worst": result["layers"][:top]}
