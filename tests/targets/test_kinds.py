"""Targets declare their kind; the formats they run follow from the runners' declared kinds."""

from __future__ import annotations

import pytest

from edgeslim.errors import TargetError
from edgeslim.targets.config import TargetCfg
from edgeslim.targets import RUNNERS, TARGETS, Target, parse_target
from edgeslim.targets.base import KINDS, register_target


@pytest.mark.parametrize("name", TARGETS.names())
def test_every_target_declares_a_kind(name):
    assert TARGETS.get(name).kind in KINDS


@pytest.mark.parametrize("name, kind, formats", [
    ("cpu", "cpu", ("onnx", "openvino")),
    ("edge", "edge", ("onnx", "openvino")),
    ("gpu", "gpu", ("onnx", "tensorrt")),
])
def test_formats_are_the_runners_of_the_kind(name, kind, formats):
    cls = TARGETS.get(name)
    assert cls.kind == kind and cls.formats == formats
    assert formats == tuple(n for n, r in RUNNERS.items() if kind in r.kinds)


def test_tensorrt_runs_on_gpus_only():
    assert RUNNERS.get("tensorrt").kinds == ("gpu",)
    assert "tensorrt" not in TARGETS.get("cpu").formats and "tensorrt" not in TARGETS.get("edge").formats


def test_ssh_devices_are_edge_unless_the_recipe_says_otherwise():
    assert parse_target("ssh://pi@10.0.0.7").kind == "edge"
    assert parse_target(TargetCfg(name="ssh://u@gpu-box", kind="gpu")).kind == "gpu"
    assert TARGETS.get("ssh").kind == "edge"  # the class default is untouched
    with pytest.raises(TargetError, match="target 'ssh://u@h' option 'kind'"):
        parse_target(TargetCfg(name="ssh://u@h", kind="tpu"))


def test_a_target_without_a_kind_is_refused_at_registration():
    class NoKind(Target):
        name = "nokind"
        description = "a target that does not say what it is"

    with pytest.raises(ValueError, match="target 'nokind' must declare kind, one of cpu, gpu, edge"):
        register_target(NoKind)
    assert "nokind" not in TARGETS
