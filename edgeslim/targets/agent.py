"""The profiling agent: measure one artifact in this process and print one JSON line.

It runs where the artifact is measured: in a local subprocess for the ``edge`` target
(so that pinning and a memory limit never touch the pipeline's own process) and on the
device itself over SSH for ``ssh://`` targets. Both call it the same way::

    python -m edgeslim.targets.agent --artifact model.onnx --format onnx --precision fp32 \\
        --profile-json '{"warmup": 10, "batch_sizes": [1, 8]}' --threads 1 --core 0 \\
        --memory-limit-mb 512 --data-npz inputs.npz --runner-options '{"spinning": false}'

``inputs.npz`` holds ``sample`` (one input, float32 [1,C,H,W]) and optionally ``val_x`` /
``val_y`` for accuracy; without it, ``--input-shape 1,3,224,224`` times a random input.
The answer is one JSON object on stdout carrying ``{"edgeslim_agent": PROTOCOL}``: the
measurement of :func:`~edgeslim.targets.profiler.profile_artifact` with ``status: ok``,
or ``status: failed`` and a one-line ``reason``. ``--version`` answers the same way with
the versions and formats of this installation, which is how a host checks a device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeslim import __version__
from edgeslim.artifacts import Artifact
from edgeslim.targets.base import failed_row
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.memlimit import POLLING, RssWatchdog, join_memory_cgroup, leave_memory_cgroup
from edgeslim.targets.profiler import profile_artifact
from edgeslim.targets.runner import RUNNERS

PROTOCOL = 2  # bumped when the command line or the answer changes incompatibly
CONFINED_ENV = "EDGESLIM_AGENT_CONFINED"
MEMORY_ENV = "EDGESLIM_AGENT_MEMORY_LIMIT"  # which mechanism enforces --memory-limit-mb
_answered = threading.Lock()  # one answer only: the main thread's or the memory watchdog's
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _AgentError(Exception):
    """A failure the agent explains in one line (its ``reason``)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _AgentError(f"bad agent arguments: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m edgeslim.targets.agent",
                                description="Profile one artifact here and print one JSON line.")
    p.add_argument("--version", action="store_true", help="print this agent's versions as JSON")
    p.add_argument("--artifact", help="the file the runtime opens (.onnx, .xml, ...)")
    p.add_argument("--format", help="artifact format: onnx, openvino, ...")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--variant", default="baseline")
    p.add_argument("--method", default="none")
    p.add_argument("--profile-json", default="{}", help="the recipe's profile section as JSON")
    p.add_argument("--data-npz", "--val-npz", dest="data_npz",
                   help="npz with 'sample' and optionally 'val_x'/'val_y'")
    p.add_argument("--input-shape", help="time a random input of this shape, e.g. 1,3,224,224")
    p.add_argument("--threads", type=int, help="runtime threads (default: all usable cores)")
    p.add_argument("--core", type=int, help="pin the whole process to this CPU core")
    p.add_argument("--memory-limit-mb", type=int, help="resident-memory limit (cgroup v2 memory.max, else RSS polling)")
    p.add_argument("--device", default="agent", help="the device name recorded in the row")
    p.add_argument("--runner-options", default="{}",
                   help="the target's runtime settings for the runner, as a JSON object")
    return p


def confine(args: argparse.Namespace, argv: list[str], out_fd: int) -> None:
    """Pin to ``--core``, limit memory, then re-exec so everything starts confined.

    ``sched_setaffinity`` pins only the calling thread, and threads that numpy or a
    runtime started during imports would keep every core; the memory cgroup and the BLAS
    thread variables likewise must be in place before the interpreter loads anything.
    Affinity, cgroup and the environment all survive ``exec``, so a fresh interpreter starts
    inside. Without a usable cgroup v2 the resident-memory limit is a watchdog thread,
    started by the new interpreter (see :mod:`edgeslim.targets.memlimit`).
    """
    env = dict(os.environ)
    if args.threads:
        for k in THREAD_ENV:
            env[k] = str(args.threads)
    if os.environ.get(CONFINED_ENV) == "1" or (args.core is None and args.memory_limit_mb is None):
        os.environ.update({k: env[k] for k in THREAD_ENV if k in env})
        return
    if args.core is not None:
        usable = sorted(os.sched_getaffinity(0))
        if args.core not in usable:
            raise _AgentError(f"CPU core {args.core} does not exist here (usable cores: "
                              f"{core_ranges(usable)})")
        os.sched_setaffinity(0, {args.core})
    if args.memory_limit_mb is not None:
        env[MEMORY_ENV] = join_memory_cgroup(args.memory_limit_mb * 2**20) or POLLING
    env[CONFINED_ENV] = "1"
    sys.stdout.flush()
    os.dup2(out_fd, 1)  # the new interpreter answers on the real stdout
    os.execve(sys.executable, [sys.executable, "-m", "edgeslim.targets.agent", *argv], env)


def core_ranges(cores: list[int]) -> str:
    out, start = [], None
    for i, c in enumerate(cores):
        if start is None:
            start = c
        if i + 1 == len(cores) or cores[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)


def version_info() -> dict[str, Any]:
    return {"edgeslim_agent": PROTOCOL, "status": "ok", "edgeslim": __version__,
            "python": platform.python_version(), "executable": sys.executable,
            "host": platform.node(), "formats": RUNNERS.names()}


def _inputs(args: argparse.Namespace):
    """The timing sample, and a loader for the validation arrays (read after timing)."""
    if args.data_npz:
        with np.load(args.data_npz) as z:
            if "sample" not in z.files:
                raise _AgentError(f"{args.data_npz} has no 'sample' array (has: {', '.join(z.files)})")
            sample = np.ascontiguousarray(z["sample"][:1], dtype=np.float32)
            has_val = "val_x" in z.files

        def val():
            with np.load(args.data_npz) as z:
                return (z["val_x"].astype(np.float32), z["val_y"] if "val_y" in z.files else None)

        return sample, (val if has_val else None)
    if args.input_shape:
        try:
            shape = tuple(int(s) for s in args.input_shape.split(","))
        except ValueError:
            raise _AgentError(f"--input-shape must be integers like 1,3,224,224, got {args.input_shape!r}") from None
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)[:1], None
    raise _AgentError("give --data-npz or --input-shape")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if not args.artifact or not args.format:
        raise _AgentError("--artifact and --format are required")
    path = Path(args.artifact)
    if not path.is_file():
        raise _AgentError(f"artifact {path} does not exist")
    try:
        cfg = ProfileCfg.model_validate(json.loads(args.profile_json))
    except Exception as err:  # malformed JSON or a bad field: either way one line
        raise _AgentError(f"bad --profile-json: {' '.join(str(err).split())[:300]}") from None
    try:
        options = json.loads(args.runner_options)
    except ValueError as err:
        raise _AgentError(f"bad --runner-options: {err}") from None
    if not isinstance(options, dict):
        raise _AgentError(f"bad --runner-options: expected a JSON object, got {args.runner_options[:80]!r}")
    sample, val = _inputs(args)
    art = Artifact(path, args.format, args.precision, args.variant, args.method)
    m = profile_artifact(art, sample, cfg, val, threads=args.threads, device=args.device,
                         runner_options=options, peak_scope="agent process, whole lifetime")
    m["semantics"].update({"core": args.core, "memory_limit_mb": args.memory_limit_mb,
                           "memory_limit_mechanism": os.environ.get(MEMORY_ENV) if args.memory_limit_mb else None,
                           "measured_in": "agent subprocess"})
    return m


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Whatever a runtime prints must not corrupt the one JSON line: fd 1 goes to stderr
    # while we work, and the answer is written to the saved stdout at the end.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    code, watchdog = 0, None
    try:
        args = _parser().parse_args(argv)
        confine(args, argv, out_fd)
        watchdog = _watch_memory(args, out_fd)
        result = version_info() if args.version else measure(args)
    except SystemExit as exc:  # --help: the text went to stderr; nothing to answer
        return int(exc.code or 0)
    except MemoryError:
        limit = os.environ.get(MEMORY_ENV) and _limit_mb(argv)
        result = {"status": "failed", "reason": "out of memory" + (f" under the {limit} MB limit" if limit else "")}
        code = 1
    except _AgentError as err:
        result = {"status": "failed", "reason": str(err)}
        code = 1
    except BaseException as err:  # noqa: BLE001 - every failure becomes the one answer
        result = failed_row(err)
        code = 1
    if watchdog is not None:
        watchdog.stop()
    _answer(out_fd, result)
    leave_memory_cgroup()
    return code


def _answer(out_fd: int, result: dict[str, Any]) -> bool:
    """Write the one JSON answer; a second caller (watchdog vs main thread) writes nothing."""
    if not _answered.acquire(blocking=False):
        return False
    os.write(out_fd, (json.dumps({"edgeslim_agent": PROTOCOL, **result}) + "\n").encode())
    return True


def _watch_memory(args: argparse.Namespace, out_fd: int) -> Optional[RssWatchdog]:
    """Start the RSS watchdog where the memory limit is not a cgroup's."""
    if args.memory_limit_mb is None or os.environ.get(MEMORY_ENV) != POLLING:
        return None
    limit = args.memory_limit_mb

    def exceeded(peak_mb: float) -> None:
        if _answer(out_fd, {"status": "failed", "reason": f"resident memory reached {peak_mb:.0f} MB, over "
                                                          f"the memory limit of {limit} MB; {POLLING}"}):
            os._exit(1)  # now, from this thread: the main thread may be inside a runtime call

    watchdog = RssWatchdog(limit, exceeded)
    if not watchdog.check():  # imports alone may already be over a tiny limit
        watchdog.start()
    return watchdog


def _limit_mb(argv: list[str]) -> Optional[str]:
    return argv[argv.index("--memory-limit-mb") + 1] if "--memory-limit-mb" in argv[:-1] else None


if __name__ == "__main__":
    sys.exit(main())
