"""The default recipe end to end, shrunk to seconds: every artifact real, measured, smaller."""


import shutil

import onnxruntime as ort
import pytest

from edgeslim.exporters.parity import MIN_COSINE
from edgeslim.io import read_json, sha256_file
from edgeslim.pipeline.run import run_recipe
from edgeslim.recipe import load_recipe

QUICK = ["data.limit_train=192", "data.limit_val=64", "data.calibration_samples=32",
         "baseline.epochs=1", "finetune.epochs=1", "profile.max_seconds=0.2", "profile.sessions=1",
         "profile.min_iterations=5", "profile.warmup=2", "profile.warmup_seconds=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = run_recipe(load_recipe(None, QUICK), out)
    return out, summary


def test_every_artifact_exists_and_is_profiled(run):
    out, summary = run
    rows = read_json(out / "results.json")
    assert rows == summary.rows
    ids = sorted(r["id"] for r in rows)
    assert ids == sorted(f"{v}/onnx/{p}" for v in ("baseline", "compressed") for p in ("fp32", "fp16", "int8"))
    for r in rows:
        assert r["status"] == "ok", r
        assert r["target"] == "cpu"
        for f in r["files"]:
            assert (out / f).is_file()
        assert r["bytes"] == sum((out / f).stat().st_size for f in r["files"])
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and lat["mean"] > 0
        assert 0.0 <= r["accuracy"] <= 1.0
        sem = r["semantics"]
        assert sem["runtime"] == "onnxruntime" and sem["runtime_version"] == ort.__version__
        assert sem["threads"] >= 1 and sem["batch"] == 1 and sem["iterations"] >= 5
        assert r["method"] == ("none" if r["variant"] == "baseline" else "l1")
        # the artifact runs in a fresh ONNX Runtime session by itself
        ort.InferenceSession(str(out / r["artifact"]), providers=["CPUExecutionProvider"])


def test_parity_passed_and_sizes_shrank(run):
    out, summary = run
    rows = {r["id"]: r for r in summary.rows}
    for r in rows.values():
        assert r["parity"]["passed"] is True
    assert rows["baseline/onnx/fp32"]["parity"]["max_abs"] < 1e-3
    b32, c32 = rows["baseline/onnx/fp32"], rows["compressed/onnx/fp32"]
    assert c32["bytes"] <= 0.35 * b32["bytes"]  # ratio 0.5 halves in and out channels
    assert c32["params"] < 0.3 * b32["params"] and c32["macs"] < 0.3 * b32["macs"]
    for v in ("baseline", "compressed"):
        assert rows[f"{v}/onnx/int8"]["bytes"] <= 0.35 * rows[f"{v}/onnx/fp32"]["bytes"]
        assert rows[f"{v}/onnx/fp16"]["bytes"] < 0.6 * rows[f"{v}/onnx/fp32"]["bytes"]


def test_channels_are_physically_gone(run):
    out, _ = run
    report = read_json(out / "10-compress" / "report.json")
    assert report["channels"]["layer3.2.conv2"] == {"before": 64, "after": 32}
    assert report["channels"]["fc"] == {"before": 10, "after": 10}
    assert report["params_after"] < report["params_before"]


def test_reports_and_manifest(run):
    out, _ = run
    md = (out / "report.md").read_text()
    head, artifacts = md.split("## Artifacts")
    assert "| method | format |" in artifacts and "| method |" not in head  # the table is under its heading
    assert md.count("| l1 | onnx |") == 3 and md.count("| none | onnx |") == 3
    bought = md.split("## What compression bought")[1].split("## How these were measured")[0]
    rows = {r["id"]: r for r in read_json(out / "results.json")}
    for p in ("fp32", "fp16", "int8"):  # each compressed artifact against its baseline twin, measured
        b, c = rows[f"baseline/onnx/{p}"], rows[f"compressed/onnx/{p}"]
        speedup = b["latency_ms"]["p50"] / c["latency_ms"]["p50"]
        assert f"| cpu | onnx | {p} | {b['macs'] / c['macs']:.2f}x fewer | " in bought
        assert f"| {speedup:.2f}x | {speedup * c['macs'] / b['macs']:.2f} |" in bought
    man = read_json(out / "manifest.json")
    assert man["versions"]["torch"] and man["versions"]["onnxruntime"] == ort.__version__
    assert man["recipe"]["data"]["limit_train"] == 192
    assert man["files"] and all(sha256_file(out / f) == h for f, h in man["files"].items())
    assert (out / "recipe.yaml").is_file() and not (out / ".lock").exists()
    for stage in ("00-baseline", "10-compress", "20-finetune", "30-export/baseline-onnx",
                  "40-quantize/compressed-onnx-int8", "50-profile"):
        assert (out / stage / "done.json").is_file(), stage
    assert len((out / "50-profile" / "results.jsonl").read_text().splitlines()) == 6


def test_rerun_is_cached_and_a_changed_field_reruns_from_its_stage(run):
    out, first = run
    again = run_recipe(load_recipe(None, QUICK), out)
    assert all(s.cached for s in again.stages)
    changed = run_recipe(load_recipe(None, QUICK + ["finetune.lr=0.02"]), out)
    by = {s.name: s for s in changed.stages}
    assert by["00-baseline"].cached and by["10-compress"].cached
    assert not by["20-finetune"].cached
    assert by["30-export/baseline-onnx"].cached  # the baseline artifact did not change
    assert not by["30-export/compressed-onnx"].cached


def test_an_artifact_failing_its_check_is_a_failed_row_and_the_run_goes_on(run, tmp_path, monkeypatch):
    out, _ = run
    other = tmp_path / "run"
    shutil.copytree(out, other, copy_function=shutil.copy)
    monkeypatch.setitem(MIN_COSINE, "int8", 1.5)  # no INT8 artifact can pass: cosine <= 1
    summary = run_recipe(load_recipe(None, QUICK + ["quantize.per_channel=false"]), other)
    failed = [r for r in summary.rows if r["status"] == "failed"]
    assert sorted(r["id"] for r in failed) == ["baseline/onnx/int8", "compressed/onnx/int8"]
    for r in failed:
        assert "differs from its FP32 parent beyond tolerance" in r["reason"] and "cosine" in r["reason"]
        assert r["latency_ms"] is None and r["accuracy"] is None
    assert all(r["status"] == "ok" for r in summary.rows if r["precision"] != "int8")
    parity = read_json(other / "40-quantize" / "compressed-onnx-int8" / "parity.json")
    assert parity["passed"] is False and "cosine" in parity["why"]
