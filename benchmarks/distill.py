"""Distillation on digits: a resnet20 student of a resnet56 teacher, alone vs each loss.

The teacher is trained once on the full training split. Each student (same seed, same
initialisation, same epochs and learning-rate schedule) is trained from scratch with
plain cross-entropy ("alone") or with one registered distillation loss at its recipe
defaults. Two regimes with the same number of optimizer steps: the full training split,
and a low-data one (the first ``--low-data`` training images, more epochs), where a
teacher has the most to add. Accuracy is top-1 on the validation split after 1/8 of the
training and at the end, averaged over seeds.

    /work/main/.venv/bin/python benchmarks/distill.py            # full (see results/distill.md)
    /work/main/.venv/bin/python benchmarks/distill.py --quick    # minutes: 16x16, fewer epochs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run as `python benchmarks/distill.py` from a checkout
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from _noise import add_noise_args, check_quiet, write_result  # noqa: E402

from edgeslim.data import load_data  # noqa: E402
from edgeslim.finetune.distill import LOSSES, build_distillation  # noqa: E402
from edgeslim.finetune.train import TrainSpec, evaluate, train  # noqa: E402
from edgeslim.models import create_model  # noqa: E402
from edgeslim.recipe import BaselineCfg, DistillCfg  # noqa: E402


def spec(epochs: int, seed: int) -> TrainSpec:
    # students train from scratch like a baseline (lr 0.05, SGD, wd 5e-4) but without its
    # warm-up, as they were measured
    return TrainSpec.of(BaselineCfg(warmup_epochs=0), batch_size=64, seed=seed, epochs=epochs)


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
    early = history[max(0, math.ceil(epochs / 8) - 1)]["val_accuracy"]  # after 1/8 of the steps
    return {"early": early, "final": evaluate(student, data.val_loader(256)),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16x16 inputs, 3 teacher / 3 student epochs, 1 seed")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--teacher-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8, help="student epochs")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--low-data", type=int, default=256, help="training images of the low-data regime")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS / "distill")
    ap.add_argument("--render", action="store_true", help="rewrite the .md from the existing .json")
    add_noise_args(ap)
    args = ap.parse_args()
    if args.render:  # no new figures: keeps the load check line of the run that measured them
        write_markdown(json.loads(args.out.with_suffix(".json").read_text()), args.out.with_suffix(".md"), args)
        return
    quiet = check_quiet(args)
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
    # One epoch of linear warm-up: without it resnet56 at lr 0.05 stalls near chance on
    # digits (measured: 21.7% after 3 epochs at 16x16, 96.4% with the warm-up).
    teacher_spec = spec(args.teacher_epochs, 0)
    teacher_spec.warmup_epochs = 1
    train(teacher, full, teacher_spec)
    teacher_acc = evaluate(teacher, full.val_loader(256))
    print(f"teacher resnet56: {teacher_acc:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)

    losses = [None] + LOSSES.names()
    rows = []
    # the low-data regime gets as many optimizer steps as the full one (more epochs)
    steps = len(full.train) // 64 * args.epochs
    low_epochs = math.ceil(steps / max(1, len(low.train) // 64))
    for regime, data, epochs in (("full", full, args.epochs), ("low-data", low, low_epochs)):
        for loss in losses:
            runs = [student_run(loss, teacher, data, epochs=epochs, seed=s, size=size)
                    for s in range(args.seeds)]
            row = {"regime": regime, "train_images": len(data.train), "epochs": epochs,
                   "loss": loss or "alone", "early": statistics.mean(r["early"] for r in runs),
                   "final": statistics.mean(r["final"] for r in runs),
                   "final_per_seed": [r["final"] for r in runs],
                   "seconds": statistics.mean(r["seconds"] for r in runs)}
            rows.append(row)
            print(f"{regime:8s} {row['loss']:9s} early {row['early']:.4f} final {row['final']:.4f} "
                  f"{row['seconds']:.0f}s", flush=True)

    settings = {"input_size": size, "teacher_epochs": args.teacher_epochs, "student_epochs": args.epochs,
                "steps": steps, "seeds": args.seeds, "val_images": len(full.val), "quick": args.quick,
                "threads": torch.get_num_threads(), "command": " ".join(sys.argv[1:]),
                "defaults": {n: cls.options_help() for n, cls in LOSSES.items()}}
    result = {"settings": settings, "teacher_accuracy": teacher_acc, "rows": rows}
    write_result(args.out.with_suffix(".json"), json.dumps(result, indent=1), args, quiet=quiet)
    write_markdown(result, args.out.with_suffix(".md"), args, quiet)


def write_markdown(result: dict, path: Path, args: argparse.Namespace, quiet: dict | None = None) -> None:
    """The table, and what it does and does not show, from the JSON result."""
    st, rows = result["settings"], result["rows"]
    pts = 100 / st["val_images"]
    lines = [f"# Distillation: resnet20 student of a resnet56 teacher (digits, {st['input_size']}x"
             f"{st['input_size']})", "",
             f"Teacher resnet56: {result['teacher_accuracy'] * 100:.2f}% after {st['teacher_epochs']} epochs "
             f"(one epoch of lr warm-up). Students: from scratch, SGD lr 0.05 cosine, the same number of "
             f"optimizer steps in both regimes ({st['steps']}), mean of {st['seeds']} seed(s); validation "
             f"split of {st['val_images']} images (one image = {pts:.2f} points).",
             "", "| regime | train images | epochs | loss | acc. after 1/8 of training | final acc. | "
             "seeds min–max | vs alone | s/run |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        alone = next(a for a in rows if a["regime"] == r["regime"] and a["loss"] == "alone")
        delta = "—" if r["loss"] == "alone" else f"{(r['final'] - alone['final']) * 100:+.2f}"
        lo, hi = min(r["final_per_seed"]) * 100, max(r["final_per_seed"]) * 100
        lines.append(f"| {r['regime']} | {r['train_images']} | {r['epochs']} | {r['loss']} | "
                     f"{r['early'] * 100:.2f}% | {r['final'] * 100:.2f}% | {lo:.2f}–{hi:.2f} | {delta} | "
                     f"{r['seconds']:.0f} |")
    lines += ["", "## Reading"]
    for regime in dict.fromkeys(r["regime"] for r in rows):
        rr = [r for r in rows if r["regime"] == regime]
        alone = next(r for r in rr if r["loss"] == "alone")
        spread = max(max(r["final_per_seed"]) - min(r["final_per_seed"]) for r in rr) * 100
        best = max(rr, key=lambda r: r["final"])
        gap = (best["final"] - alone["final"]) * 100
        verdict = ("one seed, so the seed-to-seed spread is unmeasured and no difference is conclusive "
                   "(run --seeds 2 or more)" if st["seeds"] < 2 else
                   "every loss ties with training alone: no difference exceeds the seed-to-seed spread"
                   if max(abs(r["final"] - alone["final"]) * 100 for r in rr) <= spread else
                   f"best is {best['loss']} ({gap:+.2f} points vs alone), beyond the seed spread")
        early = max(rr, key=lambda r: r["early"])
        spread_note = (f"largest seed-to-seed spread of one configuration {spread:.2f} points "
                       f"({spread / pts:.0f} images); " if st["seeds"] > 1 else "")
        lines.append(f"- {regime}: {spread_note}{verdict}. After 1/8 of training (still far from "
                     + (f"converged) {early['loss']} leads with {early['early'] * 100:.1f}% against "
                        f"{alone['early'] * 100:.1f}% alone." if early is not alone else
                        f"converged) training alone leads ({alone['early'] * 100:.1f}%)."))
    lines += ["", "Loss settings (recipe defaults): " + "; ".join(f"{k}: {v}" for k, v in
                                                                st["defaults"].items()), "",
              f"Command: `python benchmarks/distill.py {st.get('command', '')}`".rstrip() + "", ""]
    if write_result(path, "\n".join(lines), args, quiet=quiet):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
