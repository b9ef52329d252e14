"""How busy the machine was while a figure was measured, so a row can say it is ``noisy``.

A latency taken while other processes ran on the same cores is not the artifact's latency:
the committed ladder once showed eager resnet50 at 1,435 ms p50 at load average 8.3, and
170 ms on a quiet machine. So every measurement records, over its own timed window:

- ``other_cpu_share``: the CPU time of every *other* process on the cores this process may
  run on, as a share of those cores' capacity (0 = they were idle, 1 = fully busy). Read
  from the kernel's per-core counters (psutil) minus this process's own CPU time;
- the load average before and after, the CPU frequency governor and current frequency, and
  temperature and thermal-throttling counters where the kernel exposes them;
- ``steal_share``: time the hypervisor gave these cores to other guests (a VM's ``steal``).
  Not every neighbour shows there: on a 2-core cloud VM that looked idle (steal ~0),
  resnet18's p50 moved by up to 15% between back-to-back runs, in slow periods of 10-30 s
  that slowed every process alike; a 1 ms single-thread probe timed around each row did not
  follow them (its own spread was ±33%), so it was not kept;
- ``noisy``: whether ``other_cpu_share`` exceeded the threshold (``ProfileCfg.noisy_share``).

Example::

    probe = NoiseProbe(threshold=0.25)
    ...                                   # the timed loop
    noise = probe.finish()                # {"noisy": False, "other_cpu_share": 0.03, ...}
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

import psutil

_CPU = Path("/sys/devices/system/cpu")


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _busy(times: Any) -> float:
    """Seconds a core (or the sum of cores) spent doing anything but idling or waiting on I/O."""
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: every core
        return list(range(psutil.cpu_count() or 1))


def _loadavg() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_frequency(cores: list[int]) -> dict[str, Any]:
    """Governor and current frequency (MHz) of the first of ``cores``, where readable."""
    out: dict[str, Any] = {"governor": None, "freq_mhz": None, "freq_max_mhz": None}
    core = cores[0] if cores else 0
    base = _CPU / f"cpu{core}" / "cpufreq"
    out["governor"] = _read(base / "scaling_governor")
    cur, top = _read(base / "scaling_cur_freq"), _read(base / "cpuinfo_max_freq")
    if cur and cur.isdigit():
        out["freq_mhz"] = int(cur) / 1000
    if top and top.isdigit():
        out["freq_max_mhz"] = int(top) / 1000
    if out["freq_mhz"] is None:  # no cpufreq in sysfs (VMs, containers): psutil reads /proc/cpuinfo
        try:
            f = psutil.cpu_freq()
            if f is not None and f.current:
                out["freq_mhz"] = round(f.current, 1)
        except (OSError, NotImplementedError, AttributeError):
            pass
    return out


def thermal() -> dict[str, Any]:
    """Hottest sensor (°C) and throttling counters/flags, where the kernel exposes them."""
    out: dict[str, Any] = {"temperature_c": None, "throttle_count": None, "throttled_flags": None}
    try:
        temps = [t.current for ts in psutil.sensors_temperatures().values() for t in ts if t.current]
        if temps:
            out["temperature_c"] = round(max(temps), 1)
    except (AttributeError, OSError):  # not on this platform
        pass
    counts = [_read(p) for p in _CPU.glob("cpu[0-9]*/thermal_throttle/core_throttle_count")]
    counts = [int(c) for c in counts if c and c.isdigit()]
    if counts:
        out["throttle_count"] = sum(counts)
    # Raspberry Pi firmware: a bit field of under-voltage / throttled / capped (0 = none).
    flags = _read(Path("/sys/devices/platform/soc/soc:firmware/get_throttled"))
    if flags is not None:
        out["throttled_flags"] = flags
    return out


def _steal(times: Any) -> float:
    return getattr(times, "steal", 0.0)


class NoiseProbe:
    """Counts other processes' CPU time on this process's cores between start and finish."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.cores = _cores()
        self.me = psutil.Process()
        self.load_before = _loadavg()
        self.thermal_before = thermal()
        self._t0 = time.monotonic()
        self._cores0 = psutil.cpu_times(percpu=True)
        self._mine0 = self._own_cpu()

    def _own_cpu(self) -> float:
        t = self.me.cpu_times()
        return t.user + t.system

    def finish(self) -> dict[str, Any]:
        """The noise record of the window since construction; ``noisy`` against the threshold."""
        wall = time.monotonic() - self._t0
        cores1 = psutil.cpu_times(percpu=True)
        mine = self._own_cpu() - self._mine0
        idx = [c for c in self.cores if c < len(cores1) and c < len(self._cores0)] or list(range(len(cores1)))
        busy = sum(_busy(cores1[c]) - _busy(self._cores0[c]) for c in idx)
        capacity = wall * len(idx)
        # This process may also have run on other cores; what is left is everyone else.
        other = max(busy - mine, 0.0)
        share = min(other / capacity, 1.0) if capacity > 0 else 0.0
        steal = sum(_steal(cores1[c]) - _steal(self._cores0[c]) for c in idx)
        all_busy = sum(_busy(t) for t in cores1) - sum(_busy(t) for t in self._cores0)
        share_all = min(max(all_busy - mine, 0.0) / (wall * len(cores1)), 1.0) if wall > 0 else 0.0
        after = thermal()
        throttled = None
        if after["throttle_count"] is not None and self.thermal_before["throttle_count"] is not None:
            throttled = after["throttle_count"] > self.thermal_before["throttle_count"]
        return {
            "noisy": share > self.threshold,
            "other_cpu_share": round(share, 4),  # on the cores this process may use
            "other_cpu_share_all_cores": round(share_all, 4),
            "steal_share": round(min(max(steal, 0.0) / capacity, 1.0), 4) if capacity > 0 else 0.0,
            "threshold": self.threshold,
            "cores": idx, "window_s": round(wall, 3),
            "load_average_before": self.load_before, "load_average_after": _loadavg(),
            **cpu_frequency(idx), **after, "throttled_during": throttled,
        }
