"""Property-based fuzzing of recipe parsing and of the CLI's --set overrides.

Whatever the input, the outcome is a valid recipe or one RecipeError line (exit code 2 on
the command line) — never a traceback.
"""

from __future__ import annotations

import os
import string
from collections import Counter

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgeslim.cli import app
from edgeslim.errors import RecipeError
from edgeslim.recipe import Recipe, load_recipe, recipe_from_dict

OUTCOMES: Counter = Counter()  # read by benchmarks/reliability.py
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
    assert "Traceback" not in result.output
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
def test_cli_set_overrides_never_trace(key, value):
    check_set_override(key, value)


def test_known_bad_overrides_are_clear_errors():
    for key, value in [("compress.ratio", "1"), ("compress.ratio", "-0.1"), ("model.input_size", "0"),
                       ("targets", "[]"), ("export.formats", "[]"), ("constraints.latency_ms", "-5"),
                       ("data.batch_size", "abc"), ("seed", "[1, 2]"), ("model", "resnet20"),
                       ("compress..ratio", "0.3"), ("", "x"), ("quantize.precisions", "[int4]")]:
        assert check_set_override(key, value) == "error", (key, value)
