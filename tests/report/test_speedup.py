"""The report's "What compression bought" section: measured speedup against the MACs removed,
and the channel-alignment hint only where an AVX-512 target measured a poor speedup."""

import pytest

from edgeslim.report.speedup import speedup_section

CHANNELS = {"conv1": {"before": 16, "after": 16}, "layer1.0.conv1": {"before": 16, "after": 8},
            "layer2.0.conv1": {"before": 32, "after": 16}, "fc": {"before": 10, "after": 10}}
STRUCTURED = {"family": "structured", "channels": CHANNELS}


def row(variant, p50, macs, *, precision="int8", isa=("avx2", "avx512f"), target="cpu", status="ok"):
    return {"variant": variant, "target": target, "format": "onnx", "precision": precision, "status": status,
            "macs": macs, "latency_ms": {"p50": p50}, "semantics": {"isa": list(isa)}}


def test_table_sets_each_compressed_artifact_against_its_baseline_twin():
    rows = [row("baseline", 0.40, 40e6, precision="fp32"), row("compressed", 0.20, 10e6, precision="fp32"),
            row("baseline", 0.30, 40e6), row("compressed", 0.25, 10e6, status="failed")]
    md = speedup_section(rows, STRUCTURED, 8)
    assert md[0] == "## What compression bought"
    body = [line for line in md if line.startswith("| cpu")]
    # the failed int8 has no row
    assert body == ["| cpu | onnx | fp32 | 4.00x fewer | 0.400 → 0.200 | 2.00x | 0.50 |"]
    assert not any(line.startswith("- ") for line in md)  # 0.50 of the MAC promise is not poor


def test_a_poor_speedup_on_avx512_with_unaligned_channels_names_round_to():
    rows = [row("baseline", 0.275, 41.4e6), row("compressed", 0.292, 10.6e6)]
    md = "\n".join(speedup_section(rows, STRUCTURED, 8))
    assert "| cpu | onnx | int8 | 3.91x fewer | 0.275 → 0.292 | 0.94x | 0.24 |" in md
    assert "`cpu`: onnx int8 0.94x for the MACs removed" in md
    assert "1 pruned layer keeps a channel count that is not a multiple of 16 (layer1.0.conv1: 8)" in md
    assert "--set compress.round_to=16" in md and "per-operator overhead" not in md


@pytest.mark.parametrize("isa, report, round_to, precision", [
    (("avx2",), STRUCTURED, 8, "int8"),                                  # not measured with AVX-512
    (("avx2", "avx512f"), STRUCTURED, 8, "fp32"),                        # FP32 went either way: no evidence
    (("avx2", "avx512f"), {"family": "structured", "channels": {"a": {"before": 32, "after": 16}}}, 8, "int8"),
    (("avx2", "avx512f"), {"family": "structured", "channels": {"a": {"before": 40, "after": 24}}}, 16, "int8"),
    # a factorized model: its convs became Sequentials, so their "after" is None (and no channels to align)
    (("avx2", "avx512f"), {"family": "factorize", "channels": {"a": {"before": 32, "after": None}}}, 8, "int8"),
    (("avx2", "avx512f"), {"family": "structured", "channels": {"a": {"before": 32, "after": None}}}, 8, "int8"),
    ((), STRUCTURED, 8, "int8"),                                         # a remote agent that reports no ISA
])
def test_no_alignment_hint_where_alignment_is_not_the_evidence(isa, report, round_to, precision):
    rows = [row("baseline", 0.275, 41.4e6, isa=isa, precision=precision),
            row("compressed", 0.292, 10.6e6, isa=isa, precision=precision)]
    rows[1]["semantics"] = {} if not isa else rows[1]["semantics"]
    md = "\n".join(speedup_section(rows, report, round_to))
    assert "less than half of what they promise" in md
    assert "round_to" not in md and "per-operator overhead" in md


def test_a_compressed_model_with_more_macs_says_more():
    md = speedup_section([row("baseline", 0.2, 1e6), row("compressed", 0.25, 2e6)], STRUCTURED, 8)
    assert "| cpu | onnx | int8 | 2.00x more | 0.200 → 0.250 | 0.80x | 1.60 |" in md


def test_nothing_to_compare_gives_no_section():
    assert speedup_section([row("compressed", 0.2, 1e6)], STRUCTURED, 8) == []
    assert speedup_section([row("baseline", 0.2, 1e6), row("compressed", 0.2, 1e6, target="edge")], {}, 8) == []
