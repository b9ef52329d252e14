"""Exporter.export is a template: the subclass converts, the base checks parity once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgeslim.errors import ParityError
from edgeslim.exporters import EXPORTERS, Exporter
from edgeslim.exporters.config import ExportCfg
from edgeslim.exporters.onnx import OnnxExporter
from edgeslim.targets.ort_runner import OrtRunner


class _Linear(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(x.flatten(1))


class _CountingOrtRunner(OrtRunner):
    calls = 0

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        type(self).calls += 1
        return super().infer_impl(x)


class _CountedOnnx(OnnxExporter):
    """The real ONNX exporter, its parity runner counting inferences; optionally exporting
    another model than the one it is given (a broken conversion)."""

    parity_subject = "Counted ONNX export"

    def __init__(self, swap_for: nn.Module | None = None):
        self.swap_for = swap_for

    def export_impl(self, model, sample, out_dir, *, cfg, variant, method):
        return super().export_impl(self.swap_for or model, sample, out_dir, cfg=cfg, variant=variant,
                                   method=method)

    def parity_runner(self, art):
        return _CountingOrtRunner(art, threads=1)


@pytest.fixture
def sample() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((4, 3, 4, 4), dtype=np.float32)


def test_parity_runs_once_and_is_recorded_after_the_conversion_facts(sample, tmp_path):
    _CountingOrtRunner.calls = 0
    art = _CountedOnnx().export(_Linear(0), sample, tmp_path, cfg=ExportCfg(), variant="baseline",
                                method="none")
    assert _CountingOrtRunner.calls == 1
    assert list(art.info) == ["exporter", "opset", "parity", "parity_reference"]
    assert art.info["parity"]["passed"] is True and art.info["parity"]["max_abs"] < 1e-4
    assert art.info["parity_reference"] == "pytorch"


def test_a_wrong_conversion_is_a_parity_error_naming_the_exporter(sample, tmp_path):
    with pytest.raises(ParityError) as err:
        _CountedOnnx(swap_for=_Linear(1)).export(_Linear(0), sample, tmp_path, cfg=ExportCfg(),
                                                 variant="pruned", method="l1")
    msg = str(err.value)
    assert msg.startswith("Counted ONNX export of the pruned model differs from PyTorch: max abs error")
    assert "(tolerance 0.001)" in msg


@pytest.mark.parametrize("name", EXPORTERS.names())
def test_every_exporter_fills_the_template_and_does_not_replace_it(name):
    exporter = EXPORTERS.get(name)
    assert type(exporter).export is Exporter.export
    assert type(exporter).export_impl is not Exporter.export_impl
    assert exporter.parity_subject.split()[0] in ("ONNX", "OpenVINO", "TensorRT")
