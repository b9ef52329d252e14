"""Backends: shared by exporters, runners and quantizers, and depending on none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgeslim.backends
from edgeslim.backends.common import converter_error
from edgeslim.errors import first_line
from edgeslim.backends.onnxruntime import provider_status
from edgeslim.backends.openvino import error_line, openvino_status, supports
from edgeslim.backends.tensorrt import tensorrt_installed, tensorrt_status

BACKENDS = Path(edgeslim.backends.__file__).parent


@pytest.mark.parametrize("path", sorted(BACKENDS.glob("*.py")), ids=lambda p: p.name)
def test_a_backend_imports_no_stage_package(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    stages = {m for m in imported if m.split(".")[:2] in (["edgeslim", "exporters"], ["edgeslim", "targets"],
                                                            ["edgeslim", "quantizers"])}
    assert stages == set()


def test_first_line_of_an_exception():
    assert first_line(RuntimeError("\n  bad shape [1, 3]\n  at frame 2\n")) == "bad shape [1, 3]"
    assert first_line(ValueError("")) == "ValueError"
    assert len(first_line(RuntimeError("x" * 1000))) == 300


def test_converter_error_names_the_operator_without_colours():
    err = RuntimeError("\x1b[31mError\x1b[0m: Unsupported: aten::unique_dim.default has no lowering\nmore")
    assert converter_error(err) == "unsupported operator aten::unique_dim.default"


def test_openvino_error_line_skips_the_cpp_frames():
    err = RuntimeError("Exception from src/core/node.cpp:12:\nCheck 'x' failed\nshape mismatch: 3 vs 4\n")
    assert error_line(err) == "shape mismatch: 3 vs 4"


def test_status_answers_here():
    assert openvino_status() == (True, "") and supports("f32")
    ok, why = provider_status("NoSuchExecutionProvider")
    assert not ok and why == "onnxruntime-gpu is not installed"
    ok, why = tensorrt_status()
    assert ok or why in ("tensorrt is not installed", "no CUDA device",
                         "torch has no CUDA support (a CPU-only build)", "torch has no CUDA support")
    if not tensorrt_installed():
        assert why == "tensorrt is not installed"
