"""``edgeslim plan``: propose candidates, run each through the pipeline, choose per target.

Every candidate is an ordinary recipe (the user's recipe plus the candidate's delta) run by
:func:`~edgeslim.pipeline.run.run_recipe` in ``DIR/candidates/<name>/``. Candidates share
stages through the cache: before a candidate runs, the done stage folders of an earlier
candidate with the same configuration for that stage (always the baseline; compression
and fine-tuning when those match too) are hard-linked into its folder, so their
``done.json`` keys match and they are skipped. A stage whose key does not match is simply
redone, so sharing never changes a result. Run again unchanged, every stage is cached.

The ``ptq`` candidate (the original model, post-training only) needs no run of its own:
its artifacts are the baseline variant of the first candidate's run.

Writes ``DIR/results.json`` (every row, with ``candidate``, ``label``, the verdicts and,
on the chosen row of each target, ``chosen: true`` and ``rationale``), ``plan.json``,
``report.md``, ``report.html`` and ``pareto-<target>.png``.

Example::

    recipe, _ = resolve_constraints(load_recipe(), max_bytes=200_000)
    plan = plan_recipe(recipe, Path("runs/plan"))
    plan.decisions["cpu"].chosen, plan.decisions["cpu"].rationale
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.errors import EdgeslimError
from edgeslim.io import write_json
from edgeslim.pipeline.context import NullReporter, Reporter
from edgeslim.pipeline.lock import RunLock
from edgeslim.pipeline.stage import DONE
from edgeslim.recipe import Recipe, recipe_from_dict, recipe_to_dict
from edgeslim.select.constraints import Constraints, check_constraints
from edgeslim.select.decide import Decision, accuracy_drop, decide, label
from edgeslim.select.prior import Candidate, propose

PLAN = "plan.json"
CANDIDATES = "candidates"


@dataclass
class PlanResult:
    out_dir: Path
    recipe: Recipe
    constraints: Constraints
    candidates: list[Candidate]
    rows: list[dict[str, Any]]
    decisions: dict[str, Decision]
    stages: list[dict[str, Any]] = field(default_factory=list)  # candidate, stage, cached, seconds
    seconds: float = 0.0

    @property
    def feasible(self) -> bool:
        """True when every target has a chosen artifact."""
        return all(d.chosen for d in self.decisions.values())

    @property
    def all_cached(self) -> bool:
        return bool(self.stages) and all(s["cached"] for s in self.stages)


def default_plan_recipe() -> dict[str, Any]:
    """The embedded default for ``edgeslim plan`` without a recipe: the default recipe on
    ``cpu`` and ``edge`` (those registered) with at most 1 point of accuracy lost."""
    from edgeslim.targets import TARGETS

    return {"targets": [t for t in ("cpu", "edge") if t in TARGETS],
            "constraints": {"max_accuracy_drop": 1.0}}


def plan_inputs(path: Path | None, overrides: list[str] | None = None, **options: Any) -> tuple[Recipe, Constraints]:
    """The recipe of a plan: ``path`` (or :func:`default_plan_recipe`), ``--set`` overrides,
    then the constraint options of the command line (see ``resolve_constraints``)."""
    from edgeslim.recipe import apply_overrides, load_recipe
    from edgeslim.select.constraints import resolve_constraints

    if path is None:
        recipe = recipe_from_dict(apply_overrides(default_plan_recipe(), list(overrides or [])))
    else:
        recipe = load_recipe(path, overrides or [])
    return resolve_constraints(recipe, **options)


def target_slug(target: str) -> str:
    """A file-name-safe form of a target label (``ssh://pi@host:22`` -> ``ssh-pi-host-22``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-") or "target"


def candidate_recipe(recipe: Recipe, cand: Candidate) -> Recipe:
    """The user's recipe with ``cand.delta`` applied (validated like any recipe)."""
    data = recipe_to_dict(recipe)
    if "compress.method" in cand.delta and cand.delta["compress.method"] != recipe.compress.method:
        # the user's method-specific options belong to their method, not the candidate's
        from edgeslim.recipe import CompressCfg

        data["compress"] = {k: v for k, v in data["compress"].items() if k in CompressCfg.model_fields}
    for dotted, value in cand.delta.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    data["name"] = f"{recipe.name}-{cand.name}"
    return recipe_from_dict(data)


# ------------------------------------------------------------------ sharing stages


def _slice(r: Recipe, section: str, drop: tuple[str, ...] = ()) -> Any:
    d = recipe_to_dict(r).get(section)
    return {k: v for k, v in d.items() if k not in drop} if isinstance(d, dict) else d


def _same(a: Recipe, b: Recipe, *sections: str) -> bool:
    return all(_slice(a, s) == _slice(b, s) for s in sections)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a done stage folder by hard links (files are never modified in place: stages
    replace whole folders), atomically: a temporary name renamed into place."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:  # another filesystem, or links not allowed
            shutil.copy2(s, d)

    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, tmp, copy_function=link)
    tmp.rename(dst)


def _shareable(recipe: Recipe, other: Recipe) -> list[str]:
    """The stage folders ``recipe`` would compute exactly as ``other`` did (same config
    slice and the same upstream), by the run's stage names."""
    if not _same(recipe, other, "seed", "model", "data", "baseline"):
        return []
    names = ["00-baseline"]
    steps = recipe.compress.steps
    if not _same(recipe, other, "compress") or (steps > 1 and not _same(recipe, other, "finetune")):
        return names
    names.append("10-compress")
    if not _same(recipe, other, "finetune"):
        return names
    names.append("20-finetune")
    if _slice(recipe, "export", ("formats", "include_baseline")) == _slice(other, "export", ("formats", "include_baseline")) \
            and _slice(recipe, "quantize", ("precisions",)) == _slice(other, "quantize", ("precisions",)):
        for fmt in recipe.export.formats:
            names.append(f"30-export/compressed-{fmt}")
            names += [f"40-quantize/compressed-{fmt}-{p}" for p in recipe.quantize.precisions if p != "fp32"]
    return names


def share_stages(run_dir: Path, recipe: Recipe, done: list[tuple[Recipe, Path]]) -> list[str]:
    """Hard-link done stages of earlier candidates that this one would compute identically.

    Returns the stage names it linked. Only folders this candidate lacks are linked, and
    only from a candidate whose configuration of that stage (and of everything upstream)
    is the same; the stage key still decides, so a wrong guess only costs a rerun.
    """
    linked = []
    for other, other_dir in done:
        for name in _shareable(recipe, other):
            src, dst = other_dir / name, run_dir / name
            if (src / DONE).is_file() and not dst.exists():
                _link_tree(src, dst)
                linked.append(name)
    return linked


# ------------------------------------------------------------------ the plan


def _runs(recipe: Recipe, candidates: list[Candidate]) -> list[tuple[Candidate, list[Candidate], Recipe]]:
    """(carrier, candidates whose rows its run holds, recipe to run) for every run.

    ``ptq`` rides on the first runnable compression candidate: that run exports the
    baseline too, in the union of both candidates' formats and precisions.
    """
    todo = [c for c in candidates if not c.skipped]
    ptq = next((c for c in todo if c.variant == "baseline"), None)
    comp = [c for c in todo if c.variant != "baseline"]
    runs = []
    for i, cand in enumerate(comp):
        delta = dict(cand.delta, **{"export.include_baseline": False})
        owners = [cand]
        if i == 0 and ptq is not None:
            delta["export.include_baseline"] = True
            delta["export.formats"] = list(dict.fromkeys(cand.formats + ptq.formats))
            delta["quantize.precisions"] = list(dict.fromkeys(cand.precisions + ptq.precisions))
            owners.append(ptq)
        runs.append((cand, owners, Candidate(cand.name, delta, cand.reason, cand.rule)))
    if not comp and ptq is not None:  # nothing to compress: the baseline rows alone
        delta = dict(ptq.delta, **{"export.include_baseline": True, "finetune.epochs": 0,
                                   "finetune.distill": None})
        runs.append((ptq, [ptq], Candidate(ptq.name, delta, ptq.reason, ptq.rule)))
    return [(carrier, owners, run) for carrier, owners, run in runs]


def _own_rows(rows: list[dict[str, Any]], owner: Candidate, prefix: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["variant"] != owner.variant or r["format"] not in owner.formats \
                or r["precision"] not in owner.precisions:
            continue
        r = dict(r, candidate=owner.name)
        r["label"] = label(r)
        if r.get("artifact"):
            r["artifact"] = f"{prefix}/{r['artifact']}"
        r["files"] = [f"{prefix}/{f}" for f in r.get("files", [])]
        r["run_dir"] = prefix
        out.append(r)
    return out


def plan_recipe(recipe: Recipe, out_dir: Path, *, reporter: Reporter | None = None) -> PlanResult:
    """Propose, run and measure every candidate of ``recipe``; decide per target."""
    from edgeslim.pipeline.run import run_recipe

    t0 = time.perf_counter()
    reporter = reporter or NullReporter()
    out_dir = Path(out_dir)
    c = check_constraints(recipe)
    candidates = propose(recipe, c)
    runs = _runs(recipe, candidates)
    for cand in candidates:
        if cand.skipped:
            reporter.log(f"candidate {cand.name}: skipped ({cand.skipped})")
    rows: list[dict[str, Any]] = []
    stages: list[dict[str, Any]] = []
    done: list[tuple[Recipe, Path]] = []
    first_error: EdgeslimError | None = None
    with RunLock(out_dir):
        for i, (carrier, owners, run) in enumerate(runs, 1):
            prefix = f"{CANDIDATES}/{carrier.name}"
            run_dir = out_dir / prefix
            try:
                crecipe = candidate_recipe(recipe, run)
            except EdgeslimError as err:
                for o in owners:
                    o.failed = f"its recipe is invalid: {err}"
                first_error = first_error or err
                continue
            linked = share_stages(run_dir, crecipe, done)
            reporter.log(f"candidate {carrier.name} ({i}/{len(runs)})"
                         + (f": sharing {', '.join(linked)}" if linked else ""))
            try:
                summary = run_recipe(crecipe, run_dir, reporter=reporter)
            except EdgeslimError as err:  # one candidate that cannot run must not stop the rest
                for o in owners:
                    o.failed = str(err)
                reporter.log(f"candidate {carrier.name} failed: {err}")
                first_error = first_error or err
                continue
            done.append((crecipe, run_dir))
            stages += [{"candidate": carrier.name, "stage": s.name, "cached": s.cached,
                        "seconds": round(s.seconds, 3)} for s in summary.stages]
            for owner in owners:
                rows += _own_rows(summary.rows, owner, prefix)
        if not done and first_error is not None:
            raise first_error
        order = {cand.name: i for i, cand in enumerate(candidates)}
        rows.sort(key=lambda r: order.get(r["candidate"], len(order)))  # stable: run order within
        for r in rows:
            r["accuracy_drop"] = accuracy_drop(r)
        decisions = decide(rows, c)
        _annotate(rows, decisions)
        result = PlanResult(out_dir, recipe, c, candidates, rows, decisions, stages,
                            time.perf_counter() - t0)
        write_plan(result)
    return result


def _annotate(rows: list[dict[str, Any]], decisions: dict[str, Decision]) -> None:
    for r in rows:
        d = decisions.get(r["target"])
        if d is None:
            continue
        r["chosen"] = r["label"] == d.chosen
        r["verdicts"] = [v.to_json() for v in d.verdicts.get(r["label"], [])]
        r["feasible"] = r["label"] in d.feasible
        r["pareto"] = r["label"] in d.front
        if r["chosen"]:
            r["rationale"] = d.rationale
        else:
            r["explanation"] = d.explanations.get(r["label"], "")


def write_plan(result: PlanResult) -> None:
    """results.json, plan.json, report.md, report.html and the Pareto plots."""
    from edgeslim.report.html import write_html
    from edgeslim.report.plots import pareto_plots

    out = result.out_dir
    write_json(out / "results.json", result.rows)
    plots = pareto_plots(result.rows, result.constraints, result.decisions, out)
    write_json(out / PLAN, {
        "recipe": recipe_to_dict(result.recipe),
        "constraints": result.constraints.to_json(),
        "candidates": [c.to_json() for c in result.candidates],
        "decisions": {t: d.to_json() for t, d in result.decisions.items()},
        "feasible": result.feasible,
        "stages": result.stages,
        "all_cached": result.all_cached,
        "seconds": round(result.seconds, 3),
        "plots": {t: p.name for t, p in plots.items()},
    })
    write_markdown(result, plots)
    write_html(result, plots)


def write_markdown(result: PlanResult, plots: dict[str, Path]) -> None:
    from edgeslim.io import atomic_write_text
    from edgeslim.report.plan_view import plan_markdown_table

    c = result.constraints
    md = [f"# edgeslim plan `{result.recipe.name}`", "", "## Constraints", "",
          *constraint_lines(c), "", "## Candidates", ""]
    for cand in result.candidates:
        state = f" — skipped: {cand.skipped}" if cand.skipped else f" — failed: {cand.failed}" if cand.failed else ""
        md.append(f"- `{cand.name}` ({cand.rule}): {cand.reason}{state}")
    for t, d in result.decisions.items():
        md += ["", f"## {t}", "", f"**{'Chosen: `' + d.chosen + '`' if d.chosen else 'Nothing is feasible'}.** "
               f"{d.rationale}", ""]
        if t in plots:
            md += [f"![Pareto plot for {t}]({plots[t].name})", ""]
        trows = [r for r in result.rows if r["target"] == t]
        md += [plan_markdown_table(trows), ""]
        md += [f"- `{r['label']}`: {r.get('explanation', '')}" for r in trows if not r.get("chosen")]
    atomic_write_text(result.out_dir / "report.md", "\n".join(md) + "\n")


def constraint_lines(c: Constraints) -> list[str]:
    lat = ", ".join(f"{t} ≤ {ms:g} ms" for t, ms in c.latency_ms.items()) or "none"
    return [f"- targets: {', '.join(f'{t} ({c.kinds[t]})' for t in c.targets)}",
            f"- latency budget ({c.percentile}): {lat}",
            f"- max_bytes: {'none' if c.max_bytes is None else f'{c.max_bytes:,}'}",
            f"- max_accuracy_drop: {'none' if c.max_accuracy_drop is None else _plural(c.max_accuracy_drop, 'point')}",
            f"- retrain: {c.retrain} ({_plural(c.finetune_epochs, 'fine-tune epoch')})"]


def _plural(n: float, what: str) -> str:
    return f"{n:g} {what}{'' if n == 1 else 's'}"
