"""Pareto plots of a plan: per target, latency against accuracy, marker area = bytes.

Filled markers meet every constraint, hollow ones miss at least one; the Pareto front
(latency, size, accuracy) is outlined, the chosen artifact is ringed with a star, and the
budgets are drawn: the latency budget as a vertical line, the accuracy floor (baseline −
max_accuracy_drop) as a horizontal one, and max_bytes as a legend entry (its misses are
the hollow markers). Matplotlib with the Agg backend: no display needed.

Example::

    paths = pareto_plots(rows, constraints, decisions, Path("runs/plan"))
    paths["cpu"]  # runs/plan/pareto-cpu.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.io import atomic_write_bytes


def pareto_plots(rows: list[dict[str, Any]], constraints: Any, decisions: dict[str, Any],
                 out_dir: Path) -> dict[str, Path]:
    """One ``pareto-<target>.png`` per target with at least one measured artifact."""
    from edgeslim.select.plan import target_slug

    paths = {}
    for target in constraints.targets:
        trows = [r for r in rows if r.get("target") == target]
        png = plot_target(trows, target, constraints, decisions.get(target))
        if png is None:
            continue
        path = Path(out_dir) / f"pareto-{target_slug(target)}.png"
        atomic_write_bytes(path, png)
        paths[target] = path
    return paths


def plot_target(rows: list[dict[str, Any]], target: str, c: Any, decision: Any) -> bytes | None:
    """The PNG bytes of one target's plot (None when nothing was measured there)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from edgeslim.select.pareto import kib, latency, measured

    p = c.percentile
    pts = [r for r in rows if measured(r, p)]
    if not pts:
        return None
    has_acc = any(r.get("accuracy") is not None for r in pts)
    biggest = max(r["bytes"] for r in pts)
    fig = Figure(figsize=(8, 5.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = lambda r: latency(r, p)  # noqa: E731
    y = lambda r: 100 * r["accuracy"] if r.get("accuracy") is not None else 0.0  # noqa: E731
    size = lambda r: 40 + 600 * r["bytes"] / biggest  # noqa: E731
    front = set(decision.front) if decision else set()
    feasible = set(decision.feasible) if decision else set()
    colors = {}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
               "tab:olive", "tab:cyan", "tab:gray", "tab:red"]
    for r in pts:
        cand = r.get("candidate", r.get("variant"))
        colors.setdefault(cand, palette[len(colors) % len(palette)])
    for cand, color in colors.items():
        mine = [r for r in pts if r.get("candidate", r.get("variant")) == cand]
        ok = [r for r in mine if r.get("label") in feasible]
        miss = [r for r in mine if r.get("label") not in feasible]
        if ok:
            ax.scatter([x(r) for r in ok], [y(r) for r in ok], s=[size(r) for r in ok], color=color,
                       alpha=0.75, edgecolors="black", linewidths=[1.8 if r.get("label") in front else 0.4 for r in ok],
                       label=cand)
        if miss:
            ax.scatter([x(r) for r in miss], [y(r) for r in miss], s=[size(r) for r in miss], facecolors="none",
                       edgecolors=color, linewidths=1.5, label=None if ok else cand)
    for r in pts:
        ax.annotate(f"{r.get('format')}/{r.get('precision')}", (x(r), y(r)), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    front_pts = sorted((r for r in pts if r.get("label") in front), key=x)
    if len(front_pts) > 1:
        ax.plot([x(r) for r in front_pts], [y(r) for r in front_pts], color="black", linewidth=0.8,
                linestyle=":", label="Pareto front")
    chosen = next((r for r in pts if decision and r.get("label") == decision.chosen), None)
    if chosen is not None:
        ax.scatter([x(chosen)], [y(chosen)], marker="*", s=350, color="gold", edgecolors="black",
                   linewidths=1.2, zorder=5, label=f"chosen: {chosen['label']}")
    budget = c.latency_budget(target)
    if budget is not None:
        ax.axvline(budget, color="red", linestyle="--", linewidth=1, label=f"latency budget {budget:g} ms ({p})")
    ref = next((r.get("reference_accuracy") for r in pts if r.get("reference_accuracy") is not None), None)
    if c.max_accuracy_drop is not None and ref is not None:
        floor = 100 * ref - c.max_accuracy_drop
        ax.axhline(floor, color="red", linestyle="-.", linewidth=1,
                   label=f"accuracy floor {floor:.2f}% (baseline − {c.max_accuracy_drop:g} pts)")
    if c.max_bytes is not None:
        ax.plot([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="black",
                label=f"hollow: misses a budget (max_bytes {kib(c.max_bytes)})")
    ax.set_xlabel(f"latency {p} (ms) on {target}")
    ax.set_ylabel("top-1 accuracy of the artifact (%)" if has_acc else "accuracy not measured (unlabelled data)")
    ax.set_title(f"{target}: latency vs accuracy (marker area ∝ bytes, largest {kib(biggest)})", fontsize=10)
    ax.grid(True, alpha=0.3)
    legend = ax.legend(fontsize=7, loc="best")
    for handle in getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", []):
        if hasattr(handle, "set_sizes"):  # one marker size in the legend, not the bytes of the first point
            handle.set_sizes([150 if "chosen" in str(handle.get_label()) else 40])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
