"""The ``compress`` section: the method, how much to remove, and the method's own options
(validated by the method's registered options model)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgeslim.compress.base import METHODS
from edgeslim.registry import suggest


class CompressCfg(BaseModel):
    """Common pruning options; method-specific options are validated by the method itself."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    method: str = "l1"
    ratio: float = 0.5  # fraction of channels (or weights, for unstructured methods) removed
    scope: Literal["local", "global"] = "local"
    target_macs: Optional[float] = None  # fraction of MACs to remove; overrides ratio
    steps: int = Field(1, ge=1)  # iterative pruning with fine-tuning in between
    round_to: Optional[int] = Field(8, ge=1)  # channel counts kept at multiples of this
    bn_recalibration: bool = True  # re-estimate BN statistics right after pruning
    recalibration_batches: int = Field(10, ge=1)
    ignored_layers: list[str] = []  # module names never pruned

    @field_validator("ratio")
    @classmethod
    def _ratio_in_range(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            # For unstructured methods the ratio is the sparsity: 1.0 would zero every weight.
            raise ValueError(f"compress.ratio must be in (0, 1), got {v}: it is the fraction of channels "
                             "(or, for unstructured methods, of weights: the sparsity) removed")
        return v

    @field_validator("target_macs")
    @classmethod
    def _macs_in_range(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not 0.0 < v < 1.0:
            raise ValueError(f"compress.target_macs must be in (0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _method_options(self) -> "CompressCfg":
        method = METHODS.get(self.method)
        extra = dict(self.__pydantic_extra__ or {})
        allowed = sorted(method.options.model_fields) if method.options else []
        for key in extra:
            if key not in allowed:
                valid = sorted(type(self).model_fields) + allowed
                raise ValueError(
                    f"unknown key 'compress.{key}' for method '{self.method}'{suggest(key, valid)}"
                )
        if method.options is not None:
            method.options.model_validate(extra)
        return self

    def method_options(self) -> BaseModel | None:
        """The method's own options (its pydantic model), defaults filled in."""
        return METHODS.get(self.method).options_of(self)
