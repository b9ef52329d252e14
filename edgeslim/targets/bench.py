"""``edgeslim bench``: time any existing artifact on any target, as a run would.

An ``.onnx`` file, an OpenVINO ``.xml`` (with its ``.bin``) or a TensorRT engine made
anywhere becomes an :class:`~edgeslim.artifacts.Artifact` and goes through the same
``Target.profile`` as a run's artifacts: the same timing loop, semantics, noise record and
JSON row. The input shape comes from the model; dynamic axes other than the batch need
``input_shape``. ``compare=True`` times the artifacts in interleaved rounds (the order
rotating each round) and gives each one's p50 ratio to the first with a 95% interval, so
a machine that slows down mid-benchmark moves every artifact alike.

Example::

    rows = bench([Path("a.onnx"), Path("b.xml")], targets=["cpu", "edge"], batch_sizes=[1, 8],
                 profile=ProfileCfg(), compare=True)
    rows[1]["compare"]["ratio_p50"], rows[1]["latency_p50_ms_by_batch"]["8"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.targets.base import TARGETS, Target, failed_row, parse_target
from edgeslim.targets.bench_inputs import (Preprocessed, model_io, parse_shape, resolve_shape, time_preprocess,
                                           validation)
from edgeslim.targets.config import ProfileCfg, TargetCfg
from edgeslim.targets.edge import agent_profile
from edgeslim.targets.profiler import median_index

MEASURED = ("status", "reason", "accuracy", "latency_ms", "latency_p50_ms_by_batch", "throughput_per_s",
            "first_inference_ms", "load_ms", "rss_mb", "peak_rss_mb", "iterations", "warmup_iterations",
            "median_ci95", "noise", "semantics", "host_latency_ms")
SUFFIXES = {".onnx": "onnx", ".xml": "openvino", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# targets on this machine whose sessions are fresh processes (the agent); gpu and ssh:// keep
# their sessions in one process (``profile.sessions``)
PROCESS_TARGETS = ("cpu", "edge")
AGENT_TIMEOUT_S = 600.0  # one process: load, warm-up, timing, accuracy


@dataclass
class BenchPlan:
    """What to measure: artifacts, targets, shapes, and the options that change the rows."""

    artifacts: list[Artifact]
    targets: list[Target]
    batch_sizes: list[int]
    shapes: dict[str, Optional[tuple[int, ...]]] = field(default_factory=dict)  # per artifact path


def open_artifact(path: Path, precision: Optional[str] = None) -> Artifact:
    """An Artifact for a file made anywhere; the format from the suffix, the precision from
    the graph (quantize ops → int8, FP16 weights → fp16) unless given."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TargetError(f"artifact {path} does not exist")
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise TargetError(f"cannot tell the format of {path.name}: expected .onnx, an OpenVINO .xml, "
                          f"or a TensorRT .engine/.plan")
    if precision is not None and precision not in PRECISIONS:
        raise TargetError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    files = [path]
    if fmt == "openvino":
        weights = path.with_suffix(".bin")
        if not weights.is_file():
            raise TargetError(f"OpenVINO IR {path.name} has no weights file {weights.name} beside it")
        files.append(weights)
    elif fmt == "onnx":
        files += [f for f in model_io(path, fmt).external if f != path]
    detected = model_io(path, fmt).precision if fmt != "tensorrt" else "fp32"
    return Artifact(path, fmt, precision or detected, "bench", "none", files=files)


def make_target(name: str, threads: Optional[int]) -> Target:
    """A target by name or ssh:// URL, with ``threads`` where the target takes that option."""
    cls = TARGETS.get("ssh" if name.startswith("ssh://") else name)
    extra = {"threads": threads} if threads is not None and "threads" in cls.options.model_fields else {}
    return parse_target(TargetCfg(name=name, **extra))


def base_row(art: Artifact, target: Target, shape: Optional[tuple[int, ...]]) -> dict[str, Any]:
    return {"id": art.path.name, "path": str(art.path), "format": art.format, "precision": art.precision,
            "target": target.label, "status": "skipped", "reason": "", "bytes": art.bytes,
            "files": [str(f) for f in art.files], "sha256": art.sha256(),
            "input_shape": list(shape) if shape else None, "accuracy": None, "latency_ms": None,
            "semantics": None}


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Median and its distribution-free 95% interval (order statistics; min/max when few)."""
    s = sorted(values)
    n = len(s)
    half = 1.96 * math.sqrt(n) / 2
    lo = s[max(0, int(math.floor(n / 2 - half)))]
    hi = s[min(n - 1, int(math.ceil(n / 2 + half)))]
    return float(np.median(s)), float(lo), float(hi)


def bench(paths: Sequence[Path], *, targets: Sequence[str] = ("cpu",), batch_sizes: Optional[list[int]] = None,
          input_shape: Optional[str] = None, precision: Optional[str] = None, threads: Optional[int] = None,
          profile: Optional[ProfileCfg] = None, accuracy_data: Optional[str] = None,
          preprocess_image: Optional[Path] = None, compare: bool = False, rounds: int = 5,
          sessions: int = 5) -> list[dict[str, Any]]:
    """One row per (artifact, target); see the module docstring. Bad input raises TargetError
    before anything is timed; a runtime failure of one artifact is a ``failed`` row.

    Without ``compare`` every artifact is timed in ``sessions`` fresh runtime sessions, one
    after another, and its row is the median session's (a bench figure stands alone, and one
    session can land in a slow stretch of a shared machine or settle slow for its whole
    life); on ``cpu`` and ``edge`` each session is a fresh process of its own, since a process
    can settle slow for its whole life too. With ``compare`` the rounds are the fresh sessions."""
    if not paths:
        raise TargetError("give at least one artifact to benchmark")
    if compare and len(paths) < 2:
        raise TargetError("--compare needs at least two artifacts")
    if rounds < 1:
        raise TargetError("--rounds must be at least 1")
    if sessions < 1:
        raise TargetError("--sessions must be at least 1")
    given = parse_shape(input_shape) if input_shape else None
    batches = list(batch_sizes or ([given[0]] if given else [1]))
    if any(b < 1 for b in batches):
        raise TargetError(f"batch sizes must be positive, got {batches}")
    cfg = (profile or ProfileCfg()).model_copy(update={
        "batch_sizes": batches, "accuracy": accuracy_data is not None,
        "sessions": 1 if compare else sessions, "sessions_below_ms": math.inf})
    arts = [open_artifact(Path(p), precision) for p in paths]
    tgts = [make_target(t, threads) for t in targets]
    shapes = {str(a.path): resolve_shape(a, given, batches) for a in arts}
    pre = {key: (time_preprocess(preprocess_image, s, cfg) if preprocess_image and s else None)
           for key, s in shapes.items()}
    vals = {key: (validation(a, accuracy_data, shapes[key]) if accuracy_data and shapes[key] else None)
            for key, a in zip(shapes, arts)}
    rows: list[dict[str, Any]] = []
    for target in tgts:
        runnable = []
        for art in arts:
            key = str(art.path)
            row = base_row(art, target, shapes[key])
            ok, why = target.available()
            runs, why_not = target.runs(art) if ok else (False, why)
            if not runs:
                row["reason"] = why_not
            elif shapes[key] is None:
                row["reason"] = f"the input shape of {art.path.name} is unknown here: give --input-shape"
            else:
                runnable.append((art, row))
            rows.append(row)
        if compare:
            _compare(target, runnable, shapes, pre, vals, cfg, rounds)
        else:
            samples = {str(art.path): _sample(shapes[str(art.path)], pre[str(art.path)]) for art, _ in runnable}
            if target.name in PROCESS_TARGETS:
                measured = _in_processes(target, [art for art, _ in runnable], samples, cfg, vals, sessions)
            else:
                measured = [_measure(target, art, samples[str(art.path)], cfg, vals[str(art.path)])
                            for art, _ in runnable]
            for (art, row), m in zip(runnable, measured):
                row.update(m)
                _add_preprocess(row, pre[str(art.path)])
    return rows


def _in_processes(target: Target, arts: list[Artifact], samples: dict[str, np.ndarray], cfg: ProfileCfg,
                  vals: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Each artifact measured ``n`` times, each time in a fresh process with one runtime session,
    the artifacts taking turns (a, b, a, b, ...: a slow stretch of the machine touches each one's
    processes alike); an artifact's row is its median process's (accuracy, when asked, measured
    by its first). On this project's 2-core VMs the sessions inside one process agreed within 1%
    while processes differed by up to 8%: the level is set per process, so processes are what
    to sample."""
    # one session per process (sessions_below_ms then reads nothing; JSON has no infinity for the agent)
    one = cfg.model_copy(update={"sessions": 1, "sessions_below_ms": ProfileCfg().sessions_below_ms})
    later = one.model_copy(update={"accuracy": False})
    runs: list[list[dict[str, Any]]] = [[] for _ in arts]
    for i in range(n):
        for runs_of, art in zip(runs, arts):
            key = str(art.path)
            runs_of.append(_measure(target, art, samples[key], later if i else one, None if i else vals[key],
                                    own_process=True))
    return [_median_process(r, n, turns=len(arts) > 1) for r in runs]


def _median_process(runs: list[dict[str, Any]], n: int, *, turns: bool) -> dict[str, Any]:
    ok = [m for m in runs if m.get("status") == "ok"]
    if not ok:
        return runs[0]
    p50s = [m["latency_ms"]["p50"] for m in ok]
    row = dict(ok[median_index(p50s)])
    if "accuracy" in runs[0]:
        row["accuracy"] = runs[0]["accuracy"]
    row["semantics"] = {**row["semantics"], "sessions": {
        "count": len(ok), "p50_ms": p50s, "processes": True,
        "rule": f"median of {len(ok)} fresh processes, one runtime session each"
                + (", taking turns with the other artifacts" if turns else "")
                + (f" ({n - len(ok)} failed)" if len(ok) < n else "")}}
    return row


def _sample(shape: tuple[int, ...], pre: Optional[Preprocessed]) -> np.ndarray:
    if pre is not None:  # time the artifact on the real image it was given
        return pre.array
    return np.random.default_rng(0).standard_normal((1, *shape[1:]), dtype=np.float32)


def _measure(target: Target, art: Artifact, sample: np.ndarray, cfg: ProfileCfg, val: Any, *,
             own_process: bool = False) -> dict[str, Any]:
    """One measurement as a row's fields. ``own_process``: in a fresh process of its own (the
    profiling agent on ``cpu``; ``edge`` always runs it)."""
    try:
        if own_process and target.name == "cpu":
            m = agent_profile(art, sample, cfg, val, threads=target.threads(), core=None, memory_limit_mb=None,
                              device="cpu", runner_options=target.runner_options(art), timeout_s=AGENT_TIMEOUT_S)
        else:
            m = target.profile(art, sample, cfg, val)
    except Exception as err:  # one failure must not stop the other rows
        m = failed_row(err)
    return {k: m[k] for k in MEASURED if k in m}


def _add_preprocess(row: dict[str, Any], pre: Optional[Preprocessed]) -> None:
    if pre is None or row.get("status") != "ok":
        return
    row["preprocess_ms"] = pre.latency_ms
    # Sum of medians: the preprocessing ran in this process, the artifact on the target.
    row["end_to_end_p50_ms"] = pre.latency_ms["p50"] + row["latency_ms"]["p50"]
    row["semantics"]["preprocess"] = pre.semantics


def _compare(target: Target, runnable: list[tuple[Artifact, dict[str, Any]]], shapes: dict, pre: dict,
             vals: dict, cfg: ProfileCfg, rounds: int) -> None:
    """Interleaved rounds; each artifact's row is its median round, plus its ratio to the first."""
    if not runnable:
        return
    per: list[list[dict[str, Any]]] = [[] for _ in runnable]
    for r in range(rounds):
        order = [(i + r) % len(runnable) for i in range(len(runnable))]  # rotate: no artifact always first
        for i in order:
            art, _ = runnable[i]
            key = str(art.path)
            per[i].append(_measure(target, art, _sample(shapes[key], pre[key]),
                                   cfg if r == 0 else cfg.model_copy(update={"accuracy": False}),
                                   vals[key] if r == 0 else None))
    first = per[0]
    for i, (art, row) in enumerate(runnable):
        ok = [m for m in per[i] if m.get("status") == "ok"]
        if not ok:
            row.update(per[i][0])
            continue
        p50s = [m["latency_ms"]["p50"] for m in ok]
        mid = median_index(p50s)
        row.update(ok[mid])
        row["accuracy"] = per[i][0].get("accuracy")
        ratios = [m["latency_ms"]["p50"] / f["latency_ms"]["p50"] for m, f in zip(per[i], first)
                  if m.get("status") == "ok" and f.get("status") == "ok"]
        compare: dict[str, Any] = {"first": str(runnable[0][0].path), "rounds": rounds,
                                   "p50_ms_by_round": [round(p, 6) for p in p50s],
                                   "ratio_p50": None, "ratio_ci95": None, "ratios_by_round": ratios}
        if ratios:
            med, lo, hi = median_interval(ratios)
            compare.update({"ratio_p50": med, "ratio_ci95": [lo, hi]})
        row["compare"] = compare
        row["noise"] = dict(row.get("noise") or {}, noisy=any((m.get("noise") or {}).get("noisy") for m in ok))
        _add_preprocess(row, pre[str(art.path)])
