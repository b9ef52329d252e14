"""What compression bought, measured: the report section that sets each compressed
artifact's latency against its baseline twin (same target, format and precision) and
against the MACs it removed.

MACs are what pruning controls; milliseconds are what a deployment gets, and the two part
ways on small models (per-operator overhead) and, measured on an AVX-512 Xeon, on channel
counts that are not multiples of 16: there a digits resnet20 pruned at ratio 0.5 to
multiples of 8 ran INT8 at 0.297 ms, slower than the unpruned 0.279 ms, and at multiples of
16 at 0.225 ms (benchmarks/results/plan.md); across 20 INT8 comparisons multiples of 16 were
1.02-1.40x faster than multiples of 8 at the same ratio (benchmarks/results/alignment.md).
FP32 went either way, so the section names ``compress.round_to`` only when an INT8
artifact of a structured method, measured with AVX-512, got less than half the speedup its
MACs promise and keeps channel counts that are not multiples of 16.

Example::

    md += speedup_section(rows, read_json(run_dir / "10-compress" / "report.json"), recipe.compress.round_to)
"""

from __future__ import annotations

from typing import Any, Optional

from edgeslim.artifacts import is_int8
from edgeslim.targets.base import channel_block

Row = dict[str, Any]
POOR = 0.5  # speedup / MAC reduction below this is worth a sentence


def speedup_section(rows: list[Row], comp_report: dict[str, Any], round_to: Optional[int]) -> list[str]:
    """Markdown lines (heading included), or [] when no compressed artifact has a measured twin."""
    ok = {(r["variant"], r["target"], r["format"], r["precision"]): r for r in rows
          if r.get("status") == "ok" and (r.get("latency_ms") or {}).get("p50")}
    pairs = [(ok[("baseline", *k[1:])], r) for k, r in ok.items()
             if k[0] == "compressed" and ("baseline", *k[1:]) in ok]
    if not pairs:
        return []
    lines = ["## What compression bought", "",
             "| target | format | precision | MACs | p50 ms | speedup | speedup ÷ MAC reduction |",
             "|---|---|---|---|---|---|---|"]
    poor: dict[str, list[tuple[Row, float]]] = {}
    for base, comp in pairs:
        speedup = base["latency_ms"]["p50"] / comp["latency_ms"]["p50"]
        fewer = base["macs"] / comp["macs"] if base.get("macs") and comp.get("macs") else None
        eff = speedup / fewer if fewer else None
        macs = "—" if fewer is None else f"{fewer:.2f}x fewer" if fewer >= 1 else f"{1 / fewer:.2f}x more"
        lines.append(f"| {comp['target']} | {comp['format']} | {comp['precision']} | {macs} | "
                     f"{base['latency_ms']['p50']:.3f} → {comp['latency_ms']['p50']:.3f} | {speedup:.2f}x | "
                     + (f"{eff:.2f}" if eff is not None else "—") + " |")
        if eff is not None and eff < POOR and fewer > 1.2:
            poor.setdefault(comp["target"], []).append((comp, speedup))
    lines.append("")
    if poor:
        for target, what in poor.items():
            lines.append(f"- `{target}`: " + ", ".join(f"{c['format']} {c['precision']} {s:.2f}x" for c, s in what)
                         + " for the MACs removed: less than half of what they promise.")
        hint = _alignment_hint(poor, comp_report, round_to)
        lines += hint or ["- A small model's latency is often set by per-operator overhead rather than "
                          "arithmetic; larger inputs and models are where MACs turn into milliseconds."]
        lines.append("")
    return lines


def _alignment_hint(poor: dict[str, list[tuple[Row, float]]], comp_report: dict[str, Any],
                    round_to: Optional[int]) -> list[str]:
    """Only INT8 is evidence (FP32 went either way), and only a CPU whose block is wider than 8."""
    blocks = {t: channel_block((c.get("semantics") or {}).get("isa") or []) for t, what in poor.items()
              for c, _ in what if is_int8(c["precision"])}
    block = max(blocks.values(), default=8)
    if block <= 8 or comp_report.get("family") != "structured" or (round_to or 1) % block == 0:
        return []  # factorized or distilled models have no pruned channel counts to align
    off = {name: c["after"] for name, c in (comp_report.get("channels") or {}).items()
           if isinstance(c.get("after"), int) and isinstance(c.get("before"), int)
           and c["after"] < c["before"] and c["after"] % block}
    if not off:
        return []
    targets = sorted(t for t, b in blocks.items() if b == block)
    example = ", ".join(f"{n}: {w}" for n, w in list(off.items())[:3])
    return [f"- {', '.join(f'`{t}`' for t in targets)} measured INT8 with AVX-512, and {len(off)} pruned layer"
            f"{'s keep' if len(off) != 1 else ' keeps'} a channel count that is not a multiple of {block} "
            f"({example}). Try `--set compress.round_to={block}`: on an AVX-512 Xeon, INT8 at multiples of "
            f"{block} ran 1.02-1.40x faster than at multiples of 8 at the same ratio "
            "(benchmarks/results/alignment.md)."]
