"""Export to ONNX with a dynamic batch axis, validated against PyTorch.

torch.export (``dynamo=True``) is tried first; models it cannot trace fall back to the
TorchScript exporter, and the exporter actually used is recorded. The artifact is checked
with the ONNX checker and by running it in ONNX Runtime next to the PyTorch model on real
validation inputs; beyond tolerance the export fails with a ParityError.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.errors import ExportError, ParityError
from edgeslim.exporters.base import Exporter, register_exporter
from edgeslim.exporters.onnx_files import check_onnx, load_onnx, save_onnx
from edgeslim.exporters.parity import compare

INPUT, OUTPUT = "input", "logits"


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress and warnings of its own; keep the user's terminal clean."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OPERATOR = re.compile(r"(aten::[\w.]+|torch\.ops\.[\w.]+|[\w.]+\.default\b)")


def _first_line(err: BaseException) -> str:
    """One readable line: the unsupported operator when torch names one, else the first line."""
    text = _ANSI.sub("", str(err))
    for line in text.splitlines():
        if "nsupported" in line or "no ONNX" in line or "not supported" in line:
            op = _OPERATOR.search(line) or _OPERATOR.search(text)
            return (f"unsupported operator {op.group(1)}" if op else line.strip())[:300]
    op = _OPERATOR.search(text)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    return (f"{first} (operator {op.group(1)})" if op else first)[:300]


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
            with _quiet(), torch.no_grad():
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
            errors.append(_first_line(err))
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

    def export(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: Any,
               variant: str, method: str) -> Artifact:
        from edgeslim.targets.ort_runner import OrtRunner

        path = out_dir / "model.onnx"
        x = torch.from_numpy(sample)
        used = torch_to_onnx(model, x, path, cfg.opset)
        check_onnx(path)
        with torch.no_grad():
            ref = model.eval()(x).numpy()
        art = Artifact(path, "onnx", "fp32", variant, method)
        from edgeslim.exporters.onnx_files import onnx_artifact_files

        art.files = onnx_artifact_files(path)
        with OrtRunner(art, threads=None) as runner:
            out = runner.infer(sample)
        report = compare(ref, out, max_abs=cfg.parity.max_abs, min_cosine=cfg.parity.min_cosine)
        opset = max((o.version for o in onnx.load(str(path), load_external_data=False).opset_import
                     if o.domain in ("", "ai.onnx")), default=None)
        art.info = {"exporter": used, "opset": opset, "parity": report.to_json(),
                    "parity_reference": "pytorch"}
        if not report.passed:
            raise ParityError(f"ONNX export of the {variant} model differs from PyTorch: {report.summary()}")
        return art
