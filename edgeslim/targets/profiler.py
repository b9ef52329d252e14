"""Time a runner: warm-up, then iterations until the median is known well enough.

The timed loop stops when the 95% confidence interval of the median (from order
statistics) is within ``ci_threshold`` of it, or when the time budget ends. Every figure
carries its semantics; see :func:`profile_runner`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional

import numpy as np

from edgeslim.targets.runner import Runner


def median_ci(samples: list[float]) -> float:
    """Half-width of the 95% CI of the median, relative to the median."""
    n = len(samples)
    if n < 5:
        return float("inf")
    s = sorted(samples)
    half = 1.96 * math.sqrt(n) / 2
    lo = s[max(0, int(math.floor(n / 2 - half)))]
    hi = s[min(n - 1, int(math.ceil(n / 2 + half)))]
    med = s[n // 2]
    return (hi - lo) / 2 / med if med > 0 else float("inf")


def time_infer(runner: Runner, x: np.ndarray, cfg: Any) -> dict[str, Any]:
    """Latency statistics of ``runner.infer(x)`` in milliseconds."""
    t0 = time.perf_counter()
    runner.infer(x)
    first_ms = (time.perf_counter() - t0) * 1e3
    n, start = 0, time.perf_counter()
    while n < cfg.warmup or time.perf_counter() - start < cfg.warmup_seconds:
        runner.infer(x)
        n += 1
    warm_iters = n
    times: list[float] = []
    start = time.perf_counter()
    ci = float("inf")
    while len(times) < cfg.max_iterations:
        t = time.perf_counter()
        runner.infer(x)
        times.append(time.perf_counter() - t)
        if len(times) >= cfg.min_iterations and len(times) % 5 == 0:
            ci = median_ci(times)
            if ci <= cfg.ci_threshold or time.perf_counter() - start > cfg.max_seconds:
                break
    ci = median_ci(times)
    ms = np.asarray(times) * 1e3
    return {
        "latency_ms": {
            "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "std": float(ms.std()),
            "min": float(ms.min()),
        },
        "first_inference_ms": first_ms,
        "iterations": len(times),
        "warmup_iterations": warm_iters,
        "median_ci95": ci,
    }


def accuracy(runner: Runner, x: np.ndarray, y: Optional[np.ndarray], batch: int = 64) -> Optional[float]:
    """Top-1 accuracy of the artifact itself on (x, y); None without labels."""
    if y is None or len(y) == 0:
        return None
    correct = 0
    for i in range(0, len(x), batch):
        out = runner.infer(x[i:i + batch])
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return correct / len(y)


def profile_runner(runner: Runner, sample: np.ndarray, cfg: Any,
                   val: tuple[np.ndarray, Optional[np.ndarray]] | None) -> dict[str, Any]:
    """Latency at the first batch size, throughput at each, and accuracy on ``val``."""
    import psutil

    batches = list(cfg.batch_sizes) or [1]
    result: dict[str, Any] = {}
    throughput = {}
    for i, b in enumerate(batches):
        x = np.repeat(sample[:1], b, axis=0)
        stats = time_infer(runner, x, cfg)
        throughput[str(b)] = b / (stats["latency_ms"]["p50"] / 1e3)
        if i == 0:
            result.update(stats)
            result["batch"] = b
    result["throughput_per_s"] = throughput
    result["load_ms"] = (runner.load_seconds or 0.0) * 1e3
    result["rss_mb"] = psutil.Process().memory_info().rss / 2**20
    result["accuracy"] = accuracy(runner, *val) if (val is not None and cfg.accuracy) else None
    return result
