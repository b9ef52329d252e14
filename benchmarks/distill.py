"""Distillation on digits: a resnet20 student of a resnet56 teacher, alone vs each loss.

The teacher is trained once on the full training split. Each student (same seed, same
initialisation, same epochs and learning-rate schedule) is trained from scratch with
plain cross-entropy ("alone") or with one registered distillation loss at its recipe
defaults. Two regimes: the full training split, and a low-data one (the first
``--low-data`` training images), where a teacher has the most to add. Accuracy is top-1
on the validation split, after epoch 1 and after the last epoch, averaged over seeds.

    /work/main/.venv/bin/python benchmarks/distill.py            # full (see results/distill.md)
    /work/main/.venv/bin/python benchmarks/distill.py --quick    # minutes: 16x16, fewer epochs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run as `python benchmarks/distill.py` from a checkout
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from edgeslim.data import load_data  # noqa: E402
from edgeslim.finetune.distill import LOSSES, build_distillation  # noqa: E402
from edgeslim.finetune.train import TrainSpec, evaluate, train  # noqa: E402
from edgeslim.models import create_model  # noqa: E402
from edgeslim.recipe import BaselineCfg, DistillCfg  # noqa: E402


def spec(epochs: int, seed: int) -> TrainSpec:
    b = BaselineCfg()  # students train from scratch like a baseline: lr 0.05, SGD, wd 5e-4
    return TrainSpec(epochs, b.lr, b.optimizer, 0.9, b.weight_decay, 64, seed)


def student_run(loss: str | None, teacher, data, *, epochs: int, seed: int, size: int) -> dict:
    torch.manual_seed(seed)
    student = create_model("resnet20", num_classes=10)
    fn, extra = None, []
    if loss is not None:
        fn, extra = build_distillation(DistillCfg(method=loss), student=student, teacher=teacher,
                                       example=torch.zeros(2, 3, size, size))
    t0 = time.perf_counter()
    history = train(student, data, spec(epochs, seed), loss_fn=fn, extra_params=extra)
    if fn is not None:
        fn.close()
    return {"epoch1": history[0]["val_accuracy"], "final": evaluate(student, data.val_loader(256)),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16x16 inputs, 3 teacher / 3 student epochs, 1 seed")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--teacher-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8, help="student epochs")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--low-data", type=int, default=150, help="training images of the low-data regime")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS / "distill")
    args = ap.parse_args()
    if args.quick:
        args.input_size, args.teacher_epochs, args.epochs, args.seeds = 16, 3, 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.input_size
    full = load_data("digits", input_size=size, num_classes=10, seed=0)
    low = load_data("digits", input_size=size, num_classes=10, seed=0, limit_train=args.low_data)

    torch.manual_seed(0)
    teacher = create_model("resnet56", num_classes=10)
    t0 = time.perf_counter()
    train(teacher, full, spec(args.teacher_epochs, 0))
    teacher_acc = evaluate(teacher, full.val_loader(256))
    print(f"teacher resnet56: {teacher_acc:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)

    losses = [None] + LOSSES.names()
    rows = []
    for regime, data in (("full", full), ("low-data", low)):
        for loss in losses:
            runs = [student_run(loss, teacher, data, epochs=args.epochs, seed=s, size=size)
                    for s in range(args.seeds)]
            row = {"regime": regime, "train_images": len(data.train), "loss": loss or "alone",
                   "epoch1": statistics.mean(r["epoch1"] for r in runs),
                   "final": statistics.mean(r["final"] for r in runs),
                   "final_per_seed": [r["final"] for r in runs],
                   "seconds": statistics.mean(r["seconds"] for r in runs)}
            rows.append(row)
            print(f"{regime:8s} {row['loss']:9s} epoch1 {row['epoch1']:.4f} final {row['final']:.4f} "
                  f"{row['seconds']:.0f}s", flush=True)

    settings = {"input_size": size, "teacher_epochs": args.teacher_epochs, "student_epochs": args.epochs,
                "seeds": args.seeds, "val_images": len(full.val), "quick": args.quick,
                "threads": torch.get_num_threads(),
                "defaults": {n: cls.options_help() for n, cls in LOSSES.items()}}
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"settings": settings, "teacher_accuracy": teacher_acc,
                                                    "rows": rows}, indent=1))
    lines = [f"# Distillation: resnet20 student of a resnet56 teacher (digits, {size}x{size})", "",
             f"Teacher resnet56: {teacher_acc * 100:.2f}% after {args.teacher_epochs} epochs. Students: "
             f"{args.epochs} epochs from scratch, SGD lr 0.05 cosine, mean of {args.seeds} seed(s); "
             f"validation split of {len(full.val)} images (one image = {100 / len(full.val):.2f} points).",
             "", "| regime | train images | loss | acc. after epoch 1 | final acc. | vs alone | s/run |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        alone = next(a for a in rows if a["regime"] == r["regime"] and a["loss"] == "alone")
        delta = "—" if r["loss"] == "alone" else f"{(r['final'] - alone['final']) * 100:+.2f}"
        lines.append(f"| {r['regime']} | {r['train_images']} | {r['loss']} | {r['epoch1'] * 100:.2f}% | "
                     f"{r['final'] * 100:.2f}% | {delta} | {r['seconds']:.0f} |")
    lines += ["", "Loss settings (recipe defaults): " + "; ".join(f"{k}: {v}" for k, v in
                                                                settings["defaults"].items()), "",
              f"Command: `{' '.join(['python', 'benchmarks/distill.py'] + sys.argv[1:])}`", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
