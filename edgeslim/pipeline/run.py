"""Run a recipe end to end: baseline → compress → fine-tune → export → quantize → profile.

The runner only wires stages: for each it takes the stage's slice of the recipe, the
results of its upstream stages, and lets :func:`~edgeslim.pipeline.stage.run_stage` skip
it when a folder with the same key (slice + inputs) is already done. The stages never see
the recipe.

Example::

    from edgeslim.recipe import load_recipe
    from edgeslim.pipeline.run import run_recipe
    summary = run_recipe(load_recipe(), Path("runs/default"))
    summary.rows[0]["latency_ms"]["p50"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from edgeslim.artifacts import Artifact
from edgeslim.errors import RunDirError
from edgeslim.finetune import distributed
from edgeslim.io import atomic_write_text, read_json, sha256_json
from edgeslim.pipeline.context import Context, Reporter
from edgeslim.pipeline.lock import RunLock, recipe_change
from edgeslim.pipeline.matrix import QAT, Cell, Skipped, all_precisions, cells, variants
from edgeslim.pipeline.preflight import preflight
from edgeslim.pipeline.stage import (
    StageResult,
    clean_stale_temporaries,
    resume_dir,
    run_stage,
    storage_failure,
)
from edgeslim.pipeline.stages import (
    BaselineStage,
    CompressStage,
    ControlStage,
    ExportStage,
    FinetuneStage,
    ProfileInputs,
    ProfileStage,
    QatStage,
    QatTrainStage,
    QuantizeStage,
    Stage,
)
from edgeslim.pipeline.stages.base import input_hashes
from edgeslim.quantizers import QUANTIZERS
from edgeslim.recipe import Recipe, dump_recipe
from edgeslim.report.write import write_reports


@dataclass
class RunSummary:
    run_dir: Path
    rows: list[dict[str, Any]]
    stages: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0
    # the model stages, for the report (None on the ranks > 0 of a distributed run)
    baseline: Optional[StageResult] = None
    compressed: Optional[StageResult] = None
    finetuned: Optional[StageResult] = None
    control: Optional[StageResult] = None  # the baseline trained as long (None when not run)


def run_recipe(recipe: Recipe, out_dir: Path, *, reporter: Reporter | None = None,
               wait: bool = False, share_from: Sequence[Path] = ()) -> RunSummary:
    """Run every stage of ``recipe`` into ``out_dir``, skipping stages already done.

    ``share_from``: other run directories whose done stages with equal keys are linked
    instead of recomputed (how a plan's candidates share their common stages).
    """
    try:
        return _run(recipe, Path(out_dir), reporter=reporter, wait=wait, share_from=share_from)
    except OSError as err:  # writes outside a stage: recipe.yaml, the reports
        why = storage_failure(err)
        if why:
            raise RunDirError(f"cannot write to run directory {out_dir}: {why}") from None
        raise


class _Runner:
    """Runs declared stages into one run directory and remembers what ran."""

    def __init__(self, recipe: Recipe, ctx: Context, share_from: Sequence[Path]):
        self.recipe, self.ctx, self.share_from = recipe, ctx, list(share_from)
        self.done: list[StageResult] = []

    def __call__(self, stage: Stage, inputs: dict[str, Optional[StageResult]], *, folder: str = "",
                 extra_key: Any = None, run_inputs: Any = None, **where: Any) -> StageResult:
        """Run ``stage`` into ``folder`` (default: the stage's own; ``where``: its instance)."""
        folder = folder or stage.folder
        cfg = stage.slice(self.recipe, **where)
        key_inputs = input_hashes(inputs) + ([sha256_json(extra_key)] if extra_key is not None else [])
        # this call's own context: where its training state survives a kill
        ctx = dataclasses.replace(self.ctx, resume_dir=resume_dir(self.ctx.run_dir, folder, cfg.key(), key_inputs))
        res = run_stage(self.ctx.run_dir, folder, cfg.key(), key_inputs,
                        lambda d: stage.run(d, inputs if run_inputs is None else run_inputs, cfg, ctx),
                        share_from=self.share_from)
        self.ctx.log(f"{folder}: {'cached' if res.cached else f'done in {res.seconds:.1f}s'}")
        self.done.append(res)
        return res


def _run(recipe: Recipe, run_dir: Path, *, reporter: Reporter | None, wait: bool,
         share_from: Sequence[Path]) -> RunSummary:
    t0 = time.perf_counter()
    ctx = Context(run_dir=run_dir, **({"reporter": reporter} if reporter else {}))
    preflight(recipe)
    rank, _ = distributed.init_from_env()
    # Under torchrun only rank 0 owns the run directory; the others join the training stages.
    with RunLock(run_dir, wait=wait, log=ctx.log) if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            clean_stale_temporaries(run_dir)
            text = dump_recipe(recipe)
            if (note := recipe_change(run_dir, text)) is not None:
                ctx.log(note)
            atomic_write_text(run_dir / "recipe.yaml", text)
        stage = _Runner(recipe, ctx, share_from)
        base = stage(BaselineStage(), {})
        comp = stage(CompressStage(), {"baseline": base})
        ft = FinetuneStage()
        teacher = base if ft.needs_teacher(ft.slice(recipe)) else None  # none: no distillation
        fine = stage(ft, {"compressed": comp, "teacher": teacher})
        control = stage(ControlStage(), {"baseline": base}) if ControlStage.wanted(recipe) else None
        distributed.finish()
        if rank != 0:  # export, quantize and profile run once, on rank 0
            return RunSummary(run_dir, [], stage.done, time.perf_counter() - t0)
        models = {BaselineStage.folder: base, FinetuneStage.folder: fine}  # by Variant.source
        artifacts, skipped = _artifacts(recipe, stage, models)
        inputs = ProfileInputs(artifacts, skipped, base, comp)
        prof = stage(ProfileStage(), inputs.as_inputs(),
                     extra_key=[s.to_json() for s in skipped], run_inputs=inputs)
        rows = read_json(prof.dir / "results.json")
        summary = RunSummary(run_dir, rows, stage.done, time.perf_counter() - t0, base, comp, fine, control)
        write_reports(summary, recipe)
        return summary


def _artifacts(recipe: Recipe, stage: _Runner, models: dict[str, StageResult]
               ) -> tuple[list[tuple[Artifact, StageResult]], list[Skipped]]:
    """Export and quantize every cell of the matrix; what cannot be made is skipped."""
    artifacts: list[tuple[Artifact, StageResult]] = []
    skipped: list[Skipped] = []
    trained: dict[str, StageResult] = {}  # the QAT training of each variant, shared by its formats
    for variant in variants(recipe):
        for fmt in recipe.export.formats:
            todo, fp32 = cells(recipe, variant, fmt), Cell(variant, fmt, "fp32")
            exp = stage(ExportStage(), {"model": models[variant.source]}, folder=fp32.export_folder,
                        cell=fp32)
            if "skipped" in exp.outputs:  # one skipped row per precision the recipe asks for
                skipped += [Skipped(c, exp.outputs["skipped"]) for c in all_precisions(recipe, variant, fmt)]
                continue
            parent = Artifact.from_json(exp.outputs["artifact"], exp.dir)
            for cell in todo:
                if cell.quantize_folder is None:
                    artifacts.append((parent, exp))
                    continue
                if cell.precision == QAT:
                    q = _qat(recipe, stage, models, cell, exp, trained)
                elif f"{fmt}-{cell.precision}" not in QUANTIZERS:
                    skipped.append(Skipped(cell, f"no {cell.precision} quantizer for {fmt}"))
                    continue
                else:
                    q = stage(QuantizeStage(), {"parent": exp}, folder=cell.quantize_folder, cell=cell)
                if "skipped" in q.outputs or "failed" in q.outputs:
                    status = "failed" if "failed" in q.outputs else "skipped"
                    skipped.append(Skipped(cell, q.outputs[status], status))
                    continue
                artifacts.append((Artifact.from_json(q.outputs["artifact"], q.dir), q))
    return artifacts, skipped


def _qat(recipe: Recipe, stage: _Runner, models: dict[str, StageResult], cell: Cell, exp: StageResult,
         trained: dict[str, StageResult]) -> StageResult:
    """One int8-qat cell: the variant's quantization-aware training (once, for all its
    formats; not at all when no format can take it), then the format's artifact."""
    inputs: dict[str, Optional[StageResult]] = {"qat": None, "parent": exp}
    if not QatStage().slice(recipe, cell=cell).unavailable:
        if cell.qat_folder not in trained:
            train = QatTrainStage()
            teacher = models[BaselineStage.folder] \
                if train.needs_teacher(train.slice(recipe, variant=cell.variant)) else None
            trained[cell.qat_folder] = stage(train, {"model": models[cell.variant.source], "teacher": teacher},
                                             folder=cell.qat_folder, variant=cell.variant)
        inputs["qat"] = trained[cell.qat_folder]
    return stage(QatStage(), inputs, folder=cell.quantize_folder, cell=cell)
