"""ONNX Runtime runner, the latency profiler and the cpu target, on tiny hand-built ONNX graphs."""

from __future__ import annotations

import math
import time
import platform

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeslim.artifacts import Artifact
from edgeslim.errors import EdgeslimError, TargetError
from edgeslim.recipe import ProfileCfg, TargetCfg
from edgeslim.targets import TARGETS, cpu_info, parse_target
from edgeslim.targets.base import failed_row
from edgeslim.targets.cpu import CpuTarget
from edgeslim.targets.ort_runner import OrtRunner, usable_cores
from edgeslim.targets.profiler import accuracy, median_ci, profile_runner, time_infer

FAST = dict(min_iterations=10, max_seconds=0.5, warmup=2, warmup_seconds=0)


def _pool_model(path, channels: int = 3) -> Artifact:
    """logits[n, c] = mean over H, W of x[n, c]: the caller controls the argmax."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, "h", "w"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", channels])
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["logits"], axis=1)],
        "pool", [x], [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return Artifact(path, "onnx", "fp32", "baseline", "none")


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return _pool_model(tmp_path_factory.mktemp("m") / "model.onnx")


def _labelled(n: int, channels: int = 3, size: int = 4, seed: int = 0):
    """Inputs whose channel ``label`` has the largest mean, and those labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, channels, n)
    x = rng.uniform(0, 1, (n, channels, size, size)).astype(np.float32)
    x[np.arange(n), y] += 2.0
    return x, y


def test_runner_infers_at_any_batch(art):
    with OrtRunner(art, threads=1) as r:
        assert r.load_seconds is not None and r.load_seconds > 0
        for n in (1, 5):
            x = np.random.default_rng(n).standard_normal((n, 3, 4, 4)).astype(np.float32)
            out = r.infer(x)
            assert out.shape == (n, 3)
            np.testing.assert_allclose(out, x.mean((2, 3)), atol=1e-6)
        sem = r.semantics()
    assert sem["runtime"] == "onnxruntime" and sem["threads"] == 1
    assert sem["provider"] == "CPUExecutionProvider" and sem["precision_executed"] == "fp32"


def test_runner_loads_lazily_and_defaults_to_usable_cores(art):
    r = OrtRunner(art)
    assert r.load_seconds is None
    r.infer(np.zeros((1, 3, 2, 2), np.float32))
    assert r.load_seconds is not None
    assert r.semantics()["threads"] == usable_cores() >= 1


@pytest.mark.parametrize("bad", [
    np.zeros((1, 3, 4, 4), np.float64),
    np.zeros((1, 3, 4, 4), np.float16),
    np.zeros((1, 3, 4, 4), np.int64),
    np.zeros((3, 4, 4), np.float32),
    [[[[0.0]]]],
])
def test_runner_rejects_non_float32_nchw(art, bad):
    with OrtRunner(art, threads=1) as r:
        with pytest.raises(TargetError, match="float32 \\[N,C,H,W\\]"):
            r.infer(bad)


def test_runner_reports_unloadable_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(TargetError, match="ONNX Runtime cannot load") as err:
        OrtRunner(Artifact(bad, "onnx", "fp32", "baseline", "none"), threads=1).load()
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_time_infer_statistics(art):
    cfg = ProfileCfg(**FAST)
    with OrtRunner(art, threads=1) as r:
        stats = time_infer(r, np.ones((1, 3, 4, 4), np.float32), cfg)
    lat = stats["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"]
    assert lat["mean"] > 0 and lat["std"] >= 0
    assert lat["p99"] < 1000  # a 48-float pool is far below a second
    assert cfg.min_iterations <= stats["iterations"] <= cfg.max_iterations
    assert stats["warmup_iterations"] == 2
    assert stats["first_inference_ms"] > 0
    assert stats["median_ci95"] >= 0


def test_time_infer_stops_at_max_iterations(art):
    cfg = ProfileCfg(min_iterations=1, max_iterations=7, max_seconds=5, warmup=0, warmup_seconds=0,
                     ci_threshold=1e-9)
    with OrtRunner(art, threads=1) as r:
        stats = time_infer(r, np.ones((1, 3, 4, 4), np.float32), cfg)
    assert stats["iterations"] == 7 and stats["warmup_iterations"] == 0


def test_time_infer_times_at_least_min_seconds(art):
    # a 48-float pool meets a loose CI after min_iterations, in well under a millisecond
    x = np.ones((1, 3, 4, 4), np.float32)
    with OrtRunner(art, threads=1) as r:
        quick = time_infer(r, x, ProfileCfg(min_iterations=10, min_seconds=0, ci_threshold=0.5, warmup=0,
                                            warmup_seconds=0))
        t0 = time.perf_counter()
        long = time_infer(r, x, ProfileCfg(min_iterations=10, min_seconds=0.3, ci_threshold=0.5, warmup=0,
                                           warmup_seconds=0))
        took = time.perf_counter() - t0
        capped = time_infer(r, x, ProfileCfg(min_iterations=10, min_seconds=5, max_seconds=0.1,
                                             ci_threshold=0.5, warmup=0, warmup_seconds=0))
    assert quick["iterations"] <= 50
    assert long["iterations"] > 10 * quick["iterations"] and took >= 0.3
    assert capped["iterations"] < long["iterations"]  # max_seconds bounds min_seconds


def test_median_ci():
    assert median_ci([2.0] * 20) == 0.0
    assert median_ci([1.0, 2.0, 3.0, 4.0]) == math.inf
    assert median_ci([]) == math.inf
    assert median_ci([0.0] * 10) == math.inf  # zero median: no relative width
    spread = median_ci([float(i) for i in range(1, 101)])
    tight = median_ci([100.0 + 0.01 * i for i in range(100)])
    assert 0 < tight < spread < 1


def test_accuracy_is_the_right_fraction(art):
    x, y = _labelled(10)
    with OrtRunner(art, threads=1) as r:
        assert accuracy(r, x, y, batch=3) == 1.0
        wrong = y.copy()
        wrong[:4] = (wrong[:4] + 1) % 3  # 4 of 10 labels now disagree with the argmax
        assert accuracy(r, x, wrong, batch=3) == pytest.approx(0.6)
        assert accuracy(r, x, wrong, batch=64) == pytest.approx(0.6)
        assert accuracy(r, x, None) is None
        assert accuracy(r, x[:0], y[:0]) is None


def test_profile_runner_throughput_and_accuracy(art):
    x, y = _labelled(8)
    cfg = ProfileCfg(**FAST, batch_sizes=[1, 4])
    with OrtRunner(art, threads=1) as r:
        res = profile_runner(r, x, cfg, (x, y))
    assert res["batch"] == 1
    assert set(res["throughput_per_s"]) == {"1", "4"}
    assert all(v > 0 for v in res["throughput_per_s"].values())
    assert res["accuracy"] == 1.0
    assert res["load_ms"] > 0 and res["rss_mb"] > 0
    no_acc = ProfileCfg(**FAST, accuracy=False)
    with OrtRunner(art, threads=1) as r:
        assert profile_runner(r, x, no_acc, (x, y))["accuracy"] is None


def test_cpu_target_profile_row(art):
    target = parse_target(TargetCfg(name="cpu"))
    assert isinstance(target, CpuTarget) and target.label == "cpu"
    assert target.available() == (True, "")
    assert target.runs(art) == (True, "")
    x, y = _labelled(6)
    row = target.profile(art, x[:1], ProfileCfg(**FAST), (x, y))
    assert row["status"] == "ok" and row["reason"] == ""
    sem = row["semantics"]
    assert sem["runtime"] == "onnxruntime"
    assert sem["runtime_version"] == ort.__version__
    assert sem["threads"] >= 1 and sem["threads"] == usable_cores()
    assert sem["batch"] == 1
    assert sem["iterations"] == row["iterations"] >= 10
    assert sem["warmup_iterations"] == 2
    assert isinstance(sem["cpu"], str) and sem["cpu"]
    assert isinstance(sem["isa"], list)
    assert sem["device"] == "cpu" and sem["timer"] == "time.perf_counter"
    assert row["accuracy"] == 1.0
    lat = row["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]


def test_cpu_target_threads_option(art):
    target = parse_target(TargetCfg(name="cpu", threads=1))
    assert target.threads() == 1
    row = target.profile(art, np.ones((1, 3, 4, 4), np.float32), ProfileCfg(**FAST, accuracy=False), None)
    assert row["semantics"]["threads"] == 1
    assert row["accuracy"] is None


def test_cpu_target_does_not_run_other_formats(tmp_path):
    target = parse_target("cpu")
    # TensorRT engines need a GPU: the cpu target never runs them
    ok, reason = target.runs(Artifact(tmp_path / "m.engine", "tensorrt", "fp16", "baseline", "none"))
    assert not ok and "tensorrt" in reason and "'cpu'" in reason
    ok, reason = target.runs(Artifact(tmp_path / "m.tflite", "tflite", "fp32", "baseline", "none"))
    assert not ok and "tflite" in reason


def test_parse_target_unknown_name_suggests():
    with pytest.raises(EdgeslimError, match=r"unknown target 'cpuu'; did you mean 'cpu'"):
        parse_target("cpuu")
    with pytest.raises(EdgeslimError, match="did you mean 'cpu'"):
        parse_target(TargetCfg(name="cp"))


def test_parse_target_unknown_name_is_target_error():
    with pytest.raises(TargetError):
        parse_target("cpuu")


def test_parse_target_unknown_option_names_it():
    with pytest.raises(TargetError, match=r"unknown option 'thread' for target 'cpu'; did you mean 'threads'\?"):
        parse_target(TargetCfg(name="cpu", thread=2))
    with pytest.raises(TargetError, match=r"unknown option 'gpu_id' for target 'cpu'"):
        parse_target(TargetCfg(name="cpu", gpu_id=0))
    with pytest.raises(TargetError, match=r"target 'cpu' option 'threads'"):
        parse_target(TargetCfg(name="cpu", threads=0))


def test_cpu_info():
    info = cpu_info()
    assert isinstance(info["cpu"], str) and info["cpu"].strip()
    assert isinstance(info["isa"], list)
    assert set(info["isa"]) <= {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                                "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "neon", "asimd"}
    assert info["machine"] == platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return
    for flag in info["isa"]:  # every reported flag is really in /proc/cpuinfo
        assert f" {flag}" in text
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    if names:
        assert info["cpu"] == names[0]


def test_failed_row():
    assert failed_row(TargetError("no such device")) == {"status": "failed", "reason": "no such device"}
    try:
        raise ValueError("boom\nsecond line")
    except ValueError as err:
        row = failed_row(err)
    assert row["status"] == "failed"
    assert row["reason"].startswith("ValueError: boom at test_profiler.py:")
    assert "second line" not in row["reason"]


def test_registry_lists_cpu():
    assert "cpu" in TARGETS.names()
    assert TARGETS.get("cpu") is CpuTarget


def test_a_fast_artifact_is_timed_in_fresh_sessions_and_its_row_is_the_median_one(art):
    target = parse_target(TargetCfg(name="cpu"))
    x, y = _labelled(6)
    row = target.profile(art, x[:1], ProfileCfg(**FAST, sessions=3, sessions_below_ms=1e6), (x, y))
    s = row["semantics"]["sessions"]
    assert s["count"] == 3 and len(s["p50_ms"]) == 3
    assert row["latency_ms"]["p50"] == pytest.approx(sorted(s["p50_ms"])[1], rel=1e-5)  # the median session
    assert s["p50_ms"][s["chosen"]] == pytest.approx(row["latency_ms"]["p50"], rel=1e-5)
    assert row["latency_p50_ms_by_batch"]["1"] == row["latency_ms"]["p50"]
    assert row["throughput_per_s"]["1"] == pytest.approx(1e3 / row["latency_ms"]["p50"])
    assert row["accuracy"] == 1.0  # measured once, in the first session
    # above the threshold (or with sessions 1) one session is timed
    for cfg in (ProfileCfg(**FAST, sessions=3, sessions_below_ms=0), ProfileCfg(**FAST, sessions=1)):
        one = target.profile(art, x[:1], cfg, (x, y))["semantics"]["sessions"]
        assert one["count"] == 1 and len(one["p50_ms"]) == 1
