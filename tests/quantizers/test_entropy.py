"""The vectorized KL-divergence threshold search picks ONNX Runtime's thresholds, faster."""

import time

import numpy as np
import pytest
from onnxruntime.quantization.calibrate import HistogramCollector

from edgeslim.quantizers.entropy import entropy_threshold


def _histogram(x: np.ndarray, bins: int):
    edge = float(np.abs(x).max())
    h, e = np.histogram(x, bins=bins, range=(-edge, edge))
    return h, e.astype(np.float32), np.float32(x.min()), np.float32(x.max())


@pytest.mark.parametrize("shape", ["relu", "heavy-tailed", "gaussian"])
def test_same_thresholds_as_onnxruntime(shape):
    rng = np.random.default_rng(0)
    x = {"relu": np.maximum(rng.standard_normal(50_000), 0),
         "heavy-tailed": rng.standard_normal(50_000) ** 3,
         "gaussian": rng.standard_normal(50_000) * 3 + 0.5}[shape]
    hist = _histogram(x, 512)
    ort = HistogramCollector("entropy", False, 512, 64, None, None)
    t0 = time.perf_counter()
    want = ort.get_entropy_threshold(hist, 64)
    t_ort = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = entropy_threshold(hist, 64)
    t_ours = time.perf_counter() - t0
    assert (float(got[0]), float(got[1])) == (float(want[0]), float(want[1]))
    assert got[0].dtype == want[0].dtype == np.float32
    assert hist[2] <= got[0] < got[1] <= hist[3]  # clamped to what was observed
    assert t_ours < t_ort


def test_heavy_tail_is_clipped_below_the_observed_maximum():
    x = np.random.default_rng(1).standard_normal(50_000) ** 3
    lo, hi = entropy_threshold(_histogram(x, 512), 64)
    assert hi < 0.5 * x.max() and lo > 0.5 * x.min()


def test_reduce_range_auto_follows_the_cpu():
    from edgeslim.quantizers.onnx_ort import resolve_reduce_range

    assert resolve_reduce_range("auto", ["avx2"]) is True  # VPMADDUBSW would saturate
    assert resolve_reduce_range("auto", ["avx2", "avx512f", "avx512_vnni"]) is False
    assert resolve_reduce_range("auto", ["avx2", "avx_vnni"]) is False
    assert resolve_reduce_range("auto", ["neon", "asimd"]) is False
    assert resolve_reduce_range(True, ["avx512_vnni"]) is True and resolve_reduce_range(False, ["avx2"]) is False
