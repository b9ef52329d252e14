"""The host side of the agent: its command line, its inputs file, the process, its answer.

Shared by the ``edge`` target (a local subprocess) and ``ssh://`` targets (the same
agent on the device). Whatever goes wrong (a timeout, a crash, an interpreter without
edgeslim, output that is not an answer) ends in a :class:`TargetError` naming the cause,
which the target turns into a ``failed`` row.

Example::

    rc, out, err = run_process(["python", "-m", "edgeslim.targets.agent", "--version"],
                               timeout=30, what="the agent")
    answer = parse_answer(rc, out, err, where="this machine", python="python")
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.targets.agent import PROTOCOL
from edgeslim.targets.config import ProfileCfg

MODULE = "edgeslim.targets.agent"


class AgentTimeout(TargetError):
    """A step ran out of the target's time limit (its process group was killed)."""


def agent_args(artifact: Artifact, artifact_path: str, cfg: ProfileCfg, *, data_npz: str,
               threads: Optional[int], core: Optional[int], memory_limit_mb: Optional[int],
               device: str, runner_options: Optional[dict[str, Any]] = None) -> list[str]:
    """Arguments after ``python -m edgeslim.targets.agent`` to profile ``artifact``;
    ``runner_options`` are the target's runtime settings for its runner."""
    args = ["--artifact", artifact_path, "--format", artifact.format,
            "--precision", artifact.precision, "--variant", artifact.variant,
            "--method", artifact.method, "--profile-json", cfg.model_dump_json(),
            "--data-npz", data_npz, "--device", device]
    if runner_options:
        args += ["--runner-options", json.dumps(runner_options, sort_keys=True)]
    for flag, value in (("--threads", threads), ("--core", core), ("--memory-limit-mb", memory_limit_mb)):
        if value is not None:
            args += [flag, str(value)]
    return args


def write_inputs(path: Path, sample: np.ndarray,
                 val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> Path:
    """The agent's ``--data-npz``: the timing sample and, for accuracy, the validation split."""
    arrays = {"sample": np.ascontiguousarray(sample[:1], dtype=np.float32)}
    if val is not None:
        arrays["val_x"] = np.asarray(val[0], dtype=np.float32)
        if val[1] is not None:
            arrays["val_y"] = np.asarray(val[1])
    np.savez(path, **arrays)
    return path


def run_process(cmd: list[str], *, timeout: float, what: str,
                env: Optional[dict[str, str]] = None) -> tuple[int, str, str]:
    """Run ``cmd``; kill its whole process group at ``timeout`` and raise TargetError.

    A new session keeps ssh away from the terminal (no prompt can wait for a person) and
    lets the timeout kill everything it started, so nothing outlives the deadline.
    """
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as err:
        raise TargetError(f"cannot start {what} ({cmd[0]}): {err.strerror or err}") from None
    try:
        out, err = proc.communicate(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
            proc.kill()
        raise AgentTimeout(f"{what} timed out after {timeout:.0f} s") from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


SKIP = ("Traceback", "File ", "^", "~")  # traceback lines that say nothing on their own


def last_line(text: str, skip: tuple[str, ...] = ()) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(skip)]
    return lines[-1][:300] if lines else ""


def parse_answer(rc: int, out: str, err: str, *, where: str, python: str) -> dict[str, Any]:
    """The agent's JSON answer from its stdout, or a TargetError saying why there is none."""
    for line in reversed(out.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if not isinstance(answer, dict) or "edgeslim_agent" not in answer:
            continue
        if answer["edgeslim_agent"] != PROTOCOL:
            raise TargetError(f"the edgeslim agent on {where} speaks protocol {answer['edgeslim_agent']!r}, "
                              f"this edgeslim speaks {PROTOCOL}: install the same edgeslim version there")
        if answer.get("status") not in ("ok", "failed"):
            raise TargetError(f"the edgeslim agent on {where} answered without a status: {line[:200]}")
        return answer
    tail = last_line(err, skip=SKIP)
    if "No module named 'edgeslim" in err or "No module named edgeslim" in err:
        raise TargetError(f"edgeslim is not installed for {python} on {where} ({tail})")
    if rc == 127 or (python in tail and ("not found" in tail or "No such file" in tail)):
        raise TargetError(f"the interpreter {python} was not found on {where}: {tail}")
    if out.strip():
        raise TargetError(f"{python} on {where} answered something that is not an edgeslim agent "
                          f"result (exit {rc}): {out.strip()[:160]!r}")
    raise TargetError(f"{python} -m {MODULE} on {where} exited with code {rc} and no answer"
                      f"{': ' + tail if tail else ''}; is edgeslim installed for {python} there?")


def measurement(answer: dict[str, Any]) -> dict[str, Any]:
    """The row part of an agent's answer (``ok`` measurement or ``failed`` with its reason)."""
    m = {k: v for k, v in answer.items() if k != "edgeslim_agent"}
    m.setdefault("reason", "")
    return m
