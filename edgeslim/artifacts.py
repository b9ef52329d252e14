"""An artifact: the files of one deployable model in one format and precision."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeslim.io import sha256_file


def is_int8(precision: Any) -> bool:
    """Whether an artifact's precision runs INT8 arithmetic: ``int8`` (post-training) and
    ``int8-qat`` (quantization-aware training) alike.

    Example: ``is_int8("int8-qat")`` -> True; ``is_int8("fp16")`` -> False.
    """
    return str(precision).startswith("int8")


@dataclass
class Artifact:
    """One deployable model. ``files`` lists every file it needs (ONNX external data, .bin)."""

    path: Path  # the file a runtime opens (.onnx, .xml, .engine)
    format: str  # onnx | openvino | tensorrt
    precision: str  # fp32 | fp16 | int8 | bf16
    variant: str  # baseline | compressed
    method: str  # "none" for the baseline, else compress.method
    files: list[Path] = field(default_factory=list)
    parent: Optional[str] = None  # id of the artifact this one was derived from
    info: dict[str, Any] = field(default_factory=dict)  # exporter/quantizer facts (opset, parity, ...)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.files:
            self.files = [self.path]
        self.files = [Path(f) for f in self.files]

    @property
    def id(self) -> str:
        return f"{self.variant}/{self.format}/{self.precision}"

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def sha256(self) -> dict[str, str]:
        return {f.name: sha256_file(f) for f in self.files}

    def to_json(self, root: Path) -> dict[str, Any]:
        rel = lambda p: Path(p).resolve().relative_to(root.resolve()).as_posix()  # noqa: E731
        return {
            "id": self.id, "path": rel(self.path), "format": self.format, "precision": self.precision,
            "variant": self.variant, "method": self.method, "files": [rel(f) for f in self.files],
            "bytes": self.bytes, "parent": self.parent, "info": self.info,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], root: Path) -> "Artifact":
        return cls(path=root / d["path"], format=d["format"], precision=d["precision"],
                   variant=d["variant"], method=d["method"], files=[root / f for f in d["files"]],
                   parent=d.get("parent"), info=d.get("info", {}))

    def moved(self, old: Path, new: Path) -> "Artifact":
        """The same artifact after its folder ``old`` was renamed to ``new``."""
        mv = lambda p: new / Path(p).relative_to(old)  # noqa: E731
        return Artifact(mv(self.path), self.format, self.precision, self.variant, self.method,
                        [mv(f) for f in self.files], self.parent, self.info)
