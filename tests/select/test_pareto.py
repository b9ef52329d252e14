"""Pareto dominance and the front over (latency, bytes, accuracy), on hand-made rows."""

from edgeslim.select.pareto import dominates, dominator, explain_dominance, pareto_front
from tests.select.rows import row


def test_dominance_needs_no_worse_everywhere_and_better_somewhere():
    a = row("a", 1.0, 100, 0.90)
    assert dominates(row("b", 0.9, 100, 0.90), a, "p50")      # faster only
    assert dominates(row("c", 1.0, 99, 0.90), a, "p50")       # smaller only
    assert dominates(row("d", 1.0, 100, 0.91), a, "p50")      # more accurate only
    assert not dominates(row("e", 1.0, 100, 0.90), a, "p50")  # equal: neither dominates
    assert not dominates(row("f", 0.5, 200, 0.99), a, "p50")  # a trade-off: larger
    assert not dominates(row("g", 0.5, 50, 0.80), a, "p50")   # a trade-off: less accurate
    assert not dominates(a, row("h", 0.9, 100, 0.90), "p50")


def test_percentile_decides_the_latency_axis():
    a, b = row("a", 1.0, 100, 0.9), row("b", 0.9, 100, 0.9)
    b["latency_ms"]["p90"] = 5.0  # faster at p50, slower at p90
    assert dominates(b, a, "p50") and not dominates(b, a, "p90") and dominates(a, b, "p90")


def test_front_of_hand_made_rows():
    rows = [row("fast-big", 0.2, 400, 0.95), row("slow-small", 1.0, 50, 0.95),
            row("middle", 0.5, 150, 0.96), row("dominated", 0.6, 160, 0.94),
            row("failed", 0.01, 1, 1.0, status="failed"), row("skipped", None, None, None, status="skipped")]
    front = pareto_front(rows, "p50")
    assert [r["candidate"] for r in front] == ["fast-big", "middle", "slow-small"]  # fastest first
    assert dominator(rows[3], rows, "p50")["candidate"] == "middle"
    assert dominator(rows[0], rows, "p50") is None
    assert dominator(rows[4], rows, "p50") is None  # unmeasured rows take no part


def test_unmeasured_accuracy_is_worse_than_any_and_equal_to_another():
    a, b = row("a", 1.0, 100, None), row("b", 1.0, 100, 0.1)
    assert dominates(b, a, "p50") and not dominates(a, b, "p50")
    assert not dominates(a, row("c", 1.0, 100, None), "p50")
    front = pareto_front([row("x", 1.0, 50, None), row("y", 0.5, 100, None), row("z", 1.0, 100, None)], "p50")
    assert sorted(r["candidate"] for r in front) == ["x", "y"]


def test_explanation_names_each_objective_with_figures():
    text = explain_dominance(row("a", 0.412, 71 * 1024, 0.975), row("b", 0.52, 280 * 1024, 0.972), "p50")
    assert text == ("faster (0.412 vs 0.520 ms p50), smaller (71.0 KiB vs 280.0 KiB), "
                    "more accurate (97.50% vs 97.20%)")
    assert explain_dominance(row("a", 0.5, 100, 0.9), row("b", 0.5, 200, 0.9), "p50").startswith("as fast")
