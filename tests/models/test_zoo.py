"""The model zoo, tested from the registry: every registered model builds, runs, prunes
with Torch-Pruning and (the 32x32 ones by default, the rest when slow tests are asked
for) exports to ONNX with outputs matching PyTorch.

The 224x224 exports are marked slow (deselected by default; run with ``pytest -m slow``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_pruning as tp
from torch import nn

from edgeslim.errors import EdgeslimError, ModelError
from edgeslim.models import MODELS, ModelEntry, create_model, list_models

NUM_CLASSES = 7
ALL = list_models()
# Export is the slow part (seconds per model), so only 32x32 models export by default.
SMALL = [n for n in ALL if MODELS.get(n).input_size <= 32]
LARGE = [n for n in ALL if n not in SMALL]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _example(name: str, batch: int = 2) -> torch.Tensor:
    size = MODELS.get(name).input_size
    return torch.randn(batch, 3, size, size)


def _classifier(model: nn.Module) -> nn.Linear:
    # Every zoo model ends in its classifier Linear; its outputs must not be pruned.
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def _calibrate_bn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set BN running stats from one batch, as training would, then switch to eval.

    Untrained BN (mean 0, var 1) lets deep residual nets reach outputs in the thousands,
    where an absolute 1e-4 parity bound says nothing about export correctness.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch fully sets the stats
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


# --- registry and API -------------------------------------------------------------------


def test_zoo_has_the_expected_models() -> None:
    expected = {
        "resnet20", "resnet56", "resnet18", "resnet50", "vgg11_bn", "vgg16_bn", "mobilenet_v2",
        "densenet_tiny", "inception_tiny", "resnext_tiny", "se_resnet_tiny", "plain_cnn",
    }
    assert expected <= set(ALL)
    for name, entry in MODELS.items():
        assert isinstance(entry, ModelEntry) and entry.name == name
        assert entry.description and entry.family and entry.input_size in (32, 224)


def test_list_models_wildcard() -> None:
    assert list_models("resnet*") == ["resnet18", "resnet20", "resnet50", "resnet56"]
    assert list_models("vgg*") == ["vgg11_bn", "vgg16_bn"]
    assert list_models("nothing*") == []


def test_unknown_model_suggests_nearest() -> None:
    with pytest.raises(EdgeslimError, match="did you mean") as info:
        create_model("resnet21", num_classes=10)
    assert "resnet20" in str(info.value)
    assert isinstance(info.value, ModelError)


def test_unknown_kwarg_names_kwarg_and_model() -> None:
    with pytest.raises(ModelError, match="resnet20") as info:
        create_model("resnet20", num_classes=10, width_mult=0.5)
    assert "width_mult" in str(info.value)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_bad_num_classes(bad: object) -> None:
    with pytest.raises(ModelError, match="num_classes"):
        create_model("plain_cnn", num_classes=bad)


def test_bad_option_value_is_model_error() -> None:
    with pytest.raises(ModelError, match="mobilenet_v2"):
        create_model("mobilenet_v2", num_classes=10, width_mult="wide")


# --- shapes and sizes -------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_forward_shape(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(_example(name))
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "num_classes", "expected"), [("resnet20", 10, 0.27e6), ("resnet50", 1000, 25.5e6)]
)
def test_param_counts(name: str, num_classes: int, expected: float) -> None:
    assert _n_params(create_model(name, num_classes=num_classes)) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("name", SMALL)
def test_small_models_are_small(name: str) -> None:
    if MODELS.get(name).family == "small":
        assert _n_params(create_model(name, num_classes=10)) < 0.5e6


def test_mobilenet_width_mult() -> None:
    half = create_model("mobilenet_v2", num_classes=10, width_mult=0.5)
    full = create_model("mobilenet_v2", num_classes=10)
    assert _n_params(half) < _n_params(full)
    # Every channel count is a multiple of 8 (the _make_divisible rounding).
    assert all(m.out_channels % 8 == 0 for m in half.modules() if isinstance(m, nn.Conv2d))


def test_torchvision_layer_names() -> None:
    # Same names as torchvision, so its checkpoints load with load_state_dict.
    keys = create_model("resnet50", num_classes=1000).state_dict()
    assert {
        "conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.bias"
    } <= set(keys)
    keys = create_model("mobilenet_v2", num_classes=1000).state_dict()
    assert {
        "features.0.0.weight", "features.1.conv.0.0.weight", "features.18.1.weight", "classifier.1.weight"
    } <= set(keys)


# --- pruning ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_prunable_with_torch_pruning(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    example = _example(name)
    before = _n_params(model)

    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    assert len(graph.module2node) > 0

    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[_classifier(model)],
    )
    pruner.step()

    with torch.no_grad():
        out = model(example)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()
    assert _n_params(model) < before
    assert _classifier(model).out_features == NUM_CLASSES


# --- ONNX export ------------------------------------------------------------------------


# torch.export's own pytree code warns about its deprecated LeafSpec; not ours to fix.
_IGNORE_TORCH_FUTURE = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def _check_onnx(name: str, tmp_path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = _calibrate_bn(create_model(name, num_classes=NUM_CLASSES), _example(name, batch=4))
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        model, (_example(name),), str(path), dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
    )
    # A batch size other than the export example checks the dynamic batch axis.
    x = _example(name, batch=3)
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert got.shape == (3, NUM_CLASSES)
    assert np.abs(got - expected).max() < 1e-4


@_IGNORE_TORCH_FUTURE
@pytest.mark.parametrize("name", SMALL)
def test_onnx_export_matches(name: str, tmp_path) -> None:
    _check_onnx(name, tmp_path)


@pytest.mark.slow
@_IGNORE_TORCH_FUTURE
@pytest.mark.parametrize("name", LARGE)
def test_onnx_export_matches_large(name: str, tmp_path) -> None:
    _check_onnx(name, tmp_path)
