"""The results table: one definition of the columns, rendered for the terminal and Markdown.

``COLUMNS`` are a run's; ``BENCH_COLUMNS`` those of ``edgeslim bench`` (no method or MACs:
an artifact from elsewhere; p50 per batch size, the machine's noise, the ratio to the first
artifact under ``--compare``). Under either, every row that did not run says why, and a
row timed while other processes took a share of its cores above the threshold says
``noisy``.
"""

from __future__ import annotations

from typing import Any, Callable

from edgeslim.io import format_bytes
from edgeslim.targets.roofline import row_efficiency


def _pct(a: Any) -> str:
    return "—" if a is None else f"{100 * a:.2f}%"


def _ms(row: dict[str, Any], key: str) -> str:
    lat = row.get("latency_ms") or {}
    return "—" if lat.get(key) is None else f"{lat[key]:.3f}"


def _precision(row: dict[str, Any]) -> str:
    """The artifact's precision, and what ran where the runtime executed something else
    (OpenVINO runs FP16-stored weights at f32 on a CPU without FP16 arithmetic)."""
    p = str(row.get("precision"))
    ran = (row.get("semantics") or {}).get("precision_executed")
    same = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "int8", "int8-qat": "int8"}
    return p if not ran or same.get(p, p) == same.get(str(ran), str(ran)) else f"{p} (ran {ran})"


def _macs(m: Any) -> str:
    return "—" if m is None else f"{m / 1e6:,.1f}M"


def _roofline(row: dict[str, Any]) -> str:
    """MACs/latency over the CPU's peak for what ran (see edgeslim.targets.roofline)."""
    e = row_efficiency(row) if row.get("status") == "ok" else None
    return "—" if e is None else f"{100 * e:.0f}%"


def noisy(row: dict[str, Any]) -> bool:
    return bool((row.get("noise") or {}).get("noisy"))


def _status(row: dict[str, Any]) -> str:
    return str(row.get("status")) + (" (noisy)" if noisy(row) else "") + ("  ★" if row.get("chosen") else "")


def _others(row: dict[str, Any]) -> str:
    share = (row.get("noise") or {}).get("other_cpu_share")
    return "—" if share is None else f"{100 * share:.0f}%"


def _by_batch(row: dict[str, Any]) -> str:
    by = row.get("latency_p50_ms_by_batch") or {}
    return " · ".join(f"{b}: {ms:.3f}" for b, ms in by.items()) or "—"


def _ratio(row: dict[str, Any]) -> str:
    c = row.get("compare")
    if not c or c.get("ratio_p50") is None:
        return "—"
    lo, hi = c.get("ratio_ci95") or (None, None)
    ci = f" [{lo:.2f}–{hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{c['ratio_p50']:.2f}×{ci}"


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row that did not run (its reason) or was timed on a busy machine."""
    out = []
    for r in rows:
        name = r.get("id") or r.get("path")
        if r.get("status") != "ok" and r.get("reason"):
            out.append(f"{name} on {r.get('target')}: {r['status']} — {r['reason']}")
        elif noisy(r):
            n = r["noise"]
            out.append(f"{name} on {r.get('target')}: noisy — other processes used {100 * n['other_cpu_share']:.0f}% "
                       f"of its cores (threshold {100 * n['threshold']:.0f}%), load average "
                       f"{(n.get('load_average_after') or ['?'])[0]}")
    return out


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("method", lambda r: str(r.get("method"))),
    ("format", lambda r: str(r.get("format"))),
    ("precision", lambda r: _precision(r)),
    ("target", lambda r: str(r.get("target"))),
    ("status", _status),
    ("size", lambda r: format_bytes(r.get("bytes"))),
    ("params", lambda r: "—" if r.get("params") is None else f"{r['params']:,}"),
    ("MACs", lambda r: _macs(r.get("macs"))),
    ("accuracy", lambda r: _pct(r.get("accuracy"))),
    ("p50 ms", lambda r: _ms(r, "p50")),
    ("p90 ms", lambda r: _ms(r, "p90")),
    ("p99 ms", lambda r: _ms(r, "p99")),
    ("roofline", _roofline),
]


BENCH_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("artifact", lambda r: str(r.get("id"))),
    ("format", lambda r: str(r.get("format"))),
    ("precision", lambda r: _precision(r)),
    ("target", lambda r: str(r.get("target"))),
    ("status", _status),
    ("size", lambda r: format_bytes(r.get("bytes"))),
    ("accuracy", lambda r: _pct(r.get("accuracy"))),
    ("p50 ms by batch", _by_batch),
    ("p90 ms", lambda r: _ms(r, "p90")),
    ("p99 ms", lambda r: _ms(r, "p99")),
    ("others' CPU", _others),
    ("vs first", _ratio),
]
_RIGHT = {"size", "params", "MACs", "accuracy", "p50 ms", "p90 ms", "p99 ms", "p50 ms by batch", "others' CPU",
          "vs first", "roofline"}


def cells(row: dict[str, Any], columns=None) -> list[str]:
    return [fn(row) for _, fn in (columns or COLUMNS)]


def markdown_table(rows: list[dict[str, Any]], columns=None) -> str:
    columns = columns or COLUMNS
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cells(r, columns)) + " |" for r in rows]
    lines = [f"- {n}" for n in notes(rows)]
    return "\n".join([head, sep, *body] + (["", *lines] if lines else []))


def rich_table(rows: list[dict[str, Any]], title: str = "", columns=None):
    """The terminal table; rows that failed, were skipped or are noisy say why below it."""
    from rich.table import Table

    columns = columns or COLUMNS
    why = notes(rows)
    table = Table(title=title or None, show_lines=False, caption="\n".join(why) or None,
                  caption_justify="left")
    for name, _ in columns:
        table.add_column(name, justify="right" if name in _RIGHT else "left")
    for r in rows:
        style = {"failed": "red", "skipped": "dim"}.get(r.get("status"), "bold green" if r.get("chosen") else None)
        table.add_row(*cells(r, columns), style=style)
    return table
