"""The closing figures of ``edgeslim bench`` (issue 18), on a model edgeslim did not export.

A zoo model (random weights, BatchNorm statistics settled on random data) is exported by
hand with plain ``torch.onnx.export`` (TorchScript exporter, opset 17, static shape) and
converted by hand to an FP32 OpenVINO IR with ``openvino.convert_model`` + ``save_model``
(``compress_to_fp16=False``: an FP16-stored IR would be timed as an FP16 artifact). Then:

1. **Against the runtimes' own tools**, in interleaved rounds (the order rotating each
   round, so a change in the machine's load hits every timer alike): ``edgeslim bench`` on
   the IR against ``benchmark_app`` on the same IR (and, for information, on the ``.onnx``,
   which OpenVINO reads directly), both with the same threads, LATENCY hint, 1 stream,
   batch 1, sync API and f32 inference precision (see ``_benchmark_app``);
   ``edgeslim bench`` on the ``.onnx`` (ONNX Runtime) against a plain
   ``onnxruntime.InferenceSession`` loop in this script with the same threads and input,
   since ``onnxruntime_perf_test`` does not come with pip's onnxruntime. Target: each
   median of per-round p50s within ±10% of the reference's.
2. **Repeatability**: the same ``edgeslim bench`` command run ``--runs`` times one after
   another: every run's p50 within ±3% of their median.
3. **Under load**: one busy process per usable core, started by this script, while the
   same command runs once: every row must be flagged ``noisy``. This phase alone is meant
   to be noisy: its rows do not count against writing the results.

    python benchmarks/bench_figures.py                      # resnet18 at 224
    python benchmarks/bench_figures.py --quick --out /tmp/bf # mobilenet_v2 at 96, short

Duration (2-core AMD EPYC VM, quiet, 2 threads): the full run takes about 3 minutes: imports
and export ~10 s, 5 rounds of ~23 s (edgeslim bench on both files ~5 s, the ORT loop ~6 s,
benchmark_app ~6 s per file), 5 repeat runs of ~5 s, the loaded run ~10-20 s. ``--quick``
took 55-65 s (most of it process start-up and model loads, not timing).

Writes benchmarks/results/bench.{md,json} (``--out DIR``: DIR/bench.{md,json}).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from _artifacts import RESULTS, machine, spread
from _benchmark_app import KEYS, LIMIT, edgeslim_compiled, run_benchmark_app
from _noise import add_noise_args, check_quiet, write_result
from edgeslim.targets.bench import make_target, open_artifact

REPEAT_LIMIT = 0.03
PERF_TEST = "onnxruntime_perf_test"


def export_by_hand(name: str, size: int, work: Path) -> tuple[Path, Path]:
    """``name`` from the zoo, exported with plain torch.onnx.export and converted with
    openvino's Python API, as a user would outside edgeslim."""
    import openvino as ov
    import torch

    from edgeslim.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=1000)
    # Freshly initialised BatchNorm statistics (mean 0, var 1) let activations grow layer by
    # layer; settle them on random data so the timed arithmetic sees ordinary magnitudes.
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size))
    model.eval()
    onnx_path, xml_path = work / f"{name}.onnx", work / f"{name}.xml"
    with warnings.catch_warnings():
        # The TorchScript exporter on purpose: the static graph most hand exports still are;
        # torch warns that it is no longer the default.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return onnx_path, xml_path


def bench_command(paths: list[Path], threads: int, json_path: Path) -> list[str]:
    exe = Path(sys.executable).with_name("edgeslim")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgeslim.cli"]
    return head + ["bench", *map(str, paths), "--threads", str(threads), "--json", str(json_path)]


def shown(cmd: list[str], work: Path) -> str:
    """A command line as a reader would type it: no temporary folder, no venv path."""
    text = " ".join(cmd).replace(str(work) + "/", "")
    return text.replace(str(Path(sys.executable).parent) + "/", "")


def run_bench(paths: list[Path], threads: int, work: Path) -> dict[str, dict]:
    """One ``edgeslim bench`` subprocess; its rows by file name."""
    out = work / "bench-rows.json"
    cmd = bench_command(paths, threads, out)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if r.returncode != 0:
        raise SystemExit(f"edgeslim bench failed ({r.returncode}):\n{(r.stdout + r.stderr)[-2000:]}")
    rows = {row["id"]: row for row in json.loads(out.read_text())}
    for row in rows.values():
        if row["status"] != "ok":
            raise SystemExit(f"edgeslim bench could not time {row['id']}: {row['reason']}")
    return rows


def ort_loop(onnx_path: Path, sample: np.ndarray, threads: int, seconds: float) -> dict:
    """The hand reference for ONNX Runtime: a plain session, timed per call."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: sample}
    n, end = 0, time.perf_counter() + 1.0
    while n < 10 or time.perf_counter() < end:  # warm-up: 10 calls and 1 s
        sess.run(None, feed)
        n += 1
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < 20 or time.perf_counter() < end:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": float(np.median(times)), "iterations": len(times)}


def side_by_side(onnx_path: Path, xml_path: Path, size: int, threads: int, seconds: float, rounds: int,
                 work: Path) -> dict:
    """Interleaved rounds of the four timers; per-round p50s of each."""
    shape = [1, 3, size, size]
    sample = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)  # edgeslim bench's input
    runs: dict[str, list] = {"edgeslim": [], "ort_loop": [], "benchmark_app_xml": [], "benchmark_app_onnx": []}
    timers = {
        "edgeslim": lambda: run_bench([onnx_path, xml_path], threads, work),
        "ort_loop": lambda: ort_loop(onnx_path, sample, threads, seconds),
        "benchmark_app_xml": lambda: run_benchmark_app(xml_path, shape, threads, seconds, work),
        "benchmark_app_onnx": lambda: run_benchmark_app(onnx_path, shape, threads, seconds, work),
    }
    names = list(timers)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
            runs[name].append(timers[name]())
        rows = runs["edgeslim"][-1]
        print(f"round {r + 1}: edgeslim onnx {rows[onnx_path.name]['latency_ms']['p50']:.3f} / ort loop "
              f"{runs['ort_loop'][-1]['p50_ms']:.3f} ms; edgeslim xml {rows[xml_path.name]['latency_ms']['p50']:.3f}"
              f" / benchmark_app xml {runs['benchmark_app_xml'][-1]['p50_ms']:.3f} (onnx "
              f"{runs['benchmark_app_onnx'][-1]['p50_ms']:.3f}) ms", flush=True)

    def med(values: list[float]) -> float:
        return float(np.median(values))

    ours = {f: [rows[f]["latency_ms"]["p50"] for rows in runs["edgeslim"]] for f in (onnx_path.name, xml_path.name)}
    refs = {k: [x["p50_ms"] for x in runs[k]] for k in names[1:]}
    checks = []
    for f, ref, label in ((onnx_path.name, "ort_loop", "plain onnxruntime.InferenceSession loop"),
                          (xml_path.name, "benchmark_app_xml", "benchmark_app on the IR")):
        a, z = med(ours[f]), med(refs[ref])
        first = runs["edgeslim"][0][f]
        checks.append({"file": f, "runtime": first["semantics"]["runtime"], "reference": label,
                       "edgeslim_p50_ms": a, "reference_p50_ms": z, "ratio": a / z, "passed": abs(a / z - 1) <= LIMIT,
                       "edgeslim_by_round": ours[f], "reference_by_round": refs[ref],
                       "noisy_rounds": sum(bool(rows[f]["noise"]["noisy"]) for rows in runs["edgeslim"]),
                       "precision_executed": first["semantics"]["precision_executed"],
                       "semantics": first["semantics"]})
    return {"checks": checks, "benchmark_app_onnx_p50_ms": med(refs["benchmark_app_onnx"]),
            "benchmark_app_onnx_by_round": refs["benchmark_app_onnx"],
            "benchmark_app_commands": [shown(runs[k][0]["command"].split(), work)
                                       for k in ("benchmark_app_xml", "benchmark_app_onnx")],
            "compiled_benchmark_app": runs["benchmark_app_xml"][0]["compiled"],
            "edgeslim_rows": [list(rows.values()) for rows in runs["edgeslim"]]}


def repeat(paths: list[Path], threads: int, runs: int, work: Path) -> dict:
    all_rows = [run_bench(paths, threads, work) for _ in range(runs)]
    out = {"runs": runs, "files": {}, "rows": [list(r.values()) for r in all_rows]}
    for p in paths:
        p50 = [rows[p.name]["latency_ms"]["p50"] for rows in all_rows]
        out["files"][p.name] = {"p50_ms": p50, "median_ms": float(np.median(p50)), "spread": spread(p50),
                                "passed": spread(p50) <= REPEAT_LIMIT,
                                "noisy_runs": sum(bool(rows[p.name]["noise"]["noisy"]) for rows in all_rows)}
        print(f"repeat {p.name}: p50 " + ", ".join(f"{x:.3f}" for x in p50)
              + f" ms, spread ±{100 * spread(p50):.1f}%", flush=True)
    return out


def under_load(paths: list[Path], threads: int, work: Path) -> dict:
    """The same command while one busy process per usable core competes with it."""
    cores = len(os.sched_getaffinity(0))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(1.0)  # let the load reach every core before the command starts
        rows = run_bench(paths, threads, work)
    finally:
        for p in busy:
            p.kill()
        for p in busy:
            p.wait()
    files = {f: {"p50_ms": r["latency_ms"]["p50"], "other_cpu_share": r["noise"]["other_cpu_share"],
                 "threshold": r["noise"].get("threshold"), "noisy": bool(r["noise"]["noisy"])}
             for f, r in rows.items()}
    for f, x in files.items():
        print(f"loaded {f}: p50 {x['p50_ms']:.3f} ms, other processes {100 * x['other_cpu_share']:.0f}% "
              f"of the cores, noisy={x['noisy']}", flush=True)
    return {"busy_processes": cores, "files": files, "all_flagged": all(x["noisy"] for x in files.values()),
            "rows": list(rows.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="zoo model (default resnet18; --quick: mobilenet_v2)")
    ap.add_argument("--size", type=int, default=None, help="input size (default 224; --quick: 96)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rounds", type=int, default=None, help="side-by-side rounds (default 5; --quick: 2)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="time per reference measurement, whole seconds (default 5; --quick: 2)")
    ap.add_argument("--runs", type=int, default=None, help="repeated bench runs (default 5; --quick: 3)")
    ap.add_argument("--quick", action="store_true", help="small model, short rounds: checks the script")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for bench.{md,json} (default results/)")
    add_noise_args(ap)
    args = ap.parse_args()
    quiet = check_quiet(args)
    model = args.model or ("mobilenet_v2" if args.quick else "resnet18")
    size = args.size or (96 if args.quick else 224)
    rounds = args.rounds or (2 if args.quick else 5)
    seconds = max(1.0, float(int(args.seconds or (2 if args.quick else 5))))
    runs = args.runs or (3 if args.quick else 5)
    t0 = time.monotonic()

    import onnxruntime
    import openvino
    import torch

    results = {"machine": {**machine(), "noise_before": quiet}, "model": model, "input_size": size,
               "threads": args.threads, "rounds": rounds, "seconds": seconds, "limit": LIMIT,
               "repeat_limit": REPEAT_LIMIT, "versions": {"torch": torch.__version__, "openvino": openvino.__version__,
                                                          "onnxruntime": onnxruntime.__version__},
               "onnxruntime_perf_test": shutil.which(PERF_TEST)}
    with tempfile.TemporaryDirectory(prefix="edgeslim-bench-figures-") as tmp:
        work = Path(tmp)
        onnx_path, xml_path = export_by_hand(model, size, work)
        paths = [onnx_path, xml_path]
        art = open_artifact(xml_path)
        results["bench_command"] = shown(bench_command(paths, args.threads, work / "rows.json"), work)
        results["side_by_side"] = side_by_side(onnx_path, xml_path, size, args.threads, seconds, rounds, work)
        results["side_by_side"]["compiled_edgeslim"] = edgeslim_compiled(
            art, args.threads, make_target("cpu", args.threads).runner_options(art))
        results["repeat"] = repeat(paths, args.threads, runs, work)
        results["under_load"] = under_load(paths, args.threads, work)
    results["wall_seconds"] = round(time.monotonic() - t0, 1)
    # The loaded phase is noisy on purpose: only the quiet phases' rows decide the write.
    quiet_rows = [results["side_by_side"]["edgeslim_rows"], results["repeat"]["rows"]]
    write_result(args.out / "bench.json", json.dumps(results, indent=2, default=str), args, rows=quiet_rows,
                 quiet=quiet)
    md_path = args.out / "bench.md"
    if not write_result(md_path, markdown(results, args), args, rows=quiet_rows, quiet=quiet):
        md_path = md_path.with_name(md_path.name + ".noisy")
    print(md_path.read_text(encoding="utf-8"))  # as written, with its load check line


def markdown(r: dict, args) -> str:
    mc, s, rep, load = r["machine"], r["side_by_side"], r["repeat"], r["under_load"]
    cmd = "python benchmarks/bench_figures.py" + (" --quick" if args.quick else "")
    perf = (f"`{PERF_TEST}` is at {r['onnxruntime_perf_test']} but was not used" if r["onnxruntime_perf_test"] else
            f"`{PERF_TEST}` is not installed (pip's onnxruntime wheel does not ship it)")
    v = r["versions"]
    lines = [
        "# `edgeslim bench` on a hand-exported model: against the runtimes' tools, repeatability, load", "",
        (f"{r['model']} at {r['input_size']}×{r['input_size']}, random weights, exported by hand with "
         f"`torch.onnx.export` (TorchScript exporter, opset 17, static shape) and converted to an FP32 IR with "
         f"`openvino.save_model(openvino.convert_model(onnx), xml, compress_to_fp16=False)`. "
         f"Machine: {mc['cpu']}, {mc['usable_cores']} usable cores; {r['threads']} threads everywhere, batch 1. "
         f"torch {v['torch']}, OpenVINO {v['openvino']}, ONNX Runtime {v['onnxruntime']}. "
         f"Whole run: {r['wall_seconds']:.0f} s."), "",
        f"Command: `{cmd}`; each edgeslim figure is `{r['bench_command']}`.", "",
        f"## Against the runtimes' own tools ({r['rounds']} interleaved rounds, order rotating)", "",
        (f"OpenVINO: LATENCY hint, 1 stream, sync API, f32 inference precision on both sides; benchmark_app "
         f"runs {r['seconds']:g} s per round. ONNX Runtime: {perf}, so the reference is a plain "
         f"`onnxruntime.InferenceSession` (intra-op threads {r['threads']}, defaults otherwise) timed per call for "
         f"{r['seconds']:g} s after 1 s of warm-up, on the same input as edgeslim bench."), "",
        ("| file | runtime | precision executed | edgeslim bench p50 ms | reference | reference p50 ms | ratio "
         "| within ±10% | noisy rounds |"),
        "|---|---|---|---|---|---|---|---|---|"]
    for c in s["checks"]:
        lines.append(f"| {c['file']} | {c['runtime']} | {c['precision_executed']} | {c['edgeslim_p50_ms']:.3f} | "
                     f"{c['reference']} | {c['reference_p50_ms']:.3f} | {c['ratio']:.3f} | "
                     f"{'yes' if c['passed'] else 'no'} | {c['noisy_rounds']} |")
    lines += ["", "Per round (ms): " + "; ".join(
        f"{c['file']}: edgeslim " + ", ".join(f"{x:.2f}" for x in c["edgeslim_by_round"]) + " vs "
        + ", ".join(f"{x:.2f}" for x in c["reference_by_round"]) for c in s["checks"])
        + f". benchmark_app on the .onnx itself (OpenVINO's ONNX reader): {s['benchmark_app_onnx_p50_ms']:.3f} ms.",
        "", "| compiled property (IR) | edgeslim bench | benchmark_app |", "|---|---|---|",
        *[f"| {k} | {s['compiled_edgeslim'].get(k)} | {s['compiled_benchmark_app'].get(k)} |" for k in KEYS],
        "", "benchmark_app commands: " + "; ".join(f"`{c}`" for c in s["benchmark_app_commands"])
        + " (ov_config.json: LATENCY, 1 stream, the threads, f32).", "",
        f"## Repeatability ({rep['runs']} runs of the same command, one after another)", "",
        "| file | p50 per run ms | median ms | largest distance from the median | within ±3% | noisy runs |",
        "|---|---|---|---|---|---|"]
    for f, x in rep["files"].items():
        lines.append(f"| {f} | {', '.join(f'{p:.3f}' for p in x['p50_ms'])} | {x['median_ms']:.3f} | "
                     f"±{100 * x['spread']:.1f}% | {'yes' if x['passed'] else 'no'} | {x['noisy_runs']} |")
    lines += ["", f"## Under a competing load ({load['busy_processes']} busy processes, one per usable core)", "",
              ("The same command once while this script keeps every core busy; the quiet median is the "
               "repeatability runs'. This phase alone skips the quiet check."), "",
              "| file | quiet p50 ms | loaded p50 ms | other processes' share of the cores | threshold | flagged noisy |",
              "|---|---|---|---|---|---|"]
    for f, x in load["files"].items():
        lines.append(f"| {f} | {rep['files'][f]['median_ms']:.3f} | {x['p50_ms']:.3f} | "
                     f"{100 * x['other_cpu_share']:.0f}% | {100 * (x['threshold'] or 0):.0f}% | "
                     f"{'yes' if x['noisy'] else 'no'} |")
    return "\n".join(lines + [""])


if __name__ == "__main__":
    main()
