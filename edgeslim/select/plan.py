"""``edgeslim plan``: propose candidates, run each through the pipeline, choose per target.

Every candidate is an ordinary recipe (the user's recipe plus the candidate's delta) run by
:func:`~edgeslim.pipeline.run.run_recipe` in ``DIR/candidates/<name>/``. Candidates share
stages through the cache: a stage whose key (its slice of the recipe and its inputs'
hashes) equals that of a done stage of an earlier candidate is hard-linked from there
instead of computed (``run_recipe(share_from=...)``). Equal keys mean equal work, so
sharing never changes a result. Run again unchanged, every stage is cached.

The ``ptq`` candidate (the original model, post-training only) needs no run of its own:
its artifacts are the baseline variant of the first candidate's run.

With ``constraints.seeds`` (``--seeds N``) above 1, every candidate that trains
(:func:`~edgeslim.select.prior.trains`) runs again at ``finetune.seed`` s+1 ... s+N-1 in
``candidates/<name>-seed<seed>/``; the baseline and whatever does not train are shared by
key, so ``ptq`` and one-shot candidates run once. The rows of all seeds are folded into one
per artifact (:func:`~edgeslim.select.seeds.fold_seeds`: mean ± sd accuracy, the first
seed's files, size and latency) before the decision.

Planning returns a :class:`PlanResult` and writes nothing outside the candidates' run
directories: its files (``results.json``, ``plan.json``, ``report.md``, ``report.html``,
``pareto-<target>.png``) are written from the result by
:func:`edgeslim.report.plan_report.write_plan`.

Example::

    recipe, _ = resolve_constraints(load_recipe(), max_bytes=200_000, seeds=3)
    plan = plan_recipe(recipe, Path("runs/plan"))
    plan.decisions["cpu"].chosen, plan.decisions["cpu"].rationale
    plan.resolution.text()  # 'Smallest accuracy difference this run can resolve: 0.98 points ...'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeslim.data import load_data
from edgeslim.errors import EdgeslimError
from edgeslim.pipeline.context import NullReporter, Reporter
from edgeslim.pipeline.lock import RunLock
from edgeslim.pipeline.run import run_recipe
from edgeslim.recipe import CompressCfg, Recipe, apply_overrides, load_recipe, recipe_from_dict, recipe_to_dict
from edgeslim.select.constraints import Constraints, check_constraints, resolve_constraints
from edgeslim.select.decide import Decision, accuracy_drop, decide, label
from edgeslim.select.prior import Candidate, propose, trains
from edgeslim.select.seeds import Resolution, fold_seeds, resolution
from edgeslim.targets import TARGETS

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
    resolution: Optional[Resolution] = None  # the smallest accuracy difference the plan resolves

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
    return {"targets": [t for t in ("cpu", "edge") if t in TARGETS],
            "constraints": {"max_accuracy_drop": 1.0}}


def plan_inputs(path: Path | None, overrides: list[str] | None = None, **options: Any) -> tuple[Recipe, Constraints]:
    """The recipe of a plan: ``path`` (or :func:`default_plan_recipe`), ``--set`` overrides,
    then the constraint options of the command line (see ``resolve_constraints``)."""
    if path is None:
        recipe = recipe_from_dict(apply_overrides(default_plan_recipe(), list(overrides or [])))
    else:
        recipe = load_recipe(path, overrides or [])
    return resolve_constraints(recipe, **options)


def candidate_recipe(recipe: Recipe, cand: Candidate) -> Recipe:
    """The user's recipe with ``cand.delta`` applied (validated like any recipe)."""
    data = recipe_to_dict(recipe)
    if "compress.method" in cand.delta and cand.delta["compress.method"] != recipe.compress.method:
        # the user's method-specific options belong to their method, not the candidate's
        data["compress"] = {k: v for k, v in data["compress"].items() if k in CompressCfg.model_fields}
    for dotted, value in cand.delta.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    data["name"] = f"{recipe.name}-{cand.name}"
    return recipe_from_dict(data)


# ------------------------------------------------------------------ the plan


@dataclass
class _Run:
    """One pipeline run of a plan: ``run`` (a candidate's delta, possibly widened) in
    ``candidates/<run.name>/``, holding the rows of ``owners``; ``seed``: its fine-tune seed
    when the plan runs several (None with one seed, so one-seed rows stay as they were)."""

    carrier: Candidate
    owners: list[Candidate]
    run: Candidate
    seed: Optional[int] = None

    @property
    def prefix(self) -> str:
        return f"{CANDIDATES}/{self.run.name}"


def _runs(recipe: Recipe, candidates: list[Candidate]) -> list[_Run]:
    """Every run at the recipe's own seed.

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
        runs.append(_Run(cand, owners, Candidate(cand.name, delta, cand.reason, cand.rule)))
    if not comp and ptq is not None:  # nothing to compress: the baseline rows alone
        delta = dict(ptq.delta, **{"export.include_baseline": True, "finetune.epochs": 0,
                                   "finetune.distill": None})
        runs.append(_Run(ptq, [ptq], Candidate(ptq.name, delta, ptq.reason, ptq.rule)))
    return runs


def _trains(recipe: Recipe, cand: Candidate) -> bool:
    try:
        return trains(candidate_recipe(recipe, cand))
    except EdgeslimError:  # its own run reports the invalid recipe
        return False


def _seed_runs(recipe: Recipe, runs: list[_Run], seeds: int) -> list[_Run]:
    """``runs`` at the first seed, then a repeat of each one that trains per further seed,
    holding only its carrier's rows (the baseline, and ``ptq`` with it, does not change)."""
    if seeds <= 1:
        return runs
    first = recipe.finetune.seed_or(recipe.seed)
    for r in runs:
        r.seed = first
    repeats = []
    for r in runs:
        if not _trains(recipe, r.run):  # r.run: what ran (a ptq-only run trains nothing)
            continue
        for k in range(1, seeds):
            delta = dict(r.carrier.delta, **{"export.include_baseline": False, "finetune.seed": first + k})
            run = Candidate(f"{r.carrier.name}-seed{first + k}", delta, r.carrier.reason, r.carrier.rule)
            repeats.append(_Run(r.carrier, [r.carrier], run, first + k))
    return runs + repeats


def _own_rows(rows: list[dict[str, Any]], owner: Candidate, run: _Run) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["variant"] != owner.variant or r["format"] not in owner.formats \
                or r["precision"] not in owner.precisions:
            continue
        r = dict(r, candidate=owner.name)
        r["label"] = label(r)
        if r.get("artifact"):
            r["artifact"] = f"{run.prefix}/{r['artifact']}"
        r["files"] = [f"{run.prefix}/{f}" for f in r.get("files", [])]
        r["run_dir"] = run.prefix
        if run.seed is not None:
            r["seed"] = run.seed
        out.append(r)
    return out


def plan_recipe(recipe: Recipe, out_dir: Path, *, reporter: Reporter | None = None) -> PlanResult:
    """Propose, run and measure every candidate of ``recipe``; decide per target."""
    t0 = time.perf_counter()
    reporter = reporter or NullReporter()
    out_dir = Path(out_dir)
    c = check_constraints(recipe)
    candidates = propose(recipe, c)
    runs = _seed_runs(recipe, _runs(recipe, candidates), c.seeds)
    for cand in candidates:
        if cand.skipped:
            reporter.log(f"candidate {cand.name}: skipped ({cand.skipped})")
    with RunLock(out_dir):
        rows, stages = _run_all(recipe, runs, out_dir, reporter)
        if c.seeds > 1:
            rows = fold_seeds(rows, repeated={r.carrier.name for r in runs if r.run.name != r.carrier.name})
        order = {cand.name: i for i, cand in enumerate(candidates)}
        rows.sort(key=lambda r: order.get(r["candidate"], len(order)))  # stable: run order within
        for r in rows:
            r["accuracy_drop"] = accuracy_drop(r)
        decisions = decide(rows, c)
        _annotate(rows, decisions)
    res = resolution(rows, val_samples=validation_size(recipe) if any(r.get("accuracy") is not None for r in rows)
                     else None, seeds=c.seeds)
    return PlanResult(out_dir, recipe, c, candidates, rows, decisions, stages, time.perf_counter() - t0, res)


def _run_all(recipe: Recipe, runs: list[_Run], out_dir: Path,
             reporter: Reporter) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run every run (sharing stages by key); the rows of their owners and the stage list.
    A candidate whose run fails is marked failed; a failed repeat only loses its seed."""
    rows: list[dict[str, Any]] = []
    stages: list[dict[str, Any]] = []
    done: list[Path] = []
    first_error: EdgeslimError | None = None
    for i, run in enumerate(runs, 1):
        repeat = run.run.name != run.carrier.name
        if repeat and run.carrier.failed:
            continue  # its first seed failed: another seed would too
        run_dir = out_dir / run.prefix
        why = "its recipe is invalid: "
        try:
            crecipe = candidate_recipe(recipe, run.run)
            why = ""
            reporter.log(f"candidate {run.run.name} ({i}/{len(runs)})")
            # stages equal in slice and inputs to an earlier candidate's are linked, not rerun
            summary = run_recipe(crecipe, run_dir, reporter=reporter, share_from=done)
        except EdgeslimError as err:  # one candidate that cannot run must not stop the rest
            if repeat:
                run.carrier.extra.setdefault("failed_seeds", {})[run.seed] = f"{why}{err}"
            else:
                for o in run.owners:
                    o.failed = f"{why}{err}"
            reporter.log(f"candidate {run.run.name} failed: {err}")
            first_error = first_error or err
            continue
        done.append(run_dir)
        stages += [{"candidate": run.carrier.name, "stage": s.name, "cached": s.cached,
                    "seconds": round(s.seconds, 3)} | ({} if run.seed is None else {"seed": run.seed})
                   for s in summary.stages]
        for owner in run.owners:
            rows += _own_rows(summary.rows, owner, run)
    if not done and first_error is not None:
        raise first_error
    return rows, stages


def validation_size(recipe: Recipe) -> Optional[int]:
    """How many labelled validation images the plan's accuracies were measured on (the
    recipe's data, split as its stages split it); None when unlabelled or not loadable."""
    d, m = recipe.data, recipe.model
    try:
        bundle = load_data(d.name, input_size=m.input_size, num_classes=m.num_classes, seed=recipe.seed,
                           val_fraction=d.val_fraction, limit_train=1, limit_val=d.limit_val, augment=False)
    except EdgeslimError:
        return None
    return len(bundle.val) if bundle.labelled else None


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

