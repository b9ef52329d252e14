"""``30-export/<variant>-<format>``: one model to one format, validated against PyTorch
on real validation inputs (the exporter's parity check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.exporters import EXPORTERS
from edgeslim.exporters.config import ExportCfg
from edgeslim.io import write_json
from edgeslim.models.checkpoint import load_model
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import Cell
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, Slice, Stage
from edgeslim.recipe import Recipe


class ExportSlice(Slice):
    data: DataSlice  # the validation inputs of the parity check
    export: ExportCfg  # without the run-level lists (formats, include_baseline)
    format: str
    variant: str
    method: str
    # why the exporter cannot run here ("" when it can): installing it later redoes the stage
    unavailable: str = ""


def parity_inputs(data, samples: int) -> np.ndarray:
    """Real validation images for parity checks (random inputs for unlabelled data)."""
    x, _ = data.val_arrays(limit=samples)
    return np.ascontiguousarray(x, dtype=np.float32)


class ExportStage(Stage[ExportSlice]):
    folder = "30-export"
    upstream = ("00-baseline", "20-finetune")  # the variant's model

    def slice(self, recipe: Recipe, *, cell: Cell, **where: Any) -> ExportSlice:
        export = recipe.export.model_copy(update={"formats": [cell.format], "include_baseline": True})
        ok, why = EXPORTERS.get(cell.format).available()
        return ExportSlice(data=DataSlice.of(recipe), export=export, format=cell.format,
                           variant=cell.variant.name, method=cell.variant.method,
                           unavailable="" if ok else why or "unavailable")

    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: ExportSlice,
            ctx: Context) -> dict[str, Any]:
        if cfg.unavailable:
            return {"skipped": cfg.unavailable}
        exporter = EXPORTERS.get(cfg.format)
        model = load_model(inputs["model"].dir)
        sample = parity_inputs(cfg.data.load(ctx), cfg.export.parity.samples)
        with ctx.reporter.task(f"export {cfg.variant} → {cfg.format}"):
            art = exporter.export(model, sample, workdir, cfg=cfg.export, variant=cfg.variant, method=cfg.method)
        write_json(workdir / "parity.json", art.info.get("parity", {}))
        return {"artifact": art.to_json(workdir)}
