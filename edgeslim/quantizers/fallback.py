"""Mixed-precision fallback: keep the most sensitive layers in FP32 until an accuracy budget holds.

What NNCF's accuracy control does for OpenVINO, for any quantizer that can exclude layers
(ONNX Runtime: ``nodes_to_exclude``): starting from the fully quantized model, the layers of
a sensitivity ranking (worst first, :mod:`.sensitivity`) are kept in FP32 one more at a
time until top-1 accuracy on the labelled val split is within ``budget_points`` of the FP32
parent's, or every ranked layer is kept and the record says the budget was not met. Each
step's accuracy and a short p50 latency (batch 1, indicative only: not the profile stage's
measurement) are recorded, so what each kept layer costs in speed is visible.

Example::

    art, record = fallback(ranking, quantize_excluding, ref, budget_points=0.5, sample=x[:1])
    record["met"], record["kept_fp32"], [s["p50_ms"] for s in record["steps"]]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.quantizers.sensitivity import Reference
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.profiler import time_infer
from edgeslim.targets.runner import RUNNERS

# A short timing per step: enough to see a kept layer's cost, not a figure to quote.
STEP_TIMING = ProfileCfg(warmup=5, warmup_seconds=0.05, min_iterations=20, min_seconds=0.1,
                         max_seconds=0.25, accuracy=False)
LATENCY_NOTE = ("indicative: p50 of a short timed loop (≤ 0.25 s, batch 1) while quantizing, "
                "not the profile stage's measurement")


def step_p50_ms(art: Artifact, sample: np.ndarray) -> float:
    with RUNNERS.get(art.format)(art) as r:
        return round(time_infer(r, sample, STEP_TIMING)["latency_ms"]["p50"], 4)


def fallback(ranking: list[str], quantize_excluding: Callable[[list[str]], Artifact], ref: Reference, *,
             budget_points: float, sample: np.ndarray) -> tuple[Artifact, dict[str, Any]]:
    """The first model, keeping ranked layers in FP32 one by one, within ``budget_points``.

    ``ref`` must be labelled; ``quantize_excluding(names)`` builds the INT8 model with
    ``names`` left in FP32. Returns that model and the record of every step.
    """
    if ref.accuracy is None:
        raise QuantizeError("quantize.max_accuracy_drop needs labelled validation data; this data set has no labels")
    kept: list[str] = []
    steps: list[dict[str, Any]] = []
    while True:
        art = quantize_excluding(list(kept))
        s = ref.score(art)
        steps.append({"kept_fp32": len(kept), "added": kept[-1] if kept else None,
                      "accuracy": s["accuracy"], "drop_points": s["loss_points"],
                      "p50_ms": step_p50_ms(art, sample)})
        if s["loss_points"] <= budget_points or len(kept) == len(ranking):
            break
        kept.append(ranking[len(kept)])
    first, last = steps[0]["p50_ms"], steps[-1]["p50_ms"]
    met = steps[-1]["drop_points"] <= budget_points
    record = {
        "method": "per-layer sensitivity fallback (ONNX Runtime nodes_to_exclude)",
        "max_drop_points": budget_points, "met": met,
        "fp32_accuracy": ref.accuracy, "accuracy": steps[-1]["accuracy"],
        "drop_points": steps[-1]["drop_points"],
        "validation": f"val split, {len(ref.x)} labelled images",
        "kept_fp32": kept, "quantizable_layers": len(ranking),
        "latency_cost": round(last / first - 1, 4) if first > 0 else None,
        "latency_note": LATENCY_NOTE, "steps": steps,
    }
    if not met:
        record["why"] = (f"all {len(ranking)} quantizable layers are kept in FP32 and the model still "
                         f"loses {steps[-1]['drop_points']:.2f} points (> {budget_points:g}): the INT8 "
                         "activations left around other ops (Add, pooling, ...) cost that")
    return art, record
