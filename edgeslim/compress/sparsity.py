"""What unstructured sparsity buys, measured: bytes on disk, bytes zipped, latency.

Zeros in a dense tensor cost as much to store and to multiply as any other value, so a
90%-sparse model exported to ONNX is the same size and, in a dense runtime, the same
speed as the dense one. What changes is how well the file compresses: the zeros deflate
to almost nothing, which is what a download or an over-the-air update pays for. The
report shows both sizes next to the latency so nobody reads sparsity as speed.

Example::

    deflated_bytes([Path("model.onnx")])   # bytes after zip's deflate (level 6)
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Iterable

from edgeslim.io import format_bytes
from edgeslim.targets.base import cpu_info

_CHUNK = 1 << 20


def deflated_bytes(files: Iterable[Path | str], level: int = 6) -> int:
    """Total size of ``files`` compressed with deflate, as ``zip`` stores them by default."""
    total = 0
    for f in files:
        comp = zlib.compressobj(level)
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                total += len(comp.compress(chunk))
        total += len(comp.flush())
    return total


DENSE_RUNTIMES_NOTE = (
    "Unstructured sparsity does not make inference faster here: ONNX Runtime, OpenVINO and "
    "TensorRT run dense kernels that store and multiply the zeros, so the sparse model's "
    "file has the dense size and its latency is the dense latency (differences are noise). "
    "The one runtime feature that exploits unstructured zeros, OpenVINO's sparse-weights "
    "decompression (CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE), covers only INT8 fully-connected "
    "layers on CPUs with AMX, not convolutions. "
    "What sparsity buys is a smaller *compressed* file (zip column) — for downloads and "
    "updates — and, after structured pruning or factorization, fewer real MACs.")


def sparsity_section(rows: list[dict[str, Any]], comp_report: dict[str, Any]) -> list[str]:
    """Markdown lines for report.md: dense vs zipped bytes and latency, per artifact."""
    notes = comp_report.get("notes") or {}
    sparsity = notes.get("sparsity")
    lines = ["## What sparsity buys", ""]
    if sparsity is not None:
        lines.append(f"{100 * sparsity:.1f}% of the prunable weights ({notes.get('prunable_weights', 0):,}) "
                     f"are zero; {comp_report.get('nonzero_params_after', 0):,} of "
                     f"{comp_report.get('params_after', 0):,} parameters are non-zero.")
        lines.append("")
    lines += ["| artifact | target | bytes | zipped | zipped / bytes | p50 ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("bytes") is None:
            continue
        z = r.get("bytes_zipped")
        ratio = "—" if z is None or not r["bytes"] else f"{z / r['bytes']:.2f}"
        p50 = (r.get("latency_ms") or {}).get("p50")
        lines.append(f"| {r['id']} | {r['target']} | {format_bytes(r['bytes'])} | {format_bytes(z)} | {ratio} | "
                     f"{'—' if p50 is None else f'{p50:.3f}'} |")
    lines += ["", DENSE_RUNTIMES_NOTE]
    return lines


def openvino_sparse_weights() -> tuple[bool, str]:
    """Whether OpenVINO's CPU sparse-weights decompression can apply on this machine.

    The CPU plugin packs the non-zero weights of INT8 fully-connected (MatMul) layers
    when ``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE`` is set, and only on CPUs with AMX
    (``amx_int8``); the property is accepted everywhere but does nothing elsewhere.

    Example::

        ok, why = openvino_sparse_weights()   # (False, "this CPU has no AMX (amx_int8)")
    """
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False, "openvino is not installed"
    if "amx_int8" not in cpu_info()["isa"]:
        return False, "this CPU has no AMX (amx_int8), which OpenVINO's sparse-weights decompression needs"
    return True, "INT8 fully-connected layers only; convolutions stay dense"
