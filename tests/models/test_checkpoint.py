"""save_model / load_model (safetensors + structure.json) and safe weight loading."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp
from safetensors.torch import load_file, save_file

from edgeslim.errors import ModelError
from edgeslim.models.checkpoint import STRUCTURE, WEIGHTS, load_model, save_model
from edgeslim.models.loading import build_model, load_weights, output_classes, read_state_dict
from edgeslim.models.zoo import create_model

SPEC = {"name": "resnet20", "num_classes": 10, "kwargs": {}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def _conv_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so a lost buffer would change the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture(scope="module")
def pruned_resnet20() -> nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    example = torch.randn(1, 3, 32, 32)
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5, ignored_layers=[model.fc],
    )
    pruner.step()
    _randomize_bn(model)
    return model.eval()


def test_pruned_resnet20_roundtrip_is_exact(pruned_resnet20, tmp_path):
    model = pruned_resnet20
    # the pruning really changed the architecture, otherwise this test proves little
    assert model.layer1[0].conv1.out_channels == 8
    assert model.layer3[0].conv1.out_channels == 32
    assert model.fc.in_features == 32

    files = save_model(model, tmp_path, SPEC)
    assert files == {"weights": WEIGHTS, "structure": STRUCTURE}
    loaded = load_model(tmp_path)

    assert not loaded.training
    assert _conv_shapes(loaded) == _conv_shapes(model)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert a.shape == (3, 10)
    assert torch.equal(a, b)
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb
        assert torch.equal(va, vb), ka


def test_factorized_conv_as_sequential_roundtrips(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    # simulate a low-rank factorization: 16->16 3x3 conv becomes 1x1 (16->4) then 3x3 (4->16)
    model.layer1[0].conv1 = nn.Sequential(
        nn.Conv2d(16, 4, 1, bias=False),
        nn.Conv2d(4, 16, 3, padding=1, bias=True),
    )
    model.layer2[1].conv2 = nn.Sequential(
        nn.Conv2d(32, 8, 1, bias=False),
        nn.Conv2d(8, 8, (3, 1), padding=(1, 0), bias=False),
        nn.Conv2d(8, 32, (1, 3), padding=(0, 1), bias=False),
    )
    _randomize_bn(model)
    model.eval()
    save_model(model, tmp_path, SPEC)
    loaded = load_model(tmp_path)

    seq = loaded.layer1[0].conv1
    assert isinstance(seq, nn.Sequential) and len(seq) == 2
    assert seq[0].weight.shape == (4, 16, 1, 1) and seq[0].bias is None
    assert seq[1].weight.shape == (16, 4, 3, 3) and seq[1].bias is not None
    seq2 = loaded.layer2[1].conv2
    assert [tuple(c.weight.shape) for c in seq2] == [(8, 32, 1, 1), (8, 8, 3, 1), (32, 8, 1, 3)]
    assert seq2[1].padding == (1, 0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_saved_files_are_json_and_safetensors_not_pickle(pruned_resnet20, tmp_path):
    save_model(pruned_resnet20, tmp_path, SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([WEIGHTS, STRUCTURE])

    meta = json.loads((tmp_path / STRUCTURE).read_text())
    assert meta["spec"] == SPEC
    layer = meta["layers"]["layer1.0.conv1"]
    assert layer["type"] == "Conv2d"
    assert layer["args"]["out_channels"] == 8 and layer["args"]["in_channels"] == 8
    assert layer["args"]["bias"] is False
    assert meta["layers"]["fc"]["args"] == {"in_features": 32, "out_features": 10, "bias": True}

    raw = (tmp_path / WEIGHTS).read_bytes()
    # safetensors: 8-byte little-endian header length, then a JSON header
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    assert header["layer1.0.conv1.weight"]["shape"] == [8, 8, 3, 3]
    assert header["layer1.0.conv1.weight"]["dtype"] == "F32"
    assert not raw.startswith(b"\x80")  # a pickle protocol>=2 stream starts with PROTO 0x80
    assert not raw.startswith(b"PK")  # nor torch.save's zip container
    state = load_file(str(tmp_path / WEIGHTS))
    assert set(state) == set(pruned_resnet20.state_dict())


def _model_pair():
    torch.manual_seed(3)
    src = create_model("resnet20", num_classes=10).eval()
    _randomize_bn(src, seed=3)
    torch.manual_seed(4)
    dst = create_model("resnet20", num_classes=10).eval()
    return src, dst


def test_load_weights_safetensors(tmp_path):
    src, dst = _model_pair()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(src(x), dst(x))
        assert load_weights(dst, path) is dst
        assert torch.equal(src(x), dst(x))


def test_load_weights_pt_state_dict_and_wrapped_forms(tmp_path):
    src, dst = _model_pair()
    x = torch.randn(2, 3, 32, 32)
    plain = tmp_path / "w.pt"
    torch.save(src.state_dict(), plain)
    load_weights(dst, plain)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    # {"state_dict": ...} wrapper with DataParallel "module." prefixes
    wrapped = tmp_path / "w.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}, "epoch": 3}, wrapped)
    state = read_state_dict(wrapped)
    assert set(state) == set(src.state_dict())


class _Evil:
    """Unpickling this runs ``how`` against ``marker``: the attack a checkpoint can carry."""

    def __init__(self, how: str, marker: Path):
        self.how, self.marker = how, marker

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch '{self.marker}'",))
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("how", ["system", "open"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, how):
    # sanity: the payload really does run under a plain pickle.loads
    probe = tmp_path / f"probe_{how}"
    result = pickle.loads(pickle.dumps(_Evil(how, probe)))
    if hasattr(result, "close"):
        result.close()
    assert probe.exists()

    marker = tmp_path / f"pwned_{how}"
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"conv1.weight": _Evil(how, marker)}, f)
    model = create_model("resnet20", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelError) as err:
        load_weights(model, bad)
    assert str(bad) in str(err.value)
    assert "refused" in str(err.value) or "cannot read" in str(err.value)
    assert not marker.exists()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_malicious_object_inside_torch_save_zip_is_refused(tmp_path):
    marker = tmp_path / "pwned_zip"
    bad = tmp_path / "evil_zip.pt"
    torch.save({"fc.weight": torch.zeros(10, 64), "extra": _Evil("system", marker)}, bad)
    with pytest.raises(ModelError, match="refused"):
        read_state_dict(bad)
    assert not marker.exists()


def test_other_architecture_weights_are_rejected(tmp_path):
    path = tmp_path / "r56.safetensors"
    r56 = create_model("resnet56", num_classes=10)
    save_file({k: v.contiguous() for k, v in r56.state_dict().items()}, str(path))
    r20 = create_model("resnet20", num_classes=10)
    with pytest.raises(ModelError, match=r"keys|shape") as err:
        load_weights(r20, path)
    assert "unexpected" in str(err.value)
    assert "\n" not in str(err.value)


def test_same_keys_wrong_shape_is_rejected_naming_the_key(tmp_path):
    path = tmp_path / "c100.pt"
    torch.save(create_model("resnet20", num_classes=100).state_dict(), path)
    with pytest.raises(ModelError, match=r"'fc\.weight' has shape \[100, 64\] in the file, \[10, 64\]"):
        load_weights(create_model("resnet20", num_classes=10), path)


def test_nan_weights_are_rejected_naming_the_tensor(tmp_path):
    state = create_model("resnet20", num_classes=10).state_dict()
    state["layer2.1.conv1.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(ModelError, match=r"'layer2\.1\.conv1\.weight'.*NaN"):
        load_weights(create_model("resnet20", num_classes=10), path)


def test_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "weights.safetensors"
    with pytest.raises(ModelError, match="not found") as err:
        load_weights(create_model("resnet20", num_classes=10), path)
    assert str(path) in str(err.value)


def test_corrupt_safetensors_is_model_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelError, match="not a valid safetensors"):
        read_state_dict(path)


def test_load_model_missing_structure_names_the_file(tmp_path):
    with pytest.raises(ModelError) as err:
        load_model(tmp_path)
    assert STRUCTURE in str(err.value)


def test_load_model_weights_with_missing_keys_is_model_error(pruned_resnet20, tmp_path):
    save_model(pruned_resnet20, tmp_path, SPEC)
    state = load_file(str(tmp_path / WEIGHTS))
    del state["layer2.0.bn1.running_var"]
    save_file(state, str(tmp_path / WEIGHTS))
    with pytest.raises(ModelError, match="does not match its structure") as err:
        load_model(tmp_path)
    assert str(tmp_path / WEIGHTS) in str(err.value)


def test_load_model_mismatch_error_names_the_key(pruned_resnet20, tmp_path):
    save_model(pruned_resnet20, tmp_path, SPEC)
    state = load_file(str(tmp_path / WEIGHTS))
    del state["layer2.0.bn1.running_var"]
    save_file(state, str(tmp_path / WEIGHTS))
    with pytest.raises(ModelError) as err:
        load_model(tmp_path)
    assert "layer2.0.bn1.running_var" in str(err.value)


def test_load_model_weights_contradicting_structure_is_model_error(pruned_resnet20, tmp_path):
    save_model(pruned_resnet20, tmp_path, SPEC)
    full = create_model("resnet20", num_classes=10)
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(tmp_path / WEIGHTS))
    try:
        loaded = load_model(tmp_path)
    except ModelError as err:
        assert "does not match its structure" in str(err)
        return
    conv = loaded.layer1[0].conv1
    assert conv.weight.shape[0] == conv.out_channels, (
        f"out_channels={conv.out_channels} but weight {list(conv.weight.shape)}")


def test_structure_with_unsupported_layer_type_is_model_error(pruned_resnet20, tmp_path):
    save_model(pruned_resnet20, tmp_path, SPEC)
    meta = json.loads((tmp_path / STRUCTURE).read_text())
    meta["layers"]["layer1.0.conv1"]["type"] = "os.system"
    (tmp_path / STRUCTURE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="unsupported layer type 'os.system'"):
        load_model(tmp_path)


def test_build_model_callable_returning_non_module():
    with pytest.raises(ModelError, match="not a torch.nn.Module") as err:
        build_model("builtins:dict", num_classes=10)
    assert "dict" in str(err.value)


def test_build_model_callable_that_rejects_arguments_is_model_error():
    with pytest.raises(ModelError, match="json:loads|loads"):
        build_model("json:loads", num_classes=10)


def test_build_model_non_callable_attribute():
    with pytest.raises(ModelError, match="'__version__' in module 'json' is not a callable"):
        build_model("json:__version__", num_classes=10)


def test_build_model_unknown_module():
    with pytest.raises(ModelError, match="nonexistent_mod_xyz"):
        build_model("nonexistent_mod_xyz:f", num_classes=10)


def test_build_model_zoo_name_and_callable():
    m = build_model("resnet20", num_classes=7)
    assert m.fc.out_features == 7
    m2 = build_model("edgeslim.models.resnet_cifar:resnet20", num_classes=5)
    assert isinstance(m2, nn.Module) and m2.fc.out_features == 5


# --- issue 19: a user's own model, and errors that say what to do ----------------------


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``mynets19.py`` in a fresh current folder, as a user keeps it next to the recipe;
    sys.path and sys.modules are restored afterwards."""
    import sys

    (tmp_path / "mynets19.py").write_text(
        "import torch.nn as nn\n\n"
        "def build_net(num_classes=10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mynets19", raising=False)
    return tmp_path


def test_user_module_in_the_current_folder_imports_without_python_m(user_module):
    # sys.path holds neither "" nor the folder: how the `edgeslim` console script starts
    model = build_model("mynets19:build_net", num_classes=7)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_missing_user_module_says_where_it_looked(user_module):
    with pytest.raises(ModelError) as err:
        build_model("mynetz19:build_net", num_classes=10)
    msg = str(err.value)
    assert "No module named 'mynetz19'" in msg
    assert str(user_module) in msg and "mynetz19.py" in msg


def test_misspelt_callable_suggests_the_nearest_name(user_module):
    with pytest.raises(ModelError) as err:
        build_model("mynets19:build_nett", num_classes=10)
    msg = str(err.value)
    assert "'build_nett' not found in model module 'mynets19'" in msg
    assert "did you mean 'build_net'?" in msg and "not a callable" not in msg


def test_model_returning_an_image_names_the_shape_and_the_expected_one():
    model = build_model("torch.nn:Identity", num_classes=10)
    with pytest.raises(ModelError) as err:
        output_classes(model, 32, 10)
    assert str(err.value) == ("the model must return logits of shape (N, 10); for a batch of 1 32x32 "
                              "image it returned shape (1, 3, 32, 32)")


def test_a_grayscale_model_is_told_it_gets_three_channels():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    with pytest.raises(ModelError) as err:
        output_classes(model, 16, 10)
    assert str(err.value).startswith("the model's first convolution takes 1 input channel(s); edgeslim feeds "
                                     "[N, 3, H, W] images")
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    with pytest.raises(ModelError, match="cannot take a 8x8 input"):  # any other failure keeps torch's words
        output_classes(other, 8, 10)


def test_onnx_file_as_weights_is_named_as_onnx(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert "ONNX model" in msg and "torch.save(model.state_dict()" in msg
    assert "operand" not in msg and "refused" not in msg
    # the same bytes under another name are still not taken for a pickle
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match="ONNX model"):
        read_state_dict(renamed)


def test_whole_model_checkpoint_hints_to_save_the_state_dict(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(create_model("resnet20", num_classes=10), path)
    with pytest.raises(ModelError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert "refused" in msg and "CifarResNet" in msg
    assert "save the weights with torch.save(model.state_dict(), path)" in msg
    assert "weights_only" not in msg and "add_safe_globals" not in msg


def test_torchscript_archive_is_refused_without_weights_only_false_advice(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(ModelError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert "TorchScript" in msg and "state_dict()" in msg
    assert "weights_only" not in msg and "trusted source" not in msg
