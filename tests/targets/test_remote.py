"""Remote devices over SSH, for real: an sshd on 127.0.0.1 with throwaway keys.

The "device" is this machine reached through sshd, its interpreter the venv's python,
so the whole path runs: URL, ssh/scp with BatchMode and a known_hosts file, a temporary
folder on the device, the agent there, its JSON answer back into a row.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeslim.errors import TargetError
from edgeslim.recipe import ProfileCfg, TargetCfg
from edgeslim.targets import parse_target
from edgeslim.targets.remote import INPUTS, SshUrl, parse_ssh_url

from .conftest import QUICK, assert_full_semantics


# ---------------------------------------------------------------- URLs (no sshd needed)

@pytest.mark.parametrize("url, want", [
    ("ssh://pi@10.0.0.7", SshUrl(host="10.0.0.7", user="pi")),
    ("ssh://pi@10.0.0.7:2222?python=/opt/venv/bin/python",
     SshUrl(host="10.0.0.7", user="pi", port=2222, python="/opt/venv/bin/python")),
    ("ssh://jetson.local/", SshUrl(host="jetson.local")),
    ("ssh://me@[fe80::1]:22", SshUrl(host="fe80::1", user="me", port=22)),
])
def test_parse_good_urls(url, want):
    got = parse_ssh_url(url)
    assert got == want
    assert parse_ssh_url(str(got)) == SshUrl(host=want.host, user=want.user, port=want.port)


@pytest.mark.parametrize("url, reason", [
    ("ssh://pi@host:99999", "the port must be a number"),
    ("ssh://pi@host:abc", "the port must be a number"),
    ("ssh://pi:secret@host", "put no password in the URL"),
    ("ssh://pi@host?pyhton=/x", "unknown parameter 'pyhton'; did you mean 'python'"),
    ("ssh://pi@host/some/path", "unexpected '/some/path'"),
    ("ssh://pi@-oProxyCommand=x", "expected ssh://user@host"),
    ("ssh://", "expected ssh://user@host"),
    ("ssh://p;i@host", "not a valid user name"),
])
def test_bad_urls_name_the_problem(url, reason):
    with pytest.raises(TargetError, match=reason):
        parse_ssh_url(url)
    with pytest.raises(TargetError, match=reason):  # the same through the recipe's target entry
        parse_target(TargetCfg(name=url))


def test_python_defaults_and_precedence():
    assert parse_target("ssh://pi@h").python == "python3"
    assert parse_target(TargetCfg(name="ssh://pi@h", python="/a/python")).python == "/a/python"
    assert parse_target(TargetCfg(name="ssh://pi@h?python=/b/python", python="/a/python")).python == "/b/python"


# ---------------------------------------------------------------- a real sshd

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    exe = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
                                        if os.access(p, os.X_OK)), None)
    if exe is None or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        pytest.skip("OpenSSH (sshd, ssh, ssh-keygen) is not installed")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    if os.geteuid() == 0:  # root's sshd insists on its privilege-separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = _free_port()
    host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    opts = {"ListenAddress": "127.0.0.1", "StrictModes": "no", "PidFile": str(d / "sshd.pid"),
            "AuthorizedKeysFile": str(d / "authorized_keys"), "UsePAM": "no", "PermitRootLogin": "yes",
            "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
            "Subsystem": "sftp internal-sftp"}
    cmd = [exe, "-D", "-e", "-f", "/dev/null", "-p", str(port), "-h", str(d / "host_key")]
    for k, v in opts.items():
        cmd += ["-o", f"{k}={v}"]
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
    common = {"identity_file": str(d / "id"), "known_hosts": str(d / "known_hosts"),
              "ssh_options": ["-F", "/dev/null"], "connect_timeout_s": 5}
    yield {"port": port, "dir": d, "common": common, "user": getpass.getuser()}
    proc.terminate()
    proc.wait(10)
    log.close()


def target(sshd, python=None, **extra):
    q = f"?python={python}" if python else ""
    return parse_target(TargetCfg(name=f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{q}",
                                  **{**sshd["common"], **extra}))


def script(sshd, name: str, body: str) -> str:
    p = sshd["dir"] / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_profiles_on_the_device(sshd, tiny_artifact, tiny_val, quick_cfg):
    x, y = tiny_val
    core = min(os.sched_getaffinity(0))
    t = target(sshd, sys.executable, threads=1, core=core)
    m = t.profile(tiny_artifact, x[:1], quick_cfg, (x, y))
    sem = assert_full_semantics(m, device=t.where)
    assert m["accuracy"] == 1.0  # validation data went to the device and back as a figure
    assert sem["measured_in"] == "ssh agent" and sem["remote_python"] == sys.executable
    assert sem["threads"] == 1 and sem["affinity"] == [core] and sem["copy_ms"] > 0
    left = [p for p in Path("/tmp").glob("edgeslim-*") if (p / INPUTS).exists()]
    assert not left, f"the device's temporary folder was not removed: {left}"


def test_dead_port_fails_fast_with_the_reason(sshd, tiny_artifact, tiny_val):
    x, _ = tiny_val
    dead = _free_port()
    t = parse_target(TargetCfg(name=f"ssh://{sshd['user']}@127.0.0.1:{dead}", **sshd["common"]))
    t0 = time.monotonic()
    m = t.profile(tiny_artifact, x[:1], ProfileCfg(**QUICK), None)
    assert m["status"] == "failed" and "Connection refused" in m["reason"] and str(dead) in m["reason"]
    m2 = t.profile(tiny_artifact, x[:1], ProfileCfg(**QUICK), None)  # remembered, not retried
    assert m2 == m and time.monotonic() - t0 < 5


def test_unknown_host_key_is_refused(sshd, tiny_artifact, tiny_val, tmp_path):
    x, _ = tiny_val
    (tmp_path / "empty").write_text("")
    m = target(sshd, sys.executable, known_hosts=str(tmp_path / "empty")).profile(
        tiny_artifact, x[:1], ProfileCfg(**QUICK), None)
    assert m["status"] == "failed" and "Host key verification failed" in m["reason"]


def _python_without_edgeslim() -> str | None:
    base = Path(sys.base_prefix) / "bin" / "python3"  # the venv's own interpreter, outside the venv
    if not base.exists() or sys.prefix == sys.base_prefix:
        return None
    r = subprocess.run([str(base), "-c", "import edgeslim"], cwd="/", capture_output=True)
    return str(base) if r.returncode != 0 else None


@pytest.mark.parametrize("which", ["false", "python without edgeslim", "missing"])
def test_device_without_edgeslim_names_the_interpreter(sshd, tiny_artifact, tiny_val, which):
    python = {"false": "/bin/false", "python without edgeslim": _python_without_edgeslim(),
              "missing": "/nonexistent/bin/python3"}[which]
    if python is None:
        pytest.skip("no interpreter without edgeslim here")
    x, _ = tiny_val
    m = target(sshd, python).profile(tiny_artifact, x[:1], ProfileCfg(**QUICK), None)
    assert m["status"] == "failed" and python in m["reason"], m
    assert {"false": "is edgeslim installed", "python without edgeslim": "edgeslim is not installed",
            "missing": "was not found"}[which] in m["reason"]


def test_garbage_is_a_failed_row(sshd, tiny_artifact, tiny_val):
    x, _ = tiny_val
    junk = script(sshd, "junk.sh", "echo 'Welcome to BusyBox'; echo '{not json'\n")
    m = target(sshd, junk).profile(tiny_artifact, x[:1], ProfileCfg(**QUICK), None)
    assert m["status"] == "failed" and "not an edgeslim agent result" in m["reason"]
    # an interpreter that answers the version check but then prints nonsense for the profile
    liar = script(sshd, "liar.sh", f'case "$*" in *--version*) exec {sys.executable} "$@";; esac\n'
                                   "echo '{\"result\": 42}'; exit 3\n")
    m = target(sshd, liar).profile(tiny_artifact, x[:1], ProfileCfg(**QUICK), None)
    assert m["status"] == "failed" and "not an edgeslim agent result (exit 3)" in m["reason"]


def test_timeout_is_enforced(sshd, tiny_artifact, tiny_val):
    x, _ = tiny_val
    hang = script(sshd, "hang.sh", f'case "$*" in *--version*) exec {sys.executable} "$@";; esac\n'
                                   "sleep 60\n")
    t0 = time.monotonic()
    m = target(sshd, hang, timeout_s=4).profile(tiny_artifact, x[:1], ProfileCfg(**QUICK), None)
    elapsed = time.monotonic() - t0
    assert m["status"] == "failed" and "timed out" in m["reason"] and "timeout_s is 4 s" in m["reason"]
    assert elapsed < 4 + 3


def test_profile_stage_rows_for_cpu_edge_ssh_and_a_dead_host(sshd, tiny_artifact, tmp_path):
    """Through the pipeline's profile stage: a dead host fails its rows, the others finish."""
    from edgeslim.io import read_json
    from edgeslim.pipeline.context import Context
    from edgeslim.pipeline.stages import ProfileInputs, ProfileStage
    from edgeslim.pipeline.stage import StageResult
    from edgeslim.recipe import load_recipe
    from tests.targets.conftest import write_tiny_classifier

    run = tmp_path / "run"
    art = write_tiny_classifier(run / "30-export" / "baseline-onnx" / "model.onnx")
    recipe = load_recipe(None, ["profile.warmup=1", "profile.warmup_seconds=0", "profile.min_iterations=5",
                                "profile.max_seconds=0.1", "profile.sessions=1", "data.name=synthetic", "model.input_size=16",
                                "data.limit_train=8", "data.limit_val=4"])
    live = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}?python={sys.executable}"
    dead = f"ssh://{sshd['user']}@127.0.0.1:{_free_port()}"
    recipe.targets = [TargetCfg(name="cpu"), TargetCfg(name="edge"), TargetCfg(name=live, **sshd["common"]),
                      TargetCfg(name=dead, **sshd["common"])]
    stage = lambda outputs: StageResult("s", run, "k", outputs, "h", False, 0.0)  # noqa: E731
    comp = stage({"params_before": 10, "params_after": 10, "macs_before": 10, "macs_after": 10})
    (run / "50-profile").mkdir(parents=True)
    ProfileStage().run(run / "50-profile", ProfileInputs([(art, stage({}))], [], stage({}), comp),
                       ProfileStage().slice(recipe), Context(run_dir=run))
    rows = {r["target"]: r for r in read_json(run / "50-profile" / "results.json")}
    assert sorted(rows) == sorted(["cpu", "edge", live, dead])
    for name, device in (("cpu", "cpu"), ("edge", "edge"), (live, str(parse_ssh_url(live)))):
        r = rows[name]
        assert r["status"] == "ok", r["reason"]
        assert r["peak_rss_mb"] > 0 and r["semantics"]["device"] == device
        assert r["semantics"]["request_mode"] == "sync" and r["semantics"]["input_copy_included"] is True
        assert r["semantics"]["iterations"] == r["iterations"] >= 5
    assert rows[dead]["status"] == "failed" and "Connection refused" in rows[dead]["reason"]
