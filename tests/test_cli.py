"""The command line: listings, the resolved recipe, and bad input as one line + exit 2."""

import subprocess
import sys

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
    # square brackets in a quoted value reach the terminal as typed, not as rich markup
    (["--set", "model.name=net[abc]"], "unknown model 'net[abc]'"),
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


def _console_script():
    """The installed `edgeslim` entry point: unlike `python -m`, it does not put the current
    folder on sys.path."""
    from pathlib import Path
    import shutil

    script = Path(sys.executable).parent / "edgeslim"
    found = str(script) if script.is_file() else shutil.which("edgeslim")
    if not found:
        pytest.skip("the edgeslim console script is not installed (pip install -e .)")
    return found


def test_console_script_imports_a_model_module_from_the_current_folder(tmp_path):
    # build_net ignores num_classes: the run stops at pre-flight, after the import succeeded
    (tmp_path / "mynets.py").write_text(
        "import torch.nn as nn\n\n"
        "def build_net(**kwargs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3))\n"
    )
    (tmp_path / "r.yaml").write_text("model: {name: 'mynets:build_net'}\n")
    r = subprocess.run([_console_script(), "run", "r.yaml", "--out", "run"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "No module named" not in r.stderr
    assert "model 'mynets:build_net' outputs 3 classes but model.num_classes is 10" in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["other architecture", "onnx bytes"])
def test_bad_weights_fail_before_the_run_folder_is_written(tmp_path, other_arch_weights, kind):
    weights = other_arch_weights
    if kind == "onnx bytes":
        weights = tmp_path / "model.onnx"
        weights.write_bytes(b"\x08\x09\x12\x07pytorch")
    out = tmp_path / "run"
    r = edgeslim("run", "--out", str(out), "--set", f"model.weights={weights}")
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(weights) in lines[0], r.stderr
    assert not out.exists(), list(out.rglob("*"))
