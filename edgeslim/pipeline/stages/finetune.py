"""``20-finetune``: recover accuracy — plain fine-tuning, or distillation from a teacher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

from edgeslim.compress import METHODS
from edgeslim.finetune.config import DistillCfg, FinetuneCfg
from edgeslim.finetune.device import Placement, resolve
from edgeslim.finetune.distill import build_distillation
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.finetune.train import TrainSpec, evaluate, train
from edgeslim.io import sha256_file, write_json
from edgeslim.models.checkpoint import STRUCTURE, load_model, save_model
from edgeslim.models.loading import check_finite
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult, folder_hash
from edgeslim.pipeline.stages.base import DataSlice, Slice, Stage
from edgeslim.recipe import Recipe


class FinetuneSlice(Slice):
    data: DataSlice
    batch_size: int
    finetune: FinetuneCfg
    method: str  # its after-step hook (e.g. unstructured masks stay zero while training)
    # A teacher given by path (a weights file or a saved model folder) is read by content:
    # replacing the file must rerun the distillation, as model.weights does the baseline.
    teacher_sha256: Optional[str] = None
    placement: Optional[Placement] = None  # where it trains (resolved); None with 0 epochs


def teacher_hash(cfg: Optional[DistillCfg]) -> Optional[str]:
    """The content hash of a distillation teacher given by path; None for the baseline
    (an input of the stage) or a missing path (pre-flight and load_teacher say so)."""
    if cfg is None or cfg.teacher == "baseline":
        return None
    path = Path(cfg.teacher)
    if path.is_file():
        return sha256_file(path)
    return folder_hash(path) if path.is_dir() else None


class FinetuneStage(Stage[FinetuneSlice]):
    folder = "20-finetune"
    upstream = ("10-compress", "00-baseline")  # the baseline only as a distillation teacher

    def slice(self, recipe: Recipe, **where: Any) -> FinetuneSlice:
        ft = recipe.finetune
        if recipe.compress.method == "none":  # an unchanged model has nothing to recover (compress/none.py)
            ft = ft.model_copy(update={"epochs": 0, "distill": None})
        return FinetuneSlice(data=DataSlice.of(recipe), batch_size=recipe.data.batch_size, finetune=ft, method=recipe.compress.method,
                             teacher_sha256=teacher_hash(ft.distill),
                             placement=resolve(recipe.train) if ft.epochs > 0 else None)

    @staticmethod
    def needs_teacher(cfg: FinetuneSlice) -> bool:
        """The baseline is an input only when distilling (a teacher weights file takes the
        baseline's architecture); otherwise its hash stays out of the key."""
        return cfg.finetune.distill is not None

    def run(self, workdir: Path, inputs: dict[str, Optional[StageResult]], cfg: FinetuneSlice,
            ctx: Context) -> dict[str, Any]:
        data, ft = cfg.data.load(ctx), cfg.finetune
        seed = ft.seed_or(cfg.data.seed)
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
        history = train(model, data, TrainSpec.of(ft, batch_size=cfg.batch_size, seed=seed),
                        reporter=ctx.reporter, loss_fn=loss_fn, extra_params=extra,
                        after_step=method.after_step(model), description="fine-tune",
                        placement=cfg.placement,
                        resume=EpochCheckpoints.at(ctx.resume_dir, log=ctx.log, label="fine-tune"))
        check_finite(model, "fine-tuned model")
        acc = evaluate(model, cfg.data.val_loader(data, cfg.batch_size))
        spec = json.loads((compressed / STRUCTURE).read_text())["spec"]
        save_model(model, workdir, spec)
        write_json(workdir / "history.json", history)
        return {"accuracy": acc, "epochs": len(history), "distill": ft.distill.method if ft.distill else None}
