"""Run a recipe end to end: baseline → compress → fine-tune → export → quantize → profile.

Example::

    from edgeslim.recipe import load_recipe
    from edgeslim.pipeline.run import run_recipe
    summary = run_recipe(load_recipe(), Path("runs/default"))
    summary.rows[0]["latency_ms"]["p50"]
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.artifacts import Artifact
from edgeslim.data import load_data
from edgeslim.io import atomic_write_text, read_json, write_json
from edgeslim.models.loading import build_model, output_classes
from edgeslim.errors import ModelError
from edgeslim.pipeline import stages
from edgeslim.pipeline.context import Context, Reporter
from edgeslim.pipeline.lock import RunLock
from edgeslim.pipeline.profile import profile_stage
from edgeslim.pipeline.stage import StageResult, clean_stale_temporaries, run_stage
from edgeslim.recipe import Recipe, dump_recipe, recipe_to_dict


@dataclass
class RunSummary:
    run_dir: Path
    rows: list[dict[str, Any]]
    stages: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0


def _data_cfg(recipe: Recipe) -> dict[str, Any]:
    return {"data": recipe.data.model_dump(mode="json"), "input_size": recipe.model.input_size,
            "num_classes": recipe.model.num_classes, "seed": recipe.seed}


def check_model(recipe: Recipe) -> None:
    """Fail before any stage when the model cannot be built or does not fit the recipe."""
    m = recipe.model
    model = build_model(m.name, num_classes=m.num_classes, kwargs=m.kwargs)
    n = output_classes(model, m.input_size)
    if n != m.num_classes:
        raise ModelError(f"model '{m.name}' outputs {n} classes but model.num_classes is {m.num_classes}")
    from edgeslim.finetune.distill import check_distillation

    check_distillation(recipe)  # distillation layers, teacher and student, before any training


def _weights_key(recipe: Recipe) -> str | None:
    from edgeslim.io import sha256_file

    w = recipe.model.weights
    return sha256_file(w) if w and Path(w).is_file() else w


def run_recipe(recipe: Recipe, out_dir: Path, *, reporter: Reporter | None = None,
               wait: bool = False) -> RunSummary:
    """Run every stage of ``recipe`` into ``out_dir``, skipping stages already done."""
    from edgeslim.errors import RunDirError
    from edgeslim.pipeline.stage import storage_failure

    try:
        return _run(recipe, out_dir, reporter=reporter, wait=wait)
    except OSError as err:  # writes outside a stage: recipe.yaml, the reports
        why = storage_failure(err)
        if why:
            raise RunDirError(f"cannot write to run directory {out_dir}: {why}") from None
        raise


def _run(recipe: Recipe, out_dir: Path, *, reporter: Reporter | None, wait: bool) -> RunSummary:
    t0 = time.perf_counter()
    run_dir = Path(out_dir)
    ctx = Context(run_dir=run_dir, seed=recipe.seed, **({"reporter": reporter} if reporter else {}))
    check_model(recipe)
    data = load_data(recipe.data.name, input_size=recipe.model.input_size,
                     num_classes=recipe.model.num_classes, seed=recipe.seed,
                     val_fraction=recipe.data.val_fraction, limit_train=recipe.data.limit_train,
                     limit_val=recipe.data.limit_val)
    from edgeslim.finetune import distributed

    rank, _ = distributed.init_from_env()
    ctx.rank, ctx.world_size = distributed.world()
    # Under torchrun only rank 0 owns the run directory; the others join the training stages.
    with RunLock(run_dir, wait=wait) if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            clean_stale_temporaries(run_dir)
            atomic_write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
        done: list[StageResult] = []

        def stage(name: str, config: Any, inputs: list[str], fn) -> StageResult:
            res = run_stage(run_dir, name, config, inputs, fn)
            ctx.log(f"{name}: {'cached' if res.cached else f'done in {res.seconds:.1f}s'}")
            done.append(res)
            return res

        dcfg = _data_cfg(recipe)
        base = stage("00-baseline", {"model": recipe.model.model_dump(mode="json"),
                                     "weights": _weights_key(recipe), "data": dcfg,
                                     "baseline": recipe.baseline.model_dump(mode="json")}, [],
                     lambda d: stages.baseline(d, recipe, data, ctx))
        comp = stage("10-compress", {"compress": recipe.compress.model_dump(mode="json"), "data": dcfg,
                                     "finetune": recipe.finetune.model_dump(mode="json")
                                     if recipe.compress.steps > 1 else None},
                     [base.hash], lambda d: stages.compress(d, base.dir, recipe, data, ctx))
        fine = stage("20-finetune", {"finetune": recipe.finetune.model_dump(mode="json"), "data": dcfg},
                     [comp.hash, base.hash if recipe.finetune.distill else ""],
                     lambda d: stages.finetune(d, comp.dir, base.dir, recipe, data, ctx))
        distributed.finish()
        if rank != 0:  # export, quantize and profile run once, on rank 0
            return RunSummary(run_dir, [], done, time.perf_counter() - t0)

        method = recipe.compress.method
        variants = [("compressed", fine, method)]
        if recipe.export.include_baseline:
            variants.insert(0, ("baseline", base, "none"))
        artifacts: list[tuple[Artifact, StageResult]] = []
        skipped: list[dict[str, Any]] = []
        export_cfg = recipe.export.model_dump(mode="json", exclude={"formats"})
        quant_cfg = recipe.quantize.model_dump(mode="json", exclude={"precisions"})
        for variant, src, meth in variants:
            for fmt in recipe.export.formats:
                exp = stage(f"30-export/{variant}-{fmt}", {"export": export_cfg, "format": fmt, "data": dcfg},
                            [src.hash], lambda d, src=src, fmt=fmt, variant=variant, meth=meth:
                            stages.export(d, src.dir, fmt, variant, meth, recipe, data, ctx))
                if "skipped" in exp.outputs:  # one skipped row per precision the recipe asks for
                    for precision in dict.fromkeys(["fp32", *recipe.quantize.precisions]):
                        skipped.append({"variant": variant, "method": meth, "format": fmt,
                                        "precision": precision, "reason": exp.outputs["skipped"]})
                    continue
                parent = Artifact.from_json(exp.outputs["artifact"], exp.dir)
                for precision in recipe.quantize.precisions:
                    if precision == "fp32":
                        artifacts.append((parent, exp))
                        continue
                    from edgeslim.quantizers import QUANTIZERS

                    if f"{fmt}-{precision}" not in QUANTIZERS:
                        skipped.append({"variant": variant, "method": meth, "format": fmt,
                                        "precision": precision,
                                        "reason": f"no {precision} quantizer for {fmt}"})
                        continue
                    q = stage(f"40-quantize/{variant}-{fmt}-{precision}",
                              {"quantize": quant_cfg, "precision": precision, "data": dcfg}, [exp.hash],
                              lambda d, parent=parent, precision=precision:
                              stages.quantize(d, parent, precision, recipe, data, ctx))
                    if "skipped" in q.outputs:
                        skipped.append({"variant": variant, "method": meth, "format": fmt,
                                        "precision": precision, "reason": q.outputs["skipped"]})
                        continue
                    artifacts.append((Artifact.from_json(q.outputs["artifact"], q.dir), q))

        prof = stage("50-profile", {"targets": [t.model_dump(mode="json") for t in recipe.targets],
                                    "profile": recipe.profile.model_dump(mode="json"), "data": dcfg},
                     [r.hash for _, r in artifacts] + [repr(skipped)],
                     lambda d: profile_stage(d, artifacts, skipped, base, comp, fine, recipe, data, ctx))
        rows = read_json(prof.dir / "results.json")
        for row in rows:  # artifact paths relative to the run directory
            if row.get("artifact"):
                row["artifact"] = str(Path(row["artifact"]))
        from edgeslim.report.write import write_reports

        summary = RunSummary(run_dir, rows, done, time.perf_counter() - t0)
        write_reports(summary, recipe)
        return summary
