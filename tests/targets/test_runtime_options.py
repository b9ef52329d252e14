"""Runtime settings: defaults, per-target overrides, and every one recorded in the row's semantics.

Where a setting depends on the CPU (bf16 for INT8's float layers), both sides are tested by
monkeypatching the capability probe; the real runs assert what this CPU really did.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from edgeslim.errors import TargetError
from edgeslim.exporters import EXPORTERS
from edgeslim.models.zoo import create_model
from edgeslim.quantizers import QUANTIZERS
from edgeslim.recipe import ExportCfg, ProfileCfg, QuantizeCfg
from edgeslim.targets import openvino_runner, parse_target, runtime_options
from edgeslim.targets.agent_call import MODULE, parse_answer, run_process
from edgeslim.targets.config import TargetCfg
from edgeslim.targets.edge import agent_env
from edgeslim.targets.openvino_runner import OpenVinoRunner, default_precision, supports
from edgeslim.targets.ort_runner import OrtRunner
from edgeslim.targets.profiler import profile_artifact

from tests.targets.conftest import QUICK

HAS_BF16 = supports("bf16")


@pytest.fixture(scope="module")
def int8_ir(tmp_path_factory):
    """A real NNCF INT8 IR of resnet20 (its stem and head stay in floating point)."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    m = create_model("resnet20", num_classes=10).eval()
    ir = EXPORTERS.get("openvino").export(m, x[:2], tmp_path_factory.mktemp("ir"), cfg=ExportCfg(),
                                          variant="baseline", method="none")
    q = QUANTIZERS.get("openvino-int8").quantize(ir, x, tmp_path_factory.mktemp("q"),
                                                 cfg=QuantizeCfg(nncf_subset_size=8))
    return q, x


def test_the_defaults_are_the_runners_and_each_option_reaches_its_runner():
    d = runtime_options.RuntimeOptions()
    assert d.runner_options("onnx") == {"graph_optimization": "all"}
    assert d.runner_options("openvino") == {"inference_precision": "auto", "performance_hint": "LATENCY"}
    assert d.runner_options("tensorrt") == {}
    o = runtime_options.RuntimeOptions(ort_optimization="extended", ort_spinning=False, openvino_hint="THROUGHPUT",
                                       openvino_streams=1, openvino_pinning=False, openvino_precision="f32")
    assert o.runner_options("onnx") == {"graph_optimization": "extended", "spinning": False}
    assert o.runner_options("openvino") == {"inference_precision": "f32", "performance_hint": "THROUGHPUT",
                                            "streams": 1, "pinning": False}


@pytest.mark.parametrize("name", ["cpu", "edge", "ssh://pi@10.0.0.7"])
def test_every_cpu_like_target_takes_the_same_runtime_options(name):
    t = parse_target(TargetCfg(name=name, ort_spinning=False, openvino_hint="THROUGHPUT"))
    assert t.opts.runner_options("onnx")["spinning"] is False
    assert t.opts.runner_options("openvino")["performance_hint"] == "THROUGHPUT"
    with pytest.raises(TargetError) as e:
        parse_target(TargetCfg(name=name, ort_spining=False))
    assert "\n" not in str(e.value) and "'ort_spining'" in str(e.value) and "ort_spinning" in str(e.value)
    with pytest.raises(TargetError) as e:
        parse_target(TargetCfg(name=name, ort_optimization="most"))
    assert "ort_optimization" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_a_precision_the_cpu_lacks_is_a_recipe_error_on_local_targets_only(monkeypatch, has_bf16):
    monkeypatch.setattr(runtime_options, "supports", lambda p, device="CPU": p == "f32" or (has_bf16 and p == "bf16"))
    monkeypatch.setattr(runtime_options, "capabilities", lambda device="CPU": ["FP32"] + ["BF16"] * has_bf16)
    for name in ("cpu", "edge"):
        assert parse_target(TargetCfg(name=name, openvino_precision="auto")).opts.openvino_precision == "auto"
        if has_bf16:
            assert parse_target(TargetCfg(name=name, openvino_precision="bf16")).opts.openvino_precision == "bf16"
        else:
            with pytest.raises(TargetError) as e:
                parse_target(TargetCfg(name=name, openvino_precision="bf16"))
            assert "openvino_precision" in str(e.value) and "cannot run inference precision bf16" in str(e.value)
    # a remote device answers for itself: the host's CPU says nothing about it
    assert parse_target(TargetCfg(name="ssh://pi@h", openvino_precision="bf16")).opts.openvino_precision == "bf16"


@pytest.mark.parametrize("has_bf16", [True, False])
def test_int8_float_layers_run_at_the_fastest_precision_only_under_auto(monkeypatch, has_bf16):
    monkeypatch.setattr(openvino_runner, "supports", lambda p, device="CPU": p == "f32" or (has_bf16 and p == "bf16"))
    assert default_precision("int8", fastest=True) == ("bf16" if has_bf16 else "f32")
    assert default_precision("int8-qat", fastest=True) == ("bf16" if has_bf16 else "f32")
    assert default_precision("int8") == "f32"  # parity and quantizer checks
    assert default_precision("fp32", fastest=True) == "f32"  # an fp32 row runs f32; bf16 is its own row
    assert default_precision("bf16", fastest=True) == "bf16"


def test_int8_ir_under_auto_records_what_its_float_layers_ran(int8_ir):
    q, x = int8_ir
    with OpenVinoRunner(q, threads=1, inference_precision="auto") as r:
        out = r.infer(x[:2])
        sem = r.semantics()
    with OpenVinoRunner(q, threads=1) as r:  # the f32 default of checks
        ref = r.infer(x[:2])
        checked = r.semantics()
    assert out.shape == ref.shape == (2, 10) and np.isfinite(out).all()
    assert sem["precision_executed"] == checked["precision_executed"] == "int8"
    assert sem["layer_precisions"].get("int8", 0) >= 20
    assert sem["inference_precision"] == ("bf16" if HAS_BF16 else "f32")
    assert sem["precision_policy"] == "auto" and checked["precision_policy"] == "default"
    assert checked["inference_precision"] == "f32"


def test_openvino_settings_are_applied_and_recorded(int8_ir):
    q, x = int8_ir
    with OpenVinoRunner(q, threads=1, inference_precision="f32", performance_hint="THROUGHPUT", streams=1,
                        pinning=False) as r:
        r.infer(x[:1])
        sem = r.semantics()
    assert (sem["performance_hint"], sem["streams"], sem["pinning"], sem["threads"]) == ("THROUGHPUT", 1, False, 1)
    assert sem["inference_precision"] == "f32" and sem["precision_policy"] == "f32"
    with pytest.raises(TargetError) as e:
        OpenVinoRunner(q, inference_precision="f8").load()
    assert "auto or one of f32, bf16, f16" in str(e.value) and "'f8'" in str(e.value)


@pytest.mark.parametrize("level, spinning", [("all", None), ("extended", False), ("disabled", True)])
def test_ort_settings_are_applied_and_recorded(tiny_artifact, level, spinning):
    opts = {"graph_optimization": level} | ({} if spinning is None else {"spinning": spinning})
    x = np.zeros((1, 3, 16, 16), np.float32)
    with OrtRunner(tiny_artifact, threads=1, **opts) as r:
        assert r.infer(x).shape == (1, 10)
        sem = r.semantics()
    assert sem["graph_optimization"] == level and sem["threads"] == 1
    assert sem["spinning"] is (True if spinning is None else spinning)  # ONNX Runtime spins by default
    assert sem["inference_precision"] == "f32"
    with pytest.raises(TargetError) as e:
        OrtRunner(tiny_artifact, graph_optimization="most").load()
    assert "graph optimization" in str(e.value) and "'most'" in str(e.value)


def test_the_cpu_targets_options_reach_the_rows_semantics(tiny_artifact):
    t = parse_target(TargetCfg(name="cpu", threads=1, ort_spinning=False, ort_optimization="basic"))
    m = t.profile(tiny_artifact, np.zeros((1, 3, 16, 16), np.float32), ProfileCfg(**QUICK, accuracy=False), None)
    assert m["status"] == "ok", m["reason"]
    sem = m["semantics"]
    assert (sem["spinning"], sem["graph_optimization"], sem["threads"]) == (False, "basic", 1)


def test_the_edge_agent_applies_the_targets_options(tiny_artifact):
    """End to end through the agent subprocess: the options cross the process boundary."""
    t = parse_target(TargetCfg(name="edge", ort_spinning=False, ort_optimization="extended"))
    m = t.profile(tiny_artifact, np.zeros((1, 3, 16, 16), np.float32), ProfileCfg(**QUICK, accuracy=False), None)
    assert m["status"] == "ok", m["reason"]
    sem = m["semantics"]
    assert (sem["spinning"], sem["graph_optimization"], sem["threads"]) == (False, "extended", 1)
    assert sem["measured_in"] == "agent subprocess"


@pytest.mark.parametrize("bad, why", [("[1, 2]", "expected a JSON object"), ("{nope", "bad --runner-options")])
def test_the_agent_refuses_runner_options_that_are_not_a_json_object(tiny_artifact, bad, why):
    cmd = [sys.executable, "-m", MODULE, "--artifact", str(tiny_artifact.path), "--format", "onnx",
           "--input-shape", "1,3,16,16", "--runner-options", bad]
    rc, out, err = run_process(cmd, timeout=60, what="the agent", env=agent_env())
    ans = parse_answer(rc, out, err, where="this machine", python=sys.executable)
    assert rc == 1 and ans["status"] == "failed" and why in ans["reason"] and "\n" not in ans["reason"]


def test_profile_rows_carry_the_roofline_peak_of_what_ran(tiny_artifact):
    m = profile_artifact(tiny_artifact, np.zeros((1, 3, 16, 16), np.float32), ProfileCfg(**QUICK, accuracy=False),
                         None, threads=1, device="cpu")
    roof = m["semantics"]["roofline"]
    isa = m["semantics"]["isa"]
    if not ({"avx512f", "avx2"} & set(isa)):
        assert roof is None  # no SIMD rate known for this CPU
        return
    assert roof["precision"] == "f32" and roof["cores"] == 1
    assert roof["macs_per_s"] == pytest.approx(roof["macs_per_cycle_per_core"] * roof["mhz"] * 1e6)
    assert roof["mhz_source"] in ("sysfs cpufreq scaling_cur_freq", "/proc/cpuinfo cpu MHz")


def test_agent_args_carry_the_runner_options_only_when_there_are_some(tiny_artifact):
    from edgeslim.targets.agent_call import agent_args

    def args(opts):
        return agent_args(tiny_artifact, "model.onnx", ProfileCfg(), data_npz="in.npz", threads=1, core=None,
                          memory_limit_mb=None, device="edge", runner_options=opts)

    with_opts = args({"spinning": False, "graph_optimization": "basic"})
    i = with_opts.index("--runner-options")
    assert json.loads(with_opts[i + 1]) == {"spinning": False, "graph_optimization": "basic"}
    assert "--runner-options" not in args({}) and "--runner-options" not in args(None)
