"""``edgeslim bench``: an artifact made outside edgeslim, timed with a run's profiler and rows."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from edgeslim.cli import app
from edgeslim.errors import TargetError
from edgeslim.recipe import ProfileCfg
from edgeslim.targets.bench import bench, open_artifact
from tests.targets.conftest import QUICK

FAST = ProfileCfg(**QUICK)


def export(path, *, dynamic: dict) -> str:
    """A tiny classifier exported by hand with torch.onnx.export, not by edgeslim."""
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(4, 10)).eval()
    torch.onnx.export(m, torch.zeros(1, 3, 16, 16), str(path), input_names=["x"], dynamic_axes=dynamic,
                      dynamo=False)
    return str(path)


@pytest.fixture(scope="module")
def batch_dynamic(tmp_path_factory):
    return export(tmp_path_factory.mktemp("b") / "m.onnx", dynamic={"x": {0: "n"}})


def test_bench_rows_carry_semantics_noise_and_latency_per_batch(batch_dynamic):
    rows = bench([batch_dynamic], targets=["cpu"], batch_sizes=[1, 2], profile=FAST)
    (row,) = rows
    assert row["status"] == "ok", row["reason"]
    assert row["format"] == "onnx" and row["precision"] == "fp32" and row["input_shape"] == [1, 3, 16, 16]
    assert set(row["latency_p50_ms_by_batch"]) == {"1", "2"} == set(row["throughput_per_s"])
    assert row["latency_p50_ms_by_batch"]["1"] == row["latency_ms"]["p50"]
    sem = row["semantics"]
    assert sem["runtime"] == "onnxruntime" and sem["batch_sizes"] == [1, 2] and sem["device"] == "cpu"
    noise = row["noise"]
    assert isinstance(noise["noisy"], bool) and 0 <= noise["other_cpu_share"] <= 1
    assert noise["threshold"] == FAST.noisy_share and len(noise["load_average_before"]) == 3
    assert row["sha256"] and row["bytes"] > 0
    # a bench figure is the median of fresh processes, one session each, whatever the artifact's speed
    sessions = sem["sessions"]
    assert sessions["count"] == 5 == len(sessions["p50_ms"]) and sessions["processes"] is True
    assert row["latency_ms"]["p50"] == pytest.approx(sorted(sessions["p50_ms"])[2], abs=1e-6)
    (one,) = bench([batch_dynamic], profile=FAST, sessions=1)
    assert one["semantics"]["sessions"]["count"] == 1
    with pytest.raises(TargetError, match="--sessions must be at least 1"):
        bench([batch_dynamic], profile=FAST, sessions=0)


def test_compare_gives_each_a_ratio_to_the_first_with_an_interval(batch_dynamic, tmp_path):
    other = export(tmp_path / "other.onnx", dynamic={"x": {0: "n"}})
    rows = bench([batch_dynamic, other], targets=["cpu"], profile=FAST, compare=True, rounds=3)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    first, second = (r["compare"] for r in rows)
    assert first["ratio_p50"] == 1.0 and first["ratio_ci95"] == [1.0, 1.0]
    lo, hi = second["ratio_ci95"]
    assert lo <= second["ratio_p50"] <= hi and second["ratio_p50"] > 0
    assert len(second["ratios_by_round"]) == 3 == second["rounds"]
    assert all(r["semantics"]["sessions"]["count"] == 1 for r in rows)  # the rounds are the sessions


def test_dynamic_axes_need_an_input_shape(tmp_path):
    path = export(tmp_path / "dyn.onnx", dynamic={"x": {0: "n", 2: "h", 3: "w"}})
    with pytest.raises(TargetError, match=r"dynamic axes \(\?x3x\?x\?\): give --input-shape"):
        bench([path], profile=FAST)
    (row,) = bench([path], input_shape="1x3x20x20", profile=FAST, sessions=1)
    assert row["status"] == "ok" and row["input_shape"] == [1, 3, 20, 20]


def test_fixed_batch_and_wrong_shape_are_one_line_errors(tmp_path):
    path = export(tmp_path / "fixed.onnx", dynamic={})
    with pytest.raises(TargetError, match="fixed batch of 1; batch sizes \\[1, 8\\]"):
        bench([path], batch_sizes=[1, 8], profile=FAST)
    with pytest.raises(TargetError, match="does not fit fixed.onnx: its input 'x' is 1x3x16x16"):
        bench([path], input_shape="1x3x32x32", profile=FAST)
    with pytest.raises(TargetError, match="cannot tell the format of m.pt"):
        (tmp_path / "m.pt").write_bytes(b"x")
        open_artifact(tmp_path / "m.pt")


def test_tensorrt_engine_is_skipped_with_the_reason(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    rows = bench([engine], targets=["cpu", "gpu"], input_shape="1x3x16x16", profile=FAST)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert "does not run tensorrt" in rows[0]["reason"] and rows[1]["reason"]


def test_preprocess_and_accuracy(batch_dynamic, tmp_path):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "cat.png")
    (row,) = bench([batch_dynamic], profile=FAST, preprocess_image=tmp_path / "cat.png", accuracy_data="digits",
                   sessions=2)
    assert row["status"] == "ok" and row["semantics"]["sessions"]["count"] == 2
    assert row["preprocess_ms"]["p50"] > 0
    assert row["end_to_end_p50_ms"] == pytest.approx(row["preprocess_ms"]["p50"] + row["latency_ms"]["p50"])
    assert row["semantics"]["preprocess"]["image_source"] == "PNG 40x30"
    assert 0 <= row["accuracy"] <= 1  # an untrained model: any value, but measured (by the first process)


def test_cli_writes_json_and_exits_by_status(batch_dynamic, tmp_path):
    out = tmp_path / "rows.json"
    res = CliRunner().invoke(app, ["bench", batch_dynamic, "--batch", "1,2", "--json", str(out),
                                   "--noisy-share", "1", "--sessions", "2"])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert rows[0]["status"] == "ok" and rows[0]["noise"]["noisy"] is False  # share never exceeds 1
    assert "p50 ms by batch" in res.output
    res = CliRunner().invoke(app, ["bench", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 2 and "does not exist" in res.output
