"""Remote devices over SSH: ``ssh://user@host[:port][?python=/path/to/python]``.

The artifact's files are copied with ``scp`` into a fresh temporary folder on the device,
``<python> -m edgeslim.targets.agent`` profiles it there, the folder is removed, and the
agent's JSON answer becomes the row, like a local one. The system OpenSSH client is used
with the user's keys, agent and known hosts, never a password (``BatchMode=yes``), and
every step runs under the target's time limit. An unreachable or refusing host, a device
without edgeslim, an answer that is not one, or a timeout gives a ``failed`` row with the
reason; the other targets carry on. Example recipe entry::

    targets:
      - cpu
      - ssh://pi@10.0.0.7?python=/opt/venv/bin/python
      - {name: "ssh://pi@10.0.0.7:2222", threads: 1, core: 0, timeout_s: 300,
         identity_file: ~/.ssh/pi_ed25519}

The device needs edgeslim (and the artifact's runtime) installed for that interpreter.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from pydantic import Field

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.registry import suggest
from edgeslim.targets.agent_call import (MODULE, AgentTimeout, agent_args, last_line, measurement,
                                         parse_answer, run_process, write_inputs)
from edgeslim.targets.base import Target, failed_row, register_target
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.runner import RUNNERS
from edgeslim.targets.runtime_options import RuntimeOptions

_HOST = re.compile(r"^[A-Za-z0-9_.%:-]+$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
QUERY_KEYS = ("python",)
INPUTS = ".edgeslim-inputs.npz"  # the timing sample and validation data, beside the artifact


@dataclass(frozen=True)
class SshUrl:
    """A parsed ``ssh://user@host[:port][?python=...]``."""

    host: str
    user: Optional[str] = None
    port: Optional[int] = None
    python: Optional[str] = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def scp_path(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}:{path}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port else ''}"


def parse_ssh_url(url: str) -> SshUrl:
    """``ssh://pi@10.0.0.7:2222?python=/opt/venv/bin/python`` → SshUrl; TargetError if malformed."""
    bad = f"bad ssh target '{url}'"
    parts = urlsplit(url.strip())
    if parts.scheme != "ssh":
        raise TargetError(f"{bad}: it must start with ssh://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise TargetError(f"{bad}: the port must be a number from 1 to 65535") from None
    if not host or not _HOST.match(host) or host.startswith("-"):
        raise TargetError(f"{bad}: expected ssh://user@host[:port][?python=/path/to/python]")
    if parts.password is not None:
        raise TargetError(f"{bad}: put no password in the URL; edgeslim logs in with your SSH keys")
    user = unquote(parts.username) if parts.username else None
    if user is not None and not _USER.match(user):
        raise TargetError(f"{bad}: '{user}' is not a valid user name")
    if parts.path not in ("", "/") or parts.fragment:
        raise TargetError(f"{bad}: unexpected '{parts.path or '#' + parts.fragment}' after the host")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise TargetError(f"{bad}: the query must look like ?python=/path/to/python") from None
    for key in query:
        if key not in QUERY_KEYS:
            raise TargetError(f"{bad}: unknown parameter '{key}'{suggest(key, list(QUERY_KEYS))}")
    python = query.get("python", [None])[-1]
    if python is not None and (not python.strip() or "\n" in python):
        raise TargetError(f"{bad}: python= needs an interpreter path")
    return SshUrl(host=host, user=user, port=port, python=python)


class SshOptions(RuntimeOptions):
    """How to reach the device, plus the runtime settings of
    :mod:`edgeslim.targets.runtime_options` (the device's agent applies them)."""

    url: str  # filled from the target's name
    python: Optional[str] = None  # interpreter on the device; the URL's ?python= wins; default python3
    threads: Optional[int] = Field(None, ge=1)  # runtime threads on the device; default: all its cores
    core: Optional[int] = Field(None, ge=0)  # pin the agent to this core of the device
    memory_limit_mb: Optional[int] = Field(None, ge=16)  # resident memory of the agent on the device
    identity_file: Optional[str] = None  # a private key instead of the user's default keys
    known_hosts: Optional[str] = None  # a known_hosts file; the host key is always checked
    ssh_options: list[str] = []  # extra arguments for ssh and scp, e.g. ["-o", "ProxyJump=gw"]
    remote_tmp: str = Field("/tmp", pattern=r"^/[A-Za-z0-9_./-]*$")  # where the per-artifact folder goes
    connect_timeout_s: float = Field(10.0, gt=0)
    timeout_s: float = Field(600.0, gt=0)  # per artifact: copy, profile, clean up
    # which rule of the plan's prior applies: a remote device is an edge device unless the
    # recipe says it is a server CPU or a GPU box
    kind: Literal["cpu", "gpu", "edge"] = "edge"


class _AnyRunnerFormat:
    """The formats a device may run: any with a runner; the device's agent has the last word."""

    def __get__(self, obj: Any, cls: Any) -> tuple[str, ...]:
        return tuple(RUNNERS.names())


@register_target
class SshTarget(Target):
    name = "ssh"
    description = ("a remote device, ssh://user@host[:port][?python=...]: artifacts copied there "
                   "and profiled by its edgeslim agent")
    kind = "edge"  # the default; the ``kind`` option sets it per device
    options = SshOptions
    formats = _AnyRunnerFormat()  # type: ignore[assignment]

    def __init__(self, label: str, opts: SshOptions):
        super().__init__(label, opts)
        self.url = parse_ssh_url(opts.url)
        self.python = self.url.python or opts.python or "python3"
        self.where = str(self.url)
        self.kind = opts.kind  # type: ignore[misc]  # declared per device, not per class
        self._probe: Optional[dict[str, Any] | TargetError] = None  # the device's --version answer

    def available(self) -> tuple[bool, str]:
        missing = [c for c in ("ssh", "scp") if shutil.which(c) is None]
        if missing:
            return False, f"the OpenSSH client is not installed ({', '.join(missing)} not found)"
        return True, ""

    # -- transport
    def _common(self) -> list[str]:
        o = self.opts
        args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={math.ceil(o.connect_timeout_s)}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
        if o.identity_file:
            args += ["-i", str(Path(o.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if o.known_hosts:
            args += ["-o", f"UserKnownHostsFile={Path(o.known_hosts).expanduser()}",
                     "-o", "StrictHostKeyChecking=yes"]
        return args + list(o.ssh_options)

    def _ssh(self, command: str, *, timeout: float, what: str) -> tuple[int, str, str]:
        port = ["-p", str(self.url.port)] if self.url.port else []
        rc, out, err = run_process(["ssh", *self._common(), *port, self.url.destination, command],
                                   timeout=timeout, what=what)
        if rc == 255:  # ssh's own failure: refused, unreachable, no key, unknown host key
            raise TargetError(f"ssh to {self.where} failed: {last_line(err) or 'ssh exited with 255'}")
        return rc, out, err

    def _scp_dir(self, local: Path, remote_dir: str, *, timeout: float) -> None:
        """Copy folder ``local`` to ``remote_dir``, which must not exist yet (scp creates it)."""
        port = ["-P", str(self.url.port)] if self.url.port else []
        base = ["scp", "-q", "-r", *self._common(), *port]
        dest = self.url.scp_path(remote_dir)
        what = f"copying the artifact to {self.where}"
        rc, _, err = run_process([*base, str(local), dest], timeout=timeout, what=what)
        if rc != 0 and "subsystem" in err:  # a device without an SFTP server: the old protocol
            rc, _, err = run_process([*base, "-O", str(local), dest], timeout=timeout, what=what)
        if rc != 0:
            raise TargetError(f"{what} failed: {last_line(err) or f'scp exited with {rc}'}")

    # -- the device
    def check(self, timeout: float) -> dict[str, Any]:
        """The device's agent ``--version`` answer, asked once; a failure is remembered too."""
        if self._probe is None:
            try:
                cmd = f"{shlex.quote(self.python)} -m {MODULE} --version"
                rc, out, err = self._ssh(cmd, timeout=timeout, what=f"asking {self.where} for its edgeslim")
                ans = parse_answer(rc, out, err, where=self.where, python=self.python)
                if ans["status"] != "ok":
                    raise TargetError(f"the edgeslim agent on {self.where} failed: {ans.get('reason')}")
                self._probe = ans
            except TargetError as err:
                self._probe = err
        if isinstance(self._probe, TargetError):
            raise self._probe
        return self._probe

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        """Copy, profile on the device, clean up; any failure becomes a ``failed`` row."""
        try:
            return self._profile(artifact, sample, cfg, val)
        except AgentTimeout as err:
            return failed_row(TargetError(f"{err} (the target's timeout_s is {self.opts.timeout_s:g} s)"))
        except TargetError as err:
            return failed_row(err)

    def _profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                 val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        o = self.opts
        deadline = time.monotonic() + o.timeout_s
        left = lambda: max(deadline - time.monotonic(), 0.1)  # noqa: E731
        device = self.check(left())
        if artifact.format not in device.get("formats", []):
            raise TargetError(f"{self.where} cannot run {artifact.format} artifacts: its edgeslim "
                              f"has runners for {', '.join(device.get('formats', [])) or 'nothing'}")
        main = artifact.path.resolve()
        root = main.parent
        rel = {f: PurePosixPath(f.relative_to(root).as_posix()) if f.is_relative_to(root)
               else PurePosixPath(f.name) for f in dict.fromkeys([main, *(p.resolve() for p in artifact.files)])}
        # One scp of a staging folder of links: subfolders (ONNX external data) come along,
        # and scp creates the (random, not yet existing) folder on the device itself.
        remote_dir = f"{o.remote_tmp.rstrip('/')}/edgeslim-{uuid.uuid4().hex}"
        finished = False
        try:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="edgeslim-ssh-") as tmp:
                stage = Path(tmp) / "stage"
                stage.mkdir(mode=0o700)
                write_inputs(stage / INPUTS, sample, val if cfg.accuracy else None)
                for f, r in rel.items():
                    (stage / r).parent.mkdir(parents=True, exist_ok=True)
                    (stage / r).symlink_to(f)
                self._scp_dir(stage, remote_dir, timeout=left())
            copy_ms = (time.perf_counter() - t0) * 1e3
            args = agent_args(artifact, str(rel[main]), cfg, data_npz=INPUTS,
                              threads=o.threads, core=o.core, memory_limit_mb=o.memory_limit_mb,
                              device=self.where, runner_options=o.runner_options(artifact.format))
            agent = " ".join(map(shlex.quote, [self.python, "-m", MODULE, *args]))
            limit = math.ceil(left())
            # The device enforces the limit too, so nothing keeps running after ssh gives up.
            script = (f"cd {shlex.quote(remote_dir)} || exit 97; "
                      f"if timeout -k 5 1 true >/dev/null 2>&1; then T='timeout -k 5 {limit}'; else T=''; fi; "
                      f"$T {agent}; rc=$?; cd /; rm -rf {shlex.quote(remote_dir)}; exit $rc")
            finished = True  # from here the device's script removes the folder itself
            rc, out, err = self._ssh(script, timeout=left(), what=f"profiling {artifact.id} on {self.where}")
        finally:
            if not finished:
                try:
                    self._ssh(f"rm -rf {shlex.quote(remote_dir)}", timeout=5, what="cleaning up")
                except TargetError:
                    pass
        if rc == 124:
            raise AgentTimeout(f"profiling {artifact.id} on {self.where} timed out on the device")
        m = measurement(parse_answer(rc, out, err, where=self.where, python=self.python))
        if m.get("semantics"):
            m["semantics"].update({"measured_in": "ssh agent", "remote": self.where,
                                   "remote_python": self.python, "copy_ms": copy_ms})
        return m
