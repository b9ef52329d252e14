"""``20-finetune``: recover accuracy — plain fine-tuning, or distillation from a teacher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

from edgeslim.compress import METHODS
from edgeslim.finetune.config import FinetuneCfg
from edgeslim.finetune.distill import build_distillation
from edgeslim.finetune.train import TrainSpec, evaluate, train
from edgeslim.io import write_json
from edgeslim.models.checkpoint import STRUCTURE, load_model, save_model
from edgeslim.models.loading import check_finite
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, Slice, Stage
from edgeslim.recipe import Recipe


class FinetuneSlice(Slice):
    data: DataSlice
    finetune: FinetuneCfg
    method: str  # its after-step hook (e.g. unstructured masks stay zero while training)


class FinetuneStage(Stage[FinetuneSlice]):
    folder = "20-finetune"
    upstream = ("10-compress", "00-baseline")  # the baseline only as a distillation teacher

    def slice(self, recipe: Recipe, **where: Any) -> FinetuneSlice:
        ft = recipe.finetune
        if recipe.compress.method == "none":  # an unchanged model has nothing to recover (compress/none.py)
            ft = ft.model_copy(update={"epochs": 0, "distill": None})
        return FinetuneSlice(data=DataSlice.of(recipe), finetune=ft, method=recipe.compress.method)

    @staticmethod
    def needs_teacher(cfg: FinetuneSlice) -> bool:
        return cfg.finetune.distill is not None

    def run(self, workdir: Path, inputs: dict[str, Optional[StageResult]], cfg: FinetuneSlice,
            ctx: Context) -> dict[str, Any]:
        data, seed, ft = cfg.data.load(ctx), cfg.data.seed, cfg.finetune
        torch.manual_seed(seed)
        compressed = inputs["compressed"].dir
        model = load_model(compressed)
        method = METHODS.get(cfg.method)
        loss_fn, extra = None, []
        if ft.distill is not None:
            base = inputs.get("teacher")
            loss_fn, extra = build_distillation(ft.distill, student=model,
                                                baseline_dir=base.dir if base else None,
                                                example=cfg.data.example_input(2))
        history = train(model, data, TrainSpec.of(ft, batch_size=cfg.data.data.batch_size, seed=seed),
                        reporter=ctx.reporter, loss_fn=loss_fn, extra_params=extra,
                        after_step=method.after_step(model), description="fine-tune")
        check_finite(model, "fine-tuned model")
        acc = evaluate(model, cfg.data.val_loader(data))
        spec = json.loads((compressed / STRUCTURE).read_text())["spec"]
        save_model(model, workdir, spec)
        write_json(workdir / "history.json", history)
        return {"accuracy": acc, "epochs": len(history), "distill": ft.distill.method if ft.distill else None}
