"""Pareto plots of a plan: per target, latency against accuracy, marker area = bytes.

Filled markers meet every constraint, hollow ones miss at least one; the Pareto front
(latency, size, accuracy) is outlined, the chosen artifact is ringed with a star, and the
budgets are drawn: the latency budget as a vertical line, the accuracy floor (baseline −
max_accuracy_drop) as a horizontal one, and max_bytes as a legend entry (its misses are
the hollow markers). Points that land within a few pixels of each other share one label
(``onnx/fp32 · onnx/fp16``); a label that would overlap an earlier one is moved up or down
in fixed steps. Matplotlib with the Agg backend: no display needed.

Example::

    paths = pareto_plots(rows, constraints, decisions, Path("runs/plan"))
    paths["cpu"]  # runs/plan/pareto-cpu.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.io import atomic_write_bytes, format_bytes, target_slug
from edgeslim.select.pareto import latency, measured


def pareto_plots(rows: list[dict[str, Any]], constraints: Any, decisions: dict[str, Any],
                 out_dir: Path) -> dict[str, Path]:
    """One ``pareto-<target>.png`` per target with at least one measured artifact."""
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


PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "tab:gray", "tab:red"]
SAME_SPOT_PX = 6  # points closer than this on the canvas get one combined label
LABEL_FONT = 7
LABEL_STEP = 9  # points between stacked labels (a 7-point line plus leading)


def plot_target(rows: list[dict[str, Any]], target: str, c: Any, decision: Any) -> bytes | None:
    """The PNG bytes of one target's plot (None when nothing was measured there)."""
    import io

    fig = pareto_figure(rows, target, c, decision)
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def pareto_figure(rows: list[dict[str, Any]], target: str, c: Any, decision: Any) -> Any:
    """The matplotlib Figure of one target's plot (None when nothing was measured there).

    Example: ``[t.get_text() for t in pareto_figure(rows, "cpu", c, d).axes[0].texts]``
    lists the point labels, one per spot (``onnx/fp32 · onnx/fp16`` where two coincide).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p = c.percentile
    pts = [r for r in rows if measured(r, p)]
    if not pts:
        return None
    fig = Figure(figsize=(8, 5.5), dpi=100)
    FigureCanvasAgg(fig)  # labels are placed by their extent on this canvas
    ax = fig.add_subplot(1, 1, 1)
    xy = {id(r): (latency(r, p), 100 * r["accuracy"] if r.get("accuracy") is not None else 0.0) for r in pts}
    _scatter(ax, pts, xy, decision)
    _budgets(ax, pts, target, c)
    biggest = max(r["bytes"] for r in pts)
    ax.set_xlabel(f"latency {p} (ms) on {target}")
    has_acc = any(r.get("accuracy") is not None for r in pts)
    ax.set_ylabel("top-1 accuracy of the artifact (%)" if has_acc else "accuracy not measured (unlabelled data)")
    ax.set_title(f"{target}: latency vs accuracy (marker area ∝ bytes, largest {format_bytes(biggest)})", fontsize=10)
    ax.grid(True, alpha=0.3)
    legend = ax.legend(fontsize=7, loc="best")
    for handle in getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", []):
        if hasattr(handle, "set_sizes"):  # one marker size in the legend, not the bytes of the first point
            handle.set_sizes([150 if "chosen" in str(handle.get_label()) else 40])
    fig.tight_layout()
    _label_points(ax, pts, xy)  # last: the layout fixes where the points land on the canvas
    return fig


def _scatter(ax: Any, pts: list[dict[str, Any]], xy: dict[int, tuple[float, float]], decision: Any) -> None:
    """One colour per candidate, filled when feasible, hollow otherwise; the front and the choice."""
    biggest = max(r["bytes"] for r in pts)
    size = lambda r: 40 + 600 * r["bytes"] / biggest  # noqa: E731
    front = set(decision.front) if decision else set()
    feasible = set(decision.feasible) if decision else set()
    colors: dict[Any, str] = {}
    for r in pts:
        colors.setdefault(r.get("candidate", r.get("variant")), PALETTE[len(colors) % len(PALETTE)])
    for cand, color in colors.items():
        mine = [r for r in pts if r.get("candidate", r.get("variant")) == cand]
        ok = [r for r in mine if r.get("label") in feasible]
        miss = [r for r in mine if r.get("label") not in feasible]
        if ok:
            ax.scatter([xy[id(r)][0] for r in ok], [xy[id(r)][1] for r in ok], s=[size(r) for r in ok], color=color,
                       alpha=0.75, edgecolors="black", linewidths=[1.8 if r.get("label") in front else 0.4 for r in ok],
                       label=cand)
        if miss:
            ax.scatter([xy[id(r)][0] for r in miss], [xy[id(r)][1] for r in miss], s=[size(r) for r in miss],
                       facecolors="none", edgecolors=color, linewidths=1.5, label=None if ok else cand)
    front_pts = sorted((xy[id(r)] for r in pts if r.get("label") in front))
    if len(front_pts) > 1:
        ax.plot(*zip(*front_pts), color="black", linewidth=0.8, linestyle=":", label="Pareto front")
    chosen = next((r for r in pts if decision and r.get("label") == decision.chosen), None)
    if chosen is not None:
        ax.scatter([xy[id(chosen)][0]], [xy[id(chosen)][1]], marker="*", s=350, color="gold", edgecolors="black",
                   linewidths=1.2, zorder=5, label=f"chosen: {chosen['label']}")


def _budgets(ax: Any, pts: list[dict[str, Any]], target: str, c: Any) -> None:
    """The latency budget (vertical), the accuracy floor (horizontal), max_bytes (legend only)."""
    budget = c.latency_budget(target)
    if budget is not None:
        ax.axvline(budget, color="red", linestyle="--", linewidth=1,
                   label=f"latency budget {budget:g} ms ({c.percentile})")
    ref = next((r.get("reference_accuracy") for r in pts if r.get("reference_accuracy") is not None), None)
    if c.max_accuracy_drop is not None and ref is not None:
        floor = 100 * ref - c.max_accuracy_drop
        ax.axhline(floor, color="red", linestyle="-.", linewidth=1,
                   label=f"accuracy floor {floor:.2f}% (baseline − {c.max_accuracy_drop:g} pts)")
    if c.max_bytes is not None:
        ax.plot([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="black",
                label=f"hollow: misses a budget (max_bytes {format_bytes(c.max_bytes)})")


def _spots(ax: Any, pts: list[dict[str, Any]], xy: dict[int, tuple[float, float]]) -> list[list[dict[str, Any]]]:
    """The points grouped by where they land on the canvas: within SAME_SPOT_PX of a group's
    first point (not of any member: a row of points a few pixels apart is not one spot)."""
    pix = {id(r): ax.transData.transform(xy[id(r)]) for r in pts}
    spots: list[list[dict[str, Any]]] = []
    for r in sorted(pts, key=lambda r: xy[id(r)]):
        near = next((s for s in spots if abs(pix[id(r)] - pix[id(s[0])]).max() < SAME_SPOT_PX), None)
        if near is None:
            spots.append([r])
        else:
            near.append(r)
    return spots


def _spot_text(spot: list[dict[str, Any]]) -> str:
    """``onnx/fp32 · onnx/fp16``; with the candidate's name where candidates share the spot."""
    mixed = len({r.get("candidate", r.get("variant")) for r in spot}) > 1
    texts = [(f"{r.get('candidate', r.get('variant'))} " if mixed else "") + f"{r.get('format')}/{r.get('precision')}"
             for r in spot]
    return " · ".join(dict.fromkeys(texts))


def _label_points(ax: Any, pts: list[dict[str, Any]], xy: dict[int, tuple[float, float]]) -> None:
    """One label per spot, moved up or down in LABEL_STEP steps until it overlaps no earlier one."""
    renderer = ax.figure.canvas.get_renderer()
    placed: list[Any] = []
    offsets = [4] + [4 + sign * LABEL_STEP * k for k in range(1, 6) for sign in (1, -1)]
    for spot in _spots(ax, pts, xy):
        x = sum(xy[id(r)][0] for r in spot) / len(spot)
        y = sum(xy[id(r)][1] for r in spot) / len(spot)
        text = ax.annotate(_spot_text(spot), (x, y), fontsize=LABEL_FONT, xytext=(4, offsets[0]),
                           textcoords="offset points")
        for dy in offsets:  # deterministic: the first free slot, else the last tried
            text.set_position((4, dy))
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
        placed.append(text.get_window_extent(renderer))
