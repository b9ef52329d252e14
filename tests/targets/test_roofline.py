"""The roofline's arithmetic, from given ISA flags and clocks (facts, not timings)."""

from __future__ import annotations

import pytest

from edgeslim.report.table import COLUMNS, cells
from edgeslim.targets import roofline
from edgeslim.targets.roofline import (AVX2_UNITS_PER_CORE, AVX512_UNITS_PER_CORE, efficiency, peak,
                                       row_efficiency)

ZEN4 = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]
SPR = ZEN4 + ["avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"]


@pytest.mark.parametrize("isa, precision, per_core, name", [
    (ZEN4, "int8", 64 * AVX512_UNITS_PER_CORE, "AVX-512 VNNI"),
    (ZEN4, "bf16", 32 * AVX512_UNITS_PER_CORE, "AVX-512 BF16"),
    (ZEN4, "f32", 16 * AVX512_UNITS_PER_CORE, "AVX-512 FMA"),
    (ZEN4, "fp32", 16 * AVX512_UNITS_PER_CORE, "AVX-512 FMA"),  # the artifact's name for it too
    (ZEN4, "int8-qat", 64 * AVX512_UNITS_PER_CORE, "AVX-512 VNNI"),  # an ONNX int8-qat row's executed precision
    (["avx2"], "f32", 8 * AVX2_UNITS_PER_CORE, "AVX2 FMA"),
    (["avx2"], "int8", 16 * AVX2_UNITS_PER_CORE, "AVX2 int8"),
    (["avx2", "avx_vnni"], "int8", 32 * AVX2_UNITS_PER_CORE, "AVX-VNNI"),
    (SPR, "int8", 1024, "AMX-INT8"),
    (SPR, "bf16", 512, "AMX-BF16"),
    (SPR, "f16", 32 * AVX512_UNITS_PER_CORE, "AVX-512 FP16"),
])
def test_peak_is_macs_per_cycle_times_cores_times_clock(isa, precision, per_core, name):
    p = peak(precision, cores=2, isa=isa, mhz=3500.0)
    assert (p.macs_per_cycle_per_core, p.instructions, p.cores) == (per_core, name, 2)
    assert p.macs_per_s == pytest.approx(per_core * 2 * 3.5e9)
    assert p.to_json()["macs_per_s"] == pytest.approx(p.macs_per_s) and p.mhz_source == "given"


def test_the_issues_estimate():
    """1.07 GMAC at int8 on 2 Zen 4 cores at 3.5 GHz: 448 GMAC/s, 2.39 ms at the peak."""
    p = peak("int8", cores=2, isa=ZEN4, mhz=3500.0)
    assert p.macs_per_s == pytest.approx(448e9)
    assert efficiency(1.07e9, 1.07e9 / 448e9 * 1e3, p) == pytest.approx(1.0)
    assert efficiency(1.07e9, 4.78, p) == pytest.approx(0.4997, abs=1e-3)


@pytest.mark.parametrize("isa, precision", [(["avx2"], "bf16"), (ZEN4, "f16"), ([], "f32"), (ZEN4, "int4")])
def test_no_peak_without_a_known_rate(isa, precision):
    assert peak(precision, cores=1, isa=isa, mhz=3000.0) is None


def test_missing_inputs_give_no_efficiency():
    p = peak("f32", cores=1, isa=ZEN4, mhz=2000.0)
    assert efficiency(None, 1.0, p) is None and efficiency(1e9, None, p) is None and efficiency(1e9, 1.0, None) is None
    assert efficiency(3.2e7, 1.0, p.to_json()) == pytest.approx(1.0)  # 32 GMAC/s of 32


def test_the_clock_comes_from_cpufreq_else_proc_cpuinfo(monkeypatch, tmp_path):
    real_open = open
    files = {"/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "3000000\n",
             "/proc/cpuinfo": "processor : 0\ncpu MHz\t\t: 2596.136\nprocessor : 1\ncpu MHz\t\t: 2600.000\n"}
    monkeypatch.setattr(roofline.os, "sched_getaffinity", lambda pid: {0}, raising=False)

    def fake_open(path, *a, **k):
        if path in files:
            f = tmp_path / path.replace("/", "_")
            f.write_text(files[path])
            return real_open(f, *a, **k)
        if str(path).startswith(("/sys/", "/proc/")):
            raise OSError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    assert roofline.cpu_mhz() == (3000.0, "sysfs cpufreq scaling_cur_freq")
    del files["/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"]
    mhz, source = roofline.cpu_mhz()
    assert mhz == pytest.approx(2598.068) and source == "/proc/cpuinfo cpu MHz"
    del files["/proc/cpuinfo"]
    assert roofline.cpu_mhz() == (None, "unknown")
    assert peak("f32", cores=1, isa=ZEN4) is None  # no clock, no peak


def test_a_rows_efficiency_and_its_report_column():
    p = peak("int8", cores=2, isa=ZEN4, mhz=2500.0)  # 320 GMAC/s
    row = {"status": "ok", "macs": 1.6e9, "latency_ms": {"p50": 10.0},
           "semantics": {"batch": 1, "roofline": p.to_json()}}
    assert row_efficiency(row) == pytest.approx(0.5)
    col = [name for name, _ in COLUMNS].index("roofline")
    assert cells(row)[col] == "50%"
    assert cells(dict(row, macs=None))[col] == "—" and cells(dict(row, status="failed"))[col] == "—"
    assert row_efficiency(dict(row, semantics={"batch": 1, "roofline": None})) is None


def test_physical_cores_count_smt_siblings_once(monkeypatch, tmp_path):
    topo = {0: ("0", "0"), 1: ("0", "0"), 2: ("0", "1"), 3: ("0", "1")}  # 2 cores, 2 threads each
    real_open = open

    def fake_open(path, *a, **k):
        p = str(path)
        if p.startswith("/sys/devices/system/cpu/cpu") and "/topology/" in p:
            cpu = int(p.split("/cpu")[-1].split("/")[0])
            f = tmp_path / p.replace("/", "_")  # one file per path: two are open at once
            f.write_text(topo[cpu][0 if p.endswith("physical_package_id") else 1])
            return real_open(f, *a, **k)
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    assert roofline.physical_cores([0, 1, 2, 3]) == 2 and roofline.physical_cores([0, 1]) == 1
