"""A small real plan end to end: candidates run and measured, one choice per target with its
rationale, Pareto PNGs and report.html, a fully cached rerun, gated releases, and the same plan
at two seeds (what trains runs twice, ptq once, rows carry mean ± sd over n=2)."""

import shutil
import statistics
import subprocess
import sys

import pytest

from edgeslim.data import load_data
from edgeslim.errors import RunDirError
from edgeslim.io import read_json, sha256_file
from edgeslim.report.plan_report import write_plan
from edgeslim.select.plan import plan_inputs, plan_recipe
from edgeslim.select.release import GateError, constraints_stated, release, stale_plan, with_plan_constraints

QUICK = ["data.limit_train=192", "data.limit_val=64", "data.calibration_samples=32",
         "baseline.epochs=1", "finetune.epochs=1", "profile.max_seconds=0.2", "profile.sessions=1",
         "profile.min_iterations=5", "profile.warmup=2", "profile.warmup_seconds=0",
         "profile.accuracy=true"]
# cpu only; a size budget makes the prior propose ptq + two pruned+distilled candidates
# (two pipeline runs); the accuracy budget is loose because 1 epoch on 192 images is noise.
OPTIONS = dict(targets=["cpu"], max_bytes=200_000, max_accuracy_drop=100.0, retrain="short")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    recipe, _ = plan_inputs(None, QUICK, **OPTIONS)
    first = plan_recipe(recipe, out)
    planned_only = sorted(p.name for p in out.iterdir())
    write_plan(first)
    second = plan_recipe(recipe, out)
    write_plan(second)
    return recipe, out, first, second, planned_only


def test_planning_writes_only_the_candidates_runs(planned):
    *_, planned_only = planned
    assert planned_only == ["candidates"]  # results.json, plan.json and the reports are write_plan's


def test_candidates_ran_and_every_row_is_measured(planned):
    _, out, first, _, _ = planned
    assert [c.name for c in first.candidates] == ["ptq", "l1-50-kd", "l1-70-kd"]
    rows = read_json(out / "results.json")
    assert sorted(r["label"] for r in rows) == sorted(
        ["ptq/onnx/fp32", "ptq/onnx/fp16", "ptq/onnx/int8", "l1-50-kd/onnx/int8", "l1-70-kd/onnx/int8"])
    for r in rows:
        assert r["status"] == "ok", r
        assert r["latency_ms"]["p50"] > 0 and r["bytes"] == sum((out / f).stat().st_size for f in r["files"])
        assert (out / r["artifact"]).is_file()
    # the baseline is trained once: the second candidate's was linked from the first
    base = [out / "candidates" / n / "00-baseline" / "model.safetensors" for n in ("l1-50-kd", "l1-70-kd")]
    assert base[0].stat().st_ino == base[1].stat().st_ino
    assert all(s["cached"] for s in first.stages if s["candidate"] == "l1-70-kd" and s["stage"] == "00-baseline")


def test_exactly_one_chosen_row_with_a_rationale(planned):
    _, out, first, _, _ = planned
    rows = read_json(out / "results.json")
    chosen = [r for r in rows if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["target"] == "cpu"
    c = chosen[0]
    assert c["bytes"] <= 200_000 and c["label"].endswith("-kd/onnx/int8")
    assert c["rationale"].startswith(f"{c['label']} wins on cpu") and "size" in c["rationale"]
    assert all(v["passed"] for v in c["verdicts"])
    for r in rows:
        if not r["chosen"]:
            assert r["explanation"] and "rationale" not in r
    ptq32 = next(r for r in rows if r["label"] == "ptq/onnx/fp32")
    assert "misses max_bytes" in ptq32["explanation"] and not ptq32["feasible"]
    plan = read_json(out / "plan.json")
    assert plan["decisions"]["cpu"]["chosen"] == c["label"] and plan["feasible"] is True


def test_pareto_png_and_html_report(planned):
    _, out, _, _, _ = planned
    png = out / "pareto-cpu.png"
    data = png.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    from PIL import Image

    with Image.open(png) as im:
        im.verify()
        assert im.size[0] >= 600
    html = (out / "report.html").read_text()
    assert html.count("<img ") == 1 and "data:image/png;base64,iVBORw0KGgo" in html
    assert "<table>" in html and html.count("<tr class=") == 5 and 'class="chosen"' in html
    assert "max_bytes: 200,000" in html and "Chosen: <code>" in html


def test_rerun_is_fully_cached_and_fast(planned):
    _, out, first, second, _ = planned
    assert second.all_cached and not first.all_cached
    assert len(second.stages) == len(first.stages)
    assert second.seconds < first.seconds
    assert [r["label"] for r in second.rows] == [r["label"] for r in first.rows]
    assert read_json(out / "plan.json")["all_cached"] is True


def test_release_writes_manifests_whose_hashes_match(planned, tmp_path):
    recipe, out, _, _, _ = planned
    rel = release(recipe, out, tmp_path / "dist")
    m = read_json(rel.manifests["cpu"])
    folder = tmp_path / "dist" / "default" / "cpu"
    assert rel.manifests["cpu"] == folder / "manifest.json"
    assert m["files"] and all(sha256_file(folder / f) == h for f, h in m["files"].items())
    assert sorted(p.name for p in folder.iterdir()) == sorted(list(m["files"]) + ["manifest.json"])
    assert m["artifact"] in m["files"]
    for pkg in ("torch", "onnx", "onnxruntime", "openvino", "nncf", "edgeslim"):
        assert m["versions"][pkg], pkg
    assert m["recipe"]["finetune"]["distill"]["teacher"] == "baseline"  # the candidate's own recipe
    assert m["plan_recipe"]["constraints"]["max_bytes"] == 200_000
    assert [v["constraint"] for v in m["constraints"]] == ["max_bytes", "max_accuracy_drop"]
    assert all(v["passed"] for v in m["constraints"]) and m["metrics"]["bytes"] <= 200_000
    assert m["metrics"]["latency_ms"]["p50"] > 0 and m["semantics"]["runtime"] == "onnxruntime"
    assert "latency_ms" in m["metric_semantics"] and m["rationale"]
    # the same plan released twice gives the same files
    again = release(recipe, out, tmp_path / "dist2")
    assert read_json(again.manifests["cpu"])["files"] == m["files"]


def test_a_failed_gate_releases_nothing(planned, tmp_path):
    recipe, out, _, _, _ = planned
    other = tmp_path / "plan"
    shutil.copytree(out, other, copy_function=shutil.copy)  # a copy: the fixture's plan stays intact
    tight, _ = plan_inputs(None, QUICK, **{**OPTIONS, "max_bytes": 1000})
    with pytest.raises(RunDirError, match="was made for a different recipe"):
        release(tight, other, tmp_path / "dist")
    assert "differs at constraints.max_bytes" in stale_plan(other, tight) and stale_plan(other, recipe) is None
    write_plan(plan_recipe(tight, other))  # what --run does: re-plan (every stage cached)
    with pytest.raises(GateError) as e:  # nothing fits 1000 bytes
        release(tight, other, tmp_path / "dist")
    assert e.value.exit_code == 1 and "release gate failed" in str(e.value)
    assert "closest" in str(e.value) and "misses max_bytes" in str(e.value)
    assert not (tmp_path / "dist").exists()
    plan = read_json(other / "plan.json")
    assert plan["feasible"] is False and plan["all_cached"] is True
    assert not any(r.get("chosen") for r in read_json(other / "results.json"))


def test_cli_plan_release_and_gate_exit_codes(planned, tmp_path):
    recipe, out, _, _, _ = planned
    other = tmp_path / "plan"
    shutil.copytree(out, other, copy_function=shutil.copy)
    args = [a for kv in QUICK for a in ("--set", kv)] + ["--target", "cpu", "--max-bytes", "200000",
                                                         "--max-accuracy-drop", "100", "--retrain", "short"]
    edgeslim = lambda *a: subprocess.run([sys.executable, "-m", "edgeslim", *a], capture_output=True,  # noqa: E731
                                         text=True, timeout=600)
    r = edgeslim("plan", "--out", str(other), *args)
    assert r.returncode == 0, r.stderr
    assert "★" in r.stdout and "every stage cached" in r.stdout and "wins on cpu" in r.stdout
    tight = args[:-6] + ["--max-bytes", "1000", "--max-accuracy-drop", "100", "--retrain", "short"]
    r = edgeslim("release", "--run", "--out", str(other), "--dist", str(tmp_path / "d"), *tight)
    assert r.returncode == 1 and "release gate failed" in r.stderr.strip().splitlines()[-1]
    plan = read_json(other / "plan.json")  # --run planned for the tight recipe first, and wrote its files
    assert plan["recipe"]["constraints"]["max_bytes"] == 1000 and plan["all_cached"] is True
    r = edgeslim("plan", "--out", str(other), *tight)  # every stage cached; nothing fits 1000 bytes
    assert r.returncode == 1 and "nothing meets every constraint on cpu" in r.stdout.replace("\n", " ")
    r = edgeslim("release", "--out", str(other), "--dist", str(tmp_path / "d"), *tight)
    assert r.returncode == 1 and "release gate failed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_same_recipe_and_seed_give_the_same_artifact_hashes(planned, tmp_path):
    """A second plan from scratch, in another directory, then both released: every artifact
    file is byte-identical (CPU training with a fixed seed and thread count is deterministic)."""
    recipe, out, _, _, _ = planned
    write_plan(plan_recipe(recipe, tmp_path / "again"))
    a = release(recipe, out, tmp_path / "dist-a")
    b = release(recipe, tmp_path / "again", tmp_path / "dist-b")
    assert read_json(a.manifests["cpu"])["files"] == read_json(b.manifests["cpu"])["files"]
    rows_a = {(r["label"], r["target"]): r["sha256"] for r in read_json(out / "results.json")}
    rows_b = {(r["label"], r["target"]): r["sha256"] for r in read_json(tmp_path / "again" / "results.json")}
    assert rows_a == rows_b


def test_release_takes_the_plans_own_constraints_and_targets(planned, tmp_path):
    """``edgeslim plan R --max-bytes ...`` then ``edgeslim release R``: the release needs no
    constraint options again; only a changed recipe (here the seed) is refused."""
    recipe, out, _, _, _ = planned
    plain, _ = plan_inputs(None, QUICK)  # what `release` without constraint options resolves
    assert "differs at constraints" in stale_plan(out, plain)
    mine = with_plan_constraints(plain, out)
    assert stale_plan(out, mine) is None and mine.constraints.max_bytes == 200_000
    assert [t.name for t in mine.targets] == ["cpu"]
    m = read_json(release(mine, out, tmp_path / "dist").manifests["cpu"])
    assert m["plan_recipe"]["constraints"]["max_bytes"] == 200_000
    changed = with_plan_constraints(plan_inputs(None, QUICK + ["seed=1"])[0], out)
    with pytest.raises(RunDirError, match=r"different recipe \(differs at seed\)"):
        release(changed, out, tmp_path / "dist-changed")
    assert not constraints_stated(QUICK, None, [], None)
    assert constraints_stated(["constraints.max_bytes=5"]) and constraints_stated([], None, 5)
    r = subprocess.run([sys.executable, "-m", "edgeslim", "release", "--out", str(out), "--dist",
                        str(tmp_path / "cli"), *[a for kv in QUICK for a in ("--set", kv)]],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert read_json(tmp_path / "cli" / "default" / "cpu" / "manifest.json")["files"] == m["files"]


def test_the_manifest_names_the_classes_and_the_preprocessing(planned, tmp_path):
    recipe, out, _, _, _ = planned
    m = read_json(release(recipe, out, tmp_path / "dist").manifests["cpu"])
    assert m["classes"] == [str(i) for i in range(10)]  # digits: class i is the digit i
    pre = m["preprocessing"]
    data = load_data("digits", input_size=32, num_classes=10, seed=0, val_fraction=0.2)
    assert pre["input_size"] == 32 and pre["input_shape"] == [1, 3, 32, 32]
    assert pre["layout"] == "NCHW" and pre["dtype"] == "float32" and pre["scale"] == 1 / 16
    assert pre["mean"] == [data.train.mean] * 3 and pre["std"] == [data.train.std] * 3
    assert "bilinear" in pre["resize"] and "grayscale" in pre["channel_order"]


# ---------------------------------------------------------------- --seeds 2 on the same plan


@pytest.fixture(scope="module")
def seeded(planned, tmp_path_factory):
    """The plan above again with ``seeds=2``, in a copy of its directory: the first seed's runs
    are all cached there, so only what the second seed changes runs."""
    _, out, *_ = planned
    other = tmp_path_factory.mktemp("seeds") / "plan"
    shutil.copytree(out, other, copy_function=shutil.copy)
    recipe, c = plan_inputs(None, QUICK, **OPTIONS, seeds=2)
    assert c.seeds == 2
    result = plan_recipe(recipe, other)
    write_plan(result)
    return other, result


def test_seeds_repeat_what_trains_and_run_ptq_once(seeded):
    out, result = seeded
    assert sorted(p.name for p in (out / "candidates").iterdir()) == [
        "l1-50-kd", "l1-50-kd-seed1", "l1-70-kd", "l1-70-kd-seed1"]  # no second ptq run
    stages = {(s["candidate"], s["seed"], s["stage"]): s["cached"] for s in result.stages}
    assert all(v for (_, seed, _), v in stages.items() if seed == 0)  # the first seed: the plan above
    # the second seed shares the baseline and the pruning (l1 does not train), and fine-tunes anew
    assert stages[("l1-50-kd", 1, "00-baseline")] and stages[("l1-50-kd", 1, "10-compress")]
    assert not stages[("l1-50-kd", 1, "20-finetune")]
    # ptq (the baseline's artifacts) is exported, quantized and profiled in the first run only
    exported = {d.name: sorted(p.name for p in (d / "30-export").iterdir()) for d in (out / "candidates").iterdir()}
    assert [n for n, folders in exported.items() if any(f.startswith("baseline") for f in folders)] == ["l1-50-kd"]
    assert exported["l1-50-kd-seed1"] == ["compressed-onnx"]
    ft = [out / "candidates" / n / "20-finetune" / "model.safetensors" for n in ("l1-50-kd", "l1-50-kd-seed1")]
    assert ft[0].read_bytes() != ft[1].read_bytes()  # the other seed trained other weights
    base = [out / "candidates" / n / "00-baseline" / "model.safetensors" for n in ("l1-50-kd", "l1-50-kd-seed1")]
    assert base[0].stat().st_ino == base[1].stat().st_ino
    assert "seed: 1" in (out / "candidates" / "l1-50-kd-seed1" / "recipe.yaml").read_text()


def test_seeded_rows_carry_mean_spread_and_n(seeded):
    out, _ = seeded
    rows = {r["label"]: r for r in read_json(out / "results.json")}
    # one row per artifact, whatever precisions ptq gets on this CPU (bf16 where it runs)
    assert sorted(x for x in rows if not x.startswith("ptq/")) == ["l1-50-kd/onnx/int8", "l1-70-kd/onnx/int8"]
    assert len(rows) == len(read_json(out / "results.json"))
    for name in ("l1-50-kd", "l1-70-kd"):
        r = rows[f"{name}/onnx/int8"]
        own = [next(x for x in read_json(out / "candidates" / d / "50-profile" / "results.json")
                    if x["variant"] == "compressed" and x["precision"] == "int8")["accuracy"]
               for d in (name, f"{name}-seed1")]
        assert r["accuracy_n"] == 2 and r["seeds"] == [0, 1] and r["accuracy_by_seed"] == own
        assert r["accuracy"] == pytest.approx(statistics.fmean(own))
        assert r["accuracy_sd"] == pytest.approx(statistics.stdev(own))
        assert r["measured_seed"] == 0 and r["artifact"].startswith(f"candidates/{name}/")
    assert "ptq/onnx/int8" in rows and "ptq/onnx/fp32" in rows
    for ptq in (r for x, r in rows.items() if x.startswith("ptq/")):
        assert ptq["accuracy_n"] == 1 and ptq["seed_independent"] and ptq["accuracy_sd"] == 0.0


def test_seeded_report_states_the_resolvable_difference(seeded):
    out, result = seeded
    md = (out / "report.md").read_text()
    assert "## Accuracy resolution" in md and "Smallest accuracy difference this run can resolve" in md
    assert "Validation: 64 images" in md and "over 2 seeds" in md and "(n=2)" in md  # data.limit_val=64
    plan = read_json(out / "plan.json")
    assert plan["constraints"]["seeds"] == 2 and plan["resolution"]["val_samples"] == 64
    assert plan["resolution"]["points"] == pytest.approx(result.resolution.points)
    assert result.resolution.points > 0


def test_a_seeded_release_states_the_shipped_artifacts_own_accuracy(seeded, tmp_path):
    out, result = seeded
    rel = release(result.recipe, out, tmp_path / "dist")
    chosen = {r["target"]: r for r in read_json(out / "results.json") if r.get("chosen")}
    assert rel.manifests and set(rel.manifests) == set(chosen)
    for target, path in rel.manifests.items():
        row, m = chosen[target], read_json(path)["metrics"]
        profiled = read_json(out / row["run_dir"] / "50-profile" / "results.json")
        own = next(x for x in profiled if all(x[k] == row[k] for k in ("variant", "format", "precision", "target")))
        assert m["accuracy"] == own["accuracy"]  # the files shipped are this run's, not a mean
        assert m["accuracy_drop"] == pytest.approx(100 * (row["reference_accuracy"] - own["accuracy"]))
        seeds = m["accuracy_over_seeds"]
        assert seeds["mean"] == row["accuracy"] and seeds["n"] == row["accuracy_n"]
        assert seeds["shipped_seed"] == row["measured_seed"] and seeds["by_seed"] == row["accuracy_by_seed"]
