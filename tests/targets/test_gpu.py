"""The ``gpu`` target: listed with the reason it is unavailable here, skipped rows, no crash."""

from __future__ import annotations

import shutil

import pytest

from edgeslim.artifacts import Artifact
from edgeslim.errors import TargetError
from edgeslim.backends.tensorrt import cuda_device_count
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import Cell, Skipped, Variant
from edgeslim.pipeline.stages import ProfileInputs, ProfileStage
from edgeslim.pipeline.stage import StageResult
from edgeslim.recipe import TargetCfg, load_recipe
from edgeslim.targets import TARGETS, parse_target
from edgeslim.targets.gpu import GpuTarget, ort_gpu_status

NO_GPU = cuda_device_count() == 0
no_gpu_only = pytest.mark.skipif(not NO_GPU, reason="a CUDA device is present: the gpu target may be available")


def test_registered_with_its_formats_and_options():
    assert TARGETS.get("gpu") is GpuTarget
    t = parse_target(TargetCfg(name="gpu", onnx_provider="tensorrt", device=0))
    assert t.formats == ("onnx", "tensorrt") and t.opts.onnx_provider == "tensorrt"
    with pytest.raises(TargetError, match="onnx_provider"):
        parse_target(TargetCfg(name="gpu", onnx_providers="cuda"))


@no_gpu_only
def test_unavailable_with_the_reason():
    ok, why = parse_target(TargetCfg(name="gpu")).available()
    assert not ok and why.startswith("no CUDA device")
    if not ort_gpu_status()[0]:
        assert "onnxruntime-gpu is not installed" in why


def test_what_it_runs(tiny_artifact, tmp_path):
    t = parse_target(TargetCfg(name="gpu"))
    ov = Artifact(tmp_path / "model.xml", "openvino", "fp32", "baseline", "none")
    assert t.runs(ov) == (False, "target 'gpu' does not run openvino artifacts")
    ok, why = t.runs(tiny_artifact)
    assert ok == ort_gpu_status()[0]
    if not ok:
        assert why == "onnxruntime-gpu is not installed"


@no_gpu_only
def test_edgeslim_targets_lists_gpu_as_unavailable():
    from typer.testing import CliRunner

    from edgeslim.cli import app

    r = CliRunner().invoke(app, ["targets"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("│ gpu "))
    assert "no: no CUDA device" in line and "onnx, tensorrt" in line
    trt = next(ln for ln in r.output.splitlines() if ln.startswith("│ tensorrt │"))
    assert "no: " in trt


@no_gpu_only
def test_profile_stage_gives_skipped_rows_not_a_crash(tiny_artifact, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "30-export").mkdir(parents=True)
    art_dir = run_dir / "30-export" / "baseline-onnx"
    shutil.copytree(tiny_artifact.path.parent, art_dir)
    art = Artifact(art_dir / "model.onnx", "onnx", "fp32", "baseline", "none")
    recipe = load_recipe(None, ["targets=[gpu]", "model.input_size=16", "data.name=synthetic",
                                "data.limit_train=4", "data.limit_val=4"])
    comp = StageResult("10-compress", run_dir, "k", {"params_before": 1, "params_after": 1,
                                                     "macs_before": 1, "macs_after": 1}, "h", True, 0.0)
    base = StageResult("00-baseline", run_dir, "k", {"accuracy": None}, "h", True, 0.0)
    skipped = [Skipped(Cell(Variant("baseline", "none", "00-baseline"), "tensorrt", "fp32"),
                       "tensorrt is not installed")]
    (run_dir / "50-profile").mkdir()
    ProfileStage().run(run_dir / "50-profile", ProfileInputs([(art, base)], skipped, base, comp),
                       ProfileStage().slice(recipe), Context(run_dir=run_dir))
    import json

    rows = json.loads((run_dir / "50-profile" / "results.json").read_text())
    assert [(r["id"], r["target"], r["status"]) for r in rows] == [
        ("baseline/tensorrt/fp32", "gpu", "skipped"), ("baseline/onnx/fp32", "gpu", "skipped")]
    assert rows[0]["reason"] == "tensorrt is not installed"
    assert rows[1]["reason"].startswith("no CUDA device") and rows[1]["latency_ms"] is None
    assert rows[1]["bytes"] == art.bytes  # the artifact is still described


def test_pytorch_eager_baseline(tmp_path):
    import numpy as np
    import torch.nn as nn

    from edgeslim.recipe import ProfileCfg
    from edgeslim.targets.gpu import profile_torch_eager

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    x = np.zeros((2, 3, 16, 16), np.float32)
    cfg = ProfileCfg(warmup=1, warmup_seconds=0, min_iterations=5, max_seconds=0.1)
    stats = profile_torch_eager(model, x, cfg, device="cpu")  # the same code path as on the GPU
    assert stats["latency_ms"]["p50"] > 0 and stats["iterations"] >= 5
    assert stats["semantics"]["runtime"] == "pytorch" and stats["semantics"]["device"] == "cpu"
    if NO_GPU:
        with pytest.raises(TargetError, match="no CUDA device"):
            profile_torch_eager(model, x, cfg)
