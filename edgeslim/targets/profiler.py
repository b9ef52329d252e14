"""Time a runner: warm-up, then iterations until the median is known well enough.

The timed loop stops when the 95% confidence interval of the median (from order
statistics) is within ``ci_threshold`` of it and at least ``min_seconds`` were timed, or
when the time budget (``max_seconds``, ``max_iterations``) ends. Every figure
carries its semantics; see :func:`profile_runner`.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from typing import Any, Callable, Optional, Union

import numpy as np

from edgeslim import __version__
from edgeslim.artifacts import Artifact
from edgeslim.targets.base import cpu_info
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.noise import NoiseProbe
from edgeslim.targets.roofline import roofline_semantics
from edgeslim.targets.runner import RUNNERS, Runner

ValData = Optional[tuple[np.ndarray, Optional[np.ndarray]]]


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


def time_infer(runner: Runner, x: np.ndarray, cfg: ProfileCfg) -> dict[str, Any]:
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
            elapsed = time.perf_counter() - start
            if (ci <= cfg.ci_threshold and elapsed >= min(cfg.min_seconds, cfg.max_seconds)) \
                    or elapsed > cfg.max_seconds:
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


def profile_runner(runner: Runner, sample: np.ndarray, cfg: ProfileCfg,
                   val: Union[ValData, Callable[[], ValData]]) -> dict[str, Any]:
    """Latency at the first batch size, p50 and throughput at each, peak RSS, accuracy on
    ``val``, and how busy the machine was meanwhile (``noise``, see :mod:`.noise`).

    ``val`` is (x, y), None, or a function returning either (called after the timed runs).
    """
    import psutil

    if callable(val):  # loaded only now, so the data does not count in the peak RSS
        val_fn, val = val, None
    else:
        val_fn = None
    batches = list(cfg.batch_sizes) or [1]
    result: dict[str, Any] = {}
    throughput, by_batch = {}, {}
    probe = NoiseProbe(cfg.noisy_share)
    for i, b in enumerate(batches):
        x = np.repeat(sample[:1], b, axis=0)
        stats = time_infer(runner, x, cfg)
        throughput[str(b)] = b / (stats["latency_ms"]["p50"] / 1e3)
        by_batch[str(b)] = stats["latency_ms"]["p50"]
        if i == 0:
            result.update(stats)
            result["batch"] = b
    result["noise"] = probe.finish()
    result["throughput_per_s"] = throughput
    result["latency_p50_ms_by_batch"] = by_batch
    result["load_ms"] = (runner.load_seconds or 0.0) * 1e3
    result["rss_mb"] = psutil.Process().memory_info().rss / 2**20
    # Peak before the accuracy pass: what the device needs to load and serve the model.
    result["peak_rss_mb"] = peak_rss_mb()
    result["process_threads"] = psutil.Process().num_threads()
    if val_fn is not None and cfg.accuracy:
        val = val_fn()
    result["accuracy"] = accuracy(runner, *val) if (val is not None and cfg.accuracy) else None
    return result


def peak_rss_mb() -> Optional[float]:
    """Peak resident set size of this process in MiB (VmHWM; ``ru_maxrss`` without /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here
    except (ImportError, OSError):
        return None


def _status_mb(*fields: str) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in fields:
                    out[key] = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count from the current RSS (Linux >= 4.0); False where unsupported.

    Some kernels and sandboxes accept the write to ``clear_refs`` and ignore it, so the
    reset counts only when the peak afterwards is the current RSS (within 16 MiB that
    another thread may have allocated meanwhile).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    mem = _status_mb("VmHWM", "VmRSS")
    return len(mem) == 2 and mem["VmHWM"] - mem["VmRSS"] <= 16


def process_affinity() -> Optional[list[int]]:
    """The CPUs any thread of this process may run on; None where the OS does not say.

    ``sched_getaffinity(0)`` is the calling thread only; a runtime's pool threads could
    have been created before a pinning, so every thread of the process is asked.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = set(os.sched_getaffinity(0))
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                cpus |= os.sched_getaffinity(int(tid))
            except OSError:  # the thread ended meanwhile
                pass
    except OSError:
        pass
    return sorted(cpus)


def median_index(values: list[float]) -> int:
    """Index of the median of ``values`` (the upper one of an even count): the run whose whole
    record stands for a set of repeated runs. Example: ``median_index([3.0, 1.0, 2.0]) == 2``."""
    return sorted(range(len(values)), key=values.__getitem__)[len(values) // 2]


def _more_sessions(runner_cls: Any, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                   measured: dict[str, Any], threads: Optional[int], options: dict[str, Any]) -> dict[str, Any]:
    """Time a fast artifact in ``cfg.sessions - 1`` more fresh sessions at the first batch
    size and make the row's latency the median session's (``measured`` is updated in place);
    what was timed, for the row's semantics."""
    first = measured["latency_ms"]["p50"]
    when = f"first p50 < {cfg.sessions_below_ms} ms" if math.isfinite(cfg.sessions_below_ms) else "every artifact"
    if cfg.sessions <= 1 or first >= cfg.sessions_below_ms:
        return {"count": 1, "p50_ms": [first], "rule": f"one session (profile.sessions {cfg.sessions}; more "
                                                           f"only when {when})"}
    b = measured["batch"]
    x = np.repeat(sample[:1], b, axis=0)
    runs = [{k: measured[k] for k in ("latency_ms", "iterations", "warmup_iterations", "median_ci95",
                                      "first_inference_ms")}]
    for _ in range(cfg.sessions - 1):
        with runner_cls(artifact, threads=threads, **options) as runner:
            runs.append(time_infer(runner, x, cfg))
    p50s = [r["latency_ms"]["p50"] for r in runs]
    mid = median_index(p50s)
    measured.update({k: v for k, v in runs[mid].items() if k != "first_inference_ms"})
    p50 = runs[mid]["latency_ms"]["p50"]
    measured["throughput_per_s"][str(b)] = b / (p50 / 1e3)
    measured["latency_p50_ms_by_batch"][str(b)] = p50
    return {"count": len(runs), "p50_ms": [round(p, 6) for p in p50s], "chosen": mid,
            "rule": f"median of {len(runs)} fresh sessions ({when})"}


def profile_artifact(artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                     val: Union[ValData, Callable[[], ValData]], *, threads: Optional[int],
                     device: str, runner_options: Optional[dict[str, Any]] = None,
                     peak_scope: Optional[str] = None) -> dict[str, Any]:
    """Load ``artifact`` in its runtime, time it, and return the measurement part of a row.

    Every target measures through this function (in process for ``cpu``, inside the agent
    subprocess for ``edge`` and ``ssh://``), so their rows are comparable by construction
    and carry the same semantics.

    Example::

        m = profile_artifact(art, x[:1], recipe.profile, None, threads=1, device="cpu")
        m["latency_ms"]["p50"], m["semantics"]["runtime_version"], m["peak_rss_mb"]
    """
    runner_cls = RUNNERS.get(artifact.format)
    if peak_scope is None:
        peak_scope = ("this process, from before the model load" if reset_peak_rss()
                      else "this process, whole lifetime")
    with runner_cls(artifact, threads=threads, **(runner_options or {})) as runner:
        measured = profile_runner(runner, sample, cfg, val)
        semantics = runner.semantics()
        affinity = process_affinity()
    sessions = _more_sessions(runner_cls, artifact, sample, cfg, measured, threads, runner_options or {})
    semantics.setdefault("threads", threads)
    semantics.setdefault("precision_executed", artifact.precision)
    semantics.update(cpu_info())
    semantics.update({
        "device": device, "host": platform.node(),
        "batch": measured.pop("batch"), "batch_sizes": list(cfg.batch_sizes) or [1],
        "iterations": measured["iterations"], "warmup_iterations": measured["warmup_iterations"],
        # One request in flight, the caller waits for each result: latency, not throughput mode.
        "request_mode": "sync", "requests_in_flight": 1,
        "input_copy_included": True, "timer": "time.perf_counter",
        "affinity": affinity, "process_threads": measured.pop("process_threads"),
        "peak_rss_scope": peak_scope, "sessions": sessions,
        "python": platform.python_version(), "edgeslim_version": __version__,
    })
    # the CPU's peak MAC rate for what ran, so a row's MACs/latency reads as a share of it
    semantics["roofline"] = roofline_semantics(str(semantics["precision_executed"]), semantics.get("threads"),
                                               affinity)
    return {"status": "ok", "reason": "", **measured, "semantics": semantics}
