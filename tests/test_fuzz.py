"""Property-based fuzzing of recipe parsing, of the CLI's --set overrides, and of whole runs.

Whatever the input, the outcome is a valid recipe or one RecipeError line (exit code 2 on
the command line) — never a traceback. A run given values that only a later stage can
refuse ends the same way, and leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgeslim.cli import app
from edgeslim.errors import RecipeError
from edgeslim.recipe import Recipe, load_recipe, recipe_from_dict
from tests.models.test_checkpoint import _Evil  # pickled, it creates a file: it must never be unpickled

OUTCOMES: Counter = Counter()  # read by benchmarks/reliability.py
# what Python prints for an uncaught exception; the bare word is no sign of one: the fuzzer found
# `--set Traceback=`, whose clear error rightly echoes the unknown key 'Traceback'
TRACEBACK = "Traceback (most recent call last)"
# EDGESLIM_FUZZ_EXAMPLES=N runs every fuzzer with N examples (the benchmark uses 1000)
N = int(os.environ.get("EDGESLIM_FUZZ_EXAMPLES", 0))

# Real section and field names, so the fuzzer reaches deep validation, plus noise.
SECTIONS = ["model", "data", "baseline", "compress", "finetune", "export", "quantize", "targets",
            "profile", "constraints", "name", "seed"]
FIELDS = ["name", "weights", "input_size", "num_classes", "kwargs", "batch_size", "calibration_samples",
          "epochs", "lr", "method", "ratio", "scope", "target_macs", "steps", "round_to", "formats",
          "precisions", "latency_ms", "max_bytes", "max_accuracy_drop", "retrain", "distill", "parity",
          "max_abs", "calibration_method", "warmup", "batch_sizes", "ignored_layers", "temperature"]
keys = st.sampled_from(SECTIONS + FIELDS) | st.text(string.ascii_letters + "_.", min_size=1, max_size=12)
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["l1", "onnx", "cpu", "digits", "resnet20", "int8", "nan", "-1"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)
documents = st.dictionaries(st.sampled_from(SECTIONS) | keys, values, max_size=6)


def check_recipe_dict(data) -> str:
    try:
        recipe = recipe_from_dict(data)
    except RecipeError as err:
        msg = str(err)
        assert msg and "\n" not in msg, msg
        OUTCOMES["clear error"] += 1
        return "error"
    assert isinstance(recipe, Recipe)
    OUTCOMES["valid"] += 1
    return "ok"


@settings(max_examples=N or 150, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents)
def test_any_mapping_is_a_recipe_or_one_clear_error(data):
    check_recipe_dict(data)


@settings(max_examples=N or 60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=200))
def test_any_text_file_is_a_recipe_or_one_clear_error(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        load_recipe(p)
        OUTCOMES["valid"] += 1
    except RecipeError as err:
        assert "\n" not in str(err)
        OUTCOMES["clear error"] += 1


runner = CliRunner()
paths = st.lists(st.sampled_from(SECTIONS + FIELDS) | st.text(string.ascii_letters + "_", min_size=1, max_size=8),
                 min_size=1, max_size=3).map(".".join) | st.text(max_size=12)
raw_values = st.text(max_size=24) | st.builds(lambda v: yaml.safe_dump(v, default_flow_style=True).strip(), values)


def check_set_override(key: str, value: str) -> str:
    result = runner.invoke(app, ["recipe", "--set", f"{key}={value}"])
    assert result.exit_code in (0, 2), (key, value, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert TRACEBACK not in result.output, result.output
    if result.exit_code == 2:
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
        OUTCOMES["clear error"] += 1
        return "error"
    yaml.safe_load(result.stdout)  # a resolved recipe, as YAML
    OUTCOMES["valid"] += 1
    return "ok"


@settings(max_examples=N or 120, deadline=None, suppress_health_check=list(HealthCheck))
@given(paths, raw_values)
@example("Traceback", "")  # found by the fuzzer: the word in a clear error is not a traceback
def test_cli_set_overrides_never_trace(key, value):
    check_set_override(key, value)


def test_known_bad_overrides_are_clear_errors():
    for key, value in [("compress.ratio", "1"), ("compress.ratio", "-0.1"), ("model.input_size", "0"),
                       ("targets", "[]"), ("export.formats", "[]"), ("constraints.latency_ms", "-5"),
                       ("data.batch_size", "abc"), ("seed", "[1, 2]"), ("model", "resnet20"),
                       ("compress..ratio", "0.3"), ("", "x"), ("quantize.precisions", "[int4]")]:
        assert check_set_override(key, value) == "error", (key, value)


# ------------------------------------------------------------------ whole runs with bad values
# Values the recipe schema accepts but a later stage must refuse: each has to end as one
# error line, exit code 2, and leave nothing half-written (no temporary folder or file, no
# stage folder without its done.json). Cheap valid settings keep a run to seconds.
QUICK_RUN = ["data.limit_train=64", "data.limit_val=32", "data.calibration_samples=16", "baseline.epochs=1",
             "finetune.epochs=1", "profile.max_seconds=0.05", "profile.sessions=1", "profile.min_iterations=5", "profile.warmup=1",
             "profile.warmup_seconds=0", "export.parity.samples=4"]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    import pickle

    import torch

    root = tmp_path_factory.mktemp("bad")
    (root / "empty_classes" / "a").mkdir(parents=True)
    (root / "empty_classes" / "b").mkdir()
    (root / "corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    marker = root / "pwned"
    (root / "evil.pt").write_bytes(pickle.dumps({"conv1.weight": _Evil("open", marker)}))
    torch.save({"fc.weight": torch.zeros(3, 3)}, root / "other.pt")
    return root, marker


def _late_failures(root: Path) -> list[str]:
    """Overrides that pass the recipe schema, each refused by a later stage (named alongside)."""
    return [
        "model.name=edgeslim_no_such_pkg.nets:build",  # model
        "model.name=json:dumps",  # model
        "model.name=vgg11_bn",  # model: paired with an input it cannot take (below)
        f"data.name=imagefolder:{root / 'empty_classes'}",  # data
        "data.name=imagefolder:/no/such/folder",  # data
        f"model.weights={root / 'corrupt.safetensors'}",  # weights
        f"model.weights={root / 'evil.pt'}",  # weights
        f"model.weights={root / 'other.pt'}",  # weights
        "model.num_classes=3",  # data
        "compress.ratio=0.97",  # compress
        "compress.ignored_layers=[layer9.conv1]",  # compress
        "finetune.distill={method: fitnet, layers: ['nope:layer1']}",  # finetune
        "data.calibration_samples=100000",  # quantize
    ]


# valid settings that take away a late failure's cause: a global threshold keeps each layer a
# step instead of emptying it; an FP16-only run calibrates nothing
VOIDS = {"compress.ratio=0.97": {"compress.scope=global"},
         "data.calibration_samples=100000": {"quantize.precisions=[fp16]"}}

VALID_NOISE = ["seed=1", "seed=7", "compress.method=l2", "compress.method=random", "compress.scope=global",
               "quantize.precisions=[fp32,int8]", "quantize.precisions=[fp16]", "compress.round_to=null",
               "quantize.calibration_method=percentile", "targets=[cpu]"]


def half_written(run_dir: Path) -> list[str]:
    """What a failed run left that could pass for finished: temporary files or folders, and
    stage folders (those under the run directory holding model or artifact files) without done.json."""
    if not run_dir.exists():
        return []
    bad = [str(p) for p in run_dir.rglob("*") if ".tmp" in p.name]
    for stage in [p for p in run_dir.rglob("*") if p.is_dir()]:
        files = {f.name for f in stage.iterdir() if f.is_file()}
        if files and "done.json" not in files:
            bad.append(str(stage))
    return bad


def check_run(args: list[str], run_dir: Path, marker: Path) -> None:
    result = runner.invoke(app, ["run", "--out", str(run_dir), *args])
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert TRACEBACK not in result.output and "Warning" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    leftovers = half_written(run_dir)
    OUTCOMES["run: half-written"] += len(leftovers)
    assert not leftovers, leftovers
    assert not marker.exists(), "a checkpoint's pickled payload ran"
    OUTCOMES["run: clear error"] += 1


@settings(max_examples=N // 10 or 6, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_runs_with_bad_values_fail_cleanly_and_leave_nothing_half_written(bad_files, data):
    import tempfile

    root, marker = bad_files
    failures = _late_failures(root)
    overrides = data.draw(st.lists(st.sampled_from(failures), min_size=1, max_size=2, unique=True))
    if "model.name=vgg11_bn" in overrides:
        overrides.append("model.input_size=8")
    noise = data.draw(st.lists(st.sampled_from(VALID_NOISE), max_size=2, unique=True))
    voided = set().union(*(VOIDS.get(o, set()) for o in overrides))
    overrides += [n for n in noise if n not in voided]
    args = [a for kv in QUICK_RUN + overrides for a in ("--set", kv)]
    with tempfile.TemporaryDirectory() as tmp:
        check_run(args, Path(tmp) / "run", marker)
