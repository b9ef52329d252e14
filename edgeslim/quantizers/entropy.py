"""KL-divergence (entropy) calibration thresholds, vectorized.

ONNX Runtime's ``HistogramCollector.get_entropy_threshold`` walks every candidate threshold
with Python-level ``sum()`` over NumPy slices: about a second per activation tensor at 2048
histogram bins, over a minute for a resnet20 and minutes for a resnet50. This is the same
search with the same arithmetic (the same merge into quantized bins, the same integer
expansion, smoothing and entropy, the same clamping to the observed range), with each
candidate's inner loops done by NumPy, so it picks the same thresholds at a fraction of
the time.

    from edgeslim.quantizers.entropy import entropy_threshold
    lo, hi = entropy_threshold((hist, edges, min_value, max_value), 128)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def entropy_threshold(histogram: tuple[Any, ...], num_quantized_bins: int) -> tuple[Any, Any]:
    """The (low, high) range whose quantization loses least information (min KL divergence)."""
    from onnxruntime.quantization.calibrate import entropy
    from onnxruntime.quantization.quant_utils import smooth_distribution

    hist, edges = np.asarray(histogram[0]), histogram[1]
    dtype = edges.dtype
    num_bins = hist.size
    zero = num_bins // 2
    half = num_quantized_bins // 2
    csum = np.concatenate([np.zeros(1, dtype=hist.dtype), np.cumsum(hist)])
    total = csum[-1]
    starts = np.arange(num_quantized_bins)
    best, best_kl = None, None
    for i in range(half, zero + 1):
        lo, hi = zero - i, min(zero + i + 1, num_bins)
        sliced = hist[lo:hi]
        p = sliced.copy()
        p[0] += csum[lo]  # outliers fold into the end bins
        p[-1] += total - csum[hi]
        merged = sliced.size // num_quantized_bins
        body = num_quantized_bins * merged
        idx = starts * merged
        qbins = np.add.reduceat(sliced[:body], idx).astype(np.int64)
        qbins[-1] += int(sliced[body:].sum())
        norm = np.add.reduceat((p[:body] != 0).astype(np.int64), idx)
        q = np.zeros(p.size, dtype=np.int64)
        fill = np.where(norm != 0, qbins / np.maximum(norm, 1), 0.0)
        q[:body] = np.repeat(fill, merged).astype(np.int64)  # integer bins, as ORT stores them
        ps, qs = smooth_distribution(p), smooth_distribution(q)
        kl = np.inf if ps is None or qs is None else float(np.array(entropy(ps, qs), dtype=dtype))
        if best_kl is None or kl < best_kl:  # first minimum wins, like argmin
            best_kl, best = kl, (edges[lo], edges[hi])
    low, high = best
    if len(histogram) > 3:  # never beyond what was observed
        low = histogram[2] if low < histogram[2] else low
        high = histogram[3] if high > histogram[3] else high
    return low, high


def use_fast_entropy(calibrator: Any) -> None:
    """Make an ORT entropy calibrator (after ``collect_data``) search with :func:`entropy_threshold`."""
    calibrator.collector.get_entropy_threshold = entropy_threshold
