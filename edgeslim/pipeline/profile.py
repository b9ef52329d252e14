"""The profile stage: every artifact on every target, one results row each.

A target that is unavailable here gives ``skipped`` rows with the reason; an artifact
that fails on a target gives a ``failed`` row with the reason; the others still run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.artifacts import Artifact
from edgeslim.compress.sparsity import deflated_bytes
from edgeslim.io import write_json
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.recipe import Recipe
from edgeslim.targets import parse_target
from edgeslim.targets.base import failed_row

MEASURED = ("latency_ms", "throughput_per_s", "first_inference_ms", "load_ms", "rss_mb",
            "peak_rss_mb", "iterations", "warmup_iterations", "median_ci95", "semantics")


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


def profile_stage(workdir: Path, artifacts: list[tuple[Artifact, StageResult]],
                  skipped: list[dict[str, Any]], base: StageResult, comp: StageResult,
                  fine: StageResult, recipe: Recipe, data, ctx: Context) -> list[dict[str, Any]] | dict:
    run_dir = ctx.run_dir
    sample = data.val_arrays(limit=1)[0]
    val = data.val_arrays() if data.labelled else None
    ref_acc = base.outputs.get("accuracy")
    rows: list[dict[str, Any]] = []
    targets = []
    for tcfg in recipe.targets:
        t = parse_target(tcfg)
        targets.append((t, t.available()))
    total = len(targets) * (len(artifacts) + len(skipped))
    with ctx.reporter.task("profile", total=total) as advance:
        for target, (available, why) in targets:
            for s in skipped:
                row = base_row(variant=s["variant"], method=s["method"], fmt=s["format"],
                               precision=s["precision"], target=target.label,
                               comp=comp.outputs, reference_accuracy=ref_acc)
                row["reason"] = s["reason"]
                rows.append(row)
                advance(1)
            for art, st in artifacts:
                row = base_row(variant=art.variant, method=art.method, fmt=art.format,
                               precision=art.precision, target=target.label,
                               comp=comp.outputs, reference_accuracy=ref_acc)
                row.update({
                    "bytes": art.bytes,
                    # unstructured zeros shrink only the compressed file: measure that too
                    "bytes_zipped": deflated_bytes(art.files) if comp.outputs.get("family") == "unstructured" else None,
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
                        measured = target.profile(art, sample, recipe.profile, val)
                        row.update({k: measured.get(k) for k in ("status", "reason", "accuracy") + MEASURED
                                    if k in measured})
                    except Exception as err:  # one failure must not stop the other rows
                        row.update(failed_row(err))
                rows.append(row)
                advance(1)
    write_json(workdir / "results.json", rows)
    with open(workdir / "results.jsonl", "w") as f:
        import json

        for row in rows:
            f.write(json.dumps(row) + "\n")
    return {"rows": len(rows), "ok": sum(r["status"] == "ok" for r in rows)}
