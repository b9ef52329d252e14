"""OpenVINO's ``benchmark_app`` as a reference timer, under the settings edgeslim uses.

Shared by ``benchmark_app_crosscheck.py`` (edgeslim's profiler on an IR) and
``bench_figures.py`` (``edgeslim bench`` on a hand-exported model); a helper, not a benchmark.
Both sides run with: device CPU, LATENCY hint, 1 stream, the given inference threads, f32
inference precision (so neither silently runs bf16 on a CPU that has it), batch 1, the
synchronous API. benchmark_app refuses ``-nthreads``/``-nstreams`` next to ``-hint
latency``, so those go in a ``-load_config`` file; the configuration it compiled with is
parsed from its log so that it can be printed next to edgeslim's.

    from _benchmark_app import run_benchmark_app
    ref = run_benchmark_app(Path("m.xml"), [1, 3, 224, 224], threads=2, seconds=10, work=tmp)
    ref["p50_ms"], ref["compiled"]["INFERENCE_PRECISION_HINT"]
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

LIMIT = 0.10  # edgeslim's median must be within ±10% of the reference tool's
KEYS = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
        "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE")
UNITS = {"ms": 1.0, "us": 1e-3, "s": 1e3}


def benchmark_app_exe() -> str:
    """The ``benchmark_app`` beside this Python (the openvino wheel's), else on PATH."""
    here = Path(sys.executable).with_name("benchmark_app")
    exe = str(here) if here.exists() else shutil.which("benchmark_app")
    if not exe:
        raise SystemExit("benchmark_app not found (it comes with the openvino wheel)")
    return exe


def run_benchmark_app(model: Path, shape: list[int], threads: int, seconds: float, work: Path) -> dict:
    """benchmark_app's median on ``model`` (an IR ``.xml`` or an ``.onnx``, which OpenVINO
    reads directly), with the compiled configuration and the command line."""
    cfg = work / "ov_config.json"
    cfg.write_text(json.dumps({"CPU": {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                                       "INFERENCE_NUM_THREADS": str(threads),
                                       "INFERENCE_PRECISION_HINT": "f32"}}))
    cmd = [benchmark_app_exe(), "-m", str(model), "-d", "CPU", "-hint", "latency", "-load_config", str(cfg),
           "-api", "sync", "-b", "1", "-data_shape", "[" + ",".join(map(str, shape)) + "]",
           "-t", str(int(seconds))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300, check=False)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        raise SystemExit(f"benchmark_app failed:\n{out[-2000:]}")
    med = re.search(r"Median:\s+([\d.]+)\s*(ms|us|s)\b", out)
    count = re.search(r"Count:\s+(\d+)", out)
    compiled = {k: v.strip() for k, v in re.findall(r"\]\s+(\w+):\s+(.+)", out.split("Step 8/11")[-1].split("Step 9/11")[0])
                if k in KEYS}
    return {"p50_ms": float(med.group(1)) * UNITS[med.group(2)], "iterations": int(count.group(1)),
            "compiled": compiled, "command": " ".join(cmd)}


CROSSCHECK_OPTIONS = {"inference_precision": "f32", "performance_hint": "LATENCY", "streams": 1}


def edgeslim_compiled(art, threads: int, options: dict | None = None) -> dict:
    """The configuration keys edgeslim's OpenVINO runner compiles ``art`` with, given the
    runner ``options`` (default: the settings benchmark_app is given, spelled out)."""
    from edgeslim.targets.runner import RUNNERS

    opts = CROSSCHECK_OPTIONS if options is None else options
    with RUNNERS.get("openvino")(art, threads=threads, **opts) as r:
        return {k: str(r.compiled.get_property(k)) for k in KEYS}
