"""The ``edge`` target: one thread pinned to one core in a subprocess, optional memory limit."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from edgeslim.errors import EdgeslimError, TargetError
from edgeslim.recipe import ProfileCfg, TargetCfg, load_recipe
from edgeslim.targets import parse_target

from .conftest import QUICK, assert_full_semantics

USABLE = sorted(os.sched_getaffinity(0))


def test_pinned_to_the_requested_core_with_one_thread(tiny_artifact, tiny_val, quick_cfg):
    core = USABLE[-1]  # not the default, so the option is what put it there
    parent_before = os.sched_getaffinity(0)
    target = parse_target(TargetCfg(name="edge", core=core))
    x, y = tiny_val
    m = target.profile(tiny_artifact, x[:1], quick_cfg, (x, y))
    sem = assert_full_semantics(m, device="edge")
    assert sem["affinity"] == [core]  # every thread of the agent process, not just one
    assert sem["core"] == core and sem["threads"] == 1
    assert sem["measured_in"] == "agent subprocess" and sem["peak_rss_scope"].startswith("agent process")
    assert sem["memory_limit_mb"] is None
    assert m["accuracy"] == 1.0
    assert os.sched_getaffinity(0) == parent_before  # the pipeline's own process is untouched


def test_default_is_one_thread_on_the_lowest_core():
    t = parse_target("edge")
    assert t.core == USABLE[0] and t.opts.threads == 1 and t.opts.memory_limit_mb is None
    assert t.available() == (True, "") and "onnx" in t.formats


@pytest.mark.skipif(len(USABLE) < 2, reason="needs two cores to tell 1 from 2 runtime threads")
def test_more_threads_make_more_os_threads(tiny_artifact, tiny_val):
    x, _ = tiny_val
    cfg = ProfileCfg(**QUICK, accuracy=False)
    one = parse_target(TargetCfg(name="edge")).profile(tiny_artifact, x[:1], cfg, None)
    two = parse_target(TargetCfg(name="edge", threads=2)).profile(tiny_artifact, x[:1], cfg, None)
    assert one["semantics"]["threads"] == 1 and two["semantics"]["threads"] == 2
    assert two["semantics"]["process_threads"] > one["semantics"]["process_threads"]


def test_nonexistent_core_is_one_clear_error(tmp_path):
    bad = max(USABLE) + 1000
    with pytest.raises(TargetError, match=rf"target 'edge' option 'core': CPU core {bad} does not exist "
                                          r"on this machine \(usable cores: "):
        parse_target(TargetCfg(name="edge", core=bad))
    # ...and a recipe naming it fails when loaded, before any stage runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"targets": ["cpu", {"name": "edge", "core": bad}]}))
    with pytest.raises(EdgeslimError, match=f"CPU core {bad} does not exist") as err:
        load_recipe(recipe, [])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("entry, key", [({"name": "edge", "core": -1}, "core"),
                                        ({"name": "edge", "threads": 0}, "threads"),
                                        ({"name": "edge", "memory_limit_mb": 1}, "memory_limit_mb")])
def test_bad_option_values_name_the_option(entry, key):
    with pytest.raises(TargetError, match=f"target 'edge' option '{key}'"):
        parse_target(TargetCfg(**entry))
    with pytest.raises(TargetError, match="unknown option 'cores' for target 'edge'; did you mean 'core'"):
        parse_target(TargetCfg(name="edge", cores=1))


def test_memory_limit_is_applied_and_recorded(tiny_artifact, tiny_val):
    x, _ = tiny_val
    cfg = ProfileCfg(**QUICK, accuracy=False)
    m = parse_target(TargetCfg(name="edge", memory_limit_mb=4096)).profile(tiny_artifact, x[:1], cfg, None)
    assert m["status"] == "ok" and m["semantics"]["memory_limit_mb"] == 4096
    tight = parse_target(TargetCfg(name="edge", memory_limit_mb=48)).profile(tiny_artifact, x[:1], cfg, None)
    assert tight["status"] == "failed" and "memory limit of 48 MB" in tight["reason"]


def test_timeout_kills_the_agent(tiny_artifact, tiny_val):
    x, _ = tiny_val
    cfg = ProfileCfg(warmup=0, warmup_seconds=30, min_iterations=5, max_seconds=30, accuracy=False)
    t0 = time.monotonic()
    m = parse_target(TargetCfg(name="edge", timeout_s=2)).profile(tiny_artifact, x[:1], cfg, None)
    assert time.monotonic() - t0 < 8
    assert m["status"] == "failed" and "timed out after 2 s" in m["reason"]
