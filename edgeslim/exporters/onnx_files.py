"""ONNX files on disk: every file a model needs, safely, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from edgeslim.errors import ExportError, first_line


def external_files(path: str | Path) -> list[Path]:
    """The external-data files ``path`` references, each checked to stay in its folder."""
    path = Path(path)
    model = load_onnx(path, load_external_data=False)
    folder = path.parent.resolve()
    out: list[Path] = []
    for tensor in _all_tensors(model.graph):
        if uses_external_data(tensor):
            loc = ExternalDataInfo(tensor).location
            target = (folder / loc).resolve()
            if not target.is_relative_to(folder):
                raise ExportError(f"{path}: external data path '{loc}' escapes the model's folder")
            if not target.is_file():
                raise ExportError(f"{path}: external data file '{loc}' is missing")
            if target not in out:
                out.append(target)
    return out


def _all_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.t is not None and attr.HasField("t"):
                yield attr.t
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _all_tensors(g)


def load_onnx(path: str | Path, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX model; a truncated or non-ONNX file is one clear ExportError."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ExportError(f"{path} is not a valid ONNX file (truncated or corrupt): {type(err).__name__}") from None
    if not model.graph.node:
        raise ExportError(f"{path} is not a valid ONNX file: its graph has no nodes")
    if load_external_data:
        external_files(path)  # validates the paths before anything reads them
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as err:
            raise ExportError(f"{path}: cannot read its external data: {err}") from None
    return model


def onnx_artifact_files(path: str | Path) -> list[Path]:
    """The model file plus every external-data file it needs."""
    return [Path(path)] + external_files(path)


def check_onnx(path: str | Path) -> None:
    """Run the ONNX checker (path-based, so models with external data work)."""
    external_files(path)
    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as err:
        first = first_line(err)
        raise ExportError(f"{path} fails the ONNX checker: {first}") from None


def save_onnx(model: onnx.ModelProto, path: str | Path) -> list[Path]:
    """Save to ``path``; models over 1.5 GiB keep their weights in ``<name>.data`` beside it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    big = model.ByteSize() > 1536 * 1024 * 1024 if _all_inline(model) else True
    if big:
        onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(tmp))
    tmp.replace(path)
    return onnx_artifact_files(path)


def _all_inline(model: onnx.ModelProto) -> bool:
    return not any(uses_external_data(t) for t in model.graph.initializer)
