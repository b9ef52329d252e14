"""The GPU check of issue 15 (<= 5 minutes on one GPU): training and distillation img/s and
the GPU's busy share, 2-process DDP when two GPUs exist, the ``gpu`` target, and the
compress (l1 0.5) + export + parity sweep over torchvision and timm classification models
at random init. Writes benchmarks/results/gpu_check.{md,json}.

    python benchmarks/gpu_check.py                 # on a machine with CUDA PyTorch
    python benchmarks/gpu_check.py --budget 240    # seconds for everything (sweep gets the rest)

Busy share: CUDA kernel time (torch.profiler, CUPTI) over the wall time of one training
epoch; 1.0 means the GPU never waited for the loop or the data. Each sweep model gets at
most ``--per-model`` seconds (SIGALRM; a long C call ends at its return) and the sweep stops
at the budget, listing the models it did not reach.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from edgeslim.data import DataBundle  # noqa: E402
from edgeslim.data.augment import describe_augmentation  # noqa: E402
from edgeslim.finetune.config import TrainCfg  # noqa: E402
from edgeslim.finetune.device import Placement, resolve  # noqa: E402
from edgeslim.finetune.train import TrainSpec, train  # noqa: E402
from edgeslim.models import create_model  # noqa: E402

TIMM_SAMPLE = 12  # timm models tried (random sample of list_models, seeded)


def bundle(n: int, size: int, classes: int = 10) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)
    b = DataBundle("tensors", TensorDataset(x, y), TensorDataset(x[:32], y[:32]), classes, True, size)
    b.augmentation = describe_augmentation(True)  # the image-folder recipe: augmentation on the GPU
    return b


def busy_share(fn) -> float | None:
    """CUDA kernel time / wall time while ``fn()`` runs (None when CUPTI gives nothing)."""
    from torch.profiler import ProfilerActivity, profile
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    kernel_us = sum(e.self_device_time_total for e in prof.key_averages())
    return kernel_us / 1e6 / wall if kernel_us else None


def training(args) -> list[dict]:
    rows = []
    auto = resolve(TrainCfg(device="cuda:0"))
    for name, size in (("resnet50", 160), ("mobilenet_v2", 224)):
        data = bundle(args.batch * args.steps, size)
        for key, place in (("fp32", Placement("cuda:0", "fp32", False, auto.workers)), ("auto", auto)):
            model = create_model(name, num_classes=10)
            spec = TrainSpec(epochs=2, lr=0.01, batch_size=args.batch, seed=0)
            hist = train(model, data, spec, placement=place)
            again = TrainSpec(epochs=1, lr=0.01, batch_size=args.batch, seed=1)
            share = busy_share(lambda m=model, d=data, p=place, s=again: train(m, d, s, placement=p))
            rows.append({"what": "train", "model": f"{name}@{size}", "placement": key, "precision": place.precision,
                         "img_s": hist[-1]["images_per_s"], "gpu_busy": share})
            print(rows[-1], file=sys.stderr)
    return rows


def distillation(args) -> dict:
    from edgeslim.finetune.distill import build_distillation
    from edgeslim.recipe import DistillCfg
    size, place = 160, resolve(TrainCfg(device="cuda:0"))
    data = bundle(args.batch * args.steps, size)
    teacher, student = create_model("resnet50", num_classes=10), create_model("resnet18", num_classes=10)
    fn, extra = build_distillation(DistillCfg(method="hinton"), student=student, teacher=teacher,
                                   example=torch.zeros(2, 3, size, size))
    hist = train(student, data, TrainSpec(epochs=2, lr=0.01, batch_size=args.batch, seed=0),
                 placement=place, loss_fn=fn, extra_params=extra)
    fn.close()
    return {"what": "distill (hinton) resnet50 -> resnet18@160", "precision": place.precision,
            "img_s": hist[-1]["images_per_s"], "device": hist[-1]["device"]}


def ddp(args) -> dict:
    if torch.cuda.device_count() < 2:
        return {"what": "ddp", "skipped": f"{torch.cuda.device_count()} CUDA device(s); 2 needed"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", __file__, "--ddp-worker"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    return {"what": "ddp 2 processes", "rc": r.returncode, "seconds": time.perf_counter() - t0,
            "result": json.loads(lines[-1]) if lines else None, "stderr_tail": r.stderr[-400:]}


def ddp_worker() -> None:
    place = resolve(TrainCfg(device="cuda"))
    hist = train(create_model("resnet50", num_classes=10), bundle(256, 160), TrainSpec(epochs=2, lr=0.01,
                 batch_size=64, seed=0), placement=place)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"img_s": hist[-1]["images_per_s"], "device": hist[-1]["device"]}))


def gpu_target(workdir: Path) -> dict:
    """The ``gpu`` target on an exported resnet50 ONNX (ORT CUDA), else eager torch on CUDA."""
    from edgeslim.targets import parse_target  # noqa: F401 (registers the targets)
    from edgeslim.targets.bench import bench
    model = create_model("resnet50", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    path = workdir / "resnet50.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=False)
    rows = bench([path], targets=["gpu"])
    row = {k: v for k, v in rows[0].items() if isinstance(v, (int, float, str, bool, type(None)))}
    if rows[0].get("latency_ms") is None:  # ORT without CUDA: the torch runner's figure
        m, xc = model.cuda(), x.cuda()
        with torch.no_grad():
            for _ in range(10):
                m(xc)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(50):
                m(xc)
            torch.cuda.synchronize()
        row["torch_eager_ms"] = (time.perf_counter() - t0) / 50 * 1000
    return row


class _Timeout(Exception):
    pass


def sweep_models(args) -> list[tuple[str, dict]]:
    import torchvision
    models = [(f"torchvision.models:{n}", {}) for n in torchvision.models.list_models(module=torchvision.models)]
    try:
        import timm
        names = timm.list_models()
        models += [("timm:create_model", {"model_name": n})
                   for n in random.Random(0).sample(names, min(TIMM_SAMPLE, len(names)))]
    except ImportError:
        pass
    return models


def sweep_one(name: str, kwargs: dict, workdir: Path, size: int) -> dict:
    from edgeslim.pipeline.run import run_recipe
    from edgeslim.recipe import Recipe
    recipe = Recipe.model_validate({
        "name": "sweep", "model": {"name": name, "kwargs": kwargs, "input_size": size, "num_classes": 10},
        "data": {"name": "synthetic", "limit_train": 16, "limit_val": 4, "batch_size": 8,
                 "calibration_samples": 4},
        "baseline": {"epochs": 0}, "finetune": {"epochs": 0}, "compress": {"method": "l1", "ratio": 0.5},
        "export": {"formats": ["onnx"], "include_baseline": False}, "quantize": {"precisions": ["fp32"]},
        "profile": {"warmup": 1, "warmup_seconds": 0, "min_iterations": 1, "min_seconds": 0,
                    "max_seconds": 0.05, "accuracy": False}})
    out = {"pruned": False, "exported": False, "parity": False, "reason": ""}
    try:
        run_recipe(recipe, workdir)
    except Exception as err:  # the table wants every reason, whatever raised it
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        out["reason"] = f"{type(err).__name__}: {why}"[:200]
    done = lambda prefix: any(workdir.glob(prefix + "*/**/done.json"))  # noqa: E731 (a stage's folder may nest)
    out["pruned"] = done("10-compress")
    out["exported"] = any(workdir.glob("**/30-export*/**/*.onnx"))
    out["parity"] = done("30-export")
    return out


def sweep(args, deadline: float) -> list[dict]:
    rows = []
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Timeout()))
    for name, kwargs in sweep_models(args):
        label = kwargs.get("model_name") and f"timm:{kwargs['model_name']}" or name
        if time.time() > deadline:
            rows.append({"model": label, "reason": "not reached (time budget)"})
            continue
        arch = label.split(":")[-1]
        size = 224 if arch.startswith(("vit", "swin", "maxvit", "deit", "beit", "eva", "cait")) else 96
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            signal.alarm(max(1, int(min(args.per_model, deadline - time.time()))))
            try:
                res = sweep_one(name, dict(kwargs), Path(tmp), size)
            except _Timeout:
                res = {"pruned": False, "exported": False, "parity": False,
                       "reason": f"over the {args.per_model:.0f} s per-model cap"}
            finally:
                signal.alarm(0)
        rows.append({"model": label, "size": size, "seconds": round(time.perf_counter() - t0, 1), **res})
        print(rows[-1], file=sys.stderr)
    return rows


def markdown(report: dict) -> str:
    yes = lambda v: "yes" if v else "no"  # noqa: E731
    lines = ["# GPU check (issue 15)", "", f"GPU: {report['gpu']}; torch {report['torch']}.", "",
             "| what | model | placement | img/s | GPU busy |", "|---|---|---|---|---|"]
    for r in report["training"]:
        busy = f"{100 * r['gpu_busy']:.0f} %" if r.get("gpu_busy") else "n/a"
        lines.append(f"| train | {r['model']} | {r['placement']} ({r['precision']}) | {r['img_s']:.0f} | {busy} |")
    d = report["distill"]
    lines += [f"| {d.get('what')} | | {d.get('precision')} | {d.get('img_s', 0):.0f} | |", "",
              f"DDP: {json.dumps(report['ddp'])}", "", f"gpu target: {json.dumps(report['gpu_target'])}", "",
              "## compress (l1 0.5) + export (ONNX) + parity at random init", "",
              "| model | size | pruned | exported | parity | seconds | reason |", "|---|---|---|---|---|---|---|"]
    for r in report["sweep"]:
        lines.append(f"| {r['model']} | {r.get('size', '')} | {yes(r.get('pruned'))} | {yes(r.get('exported'))} | "
                     f"{yes(r.get('parity'))} | {r.get('seconds', '')} | {r.get('reason', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=280, help="seconds for the whole check")
    ap.add_argument("--per-model", type=float, default=12, help="seconds per sweep model at most")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8, help="batches per training epoch")
    ap.add_argument("--out", type=Path, default=RESULTS / "gpu_check.md")
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker()
    if not torch.cuda.is_available():
        sys.exit("gpu_check needs a CUDA device (torch.cuda.is_available() is False)")
    deadline = time.time() + args.budget
    os.environ.setdefault("EDGESLIM_CACHE", tempfile.mkdtemp(prefix="edgeslim-cache-"))
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for key, fn in (("training", lambda: training(args)), ("distill", lambda: distillation(args)),
                    ("ddp", lambda: ddp(args))):
        try:
            report[key] = fn()
        except Exception as err:
            report[key] = [] if key == "training" else {"error": f"{type(err).__name__}: {err}"[:300]}
            traceback.print_exc()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report["gpu_target"] = gpu_target(Path(tmp))
        except Exception as err:
            report["gpu_target"] = {"error": f"{type(err).__name__}: {err}"[:300]}
    report["sweep"] = sweep(args, deadline)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(report))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
