"""What the rest of the canon buys: unstructured, lottery tickets, pruning at init, factorization.

Writes ``benchmarks/results/sparse.md`` and ``sparse.json``:

A. digits / resnet20: accuracy vs remaining weights (100, 50, 20, 10, 5%) for magnitude
   (+ fine-tuning), random_unstructured (+ fine-tuning), imp with each rewinding (init,
   epoch 1, lr), snip, grasp, synflow and random_init (trained from scratch after pruning).
B. tucker on resnet50 at 224 (random weights, fixed ranks C/4 and C/2): params, MACs,
   ONNX Runtime and OpenVINO latency.
C. tucker on the digits-trained resnet20 (VBMF and energy ranks): accuracy before and
   after fine-tuning, params, MACs, latency.
D. unstructured artifacts: dense bytes, zipped bytes, latency (ONNX Runtime fp32/int8,
   OpenVINO fp32/int8, and OpenVINO int8 with CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE).

Usage::

    python benchmarks/sparse.py            # full: 8 training epochs, 20%-per-round IMP (~hours on 2 cores)
    python benchmarks/sparse.py --quick    # 3 epochs, coarse IMP schedule, fewer timings
    python benchmarks/sparse.py --parts a,d
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _noise import add_noise_args, check_quiet, write_result  # noqa: E402
from edgeslim.artifacts import Artifact  # noqa: E402
from edgeslim.compress import METHODS, CompressJob  # noqa: E402
from edgeslim.compress.lottery import iterative_magnitude_pruning  # noqa: E402
from edgeslim.compress.masks import MaskKeeper, masks_from_zeros, prunable_layers, sparsity_of  # noqa: E402
from edgeslim.compress.pruner import count_macs_params  # noqa: E402
from edgeslim.compress.sparsity import deflated_bytes, openvino_sparse_weights  # noqa: E402
from edgeslim.data import load_data  # noqa: E402
from edgeslim.exporters.onnx import torch_to_onnx  # noqa: E402
from edgeslim.finetune.train import TrainSpec, evaluate, train  # noqa: E402
from edgeslim.finetune.trainer import LoopTrainer  # noqa: E402
from edgeslim.models.zoo import create_model  # noqa: E402
from edgeslim.recipe import CompressCfg, ProfileCfg, QuantizeCfg  # noqa: E402
from edgeslim.targets.base import cpu_info  # noqa: E402
from edgeslim.targets.profiler import time_infer  # noqa: E402

REMAINING = [1.0, 0.5, 0.2, 0.1, 0.05]
SPEC = {"name": "resnet20", "num_classes": 10, "kwargs": {}}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.data = load_data("digits", input_size=32, num_classes=10, seed=0)
        self.example = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        self.epochs = args.epochs
        self.ft_epochs = args.finetune_epochs
        # min_seconds=0: the timing sparse.md was measured with
        self.timing = ProfileCfg(warmup=5, warmup_seconds=0.2, min_iterations=args.iterations, min_seconds=0,
                                 max_iterations=2000, max_seconds=args.max_seconds, ci_threshold=0.02)

    # -- training: the same settings as the recipe defaults (baseline / finetune)
    def fresh(self):
        torch.manual_seed(0)
        return create_model("resnet20", num_classes=10)

    def train_spec(self, epochs: int) -> TrainSpec:
        return TrainSpec(epochs, 0.05, "sgd", 0.9, 5e-4, 64, 0)

    def trainer(self) -> LoopTrainer:
        # Methods that train (imp, pruning at init) train from scratch at the baseline's
        # settings; both schedules are those settings, as this benchmark was measured.
        spec = self.train_spec(self.epochs)
        return LoopTrainer(self.data, {"baseline": spec, "finetune": spec})

    def finetune(self, model, after_step=None):
        train(model, self.data, TrainSpec(self.ft_epochs, 0.01, "sgd", 0.9, 1e-4, 64, 0), after_step=after_step)

    def acc(self, model):
        return evaluate(model, self.data.val_loader(256))

    def job(self, model, method, ratio, **opts):
        cfg = CompressCfg(method=method, ratio=ratio, scope="global", **opts)
        return CompressJob(model=model, example_inputs=self.example, data=self.data, cfg=cfg,
                           options=cfg.method_options(), spec=SPEC, batch_size=64, seed=0,
                           trainer=self.trainer(), build_fresh=self.fresh, log=log)

    def baseline(self):
        if not hasattr(self, "_base"):
            log(f"baseline: resnet20 on digits, {self.epochs} epochs")
            m = self.fresh()
            train(m, self.data, self.train_spec(self.epochs))
            self._base = m.eval()
            self.base_acc = self.acc(m)
            log(f"baseline accuracy {self.base_acc:.4f}")
        return self._base

    # -- A
    def part_a(self):
        base = self.baseline()
        rows = [{"method": "dense", "remaining": 1.0, "accuracy": self.base_acc, "epochs": self.epochs}]
        self.pruned = {}
        for method in ("magnitude", "random_unstructured"):
            for rem in REMAINING[1:]:
                job = self.job(copy.deepcopy(base), method, 1 - rem)
                m = METHODS.get(method).apply(job)
                before = self.acc(m)
                self.finetune(m, MaskKeeper(masks_from_zeros(m)))
                rows.append({"method": method, "remaining": rem, "accuracy_before_finetune": before,
                             "accuracy": self.acc(m), "sparsity": job.notes["sparsity"],
                             "max_layer_sparsity": max(job.notes["layer_sparsity"].values()),
                             "epochs": self.epochs + self.ft_epochs})
                if method == "magnitude":
                    self.pruned[rem] = m
                log(f"{method} {rem:.2f}: {before:.4f} -> {rows[-1]['accuracy']:.4f}")
        for rewind in self.args.rewinds:
            keep = self.imp_schedule()
            model = copy.deepcopy(base)
            job = self.job(model, "imp", 0.95, rewind=rewind)
            t0 = time.perf_counter()
            iterative_magnitude_pruning(job, keep=keep, rewind=rewind, epochs=self.epochs)
            k = 0 if rewind in ("init", "lr") else int(rewind)
            for r in job.notes["rounds"][1:]:
                if any(abs(r["remaining"] - t) < 1e-9 for t in REMAINING):
                    rows.append({"method": f"imp (rewind {rewind})", "remaining": r["remaining"],
                                 "accuracy": r["accuracy"], "sparsity": r["sparsity"],
                                 # dense training (the baseline, for lr) + every round so far
                                 "round": r["round"], "epochs": self.epochs + r["round"] * (self.epochs - k)})
            log(f"imp rewind {rewind}: {len(keep)} rounds in {time.perf_counter() - t0:.0f}s")
        for method in ("snip", "grasp", "synflow", "random_init"):
            for rem in REMAINING[1:]:
                job = self.job(copy.deepcopy(base), method, 1 - rem)
                m = METHODS.get(method).apply(job)
                rows.append({"method": method, "remaining": rem, "accuracy": self.acc(m),
                             "sparsity": job.notes["sparsity"], "epochs": self.epochs,
                             "empty_layers": len(job.notes.get("empty_layers", []))})
                log(f"{method} {rem:.2f}: {rows[-1]['accuracy']:.4f}")
        return rows

    def imp_schedule(self):
        if self.args.quick:
            return REMAINING[1:]  # one round per target: 50%, 60%, 50%, 50% of what remains
        keep, cur = [], 1.0
        for t in REMAINING[1:]:
            while cur * 0.8 > t + 1e-9:
                cur *= 0.8
                keep.append(cur)
            keep.append(t)
            cur = t
        return keep

    # -- latency helpers
    def latency(self, art: Artifact, runner_cls, x: np.ndarray, **opts):
        with runner_cls(art, threads=self.args.threads, **opts) as r:
            stats = time_infer(r, x, self.timing)
            sem = r.semantics()
        return stats["latency_ms"]["p50"], sem

    def ort(self, onnx_path: Path, x, precision="fp32"):
        from edgeslim.targets.ort_runner import OrtRunner

        return self.latency(Artifact(onnx_path, "onnx", precision, "x", "x"), OrtRunner, x)[0]

    def ov(self, onnx_path: Path, x, out: Path, precision="fp32"):
        try:
            from edgeslim.exporters.openvino import onnx_to_ir
            from edgeslim.targets.openvino_runner import OpenVinoRunner

            xml = out / (onnx_path.stem + ".xml")
            files = onnx_to_ir(onnx_path, xml)
            p50, sem = self.latency(Artifact(xml, "openvino", precision, "x", "x", files=files), OpenVinoRunner, x,
                                    inference_precision="f32")
            return p50, sem.get("precision_executed"), xml
        except Exception as err:  # report, do not stop the benchmark
            return None, f"failed: {str(err).splitlines()[0][:120]}", None

    # -- B
    def part_b(self, tmp: Path):
        torch.manual_seed(0)
        model = create_model("resnet50", num_classes=1000).eval()
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        rows = []
        settings = [("dense", None), ("tucker ranks C/4", 4), ("tucker ranks C/2", 2)]
        for label, div in settings:
            m = copy.deepcopy(model)
            if div:
                ranks = {n: [max(1, mod.out_channels // div), max(1, mod.in_channels // div)]
                         for n, mod in m.named_modules()
                         if isinstance(mod, torch.nn.Conv2d) and mod.kernel_size != (1, 1) and mod.in_channels > 3}
                job = CompressJob(model=m, example_inputs=x, data=None, options=None, spec={},
                                  cfg=CompressCfg(method="tucker", ranks=ranks))
                job.options = job.cfg.method_options()
                m = METHODS.get("tucker").apply(job).eval()
            macs, params = count_macs_params(m, x)
            with torch.no_grad():
                rel = float((m(x) - model(x)).norm() / model(x).norm())
            path = tmp / f"r50_{div or 1}.onnx"
            log(f"resnet50 {label}: exporting")
            torch_to_onnx(m, x, path)
            xs = x.numpy()
            ort = self.ort(path, xs)
            ov, ov_prec, _ = self.ov(path, xs, tmp)
            rows.append({"setting": label, "params": params, "macs": macs, "output_rel_error": rel,
                         "ort_p50_ms": ort, "openvino_p50_ms": ov, "openvino_precision": ov_prec,
                         "onnx_bytes": path.stat().st_size})
            log(f"resnet50 {label}: {params:,} params, {macs / 1e9:.2f} GMACs, ORT {ort:.1f} ms, OV {ov}")
        return rows

    # -- C
    def part_c(self, tmp: Path):
        base = self.baseline()
        x = self.data.val_arrays(limit=1)[0]
        rows = []
        for label, opts in [("dense", None), ("tucker vbmf", {"rank_method": "vbmf"}),
                            ("tucker energy 0.9", {"rank_method": "energy", "energy": 0.9}),
                            ("tucker energy 0.7", {"rank_method": "energy", "energy": 0.7}),
                            ("cp ratio 0.5", None), ("svd (fc) energy 0.9", {"rank_method": "energy", "energy": 0.9})]:
            m = copy.deepcopy(base)
            before = self.base_acc
            if label != "dense":
                method = label.split()[0]
                job = self.job(m, method, 0.5, **(opts or {}))
                m = METHODS.get(method).apply(job).eval()
                before = self.acc(m)
                self.finetune(m)
            macs, params = count_macs_params(m, self.example)
            path = tmp / f"r20_{label.replace(' ', '_')}.onnx"
            torch_to_onnx(m, self.example, path)
            rows.append({"setting": label, "params": params, "macs": macs, "accuracy_before_finetune": before,
                         "accuracy": self.acc(m), "ort_p50_ms": self.ort(path, x),
                         "openvino_p50_ms": self.ov(path, x, tmp)[0]})
            log(f"resnet20 {label}: {rows[-1]}")
        return rows

    # -- D
    def part_d(self, tmp: Path):
        from edgeslim.quantizers import QUANTIZERS

        base = self.baseline()
        if not getattr(self, "pruned", None):
            self.pruned = {}
            for rem in (0.5, 0.1, 0.05):
                job = self.job(copy.deepcopy(base), "magnitude", 1 - rem)
                m = METHODS.get("magnitude").apply(job)
                self.finetune(m, MaskKeeper(masks_from_zeros(m)))
                self.pruned[rem] = m
        x = self.data.val_arrays(limit=1)[0]
        xv, yv = self.data.val_arrays()
        calib = self.data.calibration(64, seed=0)
        rows = []
        sparse_ok, sparse_why = openvino_sparse_weights()
        for rem, m in [(1.0, base)] + [(r, self.pruned[r]) for r in (0.5, 0.1, 0.05) if r in self.pruned]:
            d = tmp / f"unstructured_{rem}"
            (d / "int8").mkdir(parents=True, exist_ok=True)
            path = d / "model.onnx"
            torch_to_onnx(m.eval(), self.example, path)
            fp32 = Artifact(path, "onnx", "fp32", "x", "x")
            int8 = QUANTIZERS.get("onnx-int8").quantize(fp32, calib, d / "int8", cfg=QuantizeCfg())
            names = list(prunable_layers(m, num_classes=10))
            for art in (fp32, int8):
                from edgeslim.targets.ort_runner import OrtRunner

                with OrtRunner(art, threads=self.args.threads) as r:
                    acc = float((r.infer(xv).argmax(1) == yv).mean())
                ov_p50, ov_prec, xml = self.ov(art.path, x, d / art.precision)
                row = {"remaining": rem, "sparsity": round(sparsity_of(m, names), 4), "precision": art.precision,
                       "bytes": art.bytes, "bytes_zipped": deflated_bytes(art.files), "accuracy": acc,
                       "ort_p50_ms": self.ort(art.path, x, art.precision), "openvino_p50_ms": ov_p50,
                       "openvino_precision": ov_prec}
                if art.precision == "int8" and xml is not None:
                    row.update(self.ov_sparse(xml, x))
                rows.append(row)
                log(f"unstructured {rem} {art.precision}: {row}")
        return rows, {"openvino_sparse_weights": sparse_ok, "why": sparse_why}

    def ov_sparse(self, xml: Path, x: np.ndarray) -> dict:
        """Compile the INT8 IR with and without sparse-weights decompression; time both."""
        from edgeslim.targets.openvino_runner import core

        out = {}
        for rate in (None, 0.5):
            cfg = {"INFERENCE_NUM_THREADS": self.args.threads or os.cpu_count(), "PERFORMANCE_HINT": "LATENCY"}
            if rate is not None:
                cfg["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] = rate
            compiled = core().compile_model(core().read_model(str(xml)), "CPU", cfg)
            req = compiled.create_infer_request()
            runner = SimpleNamespace(infer=lambda a, req=req: req.infer({0: a}))
            p50 = time_infer(runner, x, self.timing)["latency_ms"]["p50"]
            kernels = sorted({op.get_rt_info()["primitiveType"].astype(str)
                              for op in compiled.get_runtime_model().get_ordered_ops()
                              if "primitiveType" in op.get_rt_info()})
            key = "ov_int8" if rate is None else "ov_int8_sparse_rate_0.5"
            out[f"{key}_p50_ms"] = p50
            out[f"{key}_sparse_kernels"] = [k for k in kernels if "sparse" in k.lower()]
        return out


def pct(a):
    return "—" if a is None else f"{100 * a:.2f}%"


def ms(a):
    return "—" if a is None else f"{a:.3f}"


def write(results: dict, out: Path, cmd: str, args: argparse.Namespace, quiet: dict) -> None:
    write_result(out.with_suffix(".json"), json.dumps(results, indent=1), args, quiet=quiet)
    env = results["environment"]
    md = ["# Sparse, lottery, pruning-at-init and low-rank: what each buys", "",
          f"Command: `{cmd}`  ", f"Machine: {env['cpu']} ({', '.join(env['isa'])}), {env['cores']} cores, "
          f"torch {env['torch']}, threads {env['threads']}. Latencies are p50 of batch 1.", ""]
    if "a" in results:
        a = results["a"]
        md += ["## A. digits / resnet20: accuracy vs remaining weights", "",
               f"Training: {results['epochs']} epochs from scratch (SGD 0.05, cosine); magnitude/random: "
               f"+{results['finetune_epochs']} fine-tuning epochs (SGD 0.01) with masks kept; imp: "
               f"{'one round per target (coarse, --quick)' if results['quick'] else '20% of the remaining weights per round, clipped to hit each target'}; "
               "snip/grasp/synflow/random_init: pruned at the seeded initialization, then trained "
               f"{results['epochs']} epochs. Sparsity is global over conv/linear weights (classifier dense). "
               "Accuracy on the 360-image validation split.", ""]
        methods = list(dict.fromkeys(r["method"] for r in a if r["method"] != "dense"))
        dense = next(r for r in a if r["method"] == "dense")
        md += ["| method | " + " | ".join(f"{int(100 * r)}%" for r in REMAINING) + " | epochs (at 5%) |",
               "|---|" + "---|" * (len(REMAINING) + 1)]
        for meth in methods:
            cells = [pct(dense["accuracy"])]
            for rem in REMAINING[1:]:
                r = next((r for r in a if r["method"] == meth and abs(r["remaining"] - rem) < 1e-9), None)
                cells.append("—" if r is None else pct(r["accuracy"]))
            last = [r for r in a if r["method"] == meth]
            md.append(f"| {meth} | " + " | ".join(cells) + f" | {last[-1].get('epochs', '—')} |")
        mag = [r for r in a if r["method"] == "magnitude"]
        if mag:
            md += ["", "Magnitude before fine-tuning (BN re-estimated): " + ", ".join(
                f"{int(100 * r['remaining'])}%: {pct(r['accuracy_before_finetune'])}" for r in mag) + "."]
        worst = [r for r in a if r.get("max_layer_sparsity") is not None and r["remaining"] <= 0.1]
        if worst:
            md += ["", "Most-pruned layer under global ranking: " + ", ".join(
                f"{r['method']} at {int(100 * r['remaining'])}%: {pct(r['max_layer_sparsity'])}" for r in worst) + "."]
        empty = [r for r in a if r.get("empty_layers")]
        if empty:
            md += ["", "Layer collapse (every weight of a layer pruned): " + ", ".join(
                f"{r['method']} at {int(100 * r['remaining'])}% ({r['empty_layers']} layers)" for r in empty) + "."]
        md.append("")
    if "b" in results:
        md += ["## B. tucker on resnet50 at 224 (random weights, fixed ranks)", "",
               "Only the k×k convs are factorized (1×1 convs are already 'Tucker-1'); ranks are per mode "
               "C/4 or C/2 of the layer's channels. On random weights VBMF finds no structure (rank ≈ 1), "
               "so fixed ranks stand in for what VBMF picks on trained weights.", "",
               "| setting | params | GMACs | output rel. error | ONNX bytes | ORT p50 ms | OpenVINO p50 ms |",
               "|---|---|---|---|---|---|---|"]
        for r in results["b"]:
            md.append(f"| {r['setting']} | {r['params']:,} | {r['macs'] / 1e9:.2f} | {r['output_rel_error']:.3f} | "
                      f"{r['onnx_bytes'] / 2**20:.1f} MiB | {ms(r['ort_p50_ms'])} | {ms(r['openvino_p50_ms'])} |")
        md.append("")
    if "c" in results:
        md += ["## C. factorization of the digits-trained resnet20", "",
               f"Fine-tuning: {results['finetune_epochs']} epochs, SGD 0.01.", "",
               "| setting | params | MMACs | acc. before FT | acc. after FT | ORT p50 ms | OpenVINO p50 ms |",
               "|---|---|---|---|---|---|---|"]
        for r in results["c"]:
            md.append(f"| {r['setting']} | {r['params']:,} | {r['macs'] / 1e6:.1f} | {pct(r['accuracy_before_finetune'])} | "
                      f"{pct(r['accuracy'])} | {ms(r['ort_p50_ms'])} | {ms(r['openvino_p50_ms'])} |")
        md.append("")
    if "d" in results:
        info = results["d_openvino_sparse"]
        md += ["## D. what unstructured sparsity buys on disk and in time", "",
               "Magnitude-pruned (global) and fine-tuned resnet20 from A; ONNX fp32 and ORT INT8 (QDQ); "
               "OpenVINO reads the same files. Zipped = deflate level 6, as `zip` stores them.", "",
               "| remaining | precision | bytes | zipped | zipped/bytes | accuracy | ORT p50 ms | OpenVINO p50 ms | OV int8 + sparse rate 0.5 p50 ms |",
               "|---|---|---|---|---|---|---|---|---|"]
        for r in results["d"]:
            sp = r.get("ov_int8_sparse_rate_0.5_p50_ms")
            md.append(f"| {int(100 * r['remaining'])}% | {r['precision']} | {r['bytes'] / 1024:,.1f} KiB | "
                      f"{r['bytes_zipped'] / 1024:,.1f} KiB | {r['bytes_zipped'] / r['bytes']:.2f} | {pct(r['accuracy'])} | "
                      f"{ms(r['ort_p50_ms'])} | {ms(r['openvino_p50_ms'])} | {ms(sp)} |")
        kernels = sorted({k for r in results["d"] for k in r.get("ov_int8_sparse_rate_0.5_sparse_kernels", [])})
        md += ["", f"OpenVINO sparse-weights decompression here: **{'available' if info['openvino_sparse_weights'] else 'not available'}** "
               f"({info['why']}). Compiled with the rate set, the runtime picked "
               f"{'sparse kernels: ' + ', '.join(kernels) if kernels else 'no sparse kernel'}; any latency difference in that "
               "column is noise.", "",
               "Dense runtimes do not run zeros faster: the sparse files are the dense size and their latency "
               "is the dense latency. The zeros buy a smaller compressed download, nothing at inference."]
    write_result(out, "\n".join(md) + "\n", args, quiet=quiet)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 epochs, coarse IMP, short timings")
    p.add_argument("--parts", default="a,b,c,d")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--finetune-epochs", type=int, default=None)
    p.add_argument("--rewinds", default="init,1,lr")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: all usable cores)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="PyTorch threads for training (default 1: on a shared CPU more only add contention)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sparse.md"))
    add_noise_args(p)
    args = p.parse_args()
    quiet = check_quiet(args)
    args.epochs = args.epochs or (3 if args.quick else 8)
    args.finetune_epochs = args.finetune_epochs or (2 if args.quick else 4)
    args.rewinds = [r.strip() for r in args.rewinds.split(",")]
    args.iterations = 10 if args.quick else 30
    args.max_seconds = 1.0 if args.quick else 3.0
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.torch_threads)
    bench = Bench(args)
    info = cpu_info()
    results = {"quick": args.quick, "epochs": args.epochs, "finetune_epochs": args.finetune_epochs,
               "environment": {"cpu": info["cpu"], "isa": info["isa"], "cores": os.cpu_count(),
                               "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
                               "torch": torch.__version__, "threads": args.threads or "all",
                               "torch_threads": args.torch_threads}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "a" in parts:
            results["a"] = bench.part_a()
        if "c" in parts:
            results["c"] = bench.part_c(tmp)
        if "d" in parts:
            results["d"], results["d_openvino_sparse"] = bench.part_d(tmp)
        if "b" in parts:
            results["b"] = bench.part_b(tmp)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    cmd = "python benchmarks/sparse.py " + " ".join(sys.argv[1:])
    write(results, Path(args.out), cmd.strip(), args, quiet)
    log(f"wrote {args.out} in {results['seconds']:.0f}s")


if __name__ == "__main__":
    main()
