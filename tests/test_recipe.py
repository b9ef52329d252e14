"""The recipe contract: defaults, partial files, overrides, and one-line errors."""

import pytest
import yaml

from edgeslim.errors import RecipeError
from edgeslim.recipe import dump_recipe, load_recipe, recipe_to_dict


def test_default_recipe_has_the_contract_fields():
    d = recipe_to_dict(load_recipe())
    assert d["name"] == "default"
    assert {"name": "resnet20", "weights": None, "input_size": 32, "num_classes": 10}.items() <= d["model"].items()
    assert {"name": "digits", "batch_size": 64, "calibration_samples": 256}.items() <= d["data"].items()
    assert d["baseline"]["epochs"] == 8
    assert {"method": "l1", "ratio": 0.5, "scope": "local"}.items() <= d["compress"].items()
    assert {"epochs": 8, "lr": 0.05}.items() <= d["finetune"].items()
    assert d["export"]["formats"] == ["onnx"]
    assert d["quantize"]["precisions"] == ["fp32", "fp16", "int8"]
    assert d["targets"] == ["cpu"]


def test_partial_file_is_filled_in_and_dump_roundtrips(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: small\ncompress: {ratio: 0.3}\ntargets: [cpu]\n")
    r = load_recipe(p)
    assert r.name == "small" and r.compress.ratio == 0.3 and r.compress.method == "l1"
    assert r.finetune.epochs == 8  # untouched default
    again = tmp_path / "again.yaml"
    again.write_text(dump_recipe(r))
    assert recipe_to_dict(load_recipe(again)) == recipe_to_dict(r)


def test_set_overrides_parse_yaml_values():
    r = load_recipe(None, ["compress.ratio=0.25", "export.formats=[onnx]", "model.name=resnet56",
                           "quantize.precisions=[fp32, int8]", "finetune.distill.method=hinton"])
    assert r.compress.ratio == 0.25 and r.model.name == "resnet56"
    assert r.quantize.precisions == ["fp32", "int8"]
    assert r.finetune.distill.method == "hinton"


@pytest.mark.parametrize("overrides, needle", [
    (["compres.ratio=0.3"], "did you mean 'compress'"),
    (["compress.ratoi=0.3"], "ratio"),
    (["model.nam=x"], "did you mean 'name'"),
    (["compress.ratio=1.5"], "(0, 1)"),
    (["compress.ratio=0"], "(0, 1)"),
    (["compress.ratio=abc"], "compress.ratio"),
    (["compress.method=l7"], "did you mean"),
    (["export.formats=[onxx]"], "did you mean 'onnx'"),
    (["targets=[cpux]"], "did you mean 'cpu'"),
    (["compress.scope=everywhere"], "compress.scope"),
    (["data.batch_size=-1"], "data.batch_size"),
    (["constraints.max_accuracy_drop=-1"], "max_accuracy_drop"),
    (["noequals"], "key.path=value"),
])
def test_bad_values_are_one_clear_line(overrides, needle):
    with pytest.raises(RecipeError) as e:
        load_recipe(None, overrides)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg


def test_malformed_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(lst)
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_dumped_default_is_valid_yaml_a_user_can_edit():
    text = dump_recipe(load_recipe())
    data = yaml.safe_load(text)
    data["compress"]["ratio"] = 0.4
    from edgeslim.recipe import recipe_from_dict

    assert recipe_from_dict(data).compress.ratio == 0.4


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_recipe_file_is_an_error_naming_it(tmp_path, text):
    p = tmp_path / "mine.yaml"
    p.write_text(text)
    with pytest.raises(RecipeError, match=f"recipe {p} is empty"):
        load_recipe(p)
    assert load_recipe().model.name == "resnet20"  # no file: the embedded default, as before
