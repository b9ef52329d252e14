"""Write the run's reports: results.json (machine), report.md (person), manifest.json (release)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.compress.sparsity import sparsity_section
from edgeslim.io import atomic_write_text, read_json, sha256_file, write_json
from edgeslim.provenance import git_commit, versions
from edgeslim.recipe import Recipe, recipe_to_dict
from edgeslim.report.int8 import int8_sections
from edgeslim.report.speedup import speedup_section
from edgeslim.report.table import markdown_table


def _semantics_line(rows: list[dict[str, Any]]) -> str:
    lines = []
    seen = set()
    for r in rows:
        s = r.get("semantics")
        if not s:
            continue
        key = (r["target"], s.get("runtime"))
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- `{r['target']}`: {s.get('runtime')} {s.get('runtime_version')} on "
                     f"{s.get('cpu', s.get('device'))} ({', '.join(s.get('isa', []))}), "
                     f"{s.get('threads')} threads, batch {s.get('batch')}, "
                     f"{s.get('iterations')} timed iterations after {s.get('warmup_iterations')} warm-up")
    return "\n".join(lines)


def _ratio_words(recipe: Recipe, comp_report: dict) -> str:
    notes = comp_report.get("notes") or {}
    if recipe.compress.target_macs is None or "ratio_searched" not in notes:
        return f"ratio {recipe.compress.ratio}"
    return (f"target_macs {recipe.compress.target_macs}: ratio {notes['ratio_searched']} searched, "
            f"{100 * comp_report.get('macs_reduction', notes.get('macs_reduction', 0)):.1f}% of MACs removed")


def _convergence_words(conv: dict | None) -> str:
    if not conv or conv.get("converged") is None:
        return "" if not conv else f"; convergence {conv['reason']}"
    return f"; {'converged' if conv['converged'] else 'NOT converged'}: {conv['reason']}"


def _points(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{100 * (a - b):+.2f} pts"


def _cost_lines(base: dict, fine: dict, control: dict | None) -> list[str]:
    """What compression cost, against the baseline and against the baseline trained as long."""
    if fine.get("epochs", 0) == 0 or fine.get("accuracy") is None:
        return []
    lines = [f"- what compression cost (fine-tuned − baseline): {_points(fine['accuracy'], base.get('accuracy'))}"]
    if control is None:
        return lines + ["- no \"trained longer\" control (control.enabled is false): part of the figure above "
                        "may be the fine-tuning epochs, not the compression"]
    lines.append(f"- against the baseline trained {control['epochs']} more epochs the same way "
                 f"(\"trained longer\" control, {100 * control['accuracy']:.2f}%): "
                 f"{_points(fine['accuracy'], control['accuracy'])}; this is what compression itself cost")
    return lines


def write_reports(summary: Any, recipe: Recipe) -> None:
    run_dir: Path = summary.run_dir
    rows = summary.rows
    write_json(run_dir / "results.json", rows)
    base = summary.baseline.outputs
    comp_report = read_json(summary.compressed.path("report.json"))
    fine = summary.finetuned.outputs
    acc = lambda a: "—" if a is None else f"{100 * a:.2f}%"  # noqa: E731
    md = [
        f"# edgeslim run `{recipe.name}`", "",
        f"Model `{recipe.model.name}` at {recipe.model.input_size}×{recipe.model.input_size}, data "
        f"`{recipe.data.name}`, compression `{recipe.compress.method}` "
        f"({_ratio_words(recipe, comp_report)}, {recipe.compress.scope}).", "",
        "## Model", "",
        f"- baseline accuracy (PyTorch): {acc(base.get('accuracy'))} ({base.get('source')}"
        f"{_convergence_words(base.get('convergence'))})",
        f"- params {comp_report['params_before']:,} → {comp_report['params_after']:,} "
        f"({comp_report['params_ratio']:.3f}×), MACs {comp_report['macs_before']:,} → "
        f"{comp_report['macs_after']:,} ({comp_report['macs_ratio']:.3f}×)",
        f"- accuracy right after compression: {acc(comp_report.get('accuracy_before_finetune'))}; "
        f"after fine-tuning: {acc(fine.get('accuracy'))}",
        *_cost_lines(base, fine, summary.control.outputs if summary.control else None), "",
        "## Artifacts", "", markdown_table(rows), "",
        "## How these were measured", "", _semantics_line(rows) or "- nothing was measured", "",
        "Latency is measured on the artifact in its runtime, not on the PyTorch model; accuracy is "
        "the artifact's own on the validation split. Sizes count every file an artifact needs.",
    ]
    at = md.index("## How these were measured")
    md[at:at] = speedup_section(rows, comp_report, recipe.compress.round_to)
    at = md.index("## How these were measured")
    md[at:at] = int8_sections(rows, run_dir, recipe.quantize)  # why an INT8 row is bad; sensitivity
    if comp_report.get("family") == "unstructured":  # zeros: smaller zipped, not faster
        at = md.index("## How these were measured")
        md[at:at] = sparsity_section(rows, comp_report) + [""]
    atomic_write_text(run_dir / "report.md", "\n".join(md) + "\n")
    files = {}
    for r in rows:
        for f in r.get("files", []):
            files[f] = sha256_file(run_dir / f)
    write_json(run_dir / "manifest.json", {
        "edgeslim_run": recipe.name,
        "versions": versions(),
        "git_commit": git_commit(Path(__file__).parent),
        "recipe": recipe_to_dict(recipe),
        "files": files,
        "stages": {s.name: {"key": s.key, "hash": s.hash, "cached": s.cached, "seconds": round(s.seconds, 3)}
                   for s in summary.stages},
        "metrics": [{k: r.get(k) for k in ("id", "target", "status", "reason", "bytes", "params", "macs",
                                           "accuracy", "latency_ms", "semantics")} for r in rows],
    })
