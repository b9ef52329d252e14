"""``10-compress``: apply ``compress.method``; the report gives params, MACs and channels
before and after. Methods that train get a :class:`~edgeslim.finetune.trainer.Trainer`
built from the schedules they declare, which the slice (and so the key) holds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

import torch

from edgeslim.compress import METHODS, CompressJob
from edgeslim.compress.config import CompressCfg
from edgeslim.compress.report import compression_report
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.finetune.device import Placement, resolve
from edgeslim.finetune.train import TrainSpec, evaluate
from edgeslim.finetune.trainer import LoopTrainer
from edgeslim.io import write_json
from edgeslim.models.checkpoint import load_model, save_model
from edgeslim.models.loading import build_model, check_finite
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, ModelSpec, Slice, Stage
from edgeslim.recipe import Recipe


class CompressSlice(Slice):
    model: ModelSpec
    data: DataSlice
    batch_size: int  # the methods' scoring, recalibration and training batches
    compress: CompressCfg
    schedules: dict[str, TrainSpec] = {}  # the training settings the method declared
    placement: Optional[Placement] = None  # where those train; None when the method does not


def schedules_of(recipe: Recipe, names: tuple[str, ...] | list[str]) -> dict[str, TrainSpec]:
    """The recipe's training sections by schedule name, as the loop reads them. All of it
    trains after the baseline, so it draws from ``finetune.seed`` (default: the recipe's)."""
    sections = {"baseline": recipe.baseline, "finetune": recipe.finetune}
    seed = recipe.finetune.seed_or(recipe.seed)
    return {n: TrainSpec.of(sections[n], batch_size=recipe.data.batch_size, seed=seed) for n in names}


class CompressStage(Stage[CompressSlice]):
    folder = "10-compress"
    upstream = ("00-baseline",)

    def slice(self, recipe: Recipe, **where: Any) -> CompressSlice:
        method = METHODS.get(recipe.compress.method)
        schedules = schedules_of(recipe, method.schedules(recipe.compress))
        return CompressSlice(model=ModelSpec.of(recipe), data=DataSlice.of(recipe),
                             batch_size=recipe.data.batch_size, compress=recipe.compress,
                             schedules=schedules, placement=resolve(recipe.train) if schedules else None)

    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: CompressSlice,
            ctx: Context) -> dict[str, Any]:
        data, seed = cfg.data.load(ctx), cfg.data.seed
        torch.manual_seed(seed)
        model = load_model(inputs["baseline"].dir)
        before = copy.deepcopy(model)
        method = METHODS.get(cfg.compress.method)
        spec = cfg.model.as_dict()

        def build_fresh():
            # the same seeded init the baseline stage trains from (pruning at init, lottery tickets)
            torch.manual_seed(seed)
            return build_model(spec["name"], num_classes=spec["num_classes"], kwargs=spec["kwargs"])

        trainer = LoopTrainer(data, cfg.schedules, reporter=ctx.reporter, after_step_for=method.after_step,
                              placement=cfg.placement, resume=EpochCheckpoints.at(ctx.resume_dir, log=ctx.log))
        job = CompressJob(model=model, example_inputs=cfg.data.example_input(), data=data,
                          cfg=cfg.compress, options=method.options_of(cfg.compress), spec=spec,
                          log=ctx.log, batch_size=cfg.batch_size, seed=seed,
                          trainer=trainer, build_fresh=build_fresh)
        with ctx.reporter.task(f"compress ({method.name})"):
            model = method.apply(job)
        model.eval()
        check_finite(model, "compressed model")
        report = compression_report(before, model, cfg.data.example_input())
        report.update({"method": method.name, "family": method.family, "notes": job.notes,
                       "accuracy_before_finetune": evaluate(model, cfg.data.val_loader(data, cfg.batch_size))})
        save_model(model, workdir, method.output_spec(job))
        write_json(workdir / "report.json", report)
        return {k: report[k] for k in ("method", "family", "params_before", "params_after",
                                       "macs_before", "macs_after", "accuracy_before_finetune")}
