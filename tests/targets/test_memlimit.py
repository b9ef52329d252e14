"""The edge target's memory_limit_mb limits resident memory, for every format."""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

from edgeslim.artifacts import Artifact
from edgeslim.recipe import ProfileCfg, TargetCfg
from edgeslim.targets import parse_target
from tests.targets.conftest import QUICK

CFG = ProfileCfg(**QUICK, batch_sizes=[1], accuracy=False)
X = np.zeros((1, 3, 16, 16), np.float32)


@pytest.fixture(scope="module")
def ir(tiny_artifact, tmp_path_factory):
    xml = tmp_path_factory.mktemp("ir") / "model.xml"
    ov.save_model(ov.convert_model(str(tiny_artifact.path)), str(xml), compress_to_fp16=False)
    return Artifact(xml, "openvino", "fp32", "baseline", "none", files=[xml, xml.with_suffix(".bin")])


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_tiny_limit_fails_with_a_memory_reason_and_a_normal_one_passes(fmt, tiny_artifact, ir):
    art = tiny_artifact if fmt == "onnx" else ir
    tiny = parse_target(TargetCfg(name="edge", memory_limit_mb=16)).profile(art, X, CFG, None)
    assert tiny["status"] == "failed"
    assert "memory limit of 16 MB" in tiny["reason"] and "resident memory" in tiny["reason"]
    ok = parse_target(TargetCfg(name="edge", threads=1, core=0, memory_limit_mb=512)).profile(art, X, CFG, None)
    assert ok["status"] == "ok", ok["reason"]
    sem = ok["semantics"]
    assert sem["memory_limit_mb"] == 512 and sem["memory_limit_mechanism"]
    assert ok["peak_rss_mb"] < 512
