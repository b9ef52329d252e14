"""The terminal view of a plan: one table of every artifact per target (the chosen row
marked ★ in the status column, as in :mod:`edgeslim.report.table`), then the decision per
target with its rationale.

Example::

    console.print(plan_table(result.rows, title="edgeslim plan"))
    for line in decision_lines(result.decisions): console.print(line)
"""

from __future__ import annotations

from typing import Any

from edgeslim.report.table import COLUMNS

SHOWN = ("format", "precision", "target", "status", "size", "params", "accuracy", "p50 ms", "p90 ms")


def _verdict(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return str(r.get("reason") or r.get("status"))[:60]
    missed = [v["constraint"] for v in r.get("verdicts", []) if not v["passed"]]
    return "misses " + ", ".join(missed) if missed else "meets all" + (" · front" if r.get("pareto") else "")


def plan_table(rows: list[dict[str, Any]], title: str = ""):
    from rich.table import Table

    table = Table(title=title or None)
    cols = [(n, fn) for n, fn in COLUMNS if n in SHOWN]
    table.add_column("candidate")
    for name, _ in cols:
        table.add_column(name, justify="right" if name in {"size", "params", "accuracy", "p50 ms", "p90 ms"} else "left")
    table.add_column("drop pts", justify="right")
    table.add_column("verdict")
    for r in rows:
        style = {"failed": "red", "skipped": "dim"}.get(r.get("status"), "bold green" if r.get("chosen") else None)
        drop = r.get("accuracy_drop")
        table.add_row(str(r.get("candidate")), *(fn(r) for _, fn in cols),
                      "—" if drop is None else f"{drop:+.2f}", _verdict(r), style=style)
    return table


def plan_markdown_table(rows: list[dict[str, Any]]) -> str:
    """The same columns as :func:`plan_table`, as Markdown."""
    cols = [(n, fn) for n, fn in COLUMNS if n in SHOWN]
    head = ["candidate"] + [n for n, _ in cols] + ["drop pts", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        drop = r.get("accuracy_drop")
        cells = [str(r.get("candidate"))] + [fn(r) for _, fn in cols] + \
            ["—" if drop is None else f"{drop:+.2f}", _verdict(r)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def decision_lines(decisions: dict[str, Any]) -> list[str]:
    """One rich-markup line per target: the choice and why, or what came closest."""
    from rich.markup import escape

    out = []
    for target, d in decisions.items():
        if d.chosen:
            out.append(f"[bold green]★ {escape(target)}: {escape(d.chosen)}[/] — {escape(d.rationale)}")
        else:
            out.append(f"[bold red]✗ {escape(target)}:[/] {escape(d.rationale)}")
    return out
