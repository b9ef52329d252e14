"""Seeds and ties: how sure a plan is of an accuracy.

``plan --seeds N`` runs every candidate that trains N times, at fine-tune seeds s, s+1, ...
(``finetune.seed``; the baseline, the data split and what only runs after training are
shared, so a post-training-only candidate such as ``ptq`` runs once: its result does not
depend on that seed). :func:`fold_seeds` turns the rows of every seed into one row per
artifact: ``accuracy`` becomes the **mean** over the seeds, with ``accuracy_sd`` (sample
standard deviation), ``accuracy_min``/``accuracy_max``, ``accuracy_n`` and the values per
seed; the files, size and latency stay those of the **first** seed's artifact (the
recipe's own seed: the one a release ships and ``edgeslim run`` reproduces), named by
``measured_seed``.

An accuracy's *interval* is mean ± sd. Two rows whose intervals overlap are **tied** on
accuracy (:func:`accuracy_order` returns 0): the run cannot tell them apart, and the
decision says so instead of ranking the noise. A row that does not depend on the seed has
sd 0 (a point); a row without seed statistics (``--seeds 1``) has no interval, and
accuracies then compare as plain numbers, as they always did.

:func:`resolution` states the smallest accuracy difference a plan can resolve: two
binomial standard errors of one accuracy at the validation size, 2·√(p(1−p)/n), and,
with seeds, twice the widest seed spread (the tie rule's reach), the two combined in
quadrature.

Example::

    rows = fold_seeds(per_seed_rows, repeated={"l1-50"})
    rows[0]["accuracy"], rows[0]["accuracy_sd"], rows[0]["accuracy_n"]   # 0.912, 0.003, 3
    accuracy_order(rows[0], rows[1])      # 1 more accurate, 0 tied, -1 less accurate
    resolution(rows, val_samples=10_000, seeds=3).text()
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional

Row = dict[str, Any]
ARTIFACT = ("candidate", "variant", "format", "precision", "target")  # one folded row per artifact


def fold_seeds(rows: list[Row], *, repeated: Iterable[str]) -> list[Row]:
    """One row per artifact from the rows of every seed (each row has a ``seed``; the first
    seed's rows come first). ``repeated``: the candidates that ran once per seed; the others
    ran once because their result does not depend on the seed, so their spread is 0."""
    repeated = set(repeated)
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in ARTIFACT), []).append(r)
    out = []
    for group in groups.values():
        base = next((r for r in group if r.get("status") == "ok"), group[0])
        accs = [(r.get("seed"), float(r["accuracy"])) for r in group
                if r.get("status") == "ok" and r.get("accuracy") is not None]
        row = dict(base, measured_seed=base.get("seed"), artifact_accuracy=base.get("accuracy"),
                   seeds=[s for s, _ in accs], accuracy_by_seed=[a for _, a in accs], accuracy_n=len(accs),
                   seed_independent=base.get("candidate") not in repeated)
        if accs:
            values = [a for _, a in accs]
            row["accuracy"] = statistics.fmean(values)
            row["accuracy_min"], row["accuracy_max"] = min(values), max(values)
            # one run of a repeated candidate (the others failed) has no measured spread
            row["accuracy_sd"] = (statistics.stdev(values) if len(values) > 1
                                  else 0.0 if row["seed_independent"] else None)
        out.append(row)
    return out


def accuracy_interval(row: Row) -> Optional[tuple[float, float]]:
    """mean ± sd over seeds, or None when the row carries no seed spread."""
    a, sd = row.get("accuracy"), row.get("accuracy_sd")
    return None if a is None or sd is None else (a - sd, a + sd)


def tied(a: Row, b: Row) -> bool:
    """True when both rows have seed intervals and they overlap."""
    ia, ib = accuracy_interval(a), accuracy_interval(b)
    return ia is not None and ib is not None and ia[0] <= ib[1] + 1e-12 and ib[0] <= ia[1] + 1e-12


def accuracy_order(a: Row, b: Row) -> int:
    """1 when ``a`` is more accurate than ``b``, -1 when less, 0 when tied (overlapping
    intervals) or equal; an unmeasured accuracy is below any measured one."""
    if tied(a, b):
        return 0
    x, y = (float("-inf") if r.get("accuracy") is None else float(r["accuracy"]) for r in (a, b))
    return (x > y) - (x < y)


def accuracy_text(row: Row) -> str:
    """``91.20 ± 0.30% over 3 seeds``, ``98.61% at any seed`` (it does not depend on the seed), or ``91.20%``."""
    a = row.get("accuracy")
    if a is None:
        return "unmeasured"
    sd, n = row.get("accuracy_sd"), row.get("accuracy_n")
    if sd is None:  # --seeds 1, or the other seeds of a candidate that trains failed
        return f"{100 * a:.2f}%" + (" (one seed: no spread)" if n == 1 else "")
    if row.get("seed_independent"):
        return f"{100 * a:.2f}% at any seed"
    return f"{100 * a:.2f} ± {100 * sd:.2f}% over {n} seeds"


def compare_text(a: Row, b: Row) -> str:
    """Both accuracies side by side: ``91.20 ± 0.30 vs 91.00 ± 0.40% over 3 seeds``."""
    same_n = a.get("accuracy_n") == b.get("accuracy_n") and not a.get("seed_independent") \
        and not b.get("seed_independent") and a.get("accuracy_sd") is not None and b.get("accuracy_sd") is not None
    if same_n and a.get("accuracy") is not None and b.get("accuracy") is not None:
        return (f"{100 * a['accuracy']:.2f} ± {100 * a['accuracy_sd']:.2f} vs {100 * b['accuracy']:.2f} ± "
                f"{100 * b['accuracy_sd']:.2f}% over {a['accuracy_n']} seeds")
    return f"{accuracy_text(a)} vs {accuracy_text(b)}"


@dataclass
class Resolution:
    """The smallest accuracy difference a plan resolves, and where it comes from (points)."""

    val_samples: Optional[int]  # validation images the accuracies were measured on
    p: Optional[float]  # the accuracy the standard error is taken at (the baseline's)
    val_points: Optional[float]  # 2·√(p(1−p)/n), in points
    seeds: int
    seed_sd_points: Optional[float] = None  # the widest spread over seeds (sd), in points
    seed_label: Optional[str] = None  # the artifact with that spread

    @property
    def points(self) -> Optional[float]:
        parts = [x for x in (self.val_points, None if self.seed_sd_points is None else 2 * self.seed_sd_points)
                 if x is not None]
        return math.sqrt(sum(x * x for x in parts)) if parts else None

    def text(self) -> str:
        if self.p is None:
            return "Accuracy was not measured, so no accuracy difference is resolved."
        if self.val_samples is None:
            val = "the validation size is unknown, so its share is not stated"
        else:
            val = (f"validation: {self.val_samples:,} images at the baseline's {100 * self.p:.2f}%, so one "
                   f"accuracy is uncertain by ±{self.val_points:.2f} points (2·√(p(1−p)/n))")
        if self.seeds <= 1:
            seeds = "seeds: 1 run per candidate, so the spread of training is not measured (--seeds 3 measures it)"
        elif self.seed_sd_points is None:
            seeds = f"seeds: {self.seeds}, but no candidate that trains was measured on more than one"
        else:
            seeds = (f"seeds: the widest spread over {self.seeds} seeds is {self.seed_sd_points:.2f} points sd "
                     f"({self.seed_label}); accuracies whose mean ± sd overlap (up to "
                     f"{2 * self.seed_sd_points:.2f} points apart) are ties")
        head = (f"Smallest accuracy difference this run can resolve: {self.points:.2f} points"
                if self.points is not None else "The smallest accuracy difference this run can resolve is unknown")
        combined = self.val_points is not None and self.seed_sd_points is not None
        both = " (the two combined in quadrature)" if combined else ""
        return f"{head}{both}. {val[0].upper()}{val[1:]}; {seeds}."

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"points": self.points, "text": self.text()}


def resolution(rows: list[Row], *, val_samples: Optional[int], seeds: int) -> Resolution:
    """The :class:`Resolution` of a plan's (folded) ``rows`` measured on ``val_samples`` images."""
    refs = [r["reference_accuracy"] for r in rows if r.get("reference_accuracy") is not None]
    accs = [r["accuracy"] for r in rows if r.get("accuracy") is not None]
    p = refs[0] if refs else statistics.fmean(accs) if accs else None
    val = None
    if p is not None and val_samples:
        q = min(max(p, 1 / val_samples), 1 - 1 / val_samples)  # a perfect score is still one image from 99.x%
        val = 200 * math.sqrt(q * (1 - q) / val_samples)
    spread = [r for r in rows if not r.get("seed_independent") and (r.get("accuracy_n") or 0) > 1
              and r.get("accuracy_sd") is not None]
    widest = max(spread, key=lambda r: r["accuracy_sd"], default=None)
    return Resolution(val_samples, p, val, seeds,
                      None if widest is None else 100 * widest["accuracy_sd"],
                      None if widest is None else widest.get("label"))
