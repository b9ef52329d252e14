"""What an exporter is, and the registry of them.

An exporter turns a PyTorch model into an :class:`~edgeslim.artifacts.Artifact` of one
format and validates it against the model before returning (a parity failure raises
:class:`~edgeslim.errors.ParityError`; it is never downgraded to a warning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.registry import Registry


class Exporter:
    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()  # python packages it imports
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")  # what its quantizers emit

    def available(self) -> tuple[bool, str]:
        """(True, "") or (False, reason) — e.g. "tensorrt is not installed"."""
        return True, ""

    def export(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: Any,
               variant: str, method: str) -> Artifact:
        raise NotImplementedError


EXPORTERS: Registry[Exporter] = Registry("export format")


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    EXPORTERS.register(cls.name, cls())
    return cls
