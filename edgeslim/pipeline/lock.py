"""One run at a time per run directory, and what a run says when it takes one over.

``RunLock`` creates ``<run>/.lock`` exclusively, holding the owner's pid and host. A
second run fails at once naming the holder (or waits with ``wait=True``, saying once for
whom it waits); a lock whose process is gone (same host, dead pid) is stale and taken over.
A run reusing a directory that held another recipe says which sections changed
(:func:`recipe_change`).

Example::

    with RunLock(Path("runs/default"), wait=True, log=print):   # "waiting for pid 4242 ..."
        note = recipe_change(Path("runs/default"), dump_recipe(recipe))
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional

import yaml

from edgeslim.errors import RunDirError

LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) holds no lock either
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class RunLock:
    """The lock of one run directory. ``log`` hears one line when ``wait`` starts waiting.

    Example::

        with RunLock(Path("runs/default"), wait=True, log=ctx.log):
            ...
    """

    def __init__(self, run_dir: Path, *, wait: bool = False, poll: float = 0.5,
                 log: Optional[Callable[[str], None]] = None):
        self.path = Path(run_dir) / LOCK
        self.wait = wait
        self.poll = poll
        self.log = log
        self.held = False

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"cannot create run directory {self.path.parent}: {err.strerror}") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        waiting_for = None
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid = holder.get("pid")
                if holder.get("host") == me["host"] and isinstance(pid, int) and not _alive(pid):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                if not holder and time.time() - self.path.stat().st_mtime > 10:
                    self.path.unlink(missing_ok=True)  # unreadable and old: a crash mid-write
                    continue
                if self.wait:
                    if self.log is not None and pid != waiting_for:  # once per holder, not per poll
                        self.log(f"waiting for pid {pid} on {holder.get('host')} (running since "
                                 f"{holder.get('started')}) to finish with {self.path.parent} (lock {self.path})")
                    waiting_for = pid
                    time.sleep(self.poll)
                    continue
                raise RunDirError(
                    f"run directory {self.path.parent} is in use by pid {pid} on {holder.get('host')} "
                    f"since {holder.get('started')}; pass --wait to wait for it") from None
            except OSError as err:
                raise RunDirError(f"cannot write to run directory {self.path.parent}: {err.strerror}") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def recipe_change(run_dir: Path, recipe_yaml: str) -> str | None:
    """One line naming the top-level sections in which ``recipe_yaml`` differs from the
    recipe ``run_dir`` last ran (its ``recipe.yaml``); None for a new directory or the same
    recipe. Its results are about to be replaced, so the user is told rather than surprised.

    Example: ``recipe_change(Path("runs/default"), dump_recipe(other))`` -> ``"runs/default
    held a run of another recipe (changed: compress, finetune); its results are replaced:
    stages whose keys changed are redone, the others reused"``.
    """
    try:
        old = yaml.safe_load((Path(run_dir) / "recipe.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):  # none yet, or unreadable: nothing to compare with
        return None
    new = yaml.safe_load(recipe_yaml)
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    changed = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    if not changed:
        return None
    return (f"{run_dir} held a run of another recipe (changed: {', '.join(changed)}); its results are "
            "replaced: stages whose keys changed are redone, the others reused")
