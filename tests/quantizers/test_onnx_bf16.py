"""``onnx-bf16`` is never made: its rows say why (ONNX Runtime's CPU provider has no bf16)."""

from __future__ import annotations

import pytest

from edgeslim.errors import QuantizeError
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import Cell, Variant
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages import QuantizeStage
from edgeslim.quantizers import QUANTIZERS
from edgeslim.recipe import QuantizeCfg, load_recipe

from tests.targets.conftest import write_tiny_classifier


def test_onnx_bf16_is_skipped_with_the_reason_not_a_generic_one(tmp_path):
    ok, why = QUANTIZERS.get("onnx-bf16").available()
    assert not ok and "ONNX Runtime" in why and "no bf16 execution" in why and "openvino-bf16" in why
    parent = write_tiny_classifier(tmp_path / "exp" / "model.onnx")
    with pytest.raises(QuantizeError) as e:  # called anyway: the same one line, nothing written
        QUANTIZERS.get("onnx-bf16").quantize(parent, None, tmp_path / "q", cfg=QuantizeCfg())
    assert why in str(e.value) and not (tmp_path / "q").exists()
    # the pipeline's quantize stage turns it into a skipped row carrying that reason
    recipe = load_recipe(None, ["quantize.precisions=[fp32, bf16]"])
    stage, cell = QuantizeStage(), Cell(Variant("baseline", "none", "00-baseline"), "onnx", "bf16")
    cfg = stage.slice(recipe, cell=cell)
    exp = StageResult("30-export/baseline-onnx", parent.path.parent, "k", {"artifact": parent.to_json(parent.path.parent)},
                      "h", True, 0.0)
    assert stage.run(tmp_path / "q", {"parent": exp}, cfg, Context(run_dir=tmp_path)) == {"skipped": why}
