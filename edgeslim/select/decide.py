"""The decision: per target, the best artifact that meets every constraint, and why.

*Feasible* means measured on the target (``status: ok``) and within every budget set:
latency at the constraints' percentile, size (every file), accuracy drop in points
against the baseline's PyTorch accuracy (``reference_accuracy``). An accuracy budget on
an artifact whose accuracy was not measured (unlabelled data) is a miss.

*Best* among the feasible is the **lowest latency**; artifacts within :data:`TIE` (2%,
the profiler's confidence target) of the fastest are a tie, broken by **fewer bytes**,
then **higher accuracy**, then by label, so the choice is deterministic.

Every other artifact gets a one-line explanation: the constraints it missed and by how
much, or, when feasible, how much slower (or larger) it is than the choice and which
artifact dominates it. When nothing is feasible the *closest* artifact is the one with
the smallest total relative miss (Σ over missed budgets of excess ÷ budget; an accuracy
excess is taken relative to max(budget, 1 point); an unmeasured accuracy misses by 100%).

With ``--seeds N`` a row's accuracy is the mean over seeds (:mod:`edgeslim.select.seeds`):
two artifacts whose mean ± sd overlap are *tied* on accuracy, in the Pareto front and in
the tie-break alike, and the rationale names the feasible artifacts the choice is tied with
("a and b are tied on accuracy: 91.20 ± 0.30 vs 91.00 ± 0.40% over 3 seeds") and those more
accurate beyond the spread, instead of ranking the noise.

Example::

    d = decide(rows, constraints)["cpu"]
    d.chosen          # 'l1-50/onnx/int8' or None
    d.rationale       # 'l1-50/onnx/int8 wins on cpu: the fastest of 4 artifacts that ...'
    d.explanations["ptq/onnx/fp32"]  # 'misses max_bytes: 1.06 MiB > 200.0 KiB by ...'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from edgeslim.io import format_bytes
from edgeslim.select.constraints import Constraints
from edgeslim.select.pareto import dominator, explain_dominance, latency, measured, pareto_front
from edgeslim.select.seeds import accuracy_order, accuracy_text, compare_text, tied as tied_on_accuracy

TIE = 0.02
Row = dict[str, Any]


def label(row: Row) -> str:
    """How the plan names one artifact: ``<candidate>/<format>/<precision>``."""
    return f"{row.get('candidate', row.get('variant'))}/{row['format']}/{row['precision']}"


def accuracy_drop(row: Row) -> Optional[float]:
    """Points of top-1 accuracy below the baseline (negative: better than the baseline)."""
    a, ref = row.get("accuracy"), row.get("reference_accuracy")
    return None if a is None or ref is None else 100.0 * (ref - a)


@dataclass
class Verdict:
    """One constraint checked on one artifact."""

    constraint: str  # latency_ms | max_bytes | max_accuracy_drop
    budget: float
    value: Optional[float]  # the measured figure in the budget's unit (None: not measured)
    unit: str  # ms | bytes | points
    passed: bool
    percentile: Optional[str] = None  # for latency

    @property
    def excess(self) -> Optional[float]:
        return None if self.value is None else self.value - self.budget

    def relative_miss(self) -> float:
        if self.passed:
            return 0.0
        if self.value is None:
            return 1.0
        scale = max(self.budget, 1.0) if self.unit == "points" else self.budget
        return max(0.0, self.excess) / scale

    def _fmt(self, v: float) -> str:
        return format_bytes(v) if self.unit == "bytes" else f"{v:.3f} ms" if self.unit == "ms" else f"{v:.2f} points"

    def text(self) -> str:
        what = {"latency_ms": f"latency {self.percentile}", "max_bytes": "size",
                "max_accuracy_drop": "accuracy drop"}[self.constraint]
        if self.value is None:
            return f"{what} was not measured (budget {self._fmt(self.budget)})"
        if self.passed:
            return f"{what} {self._fmt(self.value)} ≤ {self._fmt(self.budget)} ({self._fmt(-self.excess)} to spare)"
        rel = f" (+{100 * self.excess / self.budget:.0f}%)" if self.unit != "points" else ""
        return (f"misses {self.constraint}: {what} {self._fmt(self.value)} > {self._fmt(self.budget)} "
                f"by {self._fmt(self.excess)}{rel}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"margin": None if self.value is None else -self.excess, "text": self.text()}


def verdicts(row: Row, c: Constraints) -> list[Verdict]:
    """Every budget set for ``row``'s target, checked on ``row``."""
    out = []
    target = row.get("target")
    budget = c.latency_budget(target)
    if budget is not None:
        v = latency(row, c.percentile) if row.get("status") == "ok" else None
        out.append(Verdict("latency_ms", budget, v, "ms", v is not None and v <= budget, c.percentile))
    if c.max_bytes is not None:
        v = row.get("bytes") if row.get("status") == "ok" else None
        out.append(Verdict("max_bytes", float(c.max_bytes), None if v is None else float(v), "bytes",
                           v is not None and v <= c.max_bytes))
    if c.max_accuracy_drop is not None:
        v = accuracy_drop(row) if row.get("status") == "ok" else None
        out.append(Verdict("max_accuracy_drop", c.max_accuracy_drop, v, "points",
                           v is not None and v <= c.max_accuracy_drop + 1e-9))
    return out


@dataclass
class Decision:
    """The choice on one target, with the reasons for it and against every other artifact."""

    target: str
    chosen: Optional[str]  # label of the chosen artifact, None when nothing is feasible
    rationale: str
    explanations: dict[str, str] = field(default_factory=dict)  # label -> why it lost
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)
    feasible: list[str] = field(default_factory=list)
    front: list[str] = field(default_factory=list)  # the Pareto front, fastest first
    closest: Optional[str] = None  # when nothing is feasible

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdicts"] = {k: [v.to_json() for v in vs] for k, vs in self.verdicts.items()}
        return d


def _best(rows: list[Row], p: str) -> tuple[Row, list[Row]]:
    fastest = min(latency(r, p) for r in rows)
    tied = [r for r in rows if latency(r, p) <= fastest * (1 + TIE)]
    best = min(tied, key=lambda r: (r["bytes"], -(r.get("accuracy") or 0.0), label(r)))
    return best, [r for r in tied if r is not best]


def decide(rows: list[Row], c: Constraints) -> dict[str, Decision]:
    """One :class:`Decision` per target of ``c`` over the plan's ``rows``."""
    return {t: decide_target([r for r in rows if r.get("target") == t], t, c) for t in c.targets}


def decide_target(rows: list[Row], target: str, c: Constraints) -> Decision:
    p = c.percentile
    checks = {label(r): verdicts(r, c) for r in rows}
    ok = [r for r in rows if measured(r, p)]
    feasible = [r for r in ok if all(v.passed for v in checks[label(r)])]
    front = [label(r) for r in pareto_front(rows, p)]
    d = Decision(target, None, "", verdicts=checks, feasible=[label(r) for r in feasible], front=front)
    if not ok:
        reasons = sorted({f"{r.get('status')}: {r.get('reason')}" for r in rows if r.get("reason")})
        d.rationale = (f"nothing was measured on {target}"
                       + (f" ({'; '.join(reasons)[:400]})" if reasons else ""))
    elif not feasible:
        closest = min(ok, key=lambda r: (sum(v.relative_miss() for v in checks[label(r)]), latency(r, p)))
        d.closest = label(closest)
        missed = "; ".join(v.text() for v in checks[d.closest] if not v.passed)
        d.rationale = (f"nothing meets every constraint on {target} ({len(ok)} artifacts measured); "
                       f"closest: {d.closest}, which {missed}")
    else:
        best, tied = _best(feasible, p)
        d.chosen = label(best)
        d.rationale = _why(best, tied, feasible, checks[d.chosen], front, target, p)
    for r in rows:
        name = label(r)
        if name != d.chosen:
            d.explanations[name] = _why_not(r, d, rows, checks[name], p,
                                            next((x for x in rows if label(x) == d.chosen), None))
    return d


def _why(best: Row, tied: list[Row], feasible: list[Row], checks: list[Verdict], front: list[str],
         target: str, p: str) -> str:
    name = label(best)
    lat = latency(best, p)
    which = (f"the fastest of {len(feasible)} artifacts that meet every constraint" if len(feasible) > 1
             else "the only artifact that meets every constraint")
    parts = [f"{name} wins on {target}: {which} ({p} {lat:.3f} ms, {format_bytes(best['bytes'])}, accuracy {_acc(best)})"]
    if checks:
        parts.append("; ".join(v.text() for v in checks))
    else:
        parts.append(f"no budget is set for {target}, so every measured artifact is feasible")
    if tied:
        noise = any(t["bytes"] == best["bytes"] and tied_on_accuracy(best, t) for t in tied)
        parts.append(f"tied within {100 * TIE:.0f}% on {p} with {', '.join(label(t) for t in tied)}, "
                     "and wins on size, then accuracy"
                     + (" (by the higher mean: the accuracies are tied within the seed spread)" if noise else ""))
    others = sorted((r for r in feasible if r is not best and r not in tied), key=lambda r: latency(r, p))
    if others:
        nxt = others[0]
        parts.append(f"next fastest feasible: {label(nxt)} at {latency(nxt, p):.3f} ms "
                     f"(+{100 * (latency(nxt, p) / lat - 1):.0f}%)")
    parts += _accuracy_clauses(best, feasible)
    parts.append("on the Pareto front" if name in front else "not on the Pareto front "
                 "(an infeasible artifact dominates it)")
    return "; ".join(parts)


def _accuracy_clauses(best: Row, feasible: list[Row], most: int = 3) -> list[str]:
    """With seeds: the feasible artifacts tied with the choice on accuracy, and those more
    accurate beyond the seed spread (each at most ``most``, then a count)."""
    if best.get("accuracy_n") is None:  # --seeds 1: accuracies are plain numbers
        return []
    others = [r for r in feasible if r is not best]
    ties = [f"{label(best)} and {label(r)} are tied on accuracy: {compare_text(best, r)}"
            for r in others if tied_on_accuracy(best, r)]
    better = [f"{label(r)} is more accurate beyond the seed spread ({compare_text(r, best)}) but slower or larger"
              for r in others if accuracy_order(r, best) > 0]
    out = []
    for items, what in ((ties, "tied"), (better, "more accurate")):
        out += items[:most] + ([f"{len(items) - most} more {what}"] if len(items) > most else [])
    if not out and others:
        out.append(f"no other feasible artifact is tied with it on accuracy ({accuracy_text(best)})")
    return out


def _acc(row: Row) -> str:
    a, drop = row.get("accuracy"), accuracy_drop(row)
    if a is None:
        return "accuracy unmeasured"
    return accuracy_text(row) + (f", drop {drop:+.2f} points" if drop is not None else "")


def _why_not(r: Row, d: Decision, rows: list[Row], checks: list[Verdict], p: str,
             chosen: Optional[Row]) -> str:
    if not measured(r, p):
        return f"not measured on {d.target}: {r.get('status')}" + (f" — {r['reason']}" if r.get("reason") else "")
    missed = [v.text() for v in checks if not v.passed]
    dom = dominator(r, rows, p)
    dom_text = f"dominated by {label(dom)}: {explain_dominance(dom, r, p)}" if dom is not None else ""
    if missed:
        return "; ".join(missed + ([dom_text] if dom_text else []))
    if chosen is None:  # feasible rows always leave a choice; kept for safety
        return dom_text or "feasible"
    lc, lr = latency(chosen, p), latency(r, p)
    if lr > lc * (1 + TIE):
        why = (f"meets every constraint but is slower than the choice: {p} {lr:.3f} vs {lc:.3f} ms "
               f"(+{100 * (lr / lc - 1):.0f}%)")
    elif r["bytes"] != chosen["bytes"]:
        why = (f"as fast as the choice (within {100 * TIE:.0f}%) but larger: "
               f"{format_bytes(r['bytes'])} vs {format_bytes(chosen['bytes'])}")
    elif tied_on_accuracy(r, chosen):
        why = (f"as fast and as small as the choice, and tied with it on accuracy ({compare_text(r, chosen)}): "
               "the choice's mean is no lower")
    else:
        why = f"as fast and as small as the choice but less accurate ({_acc(r)} vs {_acc(chosen)})"
    if lr > lc * (1 + TIE) or r["bytes"] != chosen["bytes"]:
        why += _accuracy_vs(r, chosen)
    return why + (f"; {dom_text}" if dom_text else "; on the Pareto front" if label(r) in d.front else "")


def _accuracy_vs(r: Row, chosen: Row) -> str:
    """With seeds: whether what ``r`` would buy in accuracy over the choice is real."""
    if r.get("accuracy_n") is None:
        return ""
    if tied_on_accuracy(r, chosen):
        return f"; tied with the choice on accuracy ({compare_text(r, chosen)})"
    word = {1: "more", -1: "less"}.get(accuracy_order(r, chosen))
    return f"; {word} accurate than the choice beyond the seed spread ({compare_text(r, chosen)})" if word else ""
