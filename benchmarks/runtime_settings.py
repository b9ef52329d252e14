"""Runtime settings chosen by measurement (issue 20), written to benchmarks/results/runtime_settings.{md,json}.

For resnet50 and mobilenet_v2 at 224x224 (random weights, BatchNorm statistics set on
synthetic images: timing only), FP32 and INT8, in ONNX Runtime and OpenVINO, on ``cpu``
(this process, all usable cores) and ``edge`` (a worker pinned to one core, 1 thread), every
combination of

- ONNX Runtime: graph optimization ``all`` vs ``extended``; intra-op threads = physical
  cores vs logical CPUs (``cpu`` only; one value where they are equal); spinning
  (``session.intra_op.allow_spinning``) on vs off;
- OpenVINO: hint LATENCY vs THROUGHPUT (1 stream either way: one request in flight);
  ENABLE_CPU_PINNING on vs off; threads = physical vs logical (``cpu`` only)

is timed with edgeslim's own runners in interleaved rounds (each round times every
combination of one artifact once, in a rotated order; a figure is the median of the rounds).
The table gives each one's ratio to the runner's defaults (edgeslim.targets.runtime_options)
and the summary which value of each knob won how often, which is what the defaults follow.

    python benchmarks/runtime_settings.py            # full: 2 models x 2 precisions, 5 rounds of 1 s (~12 min)
    python benchmarks/runtime_settings.py --quick    # resnet20 at 32 px, 2 rounds of 0.2 s; writes nothing to results/
    python benchmarks/runtime_settings.py --models resnet50 --rounds 7 --seconds 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from _artifacts import RESULTS, Builder, machine
from _interleave import interleaved, pinned_worker
from _noise import add_noise_args, check_quiet, write_result

MODELS = ("resnet50", "mobilenet_v2")
QUICK_MODELS = ("resnet20",)


def _threads() -> dict[str, int]:
    from edgeslim.targets.base import usable_cores
    from edgeslim.targets.roofline import physical_cores

    return {"physical": physical_cores(), "logical": usable_cores()}


def _thread_choices(target: str) -> list[tuple[str, int]]:
    """(label, count) pairs: edge has one thread; physical == logical collapses to one."""
    if target == "edge":
        return [("1", 1)]
    t = _threads()
    return [("physical=logical", t["logical"])] if t["physical"] == t["logical"] else \
        [(f"physical {t['physical']}", t["physical"]), (f"logical {t['logical']}", t["logical"])]


def settings(fmt: str, target: str) -> list[dict[str, Any]]:
    """Every combination for one runtime on one target; the first is the runners' defaults."""
    out = []
    threads = _thread_choices(target)
    if fmt == "onnx":
        for level, (tl, tn), spin in itertools.product(("all", "extended"), threads, (True, False)):
            out.append({"knobs": {"graph_optimization": level, "threads": tl, "spinning": int(spin)},
                        "threads": tn, "options": {"graph_optimization": level, "spinning": spin}})
    else:
        for hint, (tl, tn), pin in itertools.product(("LATENCY", "THROUGHPUT"), threads, (True, False)):
            out.append({"knobs": {"hint": hint, "threads": tl, "pinning": int(pin)}, "threads": tn,
                        "options": {"inference_precision": "auto", "performance_hint": hint, "streams": 1,
                                    "pinning": pin}})
    # the defaults first: all / logical / spinning on; LATENCY / logical / OpenVINO's pinning
    # (on, on Linux) — see edgeslim.targets.runtime_options
    out.sort(key=lambda s: (s["threads"] != threads[-1][1], s["options"].get("graph_optimization", "all") != "all",
                            not s["options"].get("spinning", True), s["options"].get("performance_hint", "LATENCY") != "LATENCY",
                            not s["options"].get("pinning", True)))
    return out


def _label(knobs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in knobs.items())


def measure_artifact(art: Any, target: str, x: np.ndarray, *, rounds: int, seconds: float) -> dict[str, Any]:
    combos = settings(art.format, target)
    specs = [{"name": _label(c["knobs"]), "runtime": "edgeslim", "threads": c["threads"], "options": c["options"],
              "artifact": {"path": str(art.path), "format": art.format, "precision": art.precision}} for c in combos]
    if target == "edge":
        res = pinned_worker(specs, x, rounds=rounds, seconds=seconds, core=0)
    else:
        res = interleaved(specs, x, rounds=rounds, seconds=seconds)
    default = res[specs[0]["name"]].get("p50_ms")
    rows = []
    for c, s in zip(combos, specs):
        r = res[s["name"]]
        rows.append({"knobs": c["knobs"], "default": s is specs[0], **r,
                     "vs_default": (r["p50_ms"] / default) if default and "p50_ms" in r else None})
    ok = [r for r in rows if "p50_ms" in r]
    best = min(ok, key=lambda r: r["p50_ms"]) if ok else None
    return {"format": art.format, "precision": art.precision, "target": target, "rows": rows,
            "best": best["knobs"] if best else None}


def build(model: str, size: int, work: Path, calibration: int) -> tuple[list[Any], np.ndarray]:
    b = Builder(work, model, size, calibration=calibration)
    arts = []
    for fmt in ("onnx", "openvino"):
        fp32 = b.export(b.model, fmt, "baseline")
        arts += [fp32, b.quantize(fp32, "int8")]
    return arts, np.ascontiguousarray(b.sample[:1])


def summary(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Per runtime and target, how often each knob's value was in the fastest combination,
    and the median ratio of that knob's other value to it (all else equal)."""
    wins: dict[str, Counter] = {}
    for g in groups:
        if g["best"] is None:
            continue
        key = f"{g['format']} on {g['target']}"
        for k, v in g["best"].items():
            wins.setdefault(f"{key}: {k}", Counter())[str(v)] += 1
    return {k: dict(c) for k, c in wins.items()}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Runtime settings chosen by measurement", "",
             f"Command: `{result['command']}` · {m['cpu']} ({', '.join(m['isa'])}), {m['usable_cores']} usable CPUs, "
             f"{result['threads']['physical']} physical cores. {result['rounds']} interleaved rounds of "
             f"{result['seconds']:g} s per setting; p50 = median of the rounds' p50. Random weights (timing only). "
             f"`edge` = a worker pinned to CPU 0 with 1 thread. {result['wall_s']:.0f} s in all.", ""]
    for model, groups in result["models"].items():
        for g in groups:
            lines += [f"## {model}, {g['format']} {g['precision']}, `{g['target']}`", "",
                      "| setting | p50 ms | vs default | ran |", "|---|---|---|---|"]
            for r in g["rows"]:
                name = _label(r["knobs"]) + (" (default)" if r["default"] else "") + \
                    (" (noisy)" if (r.get("noise") or {}).get("noisy") else "")
                if "p50_ms" not in r:
                    lines.append(f"| {name} | failed: {r['error']} | — | — |")
                    continue
                sem = r["semantics"]
                ran = ", ".join(f"{k} {sem[k]}" for k in ("inference_precision", "streams", "pinning", "threads")
                                if k in sem)
                lines.append(f"| {name} | {r['p50_ms']:.3f} | {r['vs_default']:.3f} | {ran} |")
            lines.append("")
    lines += ["## Which value won", "", "| runtime on target: knob | wins |", "|---|---|"]
    lines += [f"| {k} | {', '.join(f'{v}: {n}' for v, n in c.items())} |" for k, c in result["summary"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="resnet20 at 32 px, 2 rounds of 0.2 s; results/ untouched")
    ap.add_argument("--models", default=None, help=f"comma-separated zoo models (default {','.join(MODELS)})")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; quick 2)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per setting per round (default 1; quick 0.2)")
    ap.add_argument("--targets", default="cpu,edge")
    ap.add_argument("--out", type=Path, default=None, help="folder for the .md/.json (default results/; quick: none)")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)
    rounds = args.rounds or (2 if args.quick else 5)
    seconds = args.seconds or (0.2 if args.quick else 1.0)
    models = args.models.split(",") if args.models else list(QUICK_MODELS if args.quick else MODELS)
    size = 32 if args.quick else 224
    t0 = time.perf_counter()
    result: dict[str, Any] = {"command": "python benchmarks/runtime_settings.py " + " ".join(sys.argv[1:]),
                              "machine": {**machine(), "noise_before": quiet}, "threads": _threads(),
                              "rounds": rounds, "seconds": seconds, "input_size": size, "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgeslim-settings-") as tmp:
        for model in models:
            arts, x = build(model, size, Path(tmp), 8 if args.quick else 64)
            result["models"][model] = [measure_artifact(a, t, x, rounds=rounds, seconds=seconds)
                                       for t in args.targets.split(",") for a in arts]
            for g in result["models"][model]:
                print(f"{model} {g['format']} {g['precision']} on {g['target']}: best {_label(g['best'] or {})}",
                      flush=True)
    result["summary"] = summary([g for gs in result["models"].values() for g in gs])
    result["wall_s"] = time.perf_counter() - t0
    out = args.out if args.out else (None if args.quick else RESULTS)
    if out is None:
        print(markdown(result))
        print("(quick run: nothing written; pass --out DIR to keep it)")
        return
    rows = [r for gs in result["models"].values() for g in gs for r in g["rows"]]
    write_result(out / "runtime_settings.json", json.dumps(result, indent=2), args, rows=rows, quiet=quiet)
    write_result(out / "runtime_settings.md", markdown(result), args, rows=rows, quiet=quiet)
    print(f"wrote {out / 'runtime_settings.md'}")


if __name__ == "__main__":
    main()
