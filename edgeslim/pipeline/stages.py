"""The stages: baseline → compress → fine-tune → export → quantize.

Each is a plain function ``(workdir, inputs..., cfg, ctx) -> outputs`` that writes only
into ``workdir`` (a temporary folder that :func:`run_stage` renames into place) and
returns a JSON-able dict of what it made. No printing, no argv.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeslim.artifacts import Artifact
from edgeslim.compress import METHODS, CompressJob
from edgeslim.compress.report import compression_report
from edgeslim.finetune.train import TrainSpec, evaluate, train
from edgeslim.io import write_json
from edgeslim.models.checkpoint import load_model, save_model
from edgeslim.models.loading import build_model, check_finite, load_weights
from edgeslim.pipeline.context import Context
from edgeslim.recipe import Recipe


def model_spec(recipe: Recipe) -> dict[str, Any]:
    m = recipe.model
    return {"name": m.name, "num_classes": m.num_classes, "kwargs": dict(m.kwargs)}


def example_input(recipe: Recipe, batch: int = 1) -> torch.Tensor:
    s = recipe.model.input_size
    return torch.randn(batch, 3, s, s, generator=torch.Generator().manual_seed(recipe.seed))


def _val_loader(data, recipe: Recipe):
    return data.val_loader(recipe.data.batch_size) if data.labelled else None


def baseline(workdir: Path, recipe: Recipe, data, ctx: Context) -> dict[str, Any]:
    """The reference model: the given weights, or trained on the recipe's data."""
    torch.manual_seed(recipe.seed)
    spec = model_spec(recipe)
    model = build_model(spec["name"], num_classes=spec["num_classes"], kwargs=spec["kwargs"])
    history: list[dict] = []
    if recipe.model.weights:
        load_weights(model, recipe.model.weights)
        source = "weights"
    else:
        history = train(model, data, TrainSpec.of(recipe.baseline, batch_size=recipe.data.batch_size,
                                                  seed=recipe.seed),
                        reporter=ctx.reporter, description="baseline")
        source = "trained"
    check_finite(model, "baseline model")
    acc = evaluate(model, _val_loader(data, recipe))
    save_model(model, workdir, spec)
    write_json(workdir / "history.json", history)
    return {"source": source, "accuracy": acc, "epochs": len(history)}


def compress(workdir: Path, baseline_dir: Path, recipe: Recipe, data, ctx: Context) -> dict[str, Any]:
    """Apply ``compress.method``; the report gives params, MACs and channels before/after."""
    torch.manual_seed(recipe.seed)
    model = load_model(baseline_dir)
    before = copy.deepcopy(model)
    method = METHODS.get(recipe.compress.method)
    ft = recipe.finetune

    def finetune_between(m, epochs: int) -> None:
        train(m, data, TrainSpec.of(ft, batch_size=recipe.data.batch_size, seed=recipe.seed, epochs=epochs),
              reporter=ctx.reporter, description="prune-step fine-tune",
              after_step=method.after_step(m))

    def train_job(m, *, epochs=None, loss_fn=None, extra_params=None, from_scratch=False,
                  description="train", after_step=None, start_epoch=0):
        # from scratch (a distilled student): the baseline's settings, which its cache key covers
        spec = TrainSpec.of(recipe.baseline if from_scratch else ft, batch_size=recipe.data.batch_size,
                            seed=recipe.seed, epochs=epochs)
        spec.start_epoch = start_epoch
        return train(m, data, spec, reporter=ctx.reporter, loss_fn=loss_fn, extra_params=extra_params,
                     after_step=after_step or method.after_step(m), description=description)

    def build_fresh():
        # the same seeded init the baseline stage trains from (pruning at init, lottery tickets)
        torch.manual_seed(recipe.seed)
        s = model_spec(recipe)
        return build_model(s["name"], num_classes=s["num_classes"], kwargs=s["kwargs"])

    job = CompressJob(model=model, example_inputs=example_input(recipe), data=data,
                      cfg=recipe.compress, options=recipe.compress.method_options(),
                      spec=model_spec(recipe), finetune=finetune_between, log=ctx.log,
                      batch_size=recipe.data.batch_size, seed=recipe.seed, train=train_job,
                      build_fresh=build_fresh, train_epochs=recipe.baseline.epochs)
    with ctx.reporter.task(f"compress ({method.name})"):
        model = method.apply(job)
    model.eval()
    check_finite(model, "compressed model")
    report = compression_report(before, model, example_input(recipe))
    report.update({"method": method.name, "family": method.family, "notes": job.notes,
                   "accuracy_before_finetune": evaluate(model, _val_loader(data, recipe))})
    save_model(model, workdir, job.spec if "spec" not in job.notes else job.notes["spec"])
    write_json(workdir / "report.json", report)
    return {k: report[k] for k in ("method", "family", "params_before", "params_after",
                                   "macs_before", "macs_after", "accuracy_before_finetune")}


def finetune(workdir: Path, compress_dir: Path, baseline_dir: Path, recipe: Recipe, data,
             ctx: Context) -> dict[str, Any]:
    """Recover accuracy: plain fine-tuning, or distillation from the baseline teacher."""
    torch.manual_seed(recipe.seed)
    model = load_model(compress_dir)
    method = METHODS.get(recipe.compress.method)
    ft = recipe.finetune
    loss_fn, extra = None, []
    if ft.distill is not None:
        from edgeslim.finetune.distill import build_distillation

        loss_fn, extra = build_distillation(ft.distill, student=model, baseline_dir=baseline_dir,
                                            example=example_input(recipe, 2))
    history = train(model, data, TrainSpec.of(ft, batch_size=recipe.data.batch_size, seed=recipe.seed),
                    reporter=ctx.reporter, loss_fn=loss_fn, extra_params=extra,
                    after_step=method.after_step(model), description="fine-tune")
    check_finite(model, "fine-tuned model")
    acc = evaluate(model, _val_loader(data, recipe))
    import json

    spec = json.loads((compress_dir / "structure.json").read_text())["spec"]
    save_model(model, workdir, spec)
    write_json(workdir / "history.json", history)
    return {"accuracy": acc, "epochs": len(history),
            "distill": ft.distill.method if ft.distill else None}


def export(workdir: Path, model_dir: Path, fmt: str, variant: str, method: str, recipe: Recipe,
           data, ctx: Context) -> dict[str, Any]:
    """Export one model to one format, validated against PyTorch on validation inputs."""
    from edgeslim.exporters import EXPORTERS

    exporter = EXPORTERS.get(fmt)
    ok, why = exporter.available()
    if not ok:
        return {"skipped": why}
    model = load_model(model_dir)
    sample = parity_inputs(recipe, data)
    with ctx.reporter.task(f"export {variant} → {fmt}"):
        art = exporter.export(model, sample, workdir, cfg=recipe.export, variant=variant, method=method)
    write_json(workdir / "parity.json", art.info.get("parity", {}))
    return {"artifact": art.to_json(workdir)}


def quantize(workdir: Path, parent: Artifact, precision: str, recipe: Recipe, data,
             ctx: Context) -> dict[str, Any]:
    """One (format, precision) artifact from its FP32 parent, checked against it."""
    from edgeslim.quantizers import QUANTIZERS
    from edgeslim.quantizers.base import validate_against_parent

    quantizer = QUANTIZERS.get(f"{parent.format}-{precision}")
    ok, why = quantizer.available()
    if not ok:
        return {"skipped": why}
    calib = data.calibration(recipe.data.calibration_samples, seed=recipe.seed) \
        if quantizer.needs_calibration else None
    # accuracy-controlled quantizers get the labelled val split (y is None when unlabelled)
    extra = {"val": data.val_arrays()} \
        if quantizer.uses_validation and recipe.quantize.max_accuracy_drop is not None else {}
    with ctx.reporter.task(f"quantize {parent.variant} {parent.format} → {precision}"):
        art = quantizer.quantize(parent, calib, workdir, cfg=recipe.quantize, **extra)
        art.info["parity"] = validate_against_parent(art, parent, parity_inputs(recipe, data))
    write_json(workdir / "parity.json", art.info["parity"])
    return {"artifact": art.to_json(workdir)}


def parity_inputs(recipe: Recipe, data) -> np.ndarray:
    """Real validation images for parity checks (random inputs for unlabelled data)."""
    x, _ = data.val_arrays(limit=recipe.export.parity.samples)
    return np.ascontiguousarray(x, dtype=np.float32)
