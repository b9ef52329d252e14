"""Fashion-MNIST evidence: a converged baseline, the structured criteria against it and
against a "trained longer" control over seeds, INT8 (PTQ, fallback, QAT), and the default
plan (issue 16 item 4 and figures, issue 17 figures).

Parts (``--parts``, comma-separated; default all four, in this order):

- ``baseline``: resnet20 at 28 px (Fashion-MNIST's native size: no resampling, and 23% fewer
  MACs than 32 px, so more epochs fit the hour) on the FULL training split (60,000 images),
  the official t10k split (10,000) as validation, ``baseline.patience`` 3 capped by
  ``--baseline-epochs``; reports accuracy, epochs, whether it converged, wall time.
- ``criteria``: l1, l2, slimming, hrank, taylor, latency, random at 2x and 4x MAC reduction
  (``compress.target_macs`` 0.5 / 0.75) of that one baseline, fine-tuned over ``--seeds``
  fine-tune seeds (``finetune.seed`` 0..N-1), each as accuracy − baseline and − the
  "trained longer" control (``25-control``, same seed), mean ± sd; ties by the plan's rule.
- ``quant``: resnet20 pruned l1 ratio 0.5 (the default recipe's and the plan's ``l1-50``):
  FP32, PTQ INT8 (ONNX Runtime, OpenVINO), fallback INT8 (``quantize.max_accuracy_drop``
  0.5), QAT INT8 (``int8-qat``): accuracy, bytes, p50 from the run's own profile rows, over
  the seeds → also ``quantization.{md,json}``.
- ``plan``: the default plan (``edgeslim plan`` with no recipe: cpu + edge, max 1 point
  lost) on Fashion-MNIST, ``--seeds``: its choice per target and whether it is a tie.

What fits the hour on a 2-core CPU (stated in every result): the baseline trains on all
60,000 images; everything after it (compression, fine-tuning, the control, QAT, the plan)
trains on the first ``--train-limit`` training images (6,000 by default: the training file
is in random order, so this is near class-balanced; the counts per class are reported) for
``--finetune-epochs`` epochs, starting from the baseline's weights (``model.weights``), and
is validated on the full t10k split. Every part reuses the one baseline (its stage cache).

``--finetune-lr`` sets ``finetune.lr`` of everything after the baseline. The recipe's 0.05 is
for a full fine-tune; on a few epochs of a subset it undoes the baseline's training (measured
here, l1 at 2x MACs, 2 epochs of 6,000 images, seed 0: 89.97% at 0.05, 92.08% at 0.01, 92.01%
at 0.005; the control fell from 93.63% to 91.86% at 0.05 and stayed at 93.43% at 0.01).

``--dataset digits`` runs the parts ``baseline`` and ``quant`` on scikit-learn's digits
instead (32 px, all 1,437 training images everywhere, the recipe's 8 fine-tune epochs; work in
``benchmarks/work/digits``, results ``digits-<part>.md``): issue 17's digits rows.
``quantization.md`` gathers every dataset's quant section (``fashion-quant.md``,
``digits-quant.md``).

Resumable: every stage runs through the pipeline's stage cache in run directories under
``--work`` (default ``benchmarks/work/fashion``, gitignored), training stages checkpoint
each epoch, so a killed run continues where it stopped.

Time on a quiet 2-core AMD EPYC (AVX-512 BF16), estimated from the smoke's rates (training
resnet20 at 28 px in bf16: ~1,000 img/s unpruned, 1,200-1,600 pruned, ~700 under QAT; the
t10k evaluations after every epoch are about as costly as the subset's training): baseline
≲ 13 min (12 epochs × 60,000 images), criteria ~20 min (42 fine-tunes + 3 controls + 14
compressions), quant ~10 min, plan ~15-20 min: about an hour in all, more on a busy machine.

    .venv/bin/python benchmarks/fashion.py                      # everything (about an hour)
    .venv/bin/python benchmarks/fashion.py --parts baseline,criteria
    .venv/bin/python benchmarks/fashion.py --parts criteria,plan --finetune-lr 0.01 --train-limit 12000 --finetune-epochs 3
    .venv/bin/python benchmarks/fashion.py --dataset digits --parts baseline,quant --quant-models resnet20,mobilenet_v2
    nice -n 19 .venv/bin/python benchmarks/fashion.py --smoke   # same code paths, tiny: minutes,
                                                                # writes under a temp dir only
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/fashion.py` from a checkout
    sys.path.insert(0, str(ROOT))

import _fashion_report as report  # noqa: E402
from _noise import add_noise_args, check_quiet  # noqa: E402

from edgeslim.data.idx import FASHION_MNIST_DIR, find_files, read_idx  # noqa: E402
from edgeslim.errors import EdgeslimError, first_line  # noqa: E402
from edgeslim.io import read_json  # noqa: E402
from edgeslim.models.checkpoint import WEIGHTS  # noqa: E402
from edgeslim.pipeline.context import Context  # noqa: E402
from edgeslim.pipeline.run import run_recipe  # noqa: E402
from edgeslim.pipeline.stage import StageResult, resume_dir, run_stage  # noqa: E402
from edgeslim.pipeline.stages import (BaselineStage, CompressStage, ControlStage, DataSlice,  # noqa: E402
                                      FinetuneStage, Stage)
from edgeslim.pipeline.stages.base import input_hashes  # noqa: E402
from edgeslim.recipe import Recipe, load_recipe, recipe_to_dict  # noqa: E402
from edgeslim.report.plan_report import write_plan  # noqa: E402
from edgeslim.select.plan import plan_inputs, plan_recipe  # noqa: E402

PARTS = ("baseline", "criteria", "quant", "plan")
CRITERIA = ("l1", "l2", "slimming", "hrank", "taylor", "latency", "random")
LEVELS = {"2x": 0.5, "4x": 0.75}  # compress.target_macs: the fraction of MACs removed
# Short profiles for the smoke: it checks that the code runs, its figures mean nothing
SMOKE_PROFILE = ["profile.warmup=2", "profile.warmup_seconds=0", "profile.min_iterations=5",
                 "profile.min_seconds=0", "profile.max_seconds=0.2"]


@dataclasses.dataclass
class Settings:
    """What one invocation runs; every figure it writes states these."""

    smoke: bool
    dataset: str = "fashion-mnist"  # or digits (baseline and quant only: issue 17's digits rows)
    size: int = 28
    baseline_epochs: int = 12  # the cap; baseline.patience stops earlier once it has converged
    patience: int = 3
    baseline_limit: Optional[int] = None  # training images of the baseline (None: all 60,000)
    val_limit: Optional[int] = None  # None: the whole t10k split
    train_limit: Optional[int] = 6000  # training images of everything after the baseline (None: all)
    finetune_epochs: int = 2
    finetune_lr: Optional[float] = None  # None: the recipe's finetune.lr
    seeds: int = 3  # fine-tune seeds of the criteria
    quant_seeds: int = 3
    plan_seeds: int = 3
    criteria: tuple[str, ...] = CRITERIA
    levels: tuple[str, ...] = tuple(LEVELS)
    quant_models: tuple[str, ...] = ("resnet20",)
    qat_epochs: int = 2
    profile: tuple[str, ...] = ()  # profile.* overrides (the smoke's short timings)
    label: str = ""  # a variant's name: work in <part>-<label>/, results <prefix>-<part>-<label>.md

    def folder(self, part: str) -> str:
        return f"{part}-{self.label}" if self.label else part

    @property
    def prefix(self) -> str:
        return report.prefix_of(self.dataset)

    @classmethod
    def digits_run(cls) -> "Settings":
        """scikit-learn's digits at the recipe's 32 px: 1,437 training images and a random
        360-image validation split, small enough to train everything on all of it with the
        recipe's own fine-tune epochs (8)."""
        return cls(smoke=False, dataset="digits", size=32, train_limit=None, finetune_epochs=8)

    @classmethod
    def smoke_run(cls) -> "Settings":
        return cls(smoke=True, baseline_epochs=1, baseline_limit=256, val_limit=128, train_limit=256,
                   finetune_epochs=1, seeds=2, quant_seeds=1, plan_seeds=1, criteria=("l1", "random"),
                   qat_epochs=1, profile=tuple(SMOKE_PROFILE))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class LineReporter:
    """The pipeline's progress as plain lines: one per epoch (the training loop's), one per
    untimed task (quantize, export, compress), each with the run it belongs to."""

    def __init__(self) -> None:
        self.where = ""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        if total is None:  # training epochs report themselves when they end
            log(f"  {self.where}: {description}")
        yield lambda n=1: None

    def log(self, message: str) -> None:
        log(f"  {self.where}: {message}")


class Runner:
    """Stages of one run directory, wired as :func:`edgeslim.pipeline.run.run_recipe` wires
    them (same keys, same per-epoch resume state), sharing done stages of equal key with
    ``share_from`` (hard links), as ``plan`` shares them between candidates."""

    def __init__(self, run_dir: Path, reporter: LineReporter, cache: dict, share_from: list[Path] = ()):
        self.dir, self.share = run_dir, list(share_from)
        self.ctx = Context(run_dir=run_dir, reporter=reporter, cache=cache)
        self.reporter = reporter

    def stage(self, stage: Stage, inputs: dict[str, Optional[StageResult]], recipe: Recipe) -> StageResult:
        cfg = stage.slice(recipe)
        keys = input_hashes(inputs)
        ctx = dataclasses.replace(self.ctx, resume_dir=resume_dir(self.dir, stage.folder, cfg.key(), keys))
        t0 = time.perf_counter()
        res = run_stage(self.dir, stage.folder, cfg.key(), keys, lambda d: stage.run(d, inputs, cfg, ctx),
                        share_from=self.share)
        self.reporter.log(f"{stage.folder} {'cached' if res.cached else f'done in {time.perf_counter() - t0:.0f} s'}")
        return res

    def data(self, recipe: Recipe):
        return DataSlice.of(recipe).load(self.ctx)


# --------------------------------------------------------------------------- recipes


def base_overrides(s: Settings, model: str) -> list[str]:
    """The baseline's recipe: the model at ``s.size`` px on Fashion-MNIST, converged by patience."""
    out = [f"name={s.prefix}-{model}", f"model.name={model}", f"model.input_size={s.size}", f"data.name={s.dataset}",
           f"baseline.epochs={s.baseline_epochs}", f"baseline.patience={s.patience}"]
    out += [f"data.limit_train={s.baseline_limit}"] if s.baseline_limit else []
    out += [f"data.limit_val={s.val_limit}"] if s.val_limit else []
    return out + list(s.profile)


def subset_overrides(s: Settings, model: str, weights: str) -> list[str]:
    """Everything after the baseline: its weights, the training subset, the fine-tune epochs."""
    out = base_overrides(s, model) + [f"model.weights={weights}", f"finetune.epochs={s.finetune_epochs}"]
    out += [f"data.limit_train={s.train_limit}"] if s.train_limit else []
    return out + ([f"finetune.lr={s.finetune_lr}"] if s.finetune_lr else [])


def class_counts(s: Settings) -> Optional[list[int]]:
    """Images per class among the first ``train_limit`` of Fashion-MNIST's training split (read
    from the file); None for another dataset."""
    if s.dataset != "fashion-mnist":
        return None
    labels = read_idx(find_files(FASHION_MNIST_DIR)["train"][1], dims=1)[:s.train_limit]
    return [int((labels == c).sum()) for c in range(10)]


# --------------------------------------------------------------------------- parts


def part_baseline(s: Settings, work: Path, rep: LineReporter, cache: dict, model: str = "resnet20") -> dict[str, Any]:
    """The one reference every other part starts from (trained once: the stage cache)."""
    recipe = load_recipe(overrides=base_overrides(s, model))
    rep.where = f"baseline {model}"
    run = Runner(work / "baseline" / model, rep, cache)
    data = run.data(recipe)
    t0 = time.perf_counter()
    res = run.stage(BaselineStage(), {}, recipe)
    history = read_json(res.dir / "history.json")
    ips = sorted(h["images_per_s"] for h in history)
    out = {"model": model, "input_size": s.size, "accuracy": res.outputs["accuracy"], "epochs": res.outputs["epochs"],
           "convergence": res.outputs.get("convergence"), "cap": s.baseline_epochs, "patience": s.patience,
           "train_images": len(data.train), "val_images": len(data.val), "seconds": res.seconds,
           "wall_s": time.perf_counter() - t0, "cached": res.cached, "weights": str(res.dir / WEIGHTS),
           "images_per_s": ips[len(ips) // 2] if ips else None,
           "history": [{k: h.get(k) for k in ("epoch", "lr", "train_accuracy", "val_accuracy", "images_per_s")}
                       for h in history], "precision": history[0]["precision"] if history else None,
           "recipe": {k: recipe_to_dict(recipe)[k] for k in ("model", "data", "baseline", "train")}}
    log(f"baseline {model}: {100 * out['accuracy']:.2f}% after {out['epochs']} epochs "
        f"({(out['convergence'] or {}).get('converged')})")
    return out


def part_criteria(s: Settings, work: Path, rep: LineReporter, cache: dict, base: dict[str, Any]) -> dict[str, Any]:
    """Every criterion x level x fine-tune seed, from the one baseline; the control per seed."""
    model, sub = base["model"], subset_overrides(s, base["model"], base["weights"])
    runs, share, t0 = [], [], time.perf_counter()
    todo = [(k, lv, m) for k in range(s.seeds) for lv in s.levels for m in s.criteria]
    for i, (seed, level, method) in enumerate(todo, 1):
        tag = f"{method}-{level}-s{seed}"
        rep.where = f"criteria {i}/{len(todo)} {tag}"
        recipe = load_recipe(overrides=sub + [f"compress.method={method}", f"compress.target_macs={LEVELS[level]}",
                                              f"finetune.seed={seed}"])
        run = Runner(work / s.folder("criteria") / model / tag, rep, cache, share)
        row: dict[str, Any] = {"method": method, "level": level, "seed": seed}
        try:
            b = run.stage(BaselineStage(), {}, recipe)
            c = run.stage(CompressStage(), {"baseline": b}, recipe)
            f = run.stage(FinetuneStage(), {"compressed": c, "teacher": None}, recipe)
            ctl = run.stage(ControlStage(), {"baseline": b}, recipe)
        except Exception as err:  # a criterion that cannot reach a budget is a result too
            row["error"] = first_line(err)
            log(f"{tag}: {row['error']}")
            runs.append(row)
            continue
        share.append(run.dir)
        row.update({"baseline": b.outputs["accuracy"], "acc_pruned": c.outputs["accuracy_before_finetune"],
                    "acc_finetuned": f.outputs["accuracy"], "control": ctl.outputs["accuracy"],
                    "macs": c.outputs["macs_after"], "macs_before": c.outputs["macs_before"],
                    "params": c.outputs["params_after"], "params_before": c.outputs["params_before"],
                    "seconds_compress": c.seconds, "seconds_finetune": f.seconds, "seconds_control": ctl.seconds})
        runs.append(row)
        log(f"{tag}: pruned {100 * row['acc_pruned']:.2f}% → fine-tuned {100 * row['acc_finetuned']:.2f}% "
            f"(control {100 * row['control']:.2f}%, baseline {100 * row['baseline']:.2f}%)")
    finetune = recipe_to_dict(load_recipe(overrides=sub))["finetune"]
    return {"runs": runs, "wall_s": time.perf_counter() - t0, "finetune": finetune,
            **report.criteria_summary(runs, s)}


def _quant_recipe(s: Settings, model: str, weights: str, seed: int, extra: list[str]) -> Recipe:
    return load_recipe(overrides=subset_overrides(s, model, weights) + [
        f"name={s.prefix}-{model}-quant", "compress.method=l1", "compress.ratio=0.5", f"finetune.seed={seed}",
        "export.formats=[onnx,openvino]", "export.include_baseline=false", "control.enabled=false",
        f"quantize.qat.epochs={s.qat_epochs}", "quantize.sensitivity.enabled=true"] + extra)


def part_quant(s: Settings, work: Path, rep: LineReporter, cache: dict, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model and seed two runs: FP32 + PTQ INT8 + QAT INT8, then the fallback INT8
    (``quantize.max_accuracy_drop: 0.5``) sharing every stage up to the export with it."""
    rows, t0, torch_acc = [], time.perf_counter(), {}
    for base in bases:
        model = base["model"]
        for seed in range(s.quant_seeds):
            plain = work / s.folder("quant") / model / f"s{seed}"
            for kind, run_dir, extra, share in (
                    ("plain", plain, ["quantize.precisions=[fp32,int8,int8-qat]"], []),
                    ("fallback", plain.with_name(f"s{seed}-fallback"),
                     ["quantize.precisions=[int8]", "quantize.max_accuracy_drop=0.5"], [plain])):
                rep.where = f"quant {model} seed {seed} ({kind})"
                summary = run_recipe(_quant_recipe(s, model, base["weights"], seed, extra), run_dir,
                                     reporter=rep, share_from=share)
                torch_acc[(model, seed)] = summary.finetuned.outputs["accuracy"]
                rows += [report.quant_row(r, model=model, seed=seed, fallback=kind == "fallback")
                         for r in summary.rows]
            log(f"quant {model} seed {seed}: " + ", ".join(
                f"{r['label']} {100 * r['accuracy']:.2f}%" for r in rows
                if r["model"] == model and r["seed"] == seed and r.get("accuracy") is not None))
    return {"rows": rows, "wall_s": time.perf_counter() - t0,
            "torch_accuracy": [{"model": m, "seed": k, "accuracy": a} for (m, k), a in torch_acc.items()],
            "baselines": {b["model"]: b["accuracy"] for b in bases}, **report.quant_summary(rows)}


def part_plan(s: Settings, work: Path, rep: LineReporter, base: dict[str, Any]) -> dict[str, Any]:
    """``edgeslim plan`` with no recipe (cpu + edge, max_accuracy_drop 1), on Fashion-MNIST
    from the converged baseline's weights, fine-tuning on the subset, ``s.plan_seeds`` seeds."""
    overrides = [o for o in subset_overrides(s, base["model"], base["weights"]) if not o.startswith("name=")]
    recipe, _ = plan_inputs(None, ["name=fashion-plan"] + overrides, seeds=s.plan_seeds)
    rep.where = "plan"
    t0 = time.perf_counter()
    result = plan_recipe(recipe, work / s.folder("plan"), reporter=rep)
    write_plan(result)
    return {"wall_s": time.perf_counter() - t0, **report.plan_summary(result)}


# --------------------------------------------------------------------------- main


def settings_from(args: argparse.Namespace) -> Settings:
    if args.smoke:
        return Settings.smoke_run()
    s = Settings.digits_run() if args.dataset == "digits" else Settings(smoke=False)
    for name in ("baseline_epochs", "train_limit", "finetune_epochs", "finetune_lr", "seeds", "qat_epochs"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    s.quant_seeds = s.plan_seeds = s.seeds
    s.label = args.label or ""
    if args.criteria:
        s.criteria = tuple(x for x in args.criteria.split(",") if x)
    if args.quant_models:
        s.quant_models = tuple(x for x in args.quant_models.split(",") if x)
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--smoke", action="store_true",
                    help="the same code paths on a tiny slice (256 train / 128 val images, 1 epoch); "
                         "work and results go to a temporary folder, never to benchmarks/results")
    ap.add_argument("--dataset", choices=("fashion-mnist", "digits"), default="fashion-mnist",
                    help="digits: scikit-learn's digits at 32 px, all of it after the baseline too, 8 fine-tune "
                         "epochs; parts baseline and quant only (results digits-<part>.md)")
    ap.add_argument("--baseline-epochs", type=int, help="cap of the baseline's epochs (default 12)")
    ap.add_argument("--train-limit", type=int, help="training images after the baseline (default 6000)")
    ap.add_argument("--finetune-epochs", type=int, help="fine-tune epochs after pruning (default 2)")
    ap.add_argument("--finetune-lr", type=float, help="finetune.lr after pruning (default: the recipe's, 0.05)")
    ap.add_argument("--seeds", type=int, help="fine-tune seeds of criteria, quant and plan (default 3)")
    ap.add_argument("--qat-epochs", type=int, help="quantize.qat.epochs (default 2)")
    ap.add_argument("--criteria", help=f"comma-separated subset of {','.join(CRITERIA)}")
    ap.add_argument("--quant-models", help="models of the quant part (default resnet20; mobilenet_v2 adds "
                                           "its own 60,000-image baseline)")
    ap.add_argument("--label", help="name of a variant run (e.g. 'long' with --train-limit 60000): its stages in "
                                    "<part>-LABEL/ under --work, its results <prefix>-<part>-LABEL.md")
    ap.add_argument("--work", type=Path, help="stage cache (default benchmarks/work/fashion)")
    ap.add_argument("--results", type=Path, help="where fashion-<part>.md/.json go (default benchmarks/results)")
    add_noise_args(ap)
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.dataset == "digits" and set(parts) - {"baseline", "quant"}:
        ap.error("--dataset digits runs the parts baseline and quant only (criteria and plan on digits tie: "
                 "benchmarks/structured.py and plan.py measure them there)")
    bad = [c for c in (args.criteria or "").split(",") if c and c not in CRITERIA]
    if bad:
        ap.error(f"unknown criteria {', '.join(bad)}; choose from {', '.join(CRITERIA)}")
    for name in ("baseline_epochs", "train_limit", "finetune_epochs", "seeds", "qat_epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.finetune_lr is not None and not args.finetune_lr > 0:
        ap.error(f"--finetune-lr must be positive, got {args.finetune_lr}")
    try:
        run(args, parts)
    except EdgeslimError as err:  # a bad recipe value, a missing dataset: one line, non-zero exit
        sys.exit(f"fashion.py: {err}")


def run(args: argparse.Namespace, parts: list[str]) -> None:
    """Every part of ``parts``, writing each part's results as soon as it is done."""
    s = settings_from(args)
    tmp = Path(tempfile.mkdtemp(prefix="edgeslim-fashion-smoke-")) if s.smoke else None
    work = args.work or (tmp / "work" if tmp else ROOT / "benchmarks" / "work" / s.prefix)
    results = args.results or (tmp / "results" if tmp else ROOT / "benchmarks" / "results")
    if s.smoke:
        args.allow_noisy = True  # a smoke checks the code paths; its figures go to a temp dir
    quiet = check_quiet(args)
    meta = {"command": "python benchmarks/fashion.py " + " ".join(sys.argv[1:]), "settings": dataclasses.asdict(s),
            "class_counts": class_counts(s), "cores": len(os.sched_getaffinity(0))}
    log(f"parts {', '.join(parts)}; work {work}; results {results}")
    for line in report.work_plan(s, parts):
        log(line)
    rep, cache = LineReporter(), {}
    models = ("resnet20",) + (s.quant_models if "quant" in parts else ())
    bases = [part_baseline(s, work, rep, cache, m) for m in dict.fromkeys(models)]  # trained once, then cached
    done: dict[str, Any] = {}
    for part in parts:
        t0 = time.perf_counter()
        log(f"=== {part}")
        if part == "baseline":
            out = bases[0]
        elif part == "criteria":
            out = part_criteria(s, work, rep, cache, bases[0])
        elif part == "quant":
            out = part_quant(s, work, rep, cache, [b for b in bases if b["model"] in s.quant_models])
        else:
            out = part_plan(s, work, rep, bases[0])
        out["part_wall_s"] = time.perf_counter() - t0
        done[part] = out
        for path in report.write_part(part, out, bases[0], meta, results, args, quiet, prefix=s.prefix,
                                      label=s.label):
            log(f"wrote {path}")
    if s.smoke:
        log("smoke done: " + report.smoke_estimate(bases[0], done))


if __name__ == "__main__":
    main()
