"""Deployment constraints: what the device allows, resolved once and validated.

The recipe's ``constraints:`` section holds them, the command line overrides them
(``--latency-ms``, ``--max-bytes``, ``--max-accuracy-drop``, ``--retrain``, ``--target``):

- ``latency_ms``: one budget for every target, or ``{target: budget}`` per target, read at
  ``latency_percentile`` (p50, p90 or p99) of the artifact measured on that target;
- ``max_bytes``: every file the artifact needs, summed;
- ``max_accuracy_drop``: top-1 points below the baseline's (the PyTorch reference);
- ``retrain``: the training a candidate may use. ``none``: post-training only (0
  fine-tune epochs, no method that trains); ``short``: :data:`SHORT_EPOCHS` fine-tune
  epochs (never more than the recipe's); ``full``: the recipe's ``finetune.epochs``;
- ``seeds`` (``--seeds``): how many times a candidate that trains runs, at finetune seeds
  s, s+1, ... (not a limit of the device but of the evidence: see ``select/seeds.py``).

The targets are the recipe's ``targets`` (``--target`` replaces them). Contradictory or
impossible constraints (a budget ≤ 0, a negative drop, a latency budget for a target the
plan does not measure) are one :class:`RecipeError` line.

Example::

    recipe, c = resolve_constraints(load_recipe(), latency_ms=["edge=2.5"], retrain="short")
    c.latency_ms        # {'edge': 2.5}
    c.finetune_epochs   # 2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

from edgeslim.errors import EdgeslimError, RecipeError
from edgeslim.recipe import Recipe, recipe_from_dict, recipe_to_dict
from edgeslim.registry import suggest
from edgeslim.targets import TARGETS, parse_target

SHORT_EPOCHS = 2  # "a few" fine-tune epochs: enough to recover BN and most of a pruning loss
PERCENTILES = ("p50", "p90", "p99")


@dataclass(frozen=True)
class Constraints:
    """The resolved constraints of a plan (every budget optional)."""

    targets: tuple[str, ...]  # target labels, as the results rows name them
    kinds: dict[str, str]  # label -> cpu | gpu | edge: which rule of the prior applies
    latency_ms: dict[str, float] = field(default_factory=dict)  # label -> budget (ms)
    percentile: str = "p50"
    max_bytes: Optional[int] = None
    max_accuracy_drop: Optional[float] = None  # points
    retrain: str = "full"
    finetune_epochs: int = 0  # the epoch budget that ``retrain`` allows
    seeds: int = 1  # runs of every candidate that trains (finetune seeds s, s+1, ...)

    def latency_budget(self, target: str) -> Optional[float]:
        return self.latency_ms.get(target)

    def latency_bound(self, target: str) -> bool:
        return target in self.latency_ms

    @property
    def size_bound(self) -> bool:
        return self.max_bytes is not None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d


def target_kind(target: Any) -> str:
    """The kind (``cpu``, ``gpu`` or ``edge``) a recipe target declares: its class's ``kind``,
    or for ``ssh://`` devices their ``kind`` option (``edge`` unless set).

    ``target`` is a recipe target entry or a label. Example: ``target_kind("edge") == "edge"``.
    """
    try:
        return parse_target(target).kind
    except EdgeslimError as err:
        raise RecipeError(str(err)) from None


def parse_latency(values: Sequence[str] | None) -> Any:
    """``--latency-ms`` values: one number, or ``TARGET=MS`` items (repeatable, or comma-separated)."""
    if not values:
        return None
    items = [v.strip() for raw in values for v in str(raw).split(",") if v.strip()]
    if len(items) == 1 and "=" not in items[0]:
        return _number(items[0], "--latency-ms")
    out: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"--latency-ms: give one number for every target or TARGET=MS items, got '{item}'")
        name, ms = item.rsplit("=", 1)
        out[name.strip()] = _number(ms, f"--latency-ms {name.strip()}")
    return out


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RecipeError(f"{what}: '{text}' is not a number of milliseconds") from None


def resolve_constraints(recipe: Recipe, *, targets: Sequence[str] | None = None,
                        latency_ms: Any = None, percentile: str | None = None,
                        max_bytes: int | None = None, max_accuracy_drop: float | None = None,
                        retrain: str | None = None, seeds: int | None = None) -> tuple[Recipe, Constraints]:
    """Apply command-line constraint options to ``recipe`` and validate the whole set.

    Returns the recipe with the options written into it (so the resolved recipe records
    them) and the :class:`Constraints`. Raises :class:`RecipeError` naming the bad input.
    """
    data = recipe_to_dict(recipe)
    c = data["constraints"]
    if targets:
        data["targets"] = list(dict.fromkeys(targets))
    if latency_ms is not None:
        c["latency_ms"] = parse_latency(latency_ms) if isinstance(latency_ms, (list, tuple)) else latency_ms
    for key, value in (("latency_percentile", percentile), ("max_bytes", max_bytes),
                       ("max_accuracy_drop", max_accuracy_drop), ("retrain", retrain), ("seeds", seeds)):
        if value is not None:
            c[key] = value
    try:
        recipe = recipe_from_dict(data)
    except EdgeslimError as err:  # an unknown --target arrives as a TargetError
        raise RecipeError(str(err)) from None
    return recipe, check_constraints(recipe)


def check_constraints(recipe: Recipe) -> Constraints:
    """Validate ``recipe.constraints`` against ``recipe.targets``; the resolved Constraints."""
    cfg = recipe.constraints
    labels = tuple(t.name for t in recipe.targets)
    lat = cfg.latency_ms
    budgets: dict[str, float] = {}
    if isinstance(lat, dict):
        if not lat:
            raise RecipeError("constraints.latency_ms is an empty mapping: give a budget per target "
                              "(e.g. {cpu: 5}) or one number for every target")
        for name, ms in lat.items():
            if name not in labels:
                known = name in TARGETS or name.startswith("ssh://")
                hint = suggest(name, list(labels) + TARGETS.names())
                what = "which is not among the targets" if known else "an unknown target"
                raise RecipeError(f"constraints.latency_ms names '{name}', {what} of this plan "
                                  f"({', '.join(labels)}){hint}")
            budgets[name] = _positive(ms, f"constraints.latency_ms.{name}")
    elif lat is not None:
        budgets = {t: _positive(lat, "constraints.latency_ms") for t in labels}
    if cfg.max_accuracy_drop is not None:
        d = cfg.max_accuracy_drop
        if not math.isfinite(d) or d < 0:
            raise RecipeError(f"constraints.max_accuracy_drop must be a number of points >= 0, got {d}")
        if d > 100:
            raise RecipeError(f"constraints.max_accuracy_drop is {d} points, but accuracy spans 0-100 "
                              "points: a drop above 100 is impossible (did you mean a fraction?)")
    if cfg.max_bytes is not None and cfg.max_bytes <= 0:
        raise RecipeError(f"constraints.max_bytes must be > 0, got {cfg.max_bytes}")
    full = recipe.finetune.epochs
    epochs = {"none": 0, "short": min(SHORT_EPOCHS, full), "full": full}[cfg.retrain]
    return Constraints(targets=labels, kinds={t.name: target_kind(t) for t in recipe.targets}, latency_ms=budgets,
                       percentile=cfg.latency_percentile, max_bytes=cfg.max_bytes,
                       max_accuracy_drop=cfg.max_accuracy_drop, retrain=cfg.retrain,
                       finetune_epochs=epochs, seeds=cfg.seeds)


def _positive(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise RecipeError(f"{what} must be a number of milliseconds > 0, got {v!r}")
    return float(v)
