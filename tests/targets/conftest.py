"""Shared fixtures for the target tests: a tiny real ONNX classifier and its inputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeslim.artifacts import Artifact
from edgeslim.recipe import ProfileCfg

# Seconds, not minutes: enough iterations for the statistics, nothing more.
QUICK = dict(warmup=2, warmup_seconds=0, min_iterations=5, max_seconds=0.2)


def write_tiny_classifier(path, classes: int = 10) -> Artifact:
    """Conv 3→8, ReLU, global pool, Gemm → ``classes`` logits; dynamic batch, 16x16 input."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((classes, 8)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return Artifact(path, "onnx", "fp32", "baseline", "none")


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Artifact:
    return write_tiny_classifier(tmp_path_factory.mktemp("tiny") / "model.onnx")


@pytest.fixture(scope="session")
def tiny_val(tiny_artifact):
    """Inputs, and labels that are the artifact's own predictions (so accuracy must be 1.0)."""
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((12, 3, 16, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(tiny_artifact.path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x})[0].argmax(1)
    return x, y


@pytest.fixture
def quick_cfg() -> ProfileCfg:
    return ProfileCfg(**QUICK, batch_sizes=[1, 4])


def assert_full_semantics(m: dict, *, device: str) -> dict:
    """Every figure of an ``ok`` measurement carries what it means; returns its semantics."""
    import onnxruntime as ort

    assert m["status"] == "ok", m.get("reason")
    lat = m["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] and lat["mean"] > 0 and lat["std"] >= 0
    assert set(m["throughput_per_s"]) == {"1", "4"} and all(v > 0 for v in m["throughput_per_s"].values())
    assert m["load_ms"] > 0 and m["first_inference_ms"] > 0
    assert m["peak_rss_mb"] >= m["rss_mb"] * 0.99 > 0  # the peak is never below the current RSS
    sem = m["semantics"]
    assert sem["runtime"] == "onnxruntime" and sem["runtime_version"] == ort.__version__
    assert sem["device"] == device and isinstance(sem["cpu"], str) and sem["cpu"]
    assert isinstance(sem["isa"], list) and sem["machine"]
    assert sem["threads"] >= 1 and sem["batch"] == 1 and sem["batch_sizes"] == [1, 4]
    assert sem["precision_executed"] == "fp32"
    assert sem["request_mode"] == "sync" and sem["requests_in_flight"] == 1
    assert sem["input_copy_included"] is True and sem["timer"] == "time.perf_counter"
    assert sem["iterations"] == m["iterations"] >= QUICK["min_iterations"]
    assert sem["warmup_iterations"] == m["warmup_iterations"] >= QUICK["warmup"]
    assert sem["affinity"] and sem["process_threads"] >= 1 and sem["peak_rss_scope"]
    return sem
