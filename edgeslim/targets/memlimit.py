"""A resident-memory limit for the profiling agent: cgroup v2 ``memory.max``, else RSS polling.

The ``edge`` target's ``memory_limit_mb`` models a device's RAM. An address-space limit
(RLIMIT_AS) does not: runtimes reserve far more address space than they touch (OpenVINO's
thread-local arenas failed under 512 MB while the process's resident peak was ~301 MB). So:

1. where this process sits in a cgroup v2 hierarchy whose memory controller it may use, the
   agent moves itself into a child cgroup with ``memory.max`` (and no swap); above it the
   kernel's OOM killer ends the agent, and the host reports that;
2. elsewhere (cgroup v1, no delegation), a watchdog thread reads the process's peak
   resident set (VmHWM) every ``POLL_S`` and, above the limit, answers ``failed`` with the
   figures and exits. The peak, not the current RSS, so a spike between polls still counts.

The row's ``semantics.memory_limit_mechanism`` says which one ran.

Example::

    mechanism = join_memory_cgroup(512 * 2**20)   # "cgroup v2 memory.max" or None
    if mechanism is None:
        RssWatchdog(512, on_exceed=answer_and_exit).start()
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "edgeslim-agent-"
POLL_S = 0.05  # 20 reads a second of /proc/self/status: ~0.05% of one core
CGROUP = "cgroup v2 memory.max"
POLLING = f"RSS polling every {int(POLL_S * 1000)} ms, no usable cgroup v2"


def own_cgroup() -> Optional[Path]:
    """This process's cgroup v2 folder, or None on cgroup v1 / non-Linux."""
    if not (CGROUP_ROOT / "cgroup.controllers").is_file():
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return CGROUP_ROOT / line[3:].strip().lstrip("/")
    except OSError:
        pass
    return None


def join_memory_cgroup(limit_bytes: int) -> Optional[str]:
    """Move this process into a new child cgroup limited to ``limit_bytes`` resident memory.

    Returns the mechanism's name, or None where it is not possible here (nothing changed).
    """
    base = own_cgroup()
    if base is None:
        return None
    child = base / f"{PREFIX}{os.getpid()}"
    try:
        controllers = (base / "cgroup.subtree_control").read_text().split()
        if "memory" not in controllers:
            return None
        child.mkdir()
        (child / "memory.max").write_text(str(int(limit_bytes)))
        try:  # without it the limit would push pages to swap instead of failing
            (child / "memory.swap.max").write_text("0")
        except OSError:
            pass
        (child / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        try:
            child.rmdir()
        except OSError:
            pass
        return None
    return CGROUP


def leave_memory_cgroup() -> None:
    """Move back to the parent cgroup and remove ours (at the agent's normal end)."""
    base = own_cgroup()
    if base is None or not base.name.startswith(PREFIX):
        return
    try:
        (base.parent / "cgroup.procs").write_text(str(os.getpid()))
        base.rmdir()
    except OSError:
        pass


def remove_stale_cgroups() -> int:
    """Remove the empty agent cgroups beside this process (left by agents the OOM killer
    ended); a cgroup that still holds a process cannot be removed and stays. Returns how many."""
    base = own_cgroup()
    removed = 0
    if base is None:
        return 0
    for d in base.glob(f"{PREFIX}*"):
        try:
            d.rmdir()
            removed += 1
        except OSError:
            pass
    return removed


def peak_rss_bytes() -> Optional[int]:
    """This process's peak resident set (VmHWM) in bytes; None without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class RssWatchdog(threading.Thread):
    """Calls ``on_exceed(peak_mb)`` once when the process's peak RSS passes ``limit_mb``."""

    def __init__(self, limit_mb: int, on_exceed: Callable[[float], None]):
        super().__init__(name="edgeslim-rss-watchdog", daemon=True)
        self.limit = limit_mb * 2**20
        self.on_exceed = on_exceed
        self.stopped = threading.Event()

    def check(self) -> bool:
        peak = peak_rss_bytes()
        if peak is not None and peak > self.limit:
            self.stopped.set()
            self.on_exceed(peak / 2**20)
            return True
        return False

    def run(self) -> None:
        while not self.stopped.is_set():
            if self.check():
                return
            self.stopped.wait(POLL_S)

    def stop(self) -> None:
        self.stopped.set()
