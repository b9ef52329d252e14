"""``00-baseline``: the reference model — the given weights, or trained on the recipe's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from edgeslim.finetune.config import BaselineCfg
from edgeslim.finetune.convergence import verdict
from edgeslim.finetune.device import Placement, resolve
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.finetune.train import TrainSpec, evaluate, train
from edgeslim.io import sha256_file, write_json
from edgeslim.models.checkpoint import save_model
from edgeslim.models.loading import build_model, check_finite, load_weights
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, ModelSpec, Slice, Stage
from edgeslim.recipe import Recipe


class BaselineSlice(Slice):
    model: ModelSpec
    data: DataSlice
    batch_size: int  # training and evaluation batches
    weights: Optional[str] = None  # the path as given (for loading)
    weights_sha256: Optional[str] = None  # what the key really depends on
    train: Optional[BaselineCfg] = None  # only when there are no weights to load
    # where it trains, resolved here (auto is another key on another machine); None with weights
    placement: Optional[Placement] = None


class BaselineStage(Stage[BaselineSlice]):
    folder = "00-baseline"

    def slice(self, recipe: Recipe, **where: Any) -> BaselineSlice:
        w = recipe.model.weights
        return BaselineSlice(model=ModelSpec.of(recipe), data=DataSlice.of(recipe),
                             batch_size=recipe.data.batch_size, weights=w,
                             weights_sha256=sha256_file(w) if w and Path(w).is_file() else None,
                             train=None if w else recipe.baseline,
                             placement=None if w else resolve(recipe.train))

    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: BaselineSlice,
            ctx: Context) -> dict[str, Any]:
        data = cfg.data.load(ctx)
        torch.manual_seed(cfg.data.seed)
        spec = cfg.model.as_dict()
        model = build_model(spec["name"], num_classes=spec["num_classes"], kwargs=spec["kwargs"])
        history: list[dict] = []
        if cfg.weights:
            load_weights(model, cfg.weights)
            source = "weights"
        else:
            history = train(model, data, TrainSpec.of(cfg.train, batch_size=cfg.batch_size,
                                                      seed=cfg.data.seed),
                            reporter=ctx.reporter, description="baseline", placement=cfg.placement,
                            resume=EpochCheckpoints.at(ctx.resume_dir, log=ctx.log, label="baseline"))
            source = "trained"
        check_finite(model, "baseline model")
        acc = evaluate(model, cfg.data.val_loader(data, cfg.batch_size))
        save_model(model, workdir, spec)
        write_json(workdir / "history.json", history)
        out = {"source": source, "accuracy": acc, "epochs": len(history)}
        if cfg.train is not None:
            out["convergence"] = verdict(history, patience=cfg.train.patience, cap=cfg.train.epochs,
                                         min_delta=cfg.train.min_delta)
        return out
