"""Profiler upgrades: peak RSS, the shared profile_artifact, and complete semantics on cpu rows."""

from __future__ import annotations

import mmap
import os

import pytest

from edgeslim.recipe import ProfileCfg, TargetCfg
from edgeslim.targets import parse_target
from edgeslim.targets.ort_runner import usable_cores
from edgeslim.targets.profiler import peak_rss_mb, process_affinity, profile_artifact, reset_peak_rss

from .conftest import QUICK, assert_full_semantics


def test_peak_rss_sees_a_spike_that_is_gone():
    if not reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak RSS (/proc/self/clear_refs)")
    before = peak_rss_mb()
    # 200 MiB touched, then unmapped. An anonymous mmap, not a NumPy array: malloc may keep
    # a freed block resident (a raised mmap threshold), and then nothing was forgotten.
    spike = mmap.mmap(-1, 200 * 2**20)
    for page in range(0, len(spike), mmap.PAGESIZE):
        spike[page] = 1
    spike.close()
    after = peak_rss_mb()
    assert after - before >= 150
    assert reset_peak_rss() and peak_rss_mb() < after - 150  # a reset forgets it


def test_process_affinity_is_this_process():
    assert process_affinity() == sorted(os.sched_getaffinity(0))


def test_cpu_row_carries_every_semantic(tiny_artifact, tiny_val, quick_cfg):
    x, y = tiny_val
    m = parse_target("cpu").profile(tiny_artifact, x[:1], quick_cfg, (x, y))
    sem = assert_full_semantics(m, device="cpu")
    assert sem["threads"] == usable_cores() and sem["affinity"] == sorted(os.sched_getaffinity(0))
    assert m["accuracy"] == 1.0
    assert sem["peak_rss_scope"].startswith("this process")


def test_validation_loader_runs_after_timing(tiny_artifact, tiny_val):
    """A callable ``val`` is loaded only after the timed runs, and still gives accuracy."""
    x, y = tiny_val
    calls = []

    def val():
        calls.append(1)
        return x, y

    m = profile_artifact(tiny_artifact, x[:1], ProfileCfg(**QUICK), val, threads=1, device="cpu")
    assert calls == [1] and m["accuracy"] == 1.0
    m = profile_artifact(tiny_artifact, x[:1], ProfileCfg(**QUICK, accuracy=False), val, threads=1,
                         device="cpu")
    assert calls == [1] and m["accuracy"] is None  # not even loaded


def test_cpu_threads_option_reaches_the_runtime(tiny_artifact, tiny_val):
    x, _ = tiny_val
    m = parse_target(TargetCfg(name="cpu", threads=1)).profile(tiny_artifact, x[:1],
                                                                ProfileCfg(**QUICK, accuracy=False), None)
    assert m["semantics"]["threads"] == 1
