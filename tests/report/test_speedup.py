"""The report's "What compression bought" section: measured speedup against the MACs removed,
and the channel-alignment hint only where an AVX-512 target measured a poor speedup."""

import pytest

from edgeslim.report.speedup import speedup_section

CHANNELS = {"conv1": {"before": 16, "after": 16}, "layer1.0.conv1": {"before": 16, "after": 8},
            "layer2.0.conv1": {"before": 32, "after": 16}, "fc": {"before": 10, "after": 10}}


def row(variant, p50, macs, *, precision="int8", isa=("avx2", "avx512f"), target="cpu", status="ok"):
    return {"variant": variant, "target": target, "format": "onnx", "precision": precision, "status": status,
            "macs": macs, "latency_ms": {"p50": p50}, "semantics": {"isa": list(isa)}}


def test_table_sets_each_compressed_artifact_against_its_baseline_twin():
    rows = [row("baseline", 0.40, 40e6, precision="fp32"), row("compressed", 0.20, 10e6, precision="fp32"),
            row("baseline", 0.30, 40e6), row("compressed", 0.25, 10e6, status="failed")]
    md = speedup_section(rows, {"channels": CHANNELS}, 8)
    assert md[0] == "## What compression bought"
    body = [line for line in md if line.startswith("| cpu")]
    # the failed int8 has no row
    assert body == ["| cpu | onnx | fp32 | 4.00x fewer | 0.400 → 0.200 | 2.00x | 0.50 |"]
    assert not any(line.startswith("- ") for line in md)  # 0.50 of the MAC promise is not poor


def test_a_poor_speedup_on_avx512_with_unaligned_channels_names_round_to():
    rows = [row("baseline", 0.275, 41.4e6), row("compressed", 0.292, 10.6e6)]
    md = "\n".join(speedup_section(rows, {"channels": CHANNELS}, 8))
    assert "| cpu | onnx | int8 | 3.91x fewer | 0.275 → 0.292 | 0.94x | 0.24 |" in md
    assert "`cpu`: onnx int8 0.94x for the MACs removed" in md
    assert "1 pruned layer keeps a count that is not a multiple of 16 (layer1.0.conv1: 8)" in md
    assert "--set compress.round_to=16" in md and "per-operator overhead" not in md


@pytest.mark.parametrize("isa, channels, round_to", [
    (("avx2",), CHANNELS, 8),                                            # AVX2 blocks by 8: aligned already
    (("avx2", "avx512f"), {"a": {"before": 32, "after": 16}}, 8),        # every pruned count a multiple of 16
    (("avx2", "avx512f"), {"a": {"before": 40, "after": 24}}, 16),       # the user asked for 16 already
])
def test_no_alignment_hint_where_alignment_is_not_the_cause(isa, channels, round_to):
    rows = [row("baseline", 0.275, 41.4e6, isa=isa), row("compressed", 0.292, 10.6e6, isa=isa)]
    md = "\n".join(speedup_section(rows, {"channels": channels}, round_to))
    assert "less than half of what they promise" in md
    assert "round_to" not in md and "per-operator overhead" in md


def test_nothing_to_compare_gives_no_section():
    assert speedup_section([row("compressed", 0.2, 1e6)], {"channels": CHANNELS}, 8) == []
    assert speedup_section([row("baseline", 0.2, 1e6), row("compressed", 0.2, 1e6, target="edge")], {}, 8) == []
