"""The rule-based prior: different constraints, different candidates; retrain=none never trains."""

import pytest

from edgeslim.compress import METHODS
from edgeslim.exporters import EXPORTERS
from edgeslim.select import prior
from edgeslim.select.plan import candidate_recipe, plan_inputs
from edgeslim.select.prior import candidate_notes, propose, trains

SETS = {
    "tight-latency": dict(latency_ms=["1.5"]),
    "tight-size": dict(max_bytes=150_000),
    "no-retraining": dict(retrain="none"),
}


def proposals(targets=("cpu", "edge"), **opts):
    recipe, c = plan_inputs(None, [], targets=list(targets), **opts)
    return recipe, propose(recipe, c)


def test_three_contrasting_constraint_sets_give_different_candidates():
    names = {k: [c.name for c in proposals(**v)[1]] for k, v in SETS.items()}
    assert len({tuple(v) for v in names.values()}) == 3, names
    assert all(v[0] == "ptq" for v in names.values())  # post-training reference, always first
    lat, size, none = names["tight-latency"], names["tight-size"], names["no-retraining"]
    assert "latency-50" in lat and "l1-50" in lat  # CPU and latency-bound: structured + INT8
    assert any(n.endswith("-kd") for n in size) and not any(n.endswith("-kd") for n in none)
    assert all(n == "ptq" or "oneshot" in n or METHODS.get(n).family == "factorize" for n in none)


def test_latency_bound_candidates_are_structured_plus_int8():
    _, cands = proposals(targets=("cpu",), **SETS["tight-latency"])
    for c in [c for c in cands[1:] if c.rule != "qat"]:  # qat: the same pruning, INT8 by training
        assert METHODS.get(c.delta["compress.method"]).family == "structured"
        assert c.delta["quantize.precisions"] == ["int8"] and c.rule == "cpu-latency"


def test_size_bound_candidates_distill_into_the_pruned_model():
    recipe, cands = proposals(targets=("cpu",), **SETS["tight-size"])
    kd = [c for c in cands if c.rule == "edge-size"]
    assert len(kd) == 2
    for c in kd:
        r = candidate_recipe(recipe, c)
        assert r.finetune.distill is not None and r.finetune.distill.teacher == "baseline"
        assert r.quantize.precisions == ["int8"] and r.finetune.epochs == recipe.finetune.epochs  # full retraining


def test_retrain_none_proposes_no_training_at_all():
    recipe, cands = proposals(**SETS["no-retraining"])
    assert len(cands) >= 3
    assert cands[0].variant == "baseline" and cands[0].precisions == ["fp32", "fp16", "int8"]
    for c in cands[1:]:
        r = candidate_recipe(recipe, c)
        assert r.finetune.epochs == 0 and r.finetune.distill is None, c.name
        assert not trains(r), c.name
        assert not METHODS.get(r.compress.method).trains
    # the same rules with training allowed would train
    recipe, cands = proposals(**SETS["tight-size"])
    assert all(trains(candidate_recipe(recipe, c)) for c in cands if c.variant == "compressed")


def test_short_retraining_is_a_few_epochs():
    recipe, cands = proposals(retrain="short", max_bytes=150_000)
    assert {candidate_recipe(recipe, c).finetune.epochs for c in cands if c.variant == "compressed"} == {2}


def test_gpu_aligns_channels_and_asks_for_fp16_int8_in_tensorrt():
    recipe, cands = proposals(targets=("gpu",))
    gpu = [c for c in cands if c.rule == "gpu"]
    assert gpu
    for c in gpu:
        assert c.delta["compress.round_to"] == prior.GPU_ALIGN
        assert c.delta["quantize.precisions"] == ["fp16", "int8"]
        assert ("tensorrt" in c.delta["export.formats"]) == ("tensorrt" in EXPORTERS)
        candidate_recipe(recipe, c)  # a valid recipe


def test_a_method_that_is_not_registered_is_listed_as_skipped(monkeypatch):
    monkeypatch.setattr(prior, "FACTORIZE", ("no-such-factorization",))
    _, cands = proposals(**SETS["no-retraining"])
    skipped = [c for c in cands if c.skipped]
    assert [c.name for c in skipped] == ["no-such-factorization"]
    assert "'no-such-factorization' is not registered" in skipped[0].skipped


@pytest.mark.parametrize("opts", list(SETS.values()) + [{}])
def test_every_candidate_is_a_valid_recipe(opts):
    recipe, cands = proposals(**opts)
    for c in cands:
        r = candidate_recipe(recipe, c)
        assert r.name == f"default-{c.name}"
        assert set(r.quantize.precisions) <= {"fp32", "fp16", "bf16", "int8", "int8-qat"}


@pytest.mark.parametrize("isa, aligned", [(["avx2"], []),
                                          (["avx2", "avx512f", "avx512_vnni"], ["l1-50-a16", "latency-50"])])
def test_an_avx512_host_adds_a_candidate_aligned_to_its_channel_block(monkeypatch, isa, aligned):
    # the prior reads this host's ISA through the name it imported
    monkeypatch.setattr(prior, "cpu_info", lambda: {"cpu": "test", "isa": isa, "machine": "x86_64"})
    recipe, cands = proposals(targets=("cpu",), **SETS["tight-latency"])
    assert [c.name for c in cands if c.delta.get("compress.round_to")] == aligned
    for c in cands:
        if c.name in aligned:
            r = candidate_recipe(recipe, c)
            assert r.compress.round_to == 16 and r.compress.ratio == 0.5 and r.quantize.precisions == ["int8"]
            assert r.compress.method == ("latency" if c.name == "latency-50" else "l1")
            assert "multiples of 16" in c.reason and c.rule == "cpu-latency"
    by_name = {c.name: candidate_recipe(recipe, c) for c in cands}
    assert by_name["latency-50"].compress.round_to == (16 if aligned else 8)  # the recipe's default otherwise
    assert ("l1-50-a16" in by_name) == bool(aligned) and by_name["l1-50"].compress.round_to == 8


def test_a_size_budget_without_a_latency_budget_says_why_only_distilled_candidates_are_proposed():
    recipe, c = plan_inputs(None, [], targets=["cpu", "edge"], retrain="short", max_bytes=150_000)
    assert [x.rule for x in propose(recipe, c)] == ["post-training", "edge-size", "edge-size", "qat"]
    (note,) = candidate_notes(recipe, c)
    assert note.startswith("max_bytes is set and cpu has no latency budget, so cpu is treated as size-bound")
    assert "`--latency-ms cpu=MS` would also propose l1-30, l1-50, l1-70" in note and "(cpu-latency)" in note
    assert note.endswith("`--retrain full` would not (it sets fine-tune epochs, not which rules apply)")
    # the hint is true: under that budget the prior does propose them, and keeps the distilled ones
    _, wider = plan_inputs(None, [], targets=["cpu", "edge"], retrain="short", max_bytes=150_000,
                           latency_ms=["cpu=2"])
    names = [x.name for x in propose(recipe, wider)]
    assert {"l1-30", "l1-50", "l1-70", "latency-50", "l1-50-kd", "l1-70-kd"} <= set(names)


@pytest.mark.parametrize("opts, hint", [
    (dict(retrain="none"), "`--retrain short` would propose l1-30, l1-50, l1-70"),
    (dict(targets=("gpu",)), "`--max-bytes BYTES` would also propose l1-50-kd, l1-70-kd (edge-size)"),
])
def test_a_family_left_out_by_a_constraint_is_named_with_the_option_that_brings_it_in(opts, hint):
    opts = {"targets": ("cpu", "edge"), **opts}
    recipe, c = plan_inputs(None, [], targets=list(opts.pop("targets")), **opts)
    notes = candidate_notes(recipe, c)
    assert len(notes) == 1 and hint in notes[0], notes


def test_a_broad_candidate_set_has_no_notes():
    recipe, c = plan_inputs(None, [], targets=["cpu", "edge"])
    assert {x.rule for x in propose(recipe, c)} == {"post-training", "cpu-latency", "edge-size", "qat"}
    assert candidate_notes(recipe, c) == []


def test_no_function_of_the_prior_exceeds_sixty_lines():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(prior))
    long = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60}
    assert long == {}


@pytest.mark.parametrize("has_bf16", [True, False])
def test_bf16_is_proposed_on_cpu_targets_only_where_a_format_executes_it(monkeypatch, has_bf16):
    from edgeslim.quantizers import openvino_float

    # the host's capability probe, both sides (openvino-bf16's available() asks it)
    monkeypatch.setattr(openvino_float, "supports", lambda p, device="CPU": p == "f32" or (has_bf16 and p == "bf16"))
    both = ["export.formats=[onnx, openvino]"]
    recipe, c = plan_inputs(None, both, targets=["cpu", "edge"], latency_ms=["1.5"], max_bytes=150_000)
    cands = {x.name: x for x in propose(recipe, c)}
    bf16 = ["bf16"] if has_bf16 else []
    assert cands["ptq"].precisions == ["fp32", "fp16", "int8", *bf16]
    assert ("bf16 execution" in cands["ptq"].reason) == has_bf16
    for x in cands.values():
        if x.rule == "cpu-latency":
            assert x.precisions == ["int8", *bf16] and ("bf16" in x.reason) == has_bf16
        elif x.rule == "edge-size":
            assert x.precisions == ["int8"]  # bf16 keeps the FP32 weights: nothing for a size budget
        assert set(candidate_recipe(recipe, x).quantize.precisions) == set(x.precisions)
    # ONNX alone cannot execute bf16 here (onnx-bf16 is registered only to say so): not proposed
    recipe, c = plan_inputs(None, ["export.formats=[onnx]"], targets=["cpu"], latency_ms=["1.5"])
    assert all("bf16" not in x.precisions for x in propose(recipe, c))
    # nor on a GPU-only plan
    recipe, c = plan_inputs(None, both, targets=["gpu"])
    assert all("bf16" not in x.precisions for x in propose(recipe, c))


@pytest.mark.parametrize("budget, retrain, proposed", [(1.0, "full", True), (0.5, "short", True),
                                                       (1.0, "none", False), (100.0, "full", False)])
def test_qat_is_proposed_under_a_binding_accuracy_budget_when_retraining_is_allowed(budget, retrain, proposed):
    recipe, cands = proposals(targets=("cpu",), max_accuracy_drop=budget, retrain=retrain)
    qat = [c for c in cands if c.rule == "qat"]
    assert bool(qat) == proposed, [c.name for c in cands]
    if proposed:
        r = candidate_recipe(recipe, qat[0])
        assert r.quantize.precisions == ["int8-qat"] and r.compress.ratio == 0.5 and trains(r)
        # it differs from the plain pruned candidate only in how INT8 is made: stages up to
        # fine-tuning are shared by key
        plain = next(c for c in cands if c.name == qat[0].name.removesuffix("-qat"))
        assert {k: v for k, v in qat[0].delta.items() if k != "quantize.precisions"} == \
               {k: v for k, v in plain.delta.items() if k != "quantize.precisions"}
