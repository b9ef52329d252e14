"""``50-profile``: every artifact on every target, one results row each.

A target that is unavailable here gives ``skipped`` rows with the reason; an artifact
that fails on a target gives a ``failed`` row with the reason; the others still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslim.artifacts import Artifact
from edgeslim.compress.sparsity import deflated_bytes
from edgeslim.io import write_json
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import Skipped
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, Slice, Stage
from edgeslim.recipe import Recipe
from edgeslim.targets import parse_target
from edgeslim.targets.base import failed_row
from edgeslim.targets.config import ProfileCfg, TargetCfg

MEASURED = ("latency_ms", "throughput_per_s", "first_inference_ms", "load_ms", "rss_mb",
            "peak_rss_mb", "iterations", "warmup_iterations", "median_ci95", "semantics",
            "noise", "latency_p50_ms_by_batch")


def base_row(*, variant: str, method: str, fmt: str, precision: str, target: str,
             comp: dict[str, Any], reference_accuracy: float | None) -> dict[str, Any]:
    before = variant == "baseline"
    return {
        "id": f"{variant}/{fmt}/{precision}", "variant": variant, "method": method, "format": fmt,
        "precision": precision, "target": target, "status": "skipped", "reason": "",
        "bytes": None, "bytes_zipped": None, "files": [], "sha256": {},
        "params": comp["params_before" if before else "params_after"],
        "macs": comp["macs_before" if before else "macs_after"],
        "accuracy": None, "reference_accuracy": reference_accuracy,
        "latency_ms": None, "semantics": None,
    }


class ProfileSlice(Slice):
    data: DataSlice  # the validation split: one sample for timing, all of it for accuracy
    targets: list[TargetCfg]
    profile: ProfileCfg
    # per target, why it cannot run here ("" when it can): a host or GPU that comes back
    # later redoes the profile instead of serving the cached skipped rows
    unavailable: list[str] = []


@dataclass
class ProfileInputs:
    """What the profile stage measures: the artifacts (with the stage that made each), the
    rows that could not be made, and the baseline/compress results for the row columns."""

    artifacts: list[tuple[Artifact, StageResult]]
    skipped: list[Skipped]
    baseline: StageResult
    compressed: StageResult

    def as_inputs(self) -> dict[str, StageResult]:
        """The stage results the key hashes (the skipped rows are hashed by the runner)."""
        named = {"baseline": self.baseline, "compress": self.compressed}
        named.update({f"artifact{i:03d}": st for i, (_, st) in enumerate(self.artifacts)})
        return named


class ProfileStage(Stage[ProfileSlice]):
    folder = "50-profile"
    upstream = ("00-baseline", "10-compress", "30-export", "40-quantize")

    def slice(self, recipe: Recipe, **where: Any) -> ProfileSlice:
        why = [parse_target(t).available() for t in recipe.targets]
        return ProfileSlice(data=DataSlice.of(recipe), targets=recipe.targets, profile=recipe.profile,
                            unavailable=["" if ok else reason or "unavailable" for ok, reason in why])

    def run(self, workdir: Path, inputs: ProfileInputs, cfg: ProfileSlice,  # type: ignore[override]
            ctx: Context) -> dict[str, Any]:
        rows = profile_rows(inputs, cfg, ctx)
        write_json(workdir / "results.json", rows)
        with open(workdir / "results.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        return {"rows": len(rows), "ok": sum(r["status"] == "ok" for r in rows)}


def profile_rows(inputs: ProfileInputs, cfg: ProfileSlice, ctx: Context) -> list[dict[str, Any]]:
    run_dir = ctx.run_dir
    data = cfg.data.load(ctx)
    sample = data.val_arrays(limit=1)[0]
    val = data.val_arrays() if data.labelled else None
    comp = inputs.compressed.outputs
    ref_acc = inputs.baseline.outputs.get("accuracy")
    rows: list[dict[str, Any]] = []
    targets = [(parse_target(t), (not why, why)) for t, why in zip(cfg.targets, cfg.unavailable)]
    total = len(targets) * (len(inputs.artifacts) + len(inputs.skipped))
    with ctx.reporter.task("profile", total=total) as advance:
        for target, (available, why) in targets:
            for s in inputs.skipped:
                c = s.cell
                row = base_row(variant=c.variant.name, method=c.variant.method, fmt=c.format,
                               precision=c.precision, target=target.label, comp=comp,
                               reference_accuracy=ref_acc)
                row["reason"], row["status"] = s.reason, s.status
                rows.append(row)
                advance(1)
            for art, _ in inputs.artifacts:
                row = base_row(variant=art.variant, method=art.method, fmt=art.format,
                               precision=art.precision, target=target.label, comp=comp,
                               reference_accuracy=ref_acc)
                row.update({
                    "bytes": art.bytes,
                    # unstructured zeros shrink only the compressed file: measure that too
                    "bytes_zipped": deflated_bytes(art.files) if comp.get("family") == "unstructured" else None,
                    "files": [f.resolve().relative_to(run_dir.resolve()).as_posix() for f in art.files],
                    "sha256": art.sha256(), "artifact": art.path.resolve().relative_to(run_dir.resolve()).as_posix(),
                    "parity": art.info.get("parity"), "info": {k: v for k, v in art.info.items() if k != "parity"},
                })
                runs, why_not = target.runs(art)
                if not available:
                    row["reason"] = why
                elif not runs:
                    row["reason"] = why_not
                else:
                    ctx.log(f"profiling {art.id} on {target.label}")
                    try:
                        measured = target.profile(art, sample, cfg.profile, val)
                        row.update({k: measured.get(k) for k in ("status", "reason", "accuracy") + MEASURED
                                    if k in measured})
                    except Exception as err:  # one failure must not stop the other rows
                        row.update(failed_row(err))
                rows.append(row)
                advance(1)
    return rows
