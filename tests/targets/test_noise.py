"""Noise is measured and stated: a row timed under a competing CPU load is marked noisy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edgeslim.recipe import ProfileCfg
from edgeslim.targets.cpu import CpuTarget, CpuOptions
from edgeslim.targets.noise import NoiseProbe
from tests.targets.conftest import QUICK

BUSY = "import time\nend = time.time() + 20\nwhile time.time() < end: pass\n"


@pytest.fixture
def competing_load():
    """A busy process on every core of this machine, for the duration of the test."""
    n = os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]
    time.sleep(0.3)  # let them start spinning
    yield
    for p in procs:
        p.kill()
        p.wait()


def test_a_row_under_competing_load_is_noisy(competing_load, tiny_artifact):
    x = __import__("numpy").zeros((1, 3, 16, 16), "float32")
    target = CpuTarget("cpu", CpuOptions(threads=1))
    low = target.profile(tiny_artifact, x, ProfileCfg(**QUICK, noisy_share=0.2, accuracy=False), None)
    assert low["status"] == "ok"
    assert low["noise"]["noisy"] is True and low["noise"]["other_cpu_share"] > 0.2
    # The same measurement against the highest threshold: a share cannot pass 100%.
    high = target.profile(tiny_artifact, x, ProfileCfg(**QUICK, noisy_share=1.0, accuracy=False), None)
    assert high["noise"]["noisy"] is False and high["noise"]["threshold"] == 1.0


def test_probe_counts_others_not_itself():
    probe = NoiseProbe(threshold=1.0)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # this process busy: not "other" load
        pass
    noise = probe.finish()
    assert 0 <= noise["other_cpu_share"] <= 1 and noise["window_s"] >= 0.3
    assert set(noise) >= {"load_average_before", "load_average_after", "governor", "freq_mhz",
                          "temperature_c", "throttle_count", "throttled_flags"}


def test_the_record_has_the_steal_share():
    noise = NoiseProbe(threshold=1.0).finish()
    assert 0 <= noise["steal_share"] <= 1
