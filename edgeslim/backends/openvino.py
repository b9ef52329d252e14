"""OpenVINO: the shared ``Core``, what a device computes in, IR file checks, error lines.

``openvino`` is imported on first use, so importing this module costs nothing; the
exporter, the runner and the quantizers all go through here.

Example::

    files = check_ir("run/30-export/baseline-openvino/model.xml")   # [model.xml, model.bin]
    supports("bf16")   # True on a CPU with AVX512-BF16 or AMX
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeslim.errors import EdgeslimError, ExportError

PRECISIONS = ("f32", "bf16", "f16")  # inference precisions a runner may ask for
_CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}
# A Const's weights in the .xml: <data element_type=".." shape=".." offset="N" size="M" />
_WEIGHT_SPAN = re.compile(rb'offset="(\d+)"\s+size="(\d+)"')


def openvino_status() -> tuple[bool, str]:
    """(True, "") where ``import openvino`` works, else (False, reason)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False, "openvino is not installed"
    return True, ""


def version() -> str:
    import openvino as ov

    return ov.__version__


@lru_cache(maxsize=1)
def core() -> Any:
    """One ``openvino.Core`` per process: creating one loads every device plugin."""
    import openvino as ov

    return ov.Core()


def capabilities(device: str = "CPU") -> list[str]:
    """What the device says it computes in (``FP32``, ``BF16``, ``FP16``, ``INT8``, ...)."""
    try:
        return list(core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:
        return []


def supports(precision: str, device: str = "CPU") -> bool:
    """Whether ``device`` lists the inference precision ``precision`` (f32, bf16, f16)."""
    return _CAPABILITY[precision] in capabilities(device)


def error_line(err: BaseException) -> str:
    """The useful line of an OpenVINO exception, without its ``Exception from src/...cpp`` frames."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(err).__name__])[0][:300]


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
