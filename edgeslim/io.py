"""Small file helpers: atomic writes, content hashes, file names and sizes for people.

Every file edgeslim writes goes to a temporary name in the same folder and is renamed
into place, so a crash never leaves a half-written file under its final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object in canonical form (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def format_bytes(b: float | None) -> str:
    """A size for people: KiB below 1 MiB, MiB above, "—" when unknown.

    Example: ``format_bytes(109_670) == "107.1 KiB"``, ``format_bytes(1_110_000) == "1.06 MiB"``.
    """
    if b is None:
        return "—"
    return f"{b / 1024:,.1f} KiB" if b < 1024 * 1024 else f"{b / 2**20:,.2f} MiB"


def target_slug(target: str) -> str:
    """A file-name-safe form of a target label, for per-target files and folders.

    Example: ``target_slug("ssh://pi@host:22") == "ssh-pi-host-22"``.
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-") or "target"
