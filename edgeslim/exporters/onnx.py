"""Export to ONNX with a dynamic batch axis, validated against PyTorch.

torch.export (``dynamo=True``) is tried first; models it cannot trace fall back to the
TorchScript exporter, and the exporter actually used is recorded. The artifact is checked
with the ONNX checker and by running it in ONNX Runtime next to the PyTorch model on real
validation inputs; beyond tolerance the export fails with a ParityError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.backends.common import converter_error, quiet
from edgeslim.errors import ExportError
from edgeslim.exporters.base import Exporter, register_exporter
from edgeslim.exporters.config import ExportCfg
from edgeslim.exporters.onnx_files import check_onnx, load_onnx, onnx_artifact_files, save_onnx

INPUT, OUTPUT = "input", "logits"


def strip_debug_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the exporter's per-node stack traces and doc strings.

    torch.export records each node's Python stack and module path; on a small model that
    is a third of the file, and it leaks the exporting machine's paths into a deployment
    artifact. No runtime reads it.
    """
    def clean(graph: onnx.GraphProto) -> None:
        graph.doc_string = ""
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.HasField("g"):
                    clean(attr.g)
                for g in attr.graphs:
                    clean(g)
        for v in list(graph.value_info) + list(graph.input) + list(graph.output):
            del v.metadata_props[:]
            v.doc_string = ""
        for t in graph.initializer:
            del t.metadata_props[:]
            t.doc_string = ""

    clean(model.graph)
    for f in model.functions:
        for node in f.node:
            del node.metadata_props[:]
    return model


def torch_to_onnx(model: nn.Module, sample: torch.Tensor, path: Path, opset: int | None = None) -> str:
    """Write ``model`` to ``path`` (one file, weights inline below 1.5 GiB); returns the exporter used."""
    model = model.eval()
    # torch.export specializes a dimension of size 1, so trace with a batch of 2.
    example = sample[:1].repeat(2, 1, 1, 1) if sample.shape[0] != 2 else sample
    raw = path.with_name(path.stem + ".raw.onnx")
    errors = []
    used = None
    for dynamo in (True, False):
        try:
            # torch.onnx prints progress and warnings of its own; keep the user's terminal clean
            with quiet("torch.onnx", warnings_too=True), torch.no_grad():
                kw: dict[str, Any] = dict(input_names=[INPUT], output_names=[OUTPUT], opset_version=opset)
                if dynamo:
                    kw.update(dynamo=True, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},))
                else:
                    kw.update(dynamo=False, dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
                torch.onnx.export(model, (example,), str(raw), **kw)
            used = "torch.export" if dynamo else "torchscript"
            break
        except Exception as err:  # every exporter failure is a model the user must change
            errors.append(converter_error(err))
    if used is None:
        raise ExportError(f"the model cannot be exported to ONNX: {errors[0]}")
    model_proto = strip_debug_info(load_onnx(raw))
    save_onnx(model_proto, path)  # re-saves external data (.onnx.data) inline where it fits
    for p in raw.parent.glob(raw.name + "*"):
        p.unlink()
    return used


@register_exporter
class OnnxExporter(Exporter):
    name = "onnx"
    description = "ONNX (torch.export), dynamic batch, validated in ONNX Runtime"
    requires = ("onnx", "onnxruntime")
    parity_subject = "ONNX export"

    def export_impl(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: ExportCfg,
                    variant: str, method: str) -> Artifact:
        path = out_dir / "model.onnx"
        used = torch_to_onnx(model, torch.from_numpy(sample), path, cfg.opset)
        check_onnx(path)
        art = Artifact(path, "onnx", "fp32", variant, method, files=onnx_artifact_files(path))
        opset = max((o.version for o in onnx.load(str(path), load_external_data=False).opset_import
                     if o.domain in ("", "ai.onnx")), default=None)
        art.info = {"exporter": used, "opset": opset}
        return art
