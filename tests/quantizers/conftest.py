"""Shared by the INT8 tests: the digits slice they calibrate and score on, and one briefly
trained resnet20 exported to ONNX, trained once per session for every module that uses it."""

from __future__ import annotations

import pytest
import torch

from edgeslim.data import load_data
from edgeslim.exporters import EXPORTERS
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.models.zoo import create_model
from edgeslim.recipe import ExportCfg


@pytest.fixture(scope="session")
def data():
    return load_data("digits", input_size=32, num_classes=10, limit_train=256, limit_val=64)


@pytest.fixture(scope="session")
def parent(data, tmp_path_factory):
    # six short epochs on real digits (~20 s): logits that separate the classes, as a deployed
    # model's do (a random network's near-tied logits turn any quantization noise into
    # top-1 flips, which says nothing about the quantizer)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model, small shared CPU
    try:
        history = train(model, data, TrainSpec(6, 0.1, batch_size=32))
    finally:
        torch.set_num_threads(n)
    assert history[-1]["val_accuracy"] > 0.8
    return EXPORTERS.get("onnx").export(model.eval(), data.val_arrays()[0][:8], tmp_path_factory.mktemp("fp32"),
                                        cfg=ExportCfg(), variant="compressed", method="l1")
