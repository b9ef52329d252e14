"""The command line: listings, the resolved recipe, and bad input as one line + exit 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml


def edgeslim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeslim", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_recipe_prints_the_resolved_default():
    r = edgeslim("recipe", "--set", "compress.ratio=0.3")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(r.stdout)
    assert data["compress"]["ratio"] == 0.3 and data["model"]["name"] == "resnet20"


def test_listings():
    r = edgeslim("models", "resnet*")
    assert r.returncode == 0 and "resnet20" in r.stdout and "resnet50" in r.stdout and "vgg" not in r.stdout
    r = edgeslim("methods")
    assert r.returncode == 0 and "l1" in r.stdout and "l2" in r.stdout
    r = edgeslim("targets")
    assert r.returncode == 0 and "cpu" in r.stdout and "onnx" in r.stdout


@pytest.fixture(scope="module")
def other_arch_weights(tmp_path_factory):
    from edgeslim.models import create_model

    p = tmp_path_factory.mktemp("w") / "resnet56.pt"
    torch.save(create_model("resnet56", num_classes=10).state_dict(), p)
    return p


BAD = [
    (["--set", "compres.ratio=0.3"], "did you mean 'compress'"),
    (["--set", "model.name=resnet21"], "did you mean"),
    (["--set", "compress.method=l3"], "unknown compression method 'l3'"),
    (["--set", "export.formats=[onnxx]"], "unknown export format 'onnxx'"),
    (["--set", "targets=[gpux]"], "unknown target 'gpux'"),
    (["--set", "data.name=imagefolder:/no/such/folder"], "/no/such/folder"),
    (["--set", "compress.ratio=1.5"], "compress.ratio must be in (0, 1)"),
    (["--set", "compress.ratio=0"], "compress.ratio must be in (0, 1)"),
    (["--set", "model.name=vgg11_bn", "--set", "model.input_size=8"], "cannot take a 8x8 input"),
]


@pytest.mark.parametrize("args, needle", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, needle):
    out = tmp_path / "run"
    r = edgeslim("run", "--out", str(out), *args)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not list(out.rglob("done.json")) if out.exists() else True


def test_weights_of_another_architecture(tmp_path, other_arch_weights):
    out = tmp_path / "run"
    r = edgeslim("run", "--out", str(out), "--set", f"model.weights={other_arch_weights}")
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip() and "error" in line]
    assert len(lines) == 1 and "do not match the model" in lines[0], r.stderr
    assert not (out / "00-baseline").exists()
    assert not list(out.glob(".00-baseline.tmp*"))
