"""One run at a time per run directory.

``RunLock`` creates ``<run>/.lock`` exclusively, holding the owner's pid and host. A
second run fails at once naming the holder (or waits with ``wait=True``); a lock whose
process is gone (same host, dead pid) is stale and taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

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
    def __init__(self, run_dir: Path, *, wait: bool = False, poll: float = 0.5):
        self.path = Path(run_dir) / LOCK
        self.wait = wait
        self.poll = poll
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
