"""The Pareto plot's point labels, read from the matplotlib figure (texts and their extents
on the canvas), not from pixels: one label per spot, and no two labels overlapping."""

from edgeslim.report.plots import pareto_figure, plot_target
from edgeslim.select.constraints import Constraints
from edgeslim.select.decide import decide
from tests.select.rows import row

C = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, latency_ms={"cpu": 2.0}, max_bytes=400_000,
                max_accuracy_drop=1.0, retrain="short", finetune_epochs=2)


def labels(fig):
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]


def figure(rows):
    return pareto_figure(rows, "cpu", C, decide(rows, C)["cpu"])


def test_points_on_the_same_spot_get_one_combined_label():
    # FP16 and FP32 of the same model: equal accuracy, latency 0.1% apart (the ONNX CPU runtime
    # runs FP16 weights at FP32)
    rows = [row("ptq", 1.000, 300_000, 0.95, prec="fp32"), row("ptq", 1.001, 200_000, 0.95, prec="fp16"),
            row("ptq", 0.6, 100_000, 0.94, prec="int8"), row("l1-50", 0.4, 60_000, 0.93)]
    texts = [t for t, _ in labels(figure(rows))]
    assert sorted(texts) == ["onnx/fp32 · onnx/fp16", "onnx/int8", "onnx/int8"]


def test_candidates_sharing_a_spot_are_named_in_its_label():
    rows = [row("ptq", 1.0, 300_000, 0.95, prec="int8"), row("l1-30", 1.0005, 250_000, 0.95)]
    assert [t for t, _ in labels(figure(rows))] == ["ptq onnx/int8 · l1-30 onnx/int8"]


def test_labels_of_nearby_points_do_not_overlap():
    # a row of points a few pixels apart at one accuracy: each label is moved off the earlier ones
    rows = [row(f"c{i}", 1.0 + 0.04 * i, 100_000, 0.95, prec="int8") for i in range(6)]
    rows += [row("far", 3.0, 100_000, 0.90, prec="fp32")]
    placed = labels(figure(rows))
    assert len(placed) == 7
    for i, (ta, a) in enumerate(placed):
        for tb, b in placed[i + 1:]:
            assert not a.overlaps(b), (ta, tb)


def test_the_png_is_the_figure_and_nothing_measured_gives_none():
    rows = [row("ptq", 1.0, 300_000, 0.95)]
    assert plot_target(rows, "cpu", C, decide(rows, C)["cpu"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert pareto_figure([row("x", None, 1, 0.9)], "cpu", C, None) is None
