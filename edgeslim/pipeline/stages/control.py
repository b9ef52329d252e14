"""``25-control``: the "trained longer" control — the baseline given the fine-tuning the
compressed model got, with nothing removed.

Fine-tuning after compression is more training. Against the baseline alone, a pruned model
that ends above it looks like compression helped; against this control (same epochs, lr
and schedule from the baseline's weights) the report shows what compression itself cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from edgeslim.finetune.config import FinetuneCfg
from edgeslim.finetune.device import Placement, resolve
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.finetune.train import TrainSpec, evaluate, train
from edgeslim.io import write_json
from edgeslim.models.checkpoint import load_model, save_model
from edgeslim.models.loading import check_finite
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, ModelSpec, Slice, Stage
from edgeslim.recipe import Recipe


class ControlSlice(Slice):
    model: ModelSpec
    data: DataSlice
    batch_size: int
    finetune: FinetuneCfg  # without its distillation teacher: the control trains alone
    placement: Optional[Placement] = None


class ControlStage(Stage[ControlSlice]):
    folder = "25-control"
    upstream = ("00-baseline",)

    @staticmethod
    def wanted(recipe: Recipe) -> bool:
        """Only when there is something to compare: a compressed model that was fine-tuned."""
        return recipe.control.enabled and recipe.compress.method != "none" and recipe.finetune.epochs > 0

    def slice(self, recipe: Recipe, **where: Any) -> ControlSlice:
        return ControlSlice(model=ModelSpec.of(recipe), data=DataSlice.of(recipe),
                            batch_size=recipe.data.batch_size,
                            finetune=recipe.finetune.model_copy(update={"distill": None}),
                            placement=resolve(recipe.train))

    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: ControlSlice,
            ctx: Context) -> dict[str, Any]:
        data, seed = cfg.data.load(ctx), cfg.finetune.seed_or(cfg.data.seed)
        torch.manual_seed(seed)
        model = load_model(inputs["baseline"].dir)
        history = train(model, data, TrainSpec.of(cfg.finetune, batch_size=cfg.batch_size, seed=seed),
                        reporter=ctx.reporter, description="control (baseline trained longer)",
                        placement=cfg.placement,
                        resume=EpochCheckpoints.at(ctx.resume_dir, log=ctx.log, label="control"))
        check_finite(model, "control model")
        acc = evaluate(model, cfg.data.val_loader(data, cfg.batch_size))
        save_model(model, workdir, cfg.model.as_dict())
        write_json(workdir / "history.json", history)
        return {"accuracy": acc, "epochs": len(history)}
