"""The Pareto front of measured artifacts: latency (lower), size (lower), accuracy (higher).

Only rows measured on a target (``status: ok``) with a latency and a size take part; the
front is computed per target because latency is a property of the (artifact, target)
pair. An unmeasured accuracy (unlabelled data) counts as worse than any measured one and
as equal to another unmeasured one, so on unlabelled data the front is over latency and
size alone. With seeds, accuracies whose intervals (mean ± sd) overlap are equal here
(:func:`~edgeslim.select.seeds.accuracy_order`): a faster row tied on accuracy dominates.

Example::

    front = pareto_front(rows_of_one_target, "p50")
    dominates(front[0], some_row, "p50")  # True or False
    explain_dominance(front[0], some_row, "p50")
    # 'faster (0.412 vs 0.520 ms p50), smaller (71.2 KiB vs 280.4 KiB), more accurate (97.50% vs 97.22%)'
"""

from __future__ import annotations

from typing import Any, Optional

from edgeslim.io import format_bytes
from edgeslim.select.seeds import accuracy_order, compare_text, tied

Row = dict[str, Any]


def latency(row: Row, percentile: str) -> Optional[float]:
    lat = row.get("latency_ms") or {}
    v = lat.get(percentile)
    return float(v) if v is not None else None


def measured(row: Row, percentile: str) -> bool:
    """True when the row can be compared: measured on its target, with latency and size."""
    return row.get("status") == "ok" and latency(row, percentile) is not None and row.get("bytes") is not None


def _acc(row: Row) -> float:
    a = row.get("accuracy")
    return float("-inf") if a is None else float(a)


def objectives(row: Row, percentile: str) -> tuple[float, float, float]:
    """(latency ms, bytes, accuracy): the first two minimized, the last maximized."""
    return latency(row, percentile), float(row["bytes"]), _acc(row)


def dominates(a: Row, b: Row, percentile: str) -> bool:
    """``a`` is no worse than ``b`` on all three objectives and better on at least one."""
    la, ba, _ = objectives(a, percentile)
    lb, bb, _ = objectives(b, percentile)
    acc = accuracy_order(a, b)  # 0 for overlapping seed intervals: noise is not "better"
    no_worse = la <= lb and ba <= bb and acc >= 0
    better = la < lb or ba < bb or acc > 0
    return no_worse and better


def pareto_front(rows: list[Row], percentile: str) -> list[Row]:
    """The measured rows no other measured row dominates, fastest first."""
    pts = [r for r in rows if measured(r, percentile)]
    front = [r for r in pts if not any(dominates(o, r, percentile) for o in pts if o is not r)]
    return sorted(front, key=lambda r: objectives(r, percentile))


def dominator(row: Row, rows: list[Row], percentile: str) -> Optional[Row]:
    """The fastest measured row that dominates ``row`` (None when it is on the front)."""
    if not measured(row, percentile):
        return None
    doms = [o for o in rows if o is not row and measured(o, percentile) and dominates(o, row, percentile)]
    return min(doms, key=lambda r: objectives(r, percentile)) if doms else None


def pct(a: Optional[float]) -> str:
    return "unmeasured" if a is None else f"{100 * a:.2f}%"


def explain_dominance(a: Row, b: Row, percentile: str) -> str:
    """Why ``a`` beats ``b``, objective by objective (e.g. 'faster (..), smaller (..), as accurate (..)')."""
    la, ba, _ = objectives(a, percentile)
    lb, bb, _ = objectives(b, percentile)
    parts = [
        f"{'faster' if la < lb else 'as fast'} ({la:.3f} vs {lb:.3f} ms {percentile})",
        f"{'smaller' if ba < bb else 'as small'} ({format_bytes(ba)} vs {format_bytes(bb)})",
    ]
    if a.get("accuracy") is not None or b.get("accuracy") is not None:
        if tied(a, b):
            parts.append(f"tied on accuracy ({compare_text(a, b)})")
        else:
            word = "more accurate" if accuracy_order(a, b) > 0 else "as accurate"
            parts.append(f"{word} ({pct(a.get('accuracy'))} vs {pct(b.get('accuracy'))})")
    return ", ".join(parts)
