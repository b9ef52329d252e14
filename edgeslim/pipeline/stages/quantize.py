"""``40-quantize/<variant>-<format>-<precision>``: one artifact from its FP32 parent,
checked against it in their runtimes.

An artifact whose outputs stray from its parent's beyond the precision's tolerance is not
an error of the run: its row is ``failed`` with the check's figures as the reason, and the
other artifacts are measured (``run`` then exits 1). ``quantize.tolerance_points``, a gate
the user sets, still stops the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError, first_line
from edgeslim.io import write_json
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import Cell
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, Slice, Stage
from edgeslim.pipeline.stages.export import parity_inputs
from edgeslim.quantizers import QUANTIZERS
from edgeslim.quantizers.base import check_accuracy_drop, validate_against_parent
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.quantizers.qat import QatCfg
from edgeslim.recipe import Recipe


class QuantizeSlice(Slice):
    data: DataSlice  # calibration images, the labelled val split, parity inputs
    quantize: QuantizeCfg  # without the run-level list of precisions
    precision: str
    parity_samples: int
    calibration_samples: int
    # why the quantizer cannot run here ("" when it can): installing it later redoes the stage
    unavailable: str = ""


class QuantizeStage(Stage[QuantizeSlice]):
    folder = "40-quantize"
    upstream = ("30-export",)

    def slice(self, recipe: Recipe, *, cell: Cell, **where: Any) -> QuantizeSlice:
        # quantize.qat is read by the int8-qat stages only (stages/qat.py): not in a PTQ key
        q = recipe.quantize.model_copy(update={"precisions": [cell.precision], "qat": QatCfg()})
        ok, why = QUANTIZERS.get(f"{cell.format}-{cell.precision}").available()
        return QuantizeSlice(data=DataSlice.of(recipe), quantize=q, precision=cell.precision,
                             parity_samples=recipe.export.parity.samples,
                             calibration_samples=recipe.data.calibration_samples,
                             unavailable="" if ok else why or "unavailable")

    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: QuantizeSlice,
            ctx: Context) -> dict[str, Any]:
        exp = inputs["parent"]
        parent = Artifact.from_json(exp.outputs["artifact"], exp.dir)
        if cfg.unavailable:
            return {"skipped": cfg.unavailable}
        quantizer = QUANTIZERS.get(f"{parent.format}-{cfg.precision}")
        data = cfg.data.load(ctx)
        calib = data.calibration(cfg.calibration_samples, seed=cfg.data.seed) \
            if quantizer.needs_calibration else None
        # accuracy-controlled quantizers, and those measuring per-layer sensitivity, get the
        # val split (y is None when unlabelled); both settings are in cfg.quantize, the slice
        wants_val = cfg.quantize.max_accuracy_drop is not None or cfg.quantize.sensitivity.enabled
        extra = {"val": data.val_arrays()} if quantizer.uses_validation and wants_val else {}
        with ctx.reporter.task(f"quantize {parent.variant} {parent.format} → {cfg.precision}"):
            art = quantizer.quantize(parent, calib, workdir, cfg=cfg.quantize, **extra)
            try:
                art.info["parity"] = validate_against_parent(art, parent, parity_inputs(data, cfg.parity_samples))
            except QuantizeError as err:  # a failed row, not a failed run (the module docstring)
                ctx.reporter.log(f"{art.id}: {first_line(err)}")
                write_json(workdir / "parity.json", {"passed": False, "why": first_line(err)})
                return {"failed": first_line(err)}
            if cfg.quantize.tolerance_points is not None:  # a gate: the stage fails beyond it
                art.info["tolerance"] = check_accuracy_drop(art, parent, *data.val_arrays(),
                                                            cfg.quantize.tolerance_points)
        write_json(workdir / "parity.json", art.info["parity"])
        return {"artifact": art.to_json(workdir)}
