"""Views of a plan shared by the terminal, report.md and report.html: one table of every
artifact per target (the chosen row marked ★ in the status column, as in
:mod:`edgeslim.report.table`), the decision per target with its rationale, and the
constraints as a list. With seeds the accuracy cell is ``mean ± sd (n=3)`` (or ``(n=1, no
seed)`` for an artifact that does not depend on the seed), and the latency, size and files
are the first seed's.

Example::

    console.print(plan_table(result.rows, title="edgeslim plan"))
    for line in decision_lines(result.decisions): console.print(line)
"""

from __future__ import annotations

from typing import Any

from edgeslim.report.table import COLUMNS
from edgeslim.select.constraints import Constraints

SHOWN = ("format", "precision", "target", "status", "size", "params", "accuracy", "p50 ms", "p90 ms")
# top-1 points below the baseline's PyTorch accuracy: a quantized or distilled artifact that
# scores higher than its baseline shows a negative drop, which the header says is a gain
DROP_HEADER = "acc drop pts (negative = gain)"


def accuracy_cell(r: dict[str, Any]) -> str:
    """The row's accuracy: ``91.20%``, or with seeds ``91.20% ± 0.30 (n=3)``; ``—`` unmeasured."""
    a, sd, n = r.get("accuracy"), r.get("accuracy_sd"), r.get("accuracy_n")
    if a is None:
        return "—"
    if n is None:  # one seed: as it always was
        return f"{100 * a:.2f}%"
    if r.get("seed_independent"):
        return f"{100 * a:.2f}% (n=1, no seed)"
    return f"{100 * a:.2f}%" + (f" ± {100 * sd:.2f}" if sd is not None else "") + f" (n={n})"


def _columns() -> list[tuple[str, Any]]:
    return [(n, accuracy_cell if n == "accuracy" else fn) for n, fn in COLUMNS if n in SHOWN]


def drop_cell(r: dict[str, Any]) -> str:
    """The row's accuracy drop in points, signed (``+0.40`` lost, ``-0.12`` gained, ``—`` unknown)."""
    drop = r.get("accuracy_drop")
    return "—" if drop is None else f"{drop:+.2f}"


def _verdict(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return str(r.get("reason") or r.get("status"))[:60]
    missed = [v["constraint"] for v in r.get("verdicts", []) if not v["passed"]]
    return "misses " + ", ".join(missed) if missed else "meets all" + (" · front" if r.get("pareto") else "")


def plan_table(rows: list[dict[str, Any]], title: str = ""):
    from rich.table import Table

    table = Table(title=title or None)
    cols = _columns()
    table.add_column("candidate")
    for name, _ in cols:
        table.add_column(name, justify="right" if name in {"size", "params", "accuracy", "p50 ms", "p90 ms"} else "left")
    table.add_column(DROP_HEADER, justify="right")
    table.add_column("verdict")
    for r in rows:
        style = {"failed": "red", "skipped": "dim"}.get(r.get("status"), "bold green" if r.get("chosen") else None)
        table.add_row(str(r.get("candidate")), *(fn(r) for _, fn in cols), drop_cell(r), _verdict(r), style=style)
    return table


def plan_markdown_table(rows: list[dict[str, Any]]) -> str:
    """The same columns as :func:`plan_table`, as Markdown."""
    cols = _columns()
    head = ["candidate"] + [n for n, _ in cols] + [DROP_HEADER, "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [str(r.get("candidate"))] + [fn(r) for _, fn in cols] + [drop_cell(r), _verdict(r)]
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


def constraint_lines(c: Constraints) -> list[str]:
    """The constraints of a plan as Markdown list items.

    Example: ``constraint_lines(c)[2] == "- max_bytes: 200,000"``.
    """
    lat = ", ".join(f"{t} ≤ {ms:g} ms" for t, ms in c.latency_ms.items()) or "none"
    return [f"- targets: {', '.join(f'{t} ({c.kinds[t]})' for t in c.targets)}",
            f"- latency budget ({c.percentile}): {lat}",
            f"- max_bytes: {'none' if c.max_bytes is None else f'{c.max_bytes:,}'}",
            f"- max_accuracy_drop: {'none' if c.max_accuracy_drop is None else _plural(c.max_accuracy_drop, 'point')}",
            f"- retrain: {c.retrain} ({_plural(c.finetune_epochs, 'fine-tune epoch')})"]


def _plural(n: float, what: str) -> str:
    return f"{n:g} {what}{'' if n == 1 else 's'}"
