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

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.errors import EdgeslimError, ExportError, ParityError
from edgeslim.exporters.base import Exporter, register_exporter
from edgeslim.exporters.onnx import INPUT, OUTPUT, _first_line, _quiet, torch_to_onnx
from edgeslim.exporters.parity import compare

# A Const's weights in the .xml: <data element_type=".." shape=".." offset="N" size="M" />
_WEIGHT_SPAN = re.compile(rb'offset="(\d+)"\s+size="(\d+)"')


def check_ir(xml: str | Path, *, error: type[EdgeslimError] = ExportError) -> list[Path]:
    """The IR's files ``[model.xml, model.bin]``, after checking the .bin holds every weight.

    OpenVINO reports a missing or short .bin as "Incorrect weights in bin file!" without
    naming it; this names the file and what is missing. The .xml is scanned with a regular
    expression, not an XML parser, so a hostile file cannot expand entities.

    Example::

        files = check_ir("run/30-export/baseline-openvino/model.xml")
    """
    xml = Path(xml)
    if not xml.is_file():
        raise error(f"OpenVINO IR file not found: {xml}")
    binf = xml.with_suffix(".bin")
    text = xml.read_bytes()
    if b"<net" not in text[:4096]:
        raise error(f"{xml} is not an OpenVINO IR .xml file")
    needed = max((int(o) + int(s) for o, s in _WEIGHT_SPAN.findall(text)), default=0)
    if needed == 0 and not binf.exists():
        return [xml]  # a model without weights needs no .bin
    if not binf.is_file():
        raise error(f"OpenVINO IR weights file {binf} is missing (needed by {xml.name})")
    have = binf.stat().st_size
    if have < needed:
        raise error(f"OpenVINO IR weights file {binf} is truncated: {have} bytes, "
                    f"{xml.name} needs {needed}")
    return [xml, binf]


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
    with _quiet(), torch.no_grad():
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
        raise ExportError(f"OpenVINO cannot convert {onnx_path}: {_first_line(err)}") from None
    return _save(_name_io(ov_model), xml, fp16_weights)


@register_exporter
class OpenVinoExporter(Exporter):
    name = "openvino"
    description = "OpenVINO IR (.xml + .bin), FP32 or FP16 weights, validated at f32"
    requires = ("openvino",)
    precisions = ("fp32", "fp16", "bf16", "int8")

    def available(self) -> tuple[bool, str]:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return False, "openvino is not installed"
        return True, ""

    def export(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: Any,
               variant: str, method: str) -> Artifact:
        from edgeslim.quantizers.base import MIN_COSINE
        from edgeslim.targets.openvino_runner import OpenVinoRunner

        xml = out_dir / "model.xml"
        fp16 = cfg.openvino_weights == "fp16"
        x = torch.from_numpy(sample)
        try:
            files, route = torch_to_ir(model, x, xml, fp16_weights=fp16), "pytorch"
        except EdgeslimError:
            raise
        except Exception as err:  # the PyTorch frontend gave up: go through ONNX instead
            first = _first_line(err)
            tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=out_dir))
            try:
                torch_to_onnx(model, x, tmp / "model.onnx", cfg.opset)
                files, route = onnx_to_ir(tmp / "model.onnx", xml, fp16_weights=fp16), "onnx"
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            route += f" (pytorch frontend failed: {first})"
        with torch.no_grad():
            ref = model.eval()(x).numpy()
        art = Artifact(xml, "openvino", "fp32", variant, method, files=files)
        with OpenVinoRunner(art, inference_precision="f32") as runner:
            out = runner.infer(sample)
            executed = runner.semantics()["inference_precision"]
        # FP16-stored weights are rounded: hold them to the FP16 bar, not the FP32 one.
        report = compare(ref, out, max_abs=None if fp16 else cfg.parity.max_abs,
                         min_cosine=MIN_COSINE["fp16"] if fp16 else cfg.parity.min_cosine)
        import openvino as ov

        art.info = {"converter": f"openvino.convert_model from {route}", "openvino": ov.__version__,
                    "weights": "fp16" if fp16 else "fp32", "parity": report.to_json(),
                    "parity_reference": "pytorch", "parity_inference_precision": executed}
        if not report.passed:
            raise ParityError(f"OpenVINO export of the {variant} model differs from PyTorch: {report.summary()}")
        return art
