"""``quantize.tolerance_points``: a quantized artifact that loses more top-1 than allowed
against its FP32 parent fails its stage with one line; within it, the figure is recorded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.quantizers.base import check_accuracy_drop
from tests.targets.conftest import write_tiny_classifier


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A parent and a 'quantized' child whose classifier weights are negated: it disagrees."""
    root = tmp_path_factory.mktemp("tol")
    parent = write_tiny_classifier(root / "parent" / "model.onnx")
    model = onnx.load(str(parent.path))
    fc = next(i for i in model.graph.initializer if i.name == "fc")
    fc.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(fc), "fc"))
    (root / "child").mkdir()
    onnx.save(model, str(root / "child" / "model.onnx"))
    child = Artifact(root / "child" / "model.onnx", "onnx", "int8", "baseline", "none", parent=parent.id)
    x = np.random.default_rng(3).standard_normal((40, 3, 16, 16)).astype(np.float32)
    import onnxruntime as ort

    y = ort.InferenceSession(str(parent.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0].argmax(1)
    return parent, child, x, y


def test_a_child_over_the_tolerance_fails_with_one_line_naming_the_figures(pair):
    parent, child, x, y = pair
    with pytest.raises(QuantizeError) as err:
        check_accuracy_drop(child, parent, x, y, 1.0)
    msg = str(err.value)
    assert "\n" not in msg and "quantize.tolerance_points=1" in msg and "100.00% ->" in msg and "40 val images" in msg


def test_within_the_tolerance_the_drop_is_recorded(pair):
    parent, child, x, y = pair
    rec = check_accuracy_drop(child, parent, x, y, 100.0)
    assert rec["measured"] and rec["parent"] == 1.0 and rec["accuracy"] < 0.5
    assert rec["drop_points"] == pytest.approx(100 * (1.0 - rec["accuracy"]))
    same = check_accuracy_drop(parent, parent, x, y, 0.0)  # its own parent loses nothing
    assert same["drop_points"] == 0.0


def test_unlabelled_data_is_recorded_as_not_measured(pair):
    parent, child, x, _ = pair
    assert check_accuracy_drop(child, parent, x, None, 0.0)["measured"] is False
