"""``edgeslim release``: ship the chosen artifact of every target, behind gates.

A release needs a plan: it reuses the one in ``--out DIR`` and fails (bad input, exit 2)
when there is none or when it was made for a different recipe, saying how to make one;
:func:`stale_plan` says so beforehand, so ``edgeslim release --run`` plans first instead
(every stage already done is reused). The constraints and targets are the plan's own
(``plan.json`` holds the resolved recipe): ``edgeslim release my.yaml`` after ``edgeslim
plan my.yaml --max-bytes ...`` releases that plan (:func:`with_plan_constraints`); only a
release command line that states constraints or targets itself compares them too. Then,
per target, the gates:

1. something was chosen: an artifact meets every constraint (otherwise the gate names
   the closest artifact and by how much it misses);
2. every constraint's verdict on it passes (latency, size, accuracy drop);
3. its parity check against its parent passed;
4. its files are the ones measured: their sha256 equal the hashes the profile recorded.

When every gate passes, each chosen artifact is copied into ``DIST/<name>/<target>/`` with
``manifest.json``: ``files`` (path relative to the manifest -> sha256), the versions of
torch, onnx, onnxruntime, openvino, nncf and edgeslim, the git commit of the edgeslim
source when it is a repository, the resolved recipe that built the artifact and the
plan's recipe, the metrics with their semantics, each constraint's verdict, ``classes``
(class names in label index order) and ``preprocessing`` (how an image becomes the
input: size, resize, scale, mean/std, channel order, layout, dtype). A failed
gate writes nothing and raises :class:`GateError` (exit 1), so a release pipeline stops.

Example::

    recipe = with_plan_constraints(recipe, Path("runs/plan"))
    if stale_plan(Path("runs/plan"), recipe):
        write_plan(plan_recipe(recipe, Path("runs/plan")))
    rel = release(recipe, Path("runs/plan"), Path("dist"))
    rel.manifests["cpu"]  # dist/default/cpu/manifest.json
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from edgeslim.data import describe_data
from edgeslim.errors import DataError, EdgeslimError, RunDirError
from edgeslim.io import read_json, sha256_file, target_slug, write_json
from edgeslim.recipe import Recipe, recipe_from_dict, recipe_to_dict
from edgeslim.provenance import git_commit, versions
from edgeslim.select.plan import PLAN

SEMANTICS = {
    "latency_ms": "milliseconds per inference at batch 1, measured on the artifact in its runtime on the "
                  "target after warm-up; p50/p90/p99 are percentiles of the timed iterations (see semantics)",
    "bytes": "sum of the sizes of every file the artifact needs",
    "accuracy": "top-1 accuracy (fraction) of the artifact itself on the recipe's validation split",
    "reference_accuracy": "top-1 accuracy (fraction) of the baseline PyTorch model on the same split",
    "accuracy_drop": "points of top-1 accuracy below the baseline: 100 × (reference − accuracy)",
    "accuracy_over_seeds": "with plan --seeds N: the candidate's accuracy over its fine-tune seeds (mean, sample "
                           "sd, n, per seed), which the plan decided on; accuracy above is the shipped artifact's own",
    "params": "parameters of the PyTorch model the artifact was exported from",
    "macs": "multiply-accumulates of one forward pass of that model at batch 1",
}


class GateError(EdgeslimError):
    """A release gate failed: nothing was released. Exit code 1 (a result, not bad input)."""

    exit_code = 1


@dataclass
class ReleaseResult:
    dist: Path  # DIST/<name>
    manifests: dict[str, Path] = field(default_factory=dict)  # target -> manifest.json
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> chosen row


def with_plan_constraints(recipe: Recipe, out_dir: Path) -> Recipe:
    """``recipe`` with the targets and constraints of the plan in ``out_dir`` (the ones it
    was planned with, e.g. from ``edgeslim plan --max-bytes``); ``recipe`` itself when the
    directory holds no plan. What else differs still makes :func:`stale_plan` refuse.

    Example: after ``edgeslim plan my.yaml --out runs/p --max-bytes 200000``,
    ``with_plan_constraints(load_recipe("my.yaml"), Path("runs/p")).constraints.max_bytes``
    -> ``200000``.
    """
    plan_file = Path(out_dir) / PLAN
    planned = read_json(plan_file).get("recipe") if plan_file.is_file() else None
    if not isinstance(planned, dict) or "constraints" not in planned or "targets" not in planned:
        return recipe
    data = recipe_to_dict(recipe)
    data["targets"], data["constraints"] = planned["targets"], planned["constraints"]
    return recipe_from_dict(data)


def constraints_stated(overrides: list[str] | None, *options: Any) -> bool:
    """Whether a release command line states constraints or targets itself: a ``--set`` of
    ``constraints...``/``targets`` or any constraint option (``--target``, ``--latency-ms``...)
    given. When it does not, the release takes the plan's (:func:`with_plan_constraints`).

    Example: ``constraints_stated(["seed=1"], None, [])`` -> ``False``.
    """
    sections = {o.split("=", 1)[0].strip().split(".", 1)[0] for o in overrides or []}
    return bool(sections & {"constraints", "targets"}) or any(o not in (None, [], ()) for o in options)


def stale_plan(out_dir: Path, recipe: Recipe) -> str | None:
    """Why ``out_dir`` holds no plan of ``recipe`` to release (None when it does).

    Example: ``stale_plan(Path("runs/none"), recipe)`` -> ``"no plan in runs/none (plan.json
    not found): run 'edgeslim plan [RECIPE] --out runs/none' first, or pass --run to plan now"``.
    """
    plan_file = Path(out_dir) / PLAN
    if not plan_file.is_file():
        return (f"no plan in {out_dir} ({PLAN} not found): run 'edgeslim plan [RECIPE] "
                f"--out {out_dir}' first, or pass --run to plan now")
    planned = read_json(plan_file).get("recipe")
    if planned == recipe_to_dict(recipe):
        return None
    diff = _differences(planned or {}, recipe_to_dict(recipe))
    return (f"the plan in {out_dir} was made for a different recipe (differs at {', '.join(diff[:5])}); "
            f"run 'edgeslim plan' with this recipe and --out {out_dir} first, or pass --run")


def load_plan(out_dir: Path, recipe: Recipe) -> dict[str, Any]:
    """The plan in ``out_dir`` for ``recipe``; :class:`RunDirError` when :func:`stale_plan`."""
    why = stale_plan(out_dir, recipe)
    if why:
        raise RunDirError(why)
    return read_json(Path(out_dir) / PLAN)


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [path or "the recipe"]


def _gates(row: Optional[dict[str, Any]], decision: dict[str, Any], plan_dir: Path) -> list[str]:
    if row is None:
        return [decision.get("rationale") or "nothing was chosen"]
    failed = [f"constraint {v['text']}" for v in row.get("verdicts", []) if not v["passed"]]
    parity = row.get("parity") or {}
    if parity and parity.get("passed") is False:
        failed.append(f"{row['label']} failed its parity check")
    recorded = row.get("sha256") or {}
    for f in row.get("files", []):
        p = plan_dir / f
        if not p.is_file():
            failed.append(f"{row['label']}: file {f} is missing")
        elif Path(f).name in recorded and sha256_file(p) != recorded[Path(f).name]:
            failed.append(f"{row['label']}: {f} changed since it was measured (sha256 differs)")
    return failed


def release(recipe: Recipe, out_dir: Path, dist: Path) -> ReleaseResult:
    """Copy the chosen artifact of every target into ``dist/<name>/<target>/``, gated."""
    out_dir = Path(out_dir)
    plan = load_plan(out_dir, recipe)
    rows = read_json(out_dir / "results.json")
    chosen = {r["target"]: r for r in rows if r.get("chosen")}
    failures = []
    for target, decision in plan["decisions"].items():
        for why in _gates(chosen.get(target), decision, out_dir):
            failures.append(f"{target}: {why}")
    if failures:
        raise GateError(f"release gate failed, nothing released: {' | '.join(failures)}")
    final = Path(dist) / recipe.name
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    result = ReleaseResult(final)
    try:
        for target in plan["decisions"]:
            row = chosen[target]
            _write_target(tmp / target_slug(target), row, plan, out_dir, recipe)
            result.manifests[target] = final / target_slug(target) / "manifest.json"
            result.rows[target] = row
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunDirError(f"cannot write the release to {final}: {err.strerror or err}") from None
    except EdgeslimError:  # the data could not be described: no half-written release stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _write_target(folder: Path, row: dict[str, Any], plan: dict[str, Any], plan_dir: Path,
                  recipe: Recipe) -> None:
    main = plan_dir / row["artifact"]
    root = main.parent
    files = {}
    for f in row["files"]:
        src = plan_dir / f
        # keeps ONNX external data beside its model (artifact files live in its stage folder)
        rel = src.relative_to(root).as_posix() if src.is_relative_to(root) else src.name
        dst = folder / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        files[rel] = sha256_file(dst)
    run_recipe = yaml.safe_load((plan_dir / row["run_dir"] / "recipe.yaml").read_text(encoding="utf-8"))
    classes, preprocessing = _data_card(run_recipe)
    decision = plan["decisions"][row["target"]]
    metrics = {k: row.get(k) for k in ("latency_ms", "bytes", "accuracy", "reference_accuracy",
                                       "accuracy_drop", "params", "macs", "throughput_per_s")}
    metrics.update(_seed_metrics(row))
    write_json(folder / "manifest.json", {
        "name": recipe.name,
        "target": row["target"],
        "artifact": main.relative_to(root).as_posix(),
        "candidate": row["candidate"],
        "label": row["label"],
        "format": row["format"], "precision": row["precision"], "variant": row["variant"],
        "method": row["method"],
        "files": files,
        "versions": {k: v for k, v in versions().items()},
        "git_commit": git_commit(Path(__file__).resolve().parents[1]),
        "recipe": run_recipe,
        "plan_recipe": recipe_to_dict(recipe),
        "metrics": metrics,
        "metric_semantics": SEMANTICS,
        "semantics": row.get("semantics"),
        "parity": row.get("parity"),
        "constraints": row.get("verdicts", []),
        "rationale": decision.get("rationale"),
        "classes": list(classes),
        "preprocessing": preprocessing.as_dict(),
    })


def _seed_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """With seeds the row's ``accuracy`` is the mean over them, but the files shipped are one
    seed's artifact: the manifest's accuracy (and drop) are that artifact's own, the mean
    and spread the decision used go under ``accuracy_over_seeds``. Nothing without seeds."""
    if row.get("accuracy_n") is None:
        return {}
    own, ref = row.get("artifact_accuracy"), row.get("reference_accuracy")
    return {"accuracy": own,
            "accuracy_drop": None if own is None or ref is None else 100 * (ref - own),
            "accuracy_over_seeds": {"mean": row.get("accuracy"), "sd": row.get("accuracy_sd"),
                                    "n": row.get("accuracy_n"), "seeds": row.get("seeds"),
                                    "by_seed": row.get("accuracy_by_seed"),
                                    "shipped_seed": row.get("measured_seed"),
                                    "seed_independent": row.get("seed_independent")}}


def _data_card(run_recipe: dict[str, Any]):
    """Class names and preprocessing of the data the artifact was trained and measured on."""
    data, model = run_recipe["data"], run_recipe["model"]
    try:
        return describe_data(data["name"], input_size=model["input_size"], num_classes=model["num_classes"],
                             seed=run_recipe.get("seed", 0), val_fraction=data.get("val_fraction", 0.2))
    except DataError as err:  # e.g. the image folder moved since the plan ran
        raise RunDirError(f"cannot describe the data for the manifest (classes, preprocessing): {err}") from None
