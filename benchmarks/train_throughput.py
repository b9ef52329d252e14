"""Throughput of the fine-tune loop on this CPU: fp32 vs ``precision: auto`` + channels_last,
bf16-trained accuracy against fp32's seed spread, and an image-folder epoch against the
same loop on in-memory tensors (issue 15).

Three measurements, all through :func:`edgeslim.finetune.train.train` with a resolved
:class:`~edgeslim.finetune.device.Placement`, so they time the loop the pipeline runs:

1. **img/s** of resnet50@160 and mobilenet_v2@224 (batch 16, SGD, in-memory tensors, no
   workers): fp32 (no channels_last) vs ``precision: auto`` + channels_last, and the same
   two as a minimal loop written by hand (no edgeslim), interleaved round by round so
   drift hits all alike; the figure is each config's median over
   rounds of the second epoch's ``images_per_s`` (the first warms oneDNN up). Goal on a
   CPU with AVX-512 BF16 or AMX: >= 2.3x. Where ``auto`` resolves to fp32 (no such ISA)
   the ratio only shows what channels_last gives.
2. **accuracy**: resnet20 on digits, a few epochs, >= 3 seeds, fp32 vs bf16 autocast
   (bf16 forced, so the check means something on any CPU). bf16 is "within the seed
   spread" when its mean val accuracy differs from fp32's by no more than the larger of
   the two spreads (max - min over seeds).
3. **where the ratio comes from** on this CPU: oneDNN's own throughput (GMAC/s) on two large
   channels_last convolutions, forward + backward, fp32 vs bf16 (what its bf16 kernels gain
   on big shapes), and each loop's step split into convolutions and the rest (torch.profiler
   self time), fp32 vs auto: which part lags.
4. **data loading**: a generated JPEG folder (10 classes) read through ``imagefolder:`` with
   the decoded cache and ``workers: auto`` and augmentation on, vs the same images stacked
   into an in-memory tensor bundle (same augmentation, no workers). Goal: >= 90 %.

    .venv/bin/python benchmarks/train_throughput.py            # ~10-15 min on 2 cores
    .venv/bin/python benchmarks/train_throughput.py --quick    # fewer rounds, seeds, epochs
    .venv/bin/python benchmarks/train_throughput.py --smoke    # one step of each part, writes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run as `python benchmarks/train_throughput.py` from a checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _noise import LOAD_CHECK, add_noise_args, check_quiet, write_result  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from edgeslim.data import DataBundle, load_data  # noqa: E402
from edgeslim.data.augment import describe_augmentation  # noqa: E402
from edgeslim.finetune.config import TrainCfg  # noqa: E402
from edgeslim.finetune.device import Placement, resolve  # noqa: E402
from edgeslim.finetune.train import TrainSpec, evaluate, train  # noqa: E402
from edgeslim.models import create_model  # noqa: E402
from edgeslim.targets.base import cpu_info  # noqa: E402

MODELS = (("resnet50", 160), ("mobilenet_v2", 224))
GOAL_SPEEDUP, GOAL_FOLDER = 2.3, 0.90


def placements(workers: int = 0) -> dict[str, Placement]:
    """The two loops compared: plain fp32, and what ``auto`` picks here with channels_last."""
    auto = resolve(TrainCfg(device="cpu", channels_last=True, workers=workers))
    return {"fp32": Placement("cpu", "fp32", False, workers), "auto": auto}


def tensor_bundle(x: torch.Tensor, y: torch.Tensor, *, augment: bool = False) -> DataBundle:
    """An in-memory bundle (val = the first 16 items: the loop's eval is not timed)."""
    b = DataBundle("tensors", TensorDataset(x, y), TensorDataset(x[:16], y[:16]), int(y.max()) + 1,
                   True, int(x.shape[-1]))
    b.augmentation = describe_augmentation(augment)
    return b


def images_per_s(model_name: str, size: int, data: DataBundle, place: Placement, *, batch: int,
                 epochs: int = 2, num_classes: int = 10) -> float:
    """The last epoch's img/s of ``train()`` (earlier epochs warm the kernels up)."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes)
    spec = TrainSpec(epochs=epochs, lr=0.01, batch_size=batch, seed=0)
    return float(train(model, data, spec, placement=place)[-1]["images_per_s"])


def hand_step(model_name: str, place: Placement, num_classes: int = 10):
    """One training step written by hand, without edgeslim (SGD momentum 0.9, weight decay 5e-4,
    autocast and channels_last as ``place`` says): ``(step(x, y), memory_format)`` for a fresh
    seeded model."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    fmt = torch.channels_last if place.channels_last else torch.contiguous_format
    model = create_model(model_name, num_classes=num_classes).train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    dtype = place.autocast_dtype

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, fmt


def hand_loop(model_name: str, size: int, x: torch.Tensor, y: torch.Tensor, place: Placement, *,
              batch: int, epochs: int, num_classes: int = 10) -> float:
    """:func:`hand_step` over ``x``: the last epoch's img/s. A reference for the engine's own
    overhead: it should run as fast."""
    step, fmt = hand_step(model_name, place, num_classes)
    rate = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i in range(0, len(x) - batch + 1, batch):
            step(x[i:i + batch].contiguous(memory_format=fmt), y[i:i + batch])
        rate = (len(x) // batch) * batch / (time.perf_counter() - t0)
    return rate


def throughput(args) -> list[dict]:
    rows, gen = [], torch.Generator().manual_seed(0)
    for name, size in args.models:
        n = args.batch * args.steps
        x, y = torch.randn(n, 3, size, size, generator=gen), torch.randint(0, 10, (n,), generator=gen)
        data = tensor_bundle(x, y)
        seen: dict[str, list[float]] = {k: [] for k in ("fp32", "auto", "hand_fp32", "hand_auto")}
        for r in range(args.rounds):  # interleaved: fp32, auto, hand fp32, hand auto, fp32, ...
            for key, place in placements().items():
                seen[key].append(images_per_s(name, size, data, place, batch=args.batch, epochs=args.epochs))
                print(f"  {name}@{size} round {r + 1} {key}: {seen[key][-1]:.1f} img/s", file=sys.stderr)
                seen[f"hand_{key}"].append(hand_loop(name, size, x, y, place, batch=args.batch, epochs=args.epochs))
                print(f"  {name}@{size} round {r + 1} hand {key}: {seen[f'hand_{key}'][-1]:.1f} img/s", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in seen.items()}
        auto = placements()["auto"]
        rows.append({"model": name, "size": size, "batch": args.batch, "fp32_img_s": med["fp32"],
                     "auto_img_s": med["auto"], "speedup": med["auto"] / med["fp32"],
                     "hand_fp32_img_s": med["hand_fp32"], "hand_auto_img_s": med["hand_auto"],
                     "hand_speedup": med["hand_auto"] / med["hand_fp32"],
                     "auto_precision": auto.precision, "rounds": seen})
    return rows


CEILING_SHAPES = (  # (name, batch, in, out, kernel, spatial): resnet50@160's stage-3 3x3 and 1x1
    ("3x3 256->256 @10x10", 16, 256, 256, 3, 10),
    ("1x1 1024->256 @10x10", 16, 1024, 256, 1, 10),
)


def conv_rate(dtype: torch.dtype, batch: int, cin: int, cout: int, k: int, hw: int, reps: int) -> float:
    """GMAC/s of one convolution's forward + backward (data and weight gradients), channels_last,
    best of 5 timed blocks of ``reps`` steps (the best: the kernel's speed, not the machine's noise)."""
    cl = torch.channels_last
    x = torch.randn(batch, cin, hw, hw).to(dtype).contiguous(memory_format=cl).requires_grad_(True)
    w = torch.randn(cout, cin, k, k).to(dtype).contiguous(memory_format=cl).requires_grad_(True)
    grad = torch.ones(batch, cout, hw, hw, dtype=dtype).contiguous(memory_format=cl)
    macs = 3 * batch * cin * cout * k * k * hw * hw  # forward, data gradient, weight gradient

    def step() -> None:
        torch.nn.functional.conv2d(x, w, padding=k // 2).backward(grad)

    for _ in range(3):
        step()
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        best = max(best, reps * macs / (time.perf_counter() - t0) / 1e9)
    return best


def step_split(model_name: str, size: int, place: Placement, *, batch: int, steps: int = 3) -> dict:
    """ms per :func:`hand_step`, total and inside convolution kernels (torch.profiler self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    step, fmt = hand_step(model_name, place)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    step(x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(x, y)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key) / 1e3 / steps
    return {"step_ms": total, "conv_ms": conv}


def ceiling(args) -> dict:
    """oneDNN's bf16 / fp32 convolution throughput on this CPU and the convolutions' share of a step."""
    auto = placements()["auto"]
    shapes = []
    for name, *shape in CEILING_SHAPES:
        fp32 = conv_rate(torch.float32, *shape, reps=args.ceiling_reps)
        low = conv_rate(torch.bfloat16, *shape, reps=args.ceiling_reps) if auto.precision == "bf16" else None
        shapes.append({"shape": name, "fp32_gmac_s": fp32, "bf16_gmac_s": low,
                       "ratio": (low / fp32) if low else None})
        print(f"  ceiling {name}: fp32 {fp32:.0f} GMAC/s" + (f", bf16 {low:.0f}" if low else ""), file=sys.stderr)
    split = {}
    for name, size in args.models:
        seen: dict[str, list[dict]] = {key: [] for key in placements()}
        for _ in range(args.rounds):  # interleaved, like the throughput rounds
            for key, place in placements().items():
                seen[key].append(step_split(name, size, place, batch=args.batch))
        split[f"{name}@{size}"] = {key: {k: statistics.median(r[k] for r in runs) for k in ("step_ms", "conv_ms")}
                                   for key, runs in seen.items()}
    return {"shapes": shapes, "step_split": split, "auto_precision": auto.precision}


def accuracy(args) -> dict:
    data = load_data("digits", input_size=args.digits_size, num_classes=10, seed=0)
    if args.smoke:
        data.train = torch.utils.data.Subset(data.train, range(64))
    out: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for seed in range(args.seeds):
        for key, place in (("fp32", Placement("cpu", "fp32", False, 0)), ("bf16", Placement("cpu", "bf16", True, 0))):
            torch.manual_seed(seed)
            model = create_model("resnet20", num_classes=10)
            spec = TrainSpec(epochs=args.acc_epochs, lr=0.05, batch_size=64, seed=seed, warmup_epochs=0)
            train(model, data, spec, placement=place)
            out[key].append(float(evaluate(model, data.val_loader(256))))
            print(f"  digits seed {seed} {key}: {out[key][-1]:.4f}", file=sys.stderr)
    spread = max(max(v) - min(v) for v in out.values())
    delta = statistics.mean(out["bf16"]) - statistics.mean(out["fp32"])
    return {"epochs": args.acc_epochs, "seeds": args.seeds, "accuracy": out, "delta": delta,
            "spread": spread, "within_spread": abs(delta) <= spread}


def make_folder(root: Path, per_class: int, size: int) -> Path:
    """10 classes of JPEGs larger than the input (decoding and resizing cost something)."""
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
            img = Image.fromarray(base).resize((size + 37, size + 11), Image.BILINEAR)
            img.save(root / f"c{c}" / f"{i}.jpg", quality=90)
    return root


def folder_vs_tensors(args) -> dict:
    name, size = args.models[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGESLIM_CACHE"] = str(Path(tmp) / "cache")  # a cold cache, timed separately
        root = make_folder(Path(tmp) / "folder", args.folder_per_class, size)
        t0 = time.perf_counter()
        folder = load_data(f"imagefolder:{root}", input_size=size, num_classes=10, val_fraction=0.1, limit_val=16)
        build_s = time.perf_counter() - t0
        auto = placements(workers=resolve(TrainCfg(device="cpu")).workers)["auto"]
        xs = torch.stack([folder.train[i][0] for i in range(len(folder.train))])
        ys = torch.stack([folder.train[i][1] for i in range(len(folder.train))])
        memory = tensor_bundle(xs, ys, augment=True)
        seen: dict[str, list[float]] = {"folder": [], "tensors": []}
        for _ in range(args.rounds):
            seen["folder"].append(images_per_s(name, size, folder, auto, batch=args.batch, epochs=args.epochs))
            seen["tensors"].append(images_per_s(name, size, memory, Placement(auto.device, auto.precision,
                                                auto.channels_last, 0), batch=args.batch, epochs=args.epochs))
        os.environ.pop("EDGESLIM_CACHE")
    med = {k: statistics.median(v) for k, v in seen.items()}
    return {"model": name, "size": size, "images": len(folder.train), "workers": auto.workers,
            "precision": auto.precision, "cache_build_s": build_s, "folder_img_s": med["folder"],
            "tensors_img_s": med["tensors"], "share": med["folder"] / med["tensors"], "rounds": seen}


def ceiling_markdown(ceil: dict) -> list[str]:
    lines = ["", "## Where the ratio comes from: oneDNN's convolutions on this CPU", "",
             "Large channels_last convolutions alone, forward + data and weight gradients, best of 5 "
             "timed blocks (GMAC/s counts one multiply-accumulate per weight per output pixel, three "
             "passes):", "", "| convolution (batch 16) | fp32 GMAC/s | bf16 GMAC/s | bf16 / fp32 |", "|---|---|---|---|"]
    for c in ceil["shapes"]:
        low = f"{c['bf16_gmac_s']:.0f}" if c["bf16_gmac_s"] else "n/a (auto is fp32 here)"
        ratio = f"{c['ratio']:.2f}x" if c["ratio"] else "—"
        lines.append(f"| {c['shape']} | {c['fp32_gmac_s']:.0f} | {low} | {ratio} |")
    lines += ["", "The loops themselves: one hand-loop step profiled (torch.profiler self CPU time, median of "
              "the interleaved rounds), split into the convolutions and the rest (BatchNorm, activations, "
              "adds, casts, the optimizer):", "",
              "| loop | fp32 step ms | auto step ms | speedup | convolutions fp32 -> auto ms (speedup) | "
              "the rest fp32 -> auto ms (speedup) |", "|---|---|---|---|---|---|"]
    for name, v in ceil["step_split"].items():
        f, a = v["fp32"], v["auto"]
        fr, ar = f["step_ms"] - f["conv_ms"], a["step_ms"] - a["conv_ms"]
        lines.append(f"| {name} | {f['step_ms']:.0f} | {a['step_ms']:.0f} | {f['step_ms'] / a['step_ms']:.2f}x | "
                     f"{f['conv_ms']:.0f} -> {a['conv_ms']:.0f} ({f['conv_ms'] / a['conv_ms']:.2f}x) | "
                     f"{fr:.0f} -> {ar:.0f} ({fr / ar:.2f}x) |")
    ratios = [c["ratio"] for c in ceil["shapes"] if c["ratio"]]
    if ratios:
        lines += ["", f"oneDNN's bf16 convolution kernels gain {min(ratios):.2f}-{max(ratios):.2f}x over its fp32 "
                  f"ones on the two large shapes above; inside the loops the convolutions gain what the "
                  f"'convolutions' column says. Where the convolutions and the rest of the step gain about "
                  f"the same, neither lags: a larger ratio needs the convolutions, most of the step, to run "
                  f"faster in bf16 than this CPU's oneDNN kernels do (AMX tiles, or a GPU)."]
    return lines


def markdown(rows: list[dict], acc: dict, fold: dict, ceil: dict | None = None) -> str:
    info = cpu_info()
    bf16_isa = [f for f in ("avx512_bf16", "amx_bf16") if f in info["isa"]]
    lines = ["# Fine-tune loop throughput on this CPU (fp32 vs precision auto + channels_last)", "",
             f"CPU: {info['cpu']}, {os.cpu_count()} cores, bf16 ISA: {', '.join(bf16_isa) or 'none'}; "
             f"torch {torch.__version__}. `benchmarks/train_throughput.py`, medians over interleaved rounds "
             f"of the second epoch's img/s.", "",
             "| model | batch | fp32 img/s | auto + channels_last img/s (precision) | speedup | goal | "
             "hand loop: fp32 / auto img/s (speedup) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        goal = "met" if r["speedup"] >= GOAL_SPEEDUP else ("missed" if bf16_isa else "n/a (no bf16 ISA)")
        hand = (f"{r['hand_fp32_img_s']:.1f} / {r['hand_auto_img_s']:.1f} ({r['hand_speedup']:.2f}x)"
                if "hand_fp32_img_s" in r else "—")
        lines.append(f"| {r['model']}@{r['size']} | {r['batch']} | {r['fp32_img_s']:.1f} | "
                     f"{r['auto_img_s']:.1f} ({r['auto_precision']}) | {r['speedup']:.2f}x | "
                     f">= {GOAL_SPEEDUP}x: {goal} | {hand} |")
    lines += ["", "The hand loop is the same steps written without edgeslim (plain SGD step, autocast, "
              "channels_last; timed in the same interleaved rounds): where it is no faster, the engine adds "
              "nothing and the ratio is the CPU's and oneDNN's."]
    if ceil:
        lines += ceiling_markdown(ceil)
    a = acc["accuracy"]
    lines += ["", f"## bf16 accuracy (resnet20, digits, {acc['epochs']} epochs, {acc['seeds']} seeds)", "",
              "| precision | val accuracy per seed | mean |", "|---|---|---|"]
    lines += [f"| {k} | {', '.join(f'{v:.4f}' for v in a[k])} | {statistics.mean(a[k]):.4f} |" for k in a]
    lines += ["", f"bf16 - fp32 = {acc['delta']:+.4f}; largest seed spread {acc['spread']:.4f}: "
              f"{'within' if acc['within_spread'] else 'outside'} the seed spread.", "",
              f"## Image-folder epoch vs in-memory tensors ({fold['model']}@{fold['size']}, "
              f"{fold['images']} JPEGs, {fold['precision']})", "",
              f"Decoded cache built in {fold['cache_build_s']:.1f} s (first load only). Folder with "
              f"{fold['workers']} workers: {fold['folder_img_s']:.1f} img/s; tensors: {fold['tensors_img_s']:.1f} "
              f"img/s; **{100 * fold['share']:.0f} %** (goal >= {100 * GOAL_FOLDER:.0f} %: "
              f"{'met' if fold['share'] >= GOAL_FOLDER else 'missed'})."]
    return "\n".join(lines) + "\n"


def rerender(out: Path) -> None:
    """Rewrite ``out`` (.md) from its .json with this version's text, keeping its Load check line."""
    data = json.loads(out.with_suffix(".json").read_text())
    old = out.read_text().splitlines()
    text = markdown(data["throughput"], data["accuracy"], data["folder"], data.get("ceiling")).splitlines()
    check = next((x for x in old if x.startswith(LOAD_CHECK)), None)
    if check:
        text[1:1] = ["", check]
    out.write_text("\n".join(text) + "\n")


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, seeds and epochs (minutes)")
    ap.add_argument("--smoke", action="store_true", help="one step of each part; writes nothing")
    ap.add_argument("--rerender", action="store_true", help="rewrite --out from its .json; measures nothing")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS / "train_throughput.md")
    add_noise_args(ap)
    args = ap.parse_args(argv)
    args.models = list(MODELS)
    args.steps, args.rounds, args.epochs = 12, 3, 2  # 192 images an epoch
    args.seeds, args.acc_epochs, args.digits_size = 3, 4, 32
    args.folder_per_class = 24
    args.ceiling_reps = 10
    if args.quick:
        args.steps, args.rounds, args.seeds, args.acc_epochs, args.folder_per_class = 6, 2, 3, 2, 12
    if args.smoke:  # the first step of each part, at toy sizes: does it run at all
        args.models = [(m, 32) for m, _ in MODELS]
        args.batch, args.steps, args.rounds, args.epochs = 4, 1, 1, 1
        args.seeds, args.acc_epochs, args.digits_size, args.folder_per_class = 1, 1, 16, 1
        args.ceiling_reps = 1
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.rerender:
        rerender(args.out)
        return
    quiet = None if args.smoke else check_quiet(args)
    rows = throughput(args)
    ceil = ceiling(args)
    acc = accuracy(args)
    fold = folder_vs_tensors(args)
    text = markdown(rows, acc, fold, ceil)
    if args.smoke:
        print(text)
        return
    payload = {"cpu": cpu_info(), "torch": torch.__version__, "throughput": rows, "accuracy": acc,
               "folder": fold, "ceiling": ceil, "quick": args.quick}
    if write_result(args.out, text, args, rows=rows, quiet=quiet):
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
