"""Constraints: parsing, epoch budgets, and every bad input as one RecipeError line naming it."""

import subprocess
import sys

import pytest

from edgeslim.errors import RecipeError
from edgeslim.recipe import load_recipe
from edgeslim.select.constraints import parse_latency, resolve_constraints
from edgeslim.select.plan import plan_inputs


def test_latency_for_every_target_or_per_target():
    _, c = plan_inputs(None, [], latency_ms=["5"])
    assert c.targets == ("cpu", "edge") and c.latency_ms == {"cpu": 5.0, "edge": 5.0}
    _, c = plan_inputs(None, [], latency_ms=["edge=2.5"], percentile="p90")
    assert c.latency_ms == {"edge": 2.5} and c.percentile == "p90" and c.latency_bound("edge")
    assert parse_latency(["cpu=1,edge=2"]) == {"cpu": 1.0, "edge": 2.0}
    assert c.kinds == {"cpu": "cpu", "edge": "edge"}


def test_recipe_constraints_and_cli_override():
    r = load_recipe(None, ["targets=[cpu, edge]", "constraints.latency_ms={cpu: 3}", "constraints.max_bytes=1000"])
    r2, c = resolve_constraints(r, max_bytes=2000)
    assert c.latency_ms == {"cpu": 3.0} and c.max_bytes == 2000
    assert r2.constraints.max_bytes == 2000  # the resolved recipe records the option


def test_retrain_epoch_budgets():
    r = load_recipe(None, ["finetune.epochs=6"])
    assert [resolve_constraints(r, retrain=x)[1].finetune_epochs for x in ("none", "short", "full")] == [0, 2, 6]
    r = load_recipe(None, ["finetune.epochs=1"])
    assert resolve_constraints(r, retrain="short")[1].finetune_epochs == 1  # never more than full


@pytest.mark.parametrize("opts, message", [
    (dict(latency_ms=["-1"]), "constraints.latency_ms must be > 0"),
    (dict(latency_ms=["cpu=0"]), "constraints.latency_ms must be > 0"),
    (dict(latency_ms=["cpu=fast"]), "--latency-ms cpu: 'fast' is not a number"),
    (dict(latency_ms=["gpux=3"]), "'gpux', an unknown target"),
    (dict(latency_ms=["gpu=3"]), "'gpu', which is not among the targets of this plan (cpu, edge)"),
    (dict(max_accuracy_drop=-0.5), "max_accuracy_drop must be >= 0"),
    (dict(max_accuracy_drop=150.0), "a drop above 100 is impossible"),
    (dict(max_bytes=0), "max_bytes"),
    (dict(max_bytes=-10), "max_bytes"),
    (dict(retrain="sometimes"), "constraints.retrain"),
    (dict(percentile="p95"), "constraints.latency_percentile"),
    (dict(targets=["cpuu"]), "unknown target 'cpuu'; did you mean 'cpu'"),
])
def test_bad_constraints_are_one_line(opts, message):
    with pytest.raises(RecipeError) as e:
        plan_inputs(None, [], **opts)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_target_in_a_recipe_latency_mapping_gets_a_suggestion():
    with pytest.raises(RecipeError, match=r"names 'edgee', an unknown target .*did you mean 'edge'"):
        plan_inputs(None, ["constraints.latency_ms={edgee: 3}"])


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeslim", *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=300)
    r = run("plan", "--out", str(tmp_path / "p"), "--max-accuracy-drop", "-1")
    assert r.returncode == 2 and "max_accuracy_drop must be >= 0" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("release", "--out", str(tmp_path / "none"), "--dist", str(tmp_path / "d"))
    assert r.returncode == 2 and "no plan in" in r.stderr and "edgeslim plan" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()


def test_kinds_are_what_the_targets_declare():
    r = load_recipe(None, ["targets=[cpu, gpu, 'ssh://pi@10.0.0.7', {name: 'ssh://u@box', kind: gpu}]"])
    _, c = resolve_constraints(r)
    assert c.kinds == {"cpu": "cpu", "gpu": "gpu", "ssh://pi@10.0.0.7": "edge", "ssh://u@box": "gpu"}


@pytest.mark.parametrize("seeds", ["0", "-2"])
def test_cli_seeds_below_one_is_one_error_line(tmp_path, seeds):
    r = subprocess.run([sys.executable, "-m", "edgeslim", "plan", "--out", str(tmp_path / "p"), "--seeds", seeds],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"error: constraints.seeds (--seeds) must be >= 1 run per candidate, got {seeds}"]
    assert not (tmp_path / "p").exists()


def test_seeds_from_the_recipe_or_the_option():
    assert plan_inputs(None, [])[1].seeds == 1
    assert plan_inputs(None, ["constraints.seeds=3"])[1].seeds == 3
    assert plan_inputs(None, ["constraints.seeds=3"], seeds=2)[1].seeds == 2  # the option wins
    with pytest.raises(RecipeError, match=r"^constraints.seeds \(--seeds\) must be >= 1 run per candidate, got 0$"):
        plan_inputs(None, ["constraints.seeds=0"])
