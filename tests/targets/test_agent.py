"""The profiling agent's contract: one JSON line on stdout, whatever happens."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeslim.errors import TargetError
from edgeslim.targets.agent import PROTOCOL, core_ranges
from edgeslim.targets.agent_call import parse_answer, write_inputs

AGENT = [sys.executable, "-m", "edgeslim.targets.agent"]


def agent(*args, timeout=120):
    r = subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout + r.stderr  # exactly one line, always
    return r.returncode, json.loads(lines[0]), r.stderr


def test_version_answer():
    rc, ans, _ = agent("--version")
    assert rc == 0 and ans["edgeslim_agent"] == PROTOCOL and ans["status"] == "ok"
    assert "onnx" in ans["formats"] and ans["executable"] == sys.executable


def test_profiles_from_npz_and_reports_accuracy(tiny_artifact, tiny_val, tmp_path):
    x, y = tiny_val
    npz = write_inputs(tmp_path / "in.npz", x[:1], (x, y))
    rc, ans, _ = agent("--artifact", str(tiny_artifact.path), "--format", "onnx", "--precision", "fp32",
                       "--profile-json", json.dumps({"warmup": 1, "warmup_seconds": 0, "min_iterations": 5,
                                                     "max_seconds": 0.1}),
                       "--val-npz", str(npz), "--threads", "1")
    assert rc == 0 and ans["status"] == "ok", ans
    assert ans["accuracy"] == 1.0 and ans["semantics"]["threads"] == 1
    assert ans["semantics"]["measured_in"] == "agent subprocess"
    assert ans["semantics"]["peak_rss_scope"] == "agent process, whole lifetime"


def test_random_input_shape(tiny_artifact):
    rc, ans, _ = agent("--artifact", str(tiny_artifact.path), "--format", "onnx",
                       "--profile-json", '{"min_iterations": 5, "max_seconds": 0.1, "warmup": 0}',
                       "--input-shape", "1,3,16,16")
    assert rc == 0 and ans["status"] == "ok" and ans["accuracy"] is None


@pytest.mark.parametrize("args, reason", [
    (["--artifact", "/nonexistent/m.onnx", "--format", "onnx", "--input-shape", "1,3,16,16"],
     "artifact /nonexistent/m.onnx does not exist"),
    (["--format", "onnx"], "--artifact and --format are required"),
    (["--artifact", "{art}", "--format", "onnx", "--input-shape", "1,3,x"], "--input-shape must be integers"),
    (["--artifact", "{art}", "--format", "onnx", "--input-shape", "1,3,16,16", "--profile-json", "{bad"],
     "bad --profile-json"),
    (["--artifact", "{art}", "--format", "onnx", "--input-shape", "1,3,16,16", "--profile-json",
      '{"warmup": -1}'], "bad --profile-json"),
    (["--artifact", "{art}", "--format", "onnxx", "--input-shape", "1,3,16,16"], "did you mean 'onnx'"),
    (["--artifact", "{art}", "--format", "onnx", "--input-shape", "1,3,16,16", "--core", "4096"],
     "CPU core 4096 does not exist here"),
    (["--bogus"], "bad agent arguments: unrecognized arguments: --bogus"),
    (["--threads", "two"], "bad agent arguments: argument --threads: invalid int value: 'two'"),
])
def test_failures_are_one_json_answer(tiny_artifact, args, reason):
    args = [a.replace("{art}", str(tiny_artifact.path)) for a in args]
    rc, ans, _ = agent(*args)
    assert rc != 0 and ans["status"] == "failed" and reason in ans["reason"], ans
    assert "\n" not in ans["reason"]


def test_runtime_output_cannot_corrupt_the_answer():
    """What a runtime prints to fd 1 while the agent works goes to stderr, not into the answer."""
    code = ("import os, sys\n"
            "from edgeslim.targets import agent\n"
            "real = agent.version_info\n"
            "def noisy():\n"
            "    os.write(1, b'noise from C on fd 1\\n'); print('noise from print', flush=True)\n"
            "    return real()\n"
            "agent.version_info = noisy  # stands in for a runtime that prints while loading\n"
            "sys.exit(agent.main(['--version']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stdout
    assert json.loads(r.stdout)["status"] == "ok"
    assert "noise from C on fd 1" in r.stderr and "noise from print" in r.stderr


def test_parse_answer_says_why_there_is_none():
    ok = json.dumps({"edgeslim_agent": PROTOCOL, "status": "ok"})
    assert parse_answer(0, f"login banner\n{ok}\n", "", where="dev", python="py")["status"] == "ok"
    cases = [
        ((1, "", "ModuleNotFoundError: No module named 'edgeslim'\n"), "edgeslim is not installed for py on dev"),
        ((127, "", "sh: 1: py: not found\n"), "the interpreter py was not found on dev"),
        ((0, "hello world\n", ""), "not an edgeslim agent result"),
        ((0, '{"status": "ok"}\n', ""), "not an edgeslim agent result"),  # JSON, but not ours
        ((1, "", ""), "exited with code 1 and no answer"),
        ((0, json.dumps({"edgeslim_agent": PROTOCOL + 1, "status": "ok"}), ""), "speaks protocol"),
        ((0, json.dumps({"edgeslim_agent": PROTOCOL, "status": "maybe"}), ""), "without a status"),
    ]
    for (rc, out, err), reason in cases:
        with pytest.raises(TargetError, match=reason):
            parse_answer(rc, out, err, where="dev", python="py")


def test_write_inputs_roundtrip(tmp_path):
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
    with np.load(write_inputs(tmp_path / "a.npz", x, (x, np.array([1, 2])))) as z:
        assert z["sample"].shape == (1, 3, 4, 4) and z["sample"].dtype == np.float32
        assert z["val_x"].shape == (2, 3, 4, 4) and list(z["val_y"]) == [1, 2]
    with np.load(write_inputs(tmp_path / "b.npz", x, None)) as z:
        assert z.files == ["sample"]


def test_core_ranges():
    assert core_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and core_ranges([3]) == "3"
