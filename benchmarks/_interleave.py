"""Interleaved timing of several runners, here (``cpu``) or in a pinned worker (``edge``).

A helper of ``runtime_settings.py`` and ``vs_peers.py``, not a benchmark. A *spec* is a JSON
dict naming what to open, so the same list runs in this process or in a worker process
pinned to one core (the ``edge`` shape: the affinity is set before the interpreter starts,
so every thread a runtime makes inherits it):

- ``{"name", "runtime": "edgeslim", "artifact": {path, format, precision}, "threads", "options"}``:
  edgeslim's own runner for the format, with runner options (a target's runtime settings);
- ``{"name", "runtime": "plain-openvino", "xml", "config"}``: ``ov.Core().compile_model``
  with exactly ``config`` (the hand chain: OpenVINO's defaults plus what a user sets);
- ``{"name", "runtime": "plain-onnxruntime", "onnx", "threads"}``: an ``InferenceSession``
  with default ``SessionOptions`` (``intra_op_num_threads`` only where ``threads`` is set).

Every round times each runner once (``time_infer``, ``seconds`` long), in a rotated order,
so a change in the machine's load hits all of them; a figure is the median of its rounds,
and each carries the block's ``noise`` (edgeslim.targets.noise) so ``write_result`` refuses
to replace a committed result with a noisy one.

    res = interleaved(specs, x, rounds=5, seconds=1.0)          # here
    res = pinned_worker(specs, x, rounds=5, seconds=1.0, core=0)  # edge: one core, one thread
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class _Plain:
    """A runner over a runtime's own API (no edgeslim settings), for the hand chain."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        if spec["runtime"] == "plain-openvino":
            import openvino as ov

            self.compiled = ov.Core().compile_model(spec["xml"], "CPU", spec.get("config") or {})
            self.request = self.compiled.create_infer_request()
        else:
            import onnxruntime as ort

            so = ort.SessionOptions()
            if spec.get("threads"):
                so.intra_op_num_threads = int(spec["threads"])
            self.session = ort.InferenceSession(spec["onnx"], so, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.spec["runtime"] == "plain-openvino":
            self.request.infer({0: x})
            return np.array(self.request.get_output_tensor(0).data, copy=True)
        return self.session.run(None, {self.input_name: x})[0]

    def semantics(self) -> dict[str, Any]:
        if self.spec["runtime"] == "plain-openvino":
            c = self.compiled
            return {"runtime": "openvino (plain)", "threads": int(c.get_property("INFERENCE_NUM_THREADS")),
                    "inference_precision": c.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
                    "performance_hint": str(c.get_property("PERFORMANCE_HINT")),
                    "streams": int(c.get_property("NUM_STREAMS")), "pinning": bool(c.get_property("ENABLE_CPU_PINNING"))}
        return {"runtime": "onnxruntime (plain)", "threads": self.spec.get("threads") or "ort default"}

    def close(self) -> None:
        pass


def open_runner(spec: dict[str, Any]) -> Any:
    if spec["runtime"] != "edgeslim":
        return _Plain(spec)
    from edgeslim.artifacts import Artifact
    from edgeslim.targets.runner import RUNNERS

    a = spec["artifact"]
    art = Artifact(Path(a["path"]), a["format"], a["precision"], "compressed", "bench")
    runner = RUNNERS.get(a["format"])(art, threads=spec.get("threads"), **(spec.get("options") or {}))
    runner.load()
    return runner


def interleaved(specs: list[dict[str, Any]], x: np.ndarray, *, rounds: int, seconds: float,
                noisy_share: float = 0.25) -> dict[str, Any]:
    """name -> {p50_ms (median of the rounds' p50), rounds_ms, semantics, noise} or {error};
    ``noise`` is the whole block's (marked noisy above ``noisy_share``, as profile rows are)."""
    from edgeslim.recipe import ProfileCfg
    from edgeslim.targets.noise import NoiseProbe
    from edgeslim.targets.profiler import time_infer

    cfg = ProfileCfg(warmup=5, warmup_seconds=0.3, min_iterations=10, min_seconds=seconds,
                     max_seconds=seconds, ci_threshold=0.005)
    live, out = {}, {}
    for s in specs:
        try:
            live[s["name"]] = open_runner(s)
        except Exception as err:  # one configuration that cannot load must not stop the others
            first = (str(err).strip().splitlines() or [""])[0][:200]
            out[s["name"]] = {"error": f"{type(err).__name__}: {first}"}
    times: dict[str, list[float]] = {k: [] for k in live}
    names = list(live)
    probe = NoiseProbe(noisy_share)  # other processes on these cores while the rounds ran
    for r in range(rounds if names else 0):
        k = r % len(names)  # rotate the order: no configuration always runs first in a round
        for name in names[k:] + names[:k]:
            times[name].append(time_infer(live[name], x, cfg)["latency_ms"]["p50"])
    noise = probe.finish()
    for name, runner in live.items():
        out[name] = {"p50_ms": float(np.median(times[name])), "rounds_ms": times[name],
                     "semantics": _semantics(runner), "noise": noise}
        runner.close()
    return out


def _semantics(runner: Any) -> dict[str, Any]:
    keep = ("runtime", "threads", "precision_executed", "inference_precision", "layer_precisions",
            "performance_hint", "streams", "pinning", "graph_optimization", "spinning")
    sem = runner.semantics()
    return {k: sem[k] for k in keep if k in sem}


def pinned_worker(specs: list[dict[str, Any]], x: np.ndarray, *, rounds: int, seconds: float,
                  core: Optional[int]) -> dict[str, Any]:
    """:func:`interleaved` in a fresh interpreter, pinned to ``core`` with one BLAS thread
    (``core=None``: this process's CPUs and threading, as a ``cpu`` application)."""
    with tempfile.TemporaryDirectory(prefix="edgeslim-pinned-") as tmp:
        plan, result, xs = Path(tmp) / "plan.json", Path(tmp) / "result.json", Path(tmp) / "x.npy"
        plan.write_text(json.dumps({"specs": specs, "rounds": rounds, "seconds": seconds}))
        np.save(xs, x)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        if core is not None:
            env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
        subprocess.run([sys.executable, str(Path(__file__).resolve()), str(plan), str(xs), str(result)],
                       env=env, check=True, preexec_fn=pin)
        return json.loads(result.read_text())


def isolated(specs: list[dict[str, Any]], x: np.ndarray, *, rounds: int, seconds: float,
             core: Optional[int] = None) -> dict[str, Any]:
    """Like :func:`interleaved`, but every (round, configuration) runs alone in a fresh
    process (pinned to ``core`` when given), as a deployed application would: several
    runtimes' thread pools in one process disturb each other (in one process mobilenet_v2's
    OpenVINO bf16 IR timed 1.72 ms; alone, 0.96 ms). The rounds still rotate the order."""
    out: dict[str, Any] = {}
    times: dict[str, list[float]] = {s["name"]: [] for s in specs}
    last: dict[str, dict[str, Any]] = {}
    noisy: dict[str, bool] = {}
    for r in range(rounds):
        k = r % len(specs)
        for spec in specs[k:] + specs[:k]:
            if spec["name"] in out:  # it failed to load: no more tries
                continue
            res = pinned_worker([spec], x, rounds=1, seconds=seconds, core=core)[spec["name"]]
            if "error" in res:
                out[spec["name"]] = res
                continue
            times[spec["name"]].append(res["p50_ms"])
            noisy[spec["name"]] = noisy.get(spec["name"], False) or bool(res["noise"].get("noisy"))
            last[spec["name"]] = res
    for name, res in last.items():  # a figure is noisy when any of its rounds was
        out[name] = {"p50_ms": float(np.median(times[name])), "rounds_ms": times[name],
                     "semantics": res["semantics"], "noise": {**res["noise"], "noisy": noisy[name]},
                     "isolated": True}
    return out


if __name__ == "__main__":  # the pinned worker
    _plan = json.loads(Path(sys.argv[1]).read_text())
    _res = interleaved(_plan["specs"], np.load(sys.argv[2]), rounds=_plan["rounds"], seconds=_plan["seconds"])
    Path(sys.argv[3]).write_text(json.dumps(_res))
