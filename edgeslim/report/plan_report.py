"""The files of a plan, written from its :class:`~edgeslim.select.plan.PlanResult`:
``results.json`` (every row, with ``candidate``, ``label``, the verdicts and, on the chosen
row of each target, ``chosen: true`` and ``rationale``), ``plan.json`` (what ``edgeslim
release`` reads), ``report.md``, ``report.html`` and ``pareto-<target>.png``.

Planning decides and returns data; this module is the only place that turns a plan into
files, so a plan can be made, inspected or tested without writing anything.

Example::

    result = plan_recipe(recipe, Path("runs/plan"))
    paths = write_plan(result)  # [runs/plan/results.json, runs/plan/pareto-cpu.png, ...]
"""

from __future__ import annotations

from pathlib import Path

from edgeslim.io import atomic_write_text, write_json
from edgeslim.pipeline.lock import RunLock
from edgeslim.recipe import recipe_to_dict
from edgeslim.report.html import write_html
from edgeslim.report.plan_view import constraint_lines, plan_markdown_table
from edgeslim.report.plots import pareto_plots
from edgeslim.select.plan import PLAN, PlanResult
from edgeslim.select.prior import candidate_notes

RESULTS = "results.json"
MARKDOWN = "report.md"


def write_plan(result: PlanResult) -> list[Path]:
    """Write every file of the plan into ``result.out_dir``; returns their paths.

    Holds the plan directory's lock while writing, as the plan did while running, so a
    second plan started meanwhile cannot interleave its files with these.
    """
    out = Path(result.out_dir)
    with RunLock(out):
        write_json(out / RESULTS, result.rows)
        plots = pareto_plots(result.rows, result.constraints, result.decisions, out)
        write_json(out / PLAN, {
            "recipe": recipe_to_dict(result.recipe),
            "constraints": result.constraints.to_json(),
            "candidates": [c.to_json() for c in result.candidates],
            "failed_seeds": {c.name: c.extra["failed_seeds"] for c in result.candidates if c.extra.get("failed_seeds")},
            "candidate_notes": candidate_notes(result.recipe, result.constraints),
            "decisions": {t: d.to_json() for t, d in result.decisions.items()},
            "feasible": result.feasible,
            "stages": result.stages,
            "all_cached": result.all_cached,
            "seconds": round(result.seconds, 3),
            "resolution": result.resolution.to_json() if result.resolution else None,
            "plots": {t: p.name for t, p in plots.items()},
        })
        markdown = write_markdown(result, plots)
        html = write_html(result, plots)
    return [out / RESULTS, *plots.values(), out / PLAN, markdown, html]


def write_markdown(result: PlanResult, plots: dict[str, Path]) -> Path:
    """Write ``report.md``: constraints, candidates, and per target the choice, its plot and
    the table of every artifact with the reason each one lost; returns its path."""
    md = [f"# edgeslim plan `{result.recipe.name}`", "", "## Constraints", "",
          *constraint_lines(result.constraints), "", *resolution_lines(result), "## Candidates", ""]
    for cand in result.candidates:
        state = f" — skipped: {cand.skipped}" if cand.skipped else f" — failed: {cand.failed}" if cand.failed else ""
        lost = "".join(f" — seed {k} failed: {why}" for k, why in cand.extra.get("failed_seeds", {}).items())
        md.append(f"- `{cand.name}` ({cand.rule}): {cand.reason}{state}{lost}")
    notes = candidate_notes(result.recipe, result.constraints)
    md += ["", *(f"Not proposed: {n}." for n in notes)] if notes else []
    for t, d in result.decisions.items():
        md += ["", f"## {t}", "", f"**{'Chosen: `' + d.chosen + '`' if d.chosen else 'Nothing is feasible'}.** "
               f"{d.rationale}", ""]
        if t in plots:
            md += [f"![Pareto plot for {t}]({plots[t].name})", ""]
        trows = [r for r in result.rows if r["target"] == t]
        md += [plan_markdown_table(trows), ""]
        md += [f"- `{r['label']}`: {r.get('explanation', '')}" for r in trows if not r.get("chosen")]
    path = Path(result.out_dir) / MARKDOWN
    atomic_write_text(path, "\n".join(md) + "\n")
    return path


def resolution_lines(result: PlanResult) -> list[str]:
    """The ``## Accuracy resolution`` section of report.md: the smallest accuracy difference
    the plan resolves and, with seeds, what the accuracy and latency columns hold."""
    res, seeds = result.resolution, result.constraints.seeds
    if res is None:
        return []
    md = ["## Accuracy resolution", "", res.text(), ""]
    if seeds > 1:
        first = result.recipe.finetune.seed_or(result.recipe.seed)
        md += [f"Candidates that train ran at {seeds} fine-tune seeds ({first}..{first + seeds - 1}): their "
               "accuracy is the mean ± the sample standard deviation over those seeds (n = how many were "
               f"measured); their latency, size and files are those of seed {first}'s artifact, the one a "
               "release ships. Candidates that do not train ran once (n=1, no seed).", ""]
    return md
