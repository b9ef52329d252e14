"""``report.html`` of a plan: constraints, candidates, per target the choice and its
rationale, the Pareto plot (embedded as base64 PNG, so the file stands alone) and the
table of every artifact with the reason each one lost.

Example::

    write_html(plan_result, {"cpu": Path("runs/plan/pareto-cpu.png")})
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from edgeslim.io import atomic_write_text
from edgeslim.report.plan_view import DROP_HEADER, accuracy_cell, constraint_lines, drop_cell
from edgeslim.report.table import COLUMNS
from edgeslim.select.plan import PlanResult
from edgeslim.select.prior import candidate_notes

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0} tr.chosen{background:#e6f6e6;font-weight:600} tr.skipped,tr.failed{color:#888}
td.why{max-width:520px;font-size:12px} .rationale{background:#f7f7f7;padding:.6em 1em;border-left:4px solid #4a4}
.none{border-left-color:#c44} img{max-width:100%;border:1px solid #ddd}
"""


def _table(rows: list[dict[str, Any]]) -> str:
    head = ["candidate"] + [c for c, _ in COLUMNS] + [DROP_HEADER, "why"]
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cls = "chosen" if r.get("chosen") else str(r.get("status", ""))
        why = r.get("rationale") if r.get("chosen") else r.get("explanation", "")
        # accuracy with its seed spread (``91.20% ± 0.30 (n=3)``) as the Markdown report has it
        cells = [str(r.get("candidate", ""))] + [accuracy_cell(r) if n == "accuracy" else fn(r) for n, fn in COLUMNS] + \
            [drop_cell(r), why or ""]
        tds = "".join(f"<td class=\"why\">{escape(v)}</td>" if i == len(cells) - 1 else f"<td>{escape(v)}</td>"
                      for i, v in enumerate(cells))
        out.append(f"<tr class=\"{escape(cls)}\">{tds}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def write_html(result: PlanResult, plots: dict[str, Path]) -> Path:
    """Write ``report.html`` into the plan directory; returns its path."""
    c = result.constraints
    parts = [f"<!doctype html><html><head><meta charset=\"utf-8\"><title>edgeslim plan "
             f"{escape(result.recipe.name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>edgeslim plan <code>{escape(result.recipe.name)}</code></h1>",
             "<h2>Constraints</h2><ul>" + "".join(f"<li>{escape(x[2:])}</li>" for x in constraint_lines(c)) + "</ul>",
             "<h2>Candidates</h2><ul>"]
    for cand in result.candidates:
        state = f" — <em>skipped: {escape(cand.skipped)}</em>" if cand.skipped else \
            f" — <em>failed: {escape(cand.failed)}</em>" if cand.failed else ""
        parts.append(f"<li><code>{escape(cand.name)}</code> ({escape(cand.rule)}): {escape(cand.reason)}{state}</li>")
    parts.append("</ul>")
    parts += [f"<p class=\"note\">Not proposed: {escape(n)}.</p>" for n in candidate_notes(result.recipe, c)]
    for target, d in result.decisions.items():
        head = f"Chosen: <code>{escape(d.chosen)}</code>" if d.chosen else "Nothing meets every constraint"
        parts.append(f"<h2>{escape(target)}</h2><p class=\"rationale{'' if d.chosen else ' none'}\">"
                     f"<strong>{head}.</strong> {escape(d.rationale)}</p>")
        if target in plots:
            parts.append(_img(plots[target], f"Pareto plot for {target}"))
        parts.append(_table([r for r in result.rows if r.get("target") == target]))
    parts.append("<p>Latency is measured on each artifact in its runtime on the target; accuracy is the "
                 "artifact's own on the validation split; size counts every file the artifact needs. "
                 "The accuracy drop is in points below the baseline's PyTorch accuracy: negative is a gain.</p></body></html>")
    path = Path(result.out_dir) / "report.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
