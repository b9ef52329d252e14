"""`edgeslim targets` lists every registered target with its formats and availability."""

from __future__ import annotations

from typer.testing import CliRunner

from edgeslim.cli import app
from edgeslim.targets import TARGETS, parse_target


def test_targets_listing_has_cpu_edge_ssh_with_formats_and_availability():
    r = CliRunner().invoke(app, ["targets"])
    assert r.exit_code == 0, r.output
    lines = {ln.split("│")[1].strip(): ln for ln in r.output.splitlines() if ln.count("│") >= 4}
    for name in ("cpu", "edge", "ssh"):
        assert name in lines, r.output
        cells = [c.strip() for c in lines[name].split("│")[1:-1]]
        assert "onnx" in cells[1].split(", ")
        assert cells[2] == "yes"  # Linux, and the OpenSSH client is on PATH here
    assert set(TARGETS.names()) <= set(lines)


def test_ssh_unavailable_without_the_client(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no ssh, no scp
    ok, why = parse_target("ssh://pi@10.0.0.7").available()
    assert not ok and why == "the OpenSSH client is not installed (ssh, scp not found)"
