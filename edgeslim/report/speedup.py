"""What compression bought, measured: the report section that sets each compressed
artifact's latency against its baseline twin (same target, format and precision) and
against the MACs it removed.

MACs are what pruning controls; milliseconds are what a deployment gets, and the two part
ways on small models (per-operator overhead) and on channel counts the CPU's kernels do
not block by. ONNX Runtime (MLAS) and OpenVINO (oneDNN) keep activations in blocks of 16
channels on AVX-512 and of 8 on AVX2; on an AVX-512 Xeon a resnet20 pruned to 8-channel
layers ran *slower* in INT8 than the unpruned one, and the same ratio at multiples of 16
ran 1.24x faster (benchmarks/results/alignment.md). When a target that measured with
AVX-512 got less than half the speedup the MACs promise, and the pruned model has channel
counts that are not multiples of 16, the section says so and names ``compress.round_to``.

Example::

    md += speedup_section(rows, read_json(run_dir / "10-compress" / "report.json"), recipe.compress.round_to)
"""

from __future__ import annotations

from typing import Any, Optional

AVX512_BLOCK = 16
POOR = 0.5  # speedup / MAC reduction below this is worth a sentence


def _block(row: dict[str, Any]) -> Optional[int]:
    isa = (row.get("semantics") or {}).get("isa") or []
    return AVX512_BLOCK if "avx512f" in isa else None


def speedup_section(rows: list[dict[str, Any]], comp_report: dict[str, Any],
                    round_to: Optional[int]) -> list[str]:
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
    poor: dict[str, list[str]] = {}
    for base, comp in pairs:
        speedup = base["latency_ms"]["p50"] / comp["latency_ms"]["p50"]
        fewer = base["macs"] / comp["macs"] if base.get("macs") and comp.get("macs") else None
        eff = speedup / fewer if fewer else None
        lines.append(f"| {comp['target']} | {comp['format']} | {comp['precision']} | "
                     + (f"{fewer:.2f}x fewer" if fewer else "—") + " | "
                     f"{base['latency_ms']['p50']:.3f} → {comp['latency_ms']['p50']:.3f} | {speedup:.2f}x | "
                     + (f"{eff:.2f}" if eff is not None else "—") + " |")
        if eff is not None and eff < POOR and fewer > 1.2:
            poor.setdefault(comp["target"], []).append(f"{comp['format']} {comp['precision']} {speedup:.2f}x")
    lines.append("")
    if poor:
        for target, what in poor.items():
            lines.append(f"- `{target}`: {', '.join(what)} for the MACs removed: less than half of what they "
                         "promise.")
        hint = _alignment_hint(pairs, poor, comp_report, round_to)
        lines += hint or ["- A small model's latency is often set by per-operator overhead rather than "
                          "arithmetic; larger inputs and models are where MACs turn into milliseconds."]
        lines.append("")
    return lines


def _alignment_hint(pairs, poor: dict[str, list[str]], comp_report: dict[str, Any],
                    round_to: Optional[int]) -> list[str]:
    blocks = {comp["target"]: _block(comp) for _, comp in pairs if comp["target"] in poor}
    targets = sorted(t for t, b in blocks.items() if b)
    if not targets:
        return []
    off = {name: c["after"] for name, c in (comp_report.get("channels") or {}).items()
           if c["after"] < c["before"] and c["after"] % AVX512_BLOCK}
    if not off or (round_to or 1) % AVX512_BLOCK == 0:
        return []
    example = ", ".join(f"{n}: {w}" for n, w in list(off.items())[:3])
    return [f"- {', '.join(f'`{t}`' for t in targets)} measured on AVX-512, whose kernels in ONNX Runtime and "
            f"OpenVINO block channels by {AVX512_BLOCK}; {len(off)} pruned layer"
            f"{'s keep' if len(off) != 1 else ' keeps'} a count that is not a multiple of {AVX512_BLOCK} "
            f"({example}). Try `--set compress.round_to={AVX512_BLOCK}` (on one AVX-512 Xeon, INT8 ran 1.02-1.38x "
            "faster than at multiples of 8 at the same ratio: benchmarks/results/alignment.md)."]
