"""The results table: one definition of the columns, rendered for the terminal and Markdown."""

from __future__ import annotations

from typing import Any, Callable


def _kb(b: Any) -> str:
    if b is None:
        return "—"
    return f"{b / 1024:,.1f} KiB" if b < 1024 * 1024 else f"{b / 2**20:,.2f} MiB"


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
    same = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "int8"}
    return p if not ran or same.get(p, p) == same.get(str(ran), str(ran)) else f"{p} (ran {ran})"


def _macs(m: Any) -> str:
    return "—" if m is None else f"{m / 1e6:,.1f}M"


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("method", lambda r: str(r.get("method"))),
    ("format", lambda r: str(r.get("format"))),
    ("precision", lambda r: _precision(r)),
    ("target", lambda r: str(r.get("target"))),
    ("status", lambda r: str(r.get("status")) + ("  ★" if r.get("chosen") else "")),
    ("size", lambda r: _kb(r.get("bytes"))),
    ("params", lambda r: "—" if r.get("params") is None else f"{r['params']:,}"),
    ("MACs", lambda r: _macs(r.get("macs"))),
    ("accuracy", lambda r: _pct(r.get("accuracy"))),
    ("p50 ms", lambda r: _ms(r, "p50")),
    ("p90 ms", lambda r: _ms(r, "p90")),
    ("p99 ms", lambda r: _ms(r, "p99")),
]


def cells(row: dict[str, Any]) -> list[str]:
    return [fn(row) for _, fn in COLUMNS]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(cells(r)) + " |" for r in rows]
    notes = [f"- `{r['id']}` on `{r['target']}`: {r['status']} — {r['reason']}"
             for r in rows if r.get("status") != "ok" and r.get("reason")]
    return "\n".join([head, sep, *body] + (["", *notes] if notes else []))


def rich_table(rows: list[dict[str, Any]], title: str = ""):
    from rich.table import Table

    table = Table(title=title or None, show_lines=False)
    for name, _ in COLUMNS:
        table.add_column(name, justify="right" if name in {"size", "params", "MACs", "accuracy", "p50 ms", "p90 ms", "p99 ms"} else "left")
    for r in rows:
        style = {"failed": "red", "skipped": "dim"}.get(r.get("status"), "bold green" if r.get("chosen") else None)
        table.add_row(*cells(r), style=style)
    return table
