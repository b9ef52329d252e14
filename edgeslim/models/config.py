"""The ``model`` section: which network, which weights, its input and classes."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from edgeslim.config import StrictModel


class ModelCfg(StrictModel):
    name: str = "resnet20"  # zoo name, or package.module:callable returning an nn.Module
    weights: Optional[str] = None  # state dict (.pt/.pth, loaded weights_only) or .safetensors
    input_size: int = Field(32, gt=0, le=4096)
    num_classes: int = Field(10, gt=0)
    kwargs: dict[str, Any] = {}  # passed to the zoo builder or callable (e.g. width_mult)
