"""The files of a plan, written from a PlanResult made of hand-made rows (no pipeline run):
which files, what they say, per-target file names, and the plan directory's lock."""

import pytest

from edgeslim.errors import RunDirError
from edgeslim.io import read_json
from edgeslim.pipeline.lock import RunLock
from edgeslim.recipe import recipe_from_dict
from edgeslim.report.plan_report import write_plan
from edgeslim.report.plan_view import DROP_HEADER, constraint_lines, plan_markdown_table, plan_table
from edgeslim.select.constraints import Constraints
from edgeslim.select.decide import decide
from edgeslim.select.plan import PlanResult, _annotate
from edgeslim.select.prior import Candidate
from edgeslim.select.seeds import fold_seeds, resolution
from tests.select.rows import row, seeded

PI = "ssh://pi@host:22"
C = Constraints(targets=("cpu", PI), kinds={"cpu": "cpu", PI: "edge"}, latency_ms={"cpu": 1.0},
                percentile="p50", max_bytes=100_000, max_accuracy_drop=1.0, retrain="short", finetune_epochs=2)
PNG = b"\x89PNG\r\n\x1a\n"


def plan(out) -> PlanResult:
    rows = [row("winner", 0.5, 50_000, 0.945), row("big", 0.3, 200_000, 0.95),
            row("winner", 2.0, 50_000, 0.945, target=PI), row("big", 1.5, 2_000_000, 0.95, target=PI)]
    for r in rows:
        r["accuracy_drop"] = 100 * (r["reference_accuracy"] - r["accuracy"])
    decisions = decide(rows, C)
    _annotate(rows, decisions)
    cands = [Candidate("winner", {}, "small and fast", "edge-size"),
             Candidate("big", {}, "the original", "post-training", variant="baseline"),
             Candidate("hrank", {}, "needs data", "cpu-latency", skipped="hrank is not registered")]
    return PlanResult(out, recipe_from_dict({}), C, cands, rows, decisions,
                      [{"candidate": "winner", "stage": "00-baseline", "cached": True, "seconds": 0.1}], 12.5)


def test_writes_every_file_of_the_plan_and_nothing_else(tmp_path):
    result = plan(tmp_path)
    paths = write_plan(result)
    names = ["results.json", "pareto-cpu.png", "pareto-ssh-pi-host-22.png", "plan.json", "report.md", "report.html"]
    assert [p.name for p in paths] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # the lock is gone too
    assert read_json(tmp_path / "results.json") == result.rows
    for png in ("pareto-cpu.png", "pareto-ssh-pi-host-22.png"):
        assert (tmp_path / png).read_bytes().startswith(PNG)
    p = read_json(tmp_path / "plan.json")
    assert p["decisions"]["cpu"]["chosen"] == "winner/onnx/int8" and p["feasible"] is True
    assert p["plots"] == {"cpu": "pareto-cpu.png", PI: "pareto-ssh-pi-host-22.png"}
    assert p["all_cached"] is True and p["seconds"] == 12.5 and p["constraints"]["max_bytes"] == 100_000
    assert [c["name"] for c in p["candidates"]] == ["winner", "big", "hrank"]
    assert p["recipe"]["name"] == "default"


def test_markdown_and_html_say_the_choice_and_why_each_row_lost(tmp_path):
    write_plan(plan(tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert "- max_bytes: 100,000" in md and "- latency budget (p50): cpu ≤ 1 ms" in md
    assert "- `hrank` (cpu-latency): needs data — skipped: hrank is not registered" in md
    assert "**Chosen: `winner/onnx/int8`.** winner/onnx/int8 wins on cpu" in md
    assert "![Pareto plot for cpu](pareto-cpu.png)" in md
    assert "- `big/onnx/int8`: misses max_bytes" in md
    html = (tmp_path / "report.html").read_text()
    assert html.count("<img ") == 2 and html.count('class="chosen"') == 2  # the PI target chose winner too
    assert "<li>max_bytes: 100,000</li>" in html and "ssh://pi@host:22" in html


def test_constraint_lines_name_every_budget_and_none_where_unset():
    assert constraint_lines(C) == [
        f"- targets: cpu (cpu), {PI} (edge)", "- latency budget (p50): cpu ≤ 1 ms", "- max_bytes: 100,000",
        "- max_accuracy_drop: 1 point", "- retrain: short (2 fine-tune epochs)"]
    free = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, retrain="none", finetune_epochs=1)
    assert constraint_lines(free)[1:] == ["- latency budget (p50): none", "- max_bytes: none",
                                          "- max_accuracy_drop: none", "- retrain: none (1 fine-tune epoch)"]


def test_a_plan_directory_in_use_is_not_written(tmp_path):
    result = plan(tmp_path)
    with RunLock(tmp_path):
        with pytest.raises(RunDirError, match="is in use by pid"):
            write_plan(result)
    assert not (tmp_path / "results.json").exists()


def test_a_narrow_candidate_set_is_explained_with_the_option_that_widens_it(tmp_path):
    # retrain short with a size budget and no latency budget: only distilled candidates
    narrow = Constraints(targets=("cpu", "edge"), kinds={"cpu": "cpu", "edge": "edge"}, max_bytes=150_000,
                         retrain="short", finetune_epochs=2)
    result = plan(tmp_path)
    result.constraints = narrow
    write_plan(result)
    note = "max_bytes is set and cpu has no latency budget, so cpu is treated as size-bound"
    md = (tmp_path / "report.md").read_text()
    assert f"Not proposed: {note}" in md and "`--latency-ms cpu=MS` would also propose l1-30, l1-50, l1-70" in md
    assert note in (tmp_path / "report.html").read_text()
    (saved,) = read_json(tmp_path / "plan.json")["candidate_notes"]
    assert saved.startswith(note)
    write_plan(plan(tmp_path))  # cpu has a latency budget and the edge target a size one: nothing missing
    assert "Not proposed" not in (tmp_path / "report.md").read_text()
    assert read_json(tmp_path / "plan.json")["candidate_notes"] == []


def test_the_drop_column_says_a_negative_drop_is_a_gain(tmp_path):
    rows = plan(tmp_path).rows
    rows[0]["accuracy_drop"] = -0.25  # the artifact scored above its baseline
    assert DROP_HEADER == "acc drop pts (negative = gain)"
    head, _, first = plan_markdown_table(rows[:1]).splitlines()
    assert f"| {DROP_HEADER} |" in head and "| -0.25 |" in first
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(plan_table(rows[:1]))
    text = console.export_text()
    assert DROP_HEADER in text and "-0.25" in text and "drop pts " not in text.replace(DROP_HEADER, "")
    write_plan(plan(tmp_path))
    assert f"<th>{DROP_HEADER}</th>" in (tmp_path / "report.html").read_text()


def test_seeded_report_shows_mean_sd_n_ties_and_the_resolvable_difference(tmp_path):
    c = Constraints(targets=("cpu",), kinds={"cpu": "cpu"}, max_accuracy_drop=5.0, seeds=3)
    rows = fold_seeds(seeded("l1-50", 0.5, 50_000, [0.909, 0.912, 0.915])
                      + seeded("l1-50-kd", 0.6, 50_000, [0.906, 0.910, 0.914])
                      + [row("ptq", 0.9, 200_000, 0.95) | {"seed": 0}], repeated={"l1-50", "l1-50-kd"})
    for r in rows:
        r["accuracy_drop"] = 100 * (r["reference_accuracy"] - r["accuracy"])
    decisions = decide(rows, c)
    _annotate(rows, decisions)
    res = resolution(rows, val_samples=360, seeds=3)
    write_plan(PlanResult(tmp_path, recipe_from_dict({}), c, [], rows, decisions, [], 1.0, res))
    md = (tmp_path / "report.md").read_text()
    assert f"## Accuracy resolution\n\n{res.text()}" in md and "360 images" in md
    assert "fine-tune seeds (0..2)" in md and "those of seed 0's artifact" in md
    assert "| 91.20% ± 0.30 (n=3) |" in md and "| 95.00% (n=1, no seed) |" in md
    html = (tmp_path / "report.html").read_text()
    assert "<td>91.20% ± 0.30 (n=3)</td>" in html and "<td>95.00% (n=1, no seed)</td>" in html
    assert "l1-50/onnx/int8 and l1-50-kd/onnx/int8 are tied on accuracy: 91.20 ± 0.30 vs 91.00 ± 0.40%" in md
    plan_json = read_json(tmp_path / "plan.json")
    assert plan_json["resolution"]["val_samples"] == 360 and plan_json["resolution"]["text"] == res.text()


def test_one_seed_report_still_states_the_validation_part(tmp_path):
    result = plan(tmp_path)
    result.resolution = resolution(result.rows, val_samples=360, seeds=1)
    write_plan(result)
    md = (tmp_path / "report.md").read_text()
    assert "Validation: 360 images at the baseline's 95.00%" in md and "seeds: 1 run per candidate" in md
    assert "±" not in plan_markdown_table(result.rows) and "(n=" not in md  # no intervals with one seed
