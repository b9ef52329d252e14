"""decide(): the feasible best per target, why each other artifact lost, the closest when none fits."""

from edgeslim.select.constraints import Constraints
from edgeslim.select.decide import decide, verdicts
from tests.select.rows import row

C = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, latency_ms={"cpu": 1.0}, percentile="p50",
                max_bytes=100_000, max_accuracy_drop=1.0, retrain="full", finetune_epochs=4)


def rows():
    return [
        row("winner", 0.5, 50_000, 0.945),         # feasible, fastest feasible
        row("big", 0.3, 200_000, 0.95),            # faster but 100 000 bytes over
        row("inaccurate", 0.4, 60_000, 0.92),      # 3 points down: 2 over the budget
        row("slow-ok", 0.8, 80_000, 0.94),         # feasible (drop 1.0), 60% slower, dominated
        row("too-slow", 1.25, 40_000, 0.95),       # 0.25 ms over the latency budget
        row("broken", None, None, None, status="failed", reason="ONNX Runtime: bad graph"),
    ]


def test_picks_the_fastest_feasible_and_explains_every_loser():
    d = decide(rows(), C)["cpu"]
    assert d.chosen == "winner/onnx/int8"
    assert sorted(d.feasible) == ["slow-ok/onnx/int8", "winner/onnx/int8"]
    assert "fastest of 2 artifacts that meet every constraint" in d.rationale
    assert "latency p50 0.500 ms ≤ 1.000 ms" in d.rationale and "next fastest feasible: slow-ok/onnx/int8" in d.rationale
    e = d.explanations
    assert set(e) == {"big/onnx/int8", "inaccurate/onnx/int8", "slow-ok/onnx/int8", "too-slow/onnx/int8",
                      "broken/onnx/int8"}
    assert "misses max_bytes" in e["big/onnx/int8"] and "by 97.7 KiB (+100%)" in e["big/onnx/int8"]
    assert "misses max_accuracy_drop" in e["inaccurate/onnx/int8"] and "by 2.00 points" in e["inaccurate/onnx/int8"]
    assert "misses latency_ms" in e["too-slow/onnx/int8"] and "by 0.250 ms (+25%)" in e["too-slow/onnx/int8"]
    assert "slower than the choice" in e["slow-ok/onnx/int8"] and "(+60%)" in e["slow-ok/onnx/int8"]
    assert "dominated by winner/onnx/int8: faster (0.500 vs 0.800 ms p50)" in e["slow-ok/onnx/int8"]
    assert "on the Pareto front" in d.rationale
    assert e["broken/onnx/int8"].startswith("not measured on cpu: failed") and "bad graph" in e["broken/onnx/int8"]


def test_latency_ties_go_to_the_smaller_then_the_more_accurate():
    rs = rows() + [row("tie-smaller", 0.505, 45_000, 0.944)]  # within 2% of 0.5 ms
    d = decide(rs, C)["cpu"]
    assert d.chosen == "tie-smaller/onnx/int8"
    assert "tied within 2%" in d.rationale and "winner/onnx/int8" in d.rationale
    assert "as fast as the choice (within 2%) but larger" in d.explanations["winner/onnx/int8"]
    rs = rows() + [row("tie-same", 0.495, 50_000, 0.946, prec="fp16")]
    assert decide(rs, C)["cpu"].chosen == "tie-same/onnx/fp16"  # same size, more accurate


def test_nothing_feasible_names_the_closest_and_its_miss():
    c = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, latency_ms={"cpu": 0.1}, max_bytes=100_000,
                    retrain="full")
    d = decide(rows(), c)["cpu"]
    assert d.chosen is None and d.feasible == []
    # relative misses: winner 4.0 (0.5 vs 0.1 ms), big 2.0 + 1.0, too-slow 11.5 ... -> big
    assert d.closest == "big/onnx/int8"
    assert d.rationale.startswith("nothing meets every constraint on cpu")
    assert "closest: big/onnx/int8" in d.rationale and "by 0.200 ms (+200%)" in d.rationale
    assert "by 97.7 KiB (+100%)" in d.rationale


def test_no_budget_makes_every_measured_row_feasible():
    c = Constraints(targets=("cpu", "edge"), kinds={"cpu": "cpu", "edge": "edge"})
    rs = rows() + [row("edge-one", 2.0, 10, 0.5, target="edge")]
    ds = decide(rs, c)
    assert ds["cpu"].chosen == "big/onnx/int8" and "no budget is set for cpu" in ds["cpu"].rationale
    assert ds["edge"].chosen == "edge-one/onnx/int8"


def test_unmeasured_accuracy_misses_an_accuracy_budget():
    c = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, max_accuracy_drop=5.0)
    v = verdicts(row("x", 0.5, 10, None), c)
    assert len(v) == 1 and not v[0].passed and "not measured" in v[0].text()
    d = decide([row("x", 0.5, 10, None)], c)["cpu"]
    assert d.chosen is None and d.closest == "x/onnx/int8"


def test_nothing_measured_says_why():
    d = decide([row("a", None, None, None, status="skipped", reason="tensorrt is not installed")],
               Constraints(targets=("cpu",), kinds={"cpu": "cpu"}))["cpu"]
    assert d.chosen is None and d.closest is None
    assert "nothing was measured on cpu" in d.rationale and "tensorrt is not installed" in d.rationale
