"""Export to OpenVINO IR (``model.xml`` + ``model.bin``), validated against PyTorch.

The IR is converted from the PyTorch model itself (``openvino.convert_model`` traces it);
a model OpenVINO's PyTorch frontend cannot take is converted from its ONNX export instead,
and the route taken is recorded. Weights are stored as FP32, or compressed to FP16 when
``export.openvino_weights`` is ``fp16`` (OpenVINO decompresses them at load time, so the
arithmetic precision is still the runtime's inference precision).

Parity runs the IR in OpenVINO with the inference precision forced to ``f32``: on a CPU
with bf16 or AMX support OpenVINO would otherwise run bf16 and the check would measure
the runtime's rounding, not the export.

Example::

    art = EXPORTERS.get("openvino").export(model, sample, out_dir, cfg=ExportCfg(),
                                           variant="baseline", method="none")
    art.files   # [.../model.xml, .../model.bin]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.backends.common import converter_error, quiet
from edgeslim.backends.openvino import check_ir, openvino_status, version
from edgeslim.errors import EdgeslimError, ExportError
from edgeslim.exporters.base import Exporter, register_exporter
from edgeslim.exporters.config import ExportCfg
from edgeslim.exporters.onnx import INPUT, OUTPUT, torch_to_onnx
from edgeslim.exporters.parity import MIN_COSINE
from edgeslim.targets.openvino_runner import OpenVinoRunner
from edgeslim.targets.runner import Runner


def _name_io(ov_model: Any) -> Any:
    """The same tensor names as the ONNX artifacts, so runners and users see one interface."""
    if len(ov_model.inputs) != 1 or len(ov_model.outputs) != 1:
        raise ExportError(f"expected one input and one output, the converted model has "
                          f"{len(ov_model.inputs)} and {len(ov_model.outputs)}")
    ov_model.inputs[0].get_tensor().set_names({INPUT})
    ov_model.outputs[0].get_tensor().set_names({OUTPUT})
    return ov_model


def _save(ov_model: Any, xml: Path, fp16_weights: bool) -> list[Path]:
    import openvino as ov

    ov.save_model(ov_model, str(xml), compress_to_fp16=fp16_weights)
    return check_ir(xml)


def torch_to_ir(model: nn.Module, sample: torch.Tensor, xml: Path, *, fp16_weights: bool = False) -> list[Path]:
    """Convert a PyTorch model to IR at ``xml`` (dynamic batch); returns the IR's files."""
    import openvino as ov

    c, h, w = sample.shape[1:]
    with quiet("torch.onnx", warnings_too=True), torch.no_grad():
        ov_model = ov.convert_model(model.eval(), example_input=sample[:1].repeat(2, 1, 1, 1),
                                    input=[(-1, int(c), int(h), int(w))])
    return _save(_name_io(ov_model), xml, fp16_weights)


def onnx_to_ir(onnx_path: str | Path, xml: Path, *, fp16_weights: bool = False) -> list[Path]:
    """Convert an ONNX file (e.g. an ``onnx`` artifact) to IR at ``xml``; returns the IR's files.

    Example::

        onnx_to_ir("run/30-export/baseline-onnx/model.onnx", Path("out/model.xml"))
    """
    import openvino as ov

    try:
        ov_model = ov.convert_model(str(onnx_path))
    except Exception as err:
        raise ExportError(f"OpenVINO cannot convert {onnx_path}: {converter_error(err)}") from None
    return _save(_name_io(ov_model), xml, fp16_weights)


@register_exporter
class OpenVinoExporter(Exporter):
    name = "openvino"
    description = "OpenVINO IR (.xml + .bin), FP32 or FP16 weights, validated at f32"
    requires = ("openvino",)
    precisions = ("fp32", "fp16", "bf16", "int8")

    parity_subject = "OpenVINO export"

    def available(self) -> tuple[bool, str]:
        return openvino_status()

    def export_impl(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: ExportCfg,
                    variant: str, method: str) -> Artifact:
        xml = out_dir / "model.xml"
        fp16 = cfg.openvino_weights == "fp16"
        x = torch.from_numpy(sample)
        try:
            files, route = torch_to_ir(model, x, xml, fp16_weights=fp16), "pytorch"
        except EdgeslimError:
            raise
        except Exception as err:  # the PyTorch frontend gave up: go through ONNX instead
            first = converter_error(err)
            tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=out_dir))
            try:
                torch_to_onnx(model, x, tmp / "model.onnx", cfg.opset)
                files, route = onnx_to_ir(tmp / "model.onnx", xml, fp16_weights=fp16), "onnx"
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            route += f" (pytorch frontend failed: {first})"
        art = Artifact(xml, "openvino", "fp32", variant, method, files=files)
        art.info = {"converter": f"openvino.convert_model from {route}", "openvino": version(),
                    "weights": "fp16" if fp16 else "fp32"}
        return art

    def parity_runner(self, art: Artifact) -> Runner:
        # f32 forced: on a bf16/AMX CPU OpenVINO would run bf16 and parity would measure
        # the runtime's rounding, not the export.
        return OpenVinoRunner(art, inference_precision="f32")

    def parity_tolerance(self, art: Artifact, cfg: ExportCfg) -> tuple[Optional[float], float]:
        # FP16-stored weights are rounded: hold them to the FP16 bar, not the FP32 one.
        if art.info.get("weights") == "fp16":
            return None, MIN_COSINE["fp16"]
        return super().parity_tolerance(art, cfg)

    def parity_facts(self, runner: Runner) -> dict[str, Any]:
        return {"parity_inference_precision": runner.semantics()["inference_precision"]}
