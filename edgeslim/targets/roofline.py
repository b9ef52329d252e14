"""A compute roofline: the CPU's peak MAC rate for a precision, and how near an artifact comes.

peak = MACs per cycle per core (from the ISA flags of :func:`~edgeslim.targets.base.cpu_info`)
× cores used × clock. The clock is read, not assumed: ``/sys/.../cpufreq/scaling_cur_freq``
where the kernel has cpufreq, else the ``cpu MHz`` of ``/proc/cpuinfo`` (the source is
recorded). Under a hypervisor ``cpu MHz`` is often the nominal clock, below the boost clock
a busy core runs at, so the peak is then low and an efficiency can exceed 1; pass ``mhz``
to use a known clock. Efficiency = MACs / latency / peak: the share of the arithmetic peak
the artifact reaches, ignoring memory bandwidth (a memory-bound layer cannot reach it).

Example::

    p = peak("int8", cores=2)     # AVX-512 VNNI host: 64 MAC/cycle/core
    p.macs_per_s                  # 3.3e11 at 2.6 GHz
    efficiency(1.07e9, 2.4, p)    # MACs of the model, p50 latency in ms -> 1.34
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Optional

from edgeslim.targets.base import cpu_info

# 512-bit SIMD units per core. One: Zen 4 splits each 512-bit FMA/VNNI/BF16 op over its two
# 256-bit pipes (one 512-bit op per cycle), as do client Intel cores with AVX-512. Xeons with
# two 512-bit FMA ports (Skylake-SP Gold 6xxx/Platinum, Ice Lake-SP, Sapphire Rapids) reach
# twice this in f32: there an efficiency may exceed 1.
AVX512_UNITS_PER_CORE = 1
# 256-bit FMA units per core: two on every AVX2 core since Haswell and Zen.
AVX2_UNITS_PER_CORE = 2
# MACs per cycle of one unit, by instruction: a 512-bit FMA does 16 f32 MACs, VDPBF16PS 32
# bf16 MACs, VPDPBUSD (VNNI) 64 int8 MACs, an AVX512-FP16 FMA 32; a 256-bit unit half that.
# AVX2 without VNNI multiplies int8 with VPMADDUBSW + VPMADDWD + VPADDD: 32 MACs in about two
# cycles of one unit, so 16. AMX: one tile unit per core, 1024 int8 / 512 bf16 MACs per cycle.
_RATES: dict[str, list[tuple[str, str, int, int]]] = {  # precision -> (flag, name, MAC/unit, units)
    "int8": [("amx_int8", "AMX-INT8", 1024, 1), ("avx512_vnni", "AVX-512 VNNI", 64, AVX512_UNITS_PER_CORE),
             ("avx_vnni", "AVX-VNNI", 32, AVX2_UNITS_PER_CORE), ("avx2", "AVX2 int8", 16, AVX2_UNITS_PER_CORE)],
    "bf16": [("amx_bf16", "AMX-BF16", 512, 1), ("avx512_bf16", "AVX-512 BF16", 32, AVX512_UNITS_PER_CORE)],
    "f16": [("amx_fp16", "AMX-FP16", 512, 1), ("avx512_fp16", "AVX-512 FP16", 32, AVX512_UNITS_PER_CORE)],
    "f32": [("avx512f", "AVX-512 FMA", 16, AVX512_UNITS_PER_CORE), ("avx2", "AVX2 FMA", 8, AVX2_UNITS_PER_CORE)],
}
_NAMES = {"fp32": "f32", "fp16": "f16", "i8": "int8", "u8": "int8", "int8-qat": "int8"}  # ORT rows say int8-qat


@dataclass(frozen=True)
class Peak:
    """A peak MAC rate and what it was computed from."""

    precision: str
    instructions: str  # the instruction set the rate assumes, e.g. "AVX-512 VNNI"
    macs_per_cycle_per_core: int
    cores: int
    mhz: float
    mhz_source: str

    @property
    def macs_per_s(self) -> float:
        return self.macs_per_cycle_per_core * self.cores * self.mhz * 1e6

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "macs_per_s": self.macs_per_s}


def cpu_mhz() -> tuple[Optional[float], str]:
    """The current clock of the CPUs this process may use in MHz, and where it was read."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    khz = []
    for c in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq") as f:
                khz.append(float(f.read().strip()))
        except (OSError, ValueError):
            pass
    if khz:
        return sum(khz) / len(khz) / 1e3, "sysfs cpufreq scaling_cur_freq"
    mhz = []
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(ln.split(":", 1)[1]) for ln in f if ln.startswith("cpu MHz")]
    except (OSError, ValueError):
        pass
    return (sum(mhz) / len(mhz), "/proc/cpuinfo cpu MHz") if mhz else (None, "unknown")


def physical_cores(cpus: Optional[list[int]] = None) -> int:
    """Distinct physical cores among ``cpus`` (default: this process's), SMT siblings counted once."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    seen = set()
    for c in cpus:
        try:
            base = f"/sys/devices/system/cpu/cpu{c}/topology"
            with open(f"{base}/physical_package_id") as a, open(f"{base}/core_id") as b:
                seen.add((a.read().strip(), b.read().strip()))
        except OSError:
            seen.add(("cpu", str(c)))  # no topology: count it as its own core
    return max(len(seen), 1)


def peak(precision: str, *, cores: int, isa: Optional[list[str]] = None,
         mhz: Optional[float] = None, mhz_source: str = "given") -> Optional[Peak]:
    """The peak MAC rate of ``cores`` cores at ``precision`` (int8, bf16, f16, f32); None where
    the ISA flags name no SIMD rate for it or the clock is unknown."""
    precision = _NAMES.get(precision, precision)
    flags = set(cpu_info()["isa"] if isa is None else isa)
    if mhz is None:
        mhz, mhz_source = cpu_mhz()
    if not mhz or cores < 1:
        return None
    for flag, name, rate, units in _RATES.get(precision, []):
        if flag in flags:
            return Peak(precision, name, rate * units, cores, float(mhz), mhz_source)
    return None


def efficiency(macs: Optional[float], latency_ms: Optional[float], p: Optional[Peak | dict]) -> Optional[float]:
    """MACs per second achieved over the peak; None when any input is missing."""
    rate = p.macs_per_s if isinstance(p, Peak) else (p or {}).get("macs_per_s")
    if not macs or not latency_ms or not rate:
        return None
    return macs / (latency_ms / 1e3) / rate


def row_efficiency(row: dict[str, Any]) -> Optional[float]:
    """A results row's efficiency at batch 1: its ``macs`` over its p50 over its
    ``semantics.roofline`` peak (None where the row has no MACs or was not measured)."""
    sem = row.get("semantics") or {}
    batch = sem.get("batch") or 1
    p50 = (row.get("latency_ms") or {}).get("p50")
    macs = row.get("macs")
    return efficiency(macs * batch if macs else None, p50, sem.get("roofline"))


def roofline_semantics(precision_executed: str, threads: Optional[int],
                       affinity: Optional[list[int]]) -> Optional[dict[str, Any]]:
    """The peak a row's semantics records: its executed precision, on the physical cores its
    threads can use (``min(threads, cores in the affinity)``)."""
    cores = physical_cores(affinity)
    p = peak(precision_executed, cores=min(threads or cores, cores))
    return p.to_json() if p else None
