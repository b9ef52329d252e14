"""The ``edge`` target: this machine shaped like a small device.

One runtime thread, the whole process pinned to one CPU core, and optionally a
resident-memory limit (the device's RAM: cgroup v2 ``memory.max`` where this process may
create one, else RSS polling; the row's ``semantics.memory_limit_mechanism`` says which),
so that a laptop or server gives figures closer to what a single-core board would. The measurement runs in a subprocess (the profiling agent),
so pinning and the limit never touch the pipeline's own process. Shape it in the recipe::

    targets:
      - cpu
      - {name: edge, threads: 1, core: 0, memory_limit_mb: 512}
      - {name: edge, openvino_precision: f32, ort_spinning: false}   # runtime settings too

A core this machine does not have is an error when the recipe is loaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydantic import Field

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.targets.agent import core_ranges
from edgeslim.targets.agent_call import (MODULE, SKIP, agent_args, last_line, measurement, parse_answer,
                                         run_process, write_inputs)
from edgeslim.targets.base import Target, failed_row, register_target
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.memlimit import remove_stale_cgroups
from edgeslim.targets.runtime_options import LocalRuntimeOptions


class EdgeOptions(LocalRuntimeOptions):
    """The device's shape, plus the runtime settings of :mod:`edgeslim.targets.runtime_options`."""

    threads: int = Field(1, ge=1)  # runtime threads (all of them on the one core)
    core: Optional[int] = Field(None, ge=0)  # CPU core to pin to; default: the lowest usable one
    memory_limit_mb: Optional[int] = Field(None, ge=16)  # resident memory of the agent (see memlimit)
    timeout_s: float = Field(600.0, gt=0)  # per artifact, load and accuracy included


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def agent_env() -> dict[str, str]:
    """This environment, with edgeslim importable by the subprocess even when not installed."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@register_target
class EdgeTarget(Target):
    name = "edge"
    description = "a small device on this machine: 1 thread pinned to one core, optional memory limit"
    kind = "edge"  # runs every format whose runner runs on a small CPU device
    options = EdgeOptions

    def __init__(self, label: str, opts: EdgeOptions):
        super().__init__(label, opts)
        usable = usable_cpus()
        if opts.core is not None and usable and opts.core not in usable:
            raise TargetError(f"target '{label}' option 'core': CPU core {opts.core} does not exist "
                              f"on this machine (usable cores: {core_ranges(usable)})")
        self.core = opts.core if opts.core is not None else (usable[0] if usable else None)

    def available(self) -> tuple[bool, str]:
        if not hasattr(os, "sched_setaffinity"):
            return False, "pinning to a CPU core needs Linux (os.sched_setaffinity)"
        return True, ""

    def runner_options(self, artifact: Artifact) -> dict[str, Any]:
        return self.opts.runner_options(artifact.format)

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        """Run the agent confined as configured; a failure becomes a ``failed`` row."""
        try:
            return self._profile(artifact, sample, cfg, val)
        except TargetError as err:
            return failed_row(err)

    def _profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                 val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        o = self.opts
        return agent_profile(artifact, sample, cfg, val, threads=o.threads, core=self.core,
                             memory_limit_mb=o.memory_limit_mb, device="edge",
                             runner_options=self.runner_options(artifact), timeout_s=o.timeout_s)


def agent_profile(artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                  val: Optional[tuple[np.ndarray, Optional[np.ndarray]]], *, threads: Optional[int],
                  core: Optional[int], memory_limit_mb: Optional[int], device: str,
                  runner_options: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One measurement by the profiling agent in a fresh process on this machine, pinned to
    ``core`` and under ``memory_limit_mb`` where given; raises :class:`TargetError`."""
    with tempfile.TemporaryDirectory(prefix=f"edgeslim-{device}-") as tmp:
        npz = write_inputs(Path(tmp) / "inputs.npz", sample, val if cfg.accuracy else None)
        cmd = [sys.executable, "-m", MODULE,
               *agent_args(artifact, str(artifact.path.resolve()), cfg, data_npz=str(npz),
                           threads=threads, core=core, memory_limit_mb=memory_limit_mb,
                           device=device, runner_options=runner_options)]
        try:
            rc, out, err = run_process(cmd, timeout=timeout_s, what=f"profiling {artifact.id} on {device}",
                                       env=agent_env())
        finally:
            if memory_limit_mb is not None:
                remove_stale_cgroups()  # an agent the OOM killer ended cannot remove its own
    try:
        m = measurement(parse_answer(rc, out, err, where="this machine", python=sys.executable))
    except TargetError:
        if memory_limit_mb is None:
            raise
        if rc == -9:  # SIGKILL without an answer: the cgroup's OOM killer
            raise TargetError(f"the agent was killed at the {device} memory limit of {memory_limit_mb} MB "
                              f"(cgroup v2 memory.max: resident memory exceeded it)") from None
        raise TargetError(f"the agent failed under the {device} memory limit of {memory_limit_mb} MB, "
                          f"exit {rc}: {last_line(err, skip=SKIP) or 'no output'}") from None
    if m["status"] == "failed" and memory_limit_mb is not None and "memory limit" not in m["reason"]:
        m["reason"] += f" (under the {device} memory limit of {memory_limit_mb} MB)"
    return m
