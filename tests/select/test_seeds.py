"""Seeds and ties: rows of several seeds folded into mean ± sd, overlapping intervals are a
tie in the Pareto front and in the decision's words, and the smallest resolvable difference."""

import math

import pytest

from edgeslim.pipeline.stages.baseline import BaselineStage
from edgeslim.pipeline.stages.compress import CompressStage
from edgeslim.pipeline.stages.control import ControlStage
from edgeslim.pipeline.stages.finetune import FinetuneStage
from edgeslim.pipeline.stages.profile import ProfileStage
from edgeslim.recipe import load_recipe
from edgeslim.select.constraints import Constraints
from edgeslim.select.decide import decide
from edgeslim.select.pareto import dominates, pareto_front
from edgeslim.select.seeds import accuracy_order, fold_seeds, resolution, tied
from tests.select.rows import row, seeded

C = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, max_accuracy_drop=5.0)


def test_fold_keeps_the_first_seeds_artifact_and_carries_mean_spread_and_n():
    rows = seeded("l1-50", 0.5, 50_000, [0.909, 0.912, 0.915]) + [row("ptq", 0.9, 200_000, 0.95) | {"seed": 0}]
    folded = {r["candidate"]: r for r in fold_seeds(rows, repeated={"l1-50"})}
    assert len(folded) == 2
    l1 = folded["l1-50"]
    assert l1["accuracy"] == pytest.approx(0.912) and l1["accuracy_sd"] == pytest.approx(0.003)
    assert (l1["accuracy_min"], l1["accuracy_max"], l1["accuracy_n"]) == (0.909, 0.915, 3)
    assert l1["seeds"] == [0, 1, 2] and l1["accuracy_by_seed"] == [0.909, 0.912, 0.915]
    # latency, size and files are the first seed's: the artifact a release ships
    assert l1["measured_seed"] == 0 and l1["latency_ms"]["p50"] == 0.5
    assert l1["artifact"] == "candidates/l1-50-seed0/model.onnx" and l1["artifact_accuracy"] == 0.909
    assert not l1["seed_independent"]
    ptq = folded["ptq"]  # ran once: its result does not depend on the fine-tune seed
    assert ptq["accuracy_n"] == 1 and ptq["accuracy_sd"] == 0.0 and ptq["seed_independent"]


def test_a_failed_seed_is_left_out_and_one_seed_left_has_no_spread():
    rows = seeded("a", 0.5, 10, [0.9, 0.8, 0.94])
    rows[1].update(status="failed", accuracy=None)
    a = fold_seeds(rows, repeated={"a"})[0]
    assert a["accuracy_n"] == 2 and a["seeds"] == [0, 2] and a["accuracy"] == pytest.approx(0.92)
    rows = seeded("b", 0.5, 10, [0.9, 0.8])
    rows[1].update(status="failed")
    b = fold_seeds(rows, repeated={"b"})[0]
    assert b["accuracy_n"] == 1 and b["accuracy_sd"] is None  # a repeated candidate with one run: no interval


def test_overlapping_intervals_tie_and_disjoint_ones_order():
    a, b, c = (fold_seeds(seeded(n, 0.5, 10, accs), repeated={n})[0] for n, accs in
               (("a", [0.909, 0.912, 0.915]), ("b", [0.906, 0.910, 0.914]), ("c", [0.930, 0.935, 0.940])))
    assert tied(a, b) and accuracy_order(a, b) == 0 and accuracy_order(b, a) == 0
    assert not tied(a, c) and accuracy_order(c, a) == 1 and accuracy_order(a, c) == -1
    plain = [row("x", 0.5, 10, 0.912), row("y", 0.5, 10, 0.910)]  # --seeds 1: plain numbers, no ties
    assert not tied(*plain) and accuracy_order(*plain) == 1


def test_a_faster_row_tied_on_accuracy_dominates():
    fast = fold_seeds(seeded("fast", 0.4, 10, [0.906, 0.910, 0.914]), repeated={"fast"})[0]
    slow = fold_seeds(seeded("slow", 0.5, 10, [0.909, 0.912, 0.915]), repeated={"slow"})[0]
    assert dominates(fast, slow, "p50") and [r["candidate"] for r in pareto_front([fast, slow], "p50")] == ["fast"]
    # with one seed the same means are ranked: the slower, more accurate row stays on the front
    one = [row("fast", 0.4, 10, 0.910), row("slow", 0.5, 10, 0.912)]
    assert not dominates(*one, "p50") and len(pareto_front(one, "p50")) == 2


def _decide(*groups):
    names = {g[0]["candidate"] for g in groups if g[0].get("seed") is not None and len(g) > 1}
    rows = fold_seeds([r for g in groups for r in g], repeated=names)
    return decide(rows, C)["cpu"]


def test_the_decision_says_tied_instead_of_ranking_noise():
    d = _decide(seeded("l1-50", 0.5, 50_000, [0.909, 0.912, 0.915]),
                seeded("l1-50-kd", 0.6, 50_000, [0.906, 0.910, 0.914]))
    assert d.chosen == "l1-50/onnx/int8"
    assert ("l1-50/onnx/int8 and l1-50-kd/onnx/int8 are tied on accuracy: 91.20 ± 0.30 vs 91.00 ± 0.40% "
            "over 3 seeds") in d.rationale
    assert "accuracy 91.20 ± 0.30% over 3 seeds" in d.rationale
    e = d.explanations["l1-50-kd/onnx/int8"]
    assert "slower than the choice" in e and "tied with the choice on accuracy (91.00 ± 0.40 vs 91.20 ± 0.30%" in e
    assert "dominated by l1-50/onnx/int8" in e and "tied on accuracy" in e


def test_the_decision_names_a_real_accuracy_gap():
    d = _decide(seeded("l1-50", 0.5, 50_000, [0.909, 0.912, 0.915]),
                seeded("l1-30", 0.6, 60_000, [0.930, 0.935, 0.940]))
    assert d.chosen == "l1-50/onnx/int8" and "tied on accuracy" not in d.rationale
    assert "l1-30/onnx/int8 is more accurate beyond the seed spread (93.50 ± 0.50 vs 91.20 ± 0.30%" in d.rationale
    assert "more accurate than the choice beyond the seed spread" in d.explanations["l1-30/onnx/int8"]


def test_a_latency_and_size_tie_settled_by_noise_says_so():
    d = _decide(seeded("a", 0.500, 50_000, [0.909, 0.912, 0.915]), seeded("b", 0.505, 50_000, [0.906, 0.910, 0.914]))
    assert d.chosen == "a/onnx/int8"  # the higher mean still picks, but the words do not claim it is better
    assert "tied within 2%" in d.rationale and "the accuracies are tied within the seed spread" in d.rationale
    assert "tied with it on accuracy" in d.explanations["b/onnx/int8"]


def test_one_seed_decides_and_explains_as_before():
    d = decide([row("a", 0.5, 10, 0.91), row("b", 0.6, 10, 0.93)], C)["cpu"]
    assert d.chosen == "a/onnx/int8" and "accuracy 91.00%, drop" in d.rationale
    assert "tied" not in d.rationale and "seed" not in d.rationale + d.explanations["b/onnx/int8"]


def test_resolution_from_the_validation_size_and_the_seed_spread():
    rows = fold_seeds(seeded("l1-50", 0.5, 10, [0.909, 0.912, 0.915], ref=0.912)
                      + seeded("kd", 0.6, 10, [0.906, 0.910, 0.914], ref=0.912), repeated={"l1-50", "kd"})
    for r in rows:
        r["label"] = f"{r['candidate']}/onnx/int8"
    res = resolution(rows, val_samples=10_000, seeds=3)
    val = 200 * math.sqrt(0.912 * 0.088 / 10_000)  # 2 standard errors, in points: 0.567
    assert res.val_points == pytest.approx(val) and res.seed_sd_points == pytest.approx(0.4)
    assert res.points == pytest.approx(math.hypot(val, 0.8))
    text = res.text()
    assert text.startswith(f"Smallest accuracy difference this run can resolve: {math.hypot(val, 0.8):.2f} points")
    assert "10,000 images at the baseline's 91.20%" in text and f"±{val:.2f} points" in text
    assert "0.40 points sd (kd/onnx/int8)" in text
    one = resolution([row("a", 0.5, 10, 0.9, ref=0.912)], val_samples=10_000, seeds=1)
    assert one.points == pytest.approx(val) and "seeds: 1 run per candidate" in one.text()
    assert resolution([row("a", 0.5, 10, None, ref=None)], val_samples=None, seeds=1).points is None


def test_the_finetune_seed_keys_only_the_training_after_the_baseline():
    """What ``--seeds`` varies: a stage whose slice holds ``finetune.seed`` reruns per seed, every
    other one is shared, so the baseline and a post-training candidate run once."""
    def keys(method):
        a, b = (load_recipe(None, [f"compress.method={method}", *extra]) for extra in ([], ["finetune.seed=1"]))
        return {type(s).__name__: s.slice(a).key() == s.slice(b).key()
                for s in (BaselineStage(), CompressStage(), FinetuneStage(), ControlStage(), ProfileStage())}

    assert keys("l1") == {"BaselineStage": True, "CompressStage": True, "FinetuneStage": False,
                          "ControlStage": False, "ProfileStage": True}
    assert keys("snip")["CompressStage"] is False  # pruning at init trains inside compress: it reruns
    assert load_recipe(None, ["finetune.seed=1"]).finetune.seed_or(0) == 1
