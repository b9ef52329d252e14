"""Where an artifact came from: the versions of everything that made it, and the commit.

Recorded in every run's ``manifest.json`` and in every released artifact's manifest.

Example::

    versions()["onnxruntime"]   # '1.32.0'
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("edgeslim", "torch", "onnx", "onnxruntime", "openvino", "nncf", "torch-pruning", "numpy")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    try:
        import tensorrt  # noqa: F401

        out["tensorrt"] = metadata.version("tensorrt")
    except Exception:
        out["tensorrt"] = None
    return out


def git_commit(path: Path) -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None
