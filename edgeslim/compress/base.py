"""What a compression method is, and the registry of them.

A method turns a trained model into a smaller one. Structured methods share one pruner
(:mod:`edgeslim.compress.pruner`) and differ only in their importance criterion; other
families (unstructured masks, distillation into a smaller student, factorization) each
implement :meth:`Method.apply` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

import torch
import torch.nn as nn
from pydantic import BaseModel

from edgeslim.errors import CompressionError
from edgeslim.registry import Registry

if TYPE_CHECKING:  # annotations only: the config validates names through METHODS below
    from edgeslim.compress.config import CompressCfg
    from edgeslim.finetune.trainer import Trainer


@dataclass
class CompressJob:
    """Everything a method may use; all of it comes from the compress stage's slice."""

    model: nn.Module
    example_inputs: torch.Tensor
    data: Any  # edgeslim.data.DataBundle
    cfg: "CompressCfg"
    options: Optional[BaseModel]  # the method's own options, validated
    spec: dict[str, Any]  # how the baseline architecture is built (name, num_classes, kwargs)
    batch_size: int = 64
    seed: int = 0
    # Training, for methods that train (sparsity training, lottery rounds, pruning at init,
    # distillation, fine-tuning between pruning steps): the schedules of Method.schedules().
    trainer: Optional["Trainer"] = None
    # build_fresh() -> the baseline architecture freshly initialized from the recipe seed
    # (the init the baseline stage trains from): pruning at init, lottery tickets.
    build_fresh: Optional[Callable[[], nn.Module]] = None
    log: Callable[[str], None] = lambda msg: None
    notes: dict[str, Any] = field(default_factory=dict)  # method-specific facts for the report
    # Per-job scratch space (e.g. HRank's ranks, reused by every trial of a MAC-target search).
    cache: dict[Any, Any] = field(default_factory=dict)

    def require_trainer(self, method: str) -> "Trainer":
        if self.trainer is None:
            raise CompressionError(f"compress.method '{method}' trains, but no trainer was given "
                                   "(the pipeline gives one; library callers pass CompressJob.trainer)")
        return self.trainer


class Method:
    """A registered compression method. Subclasses set the class attributes."""

    name: ClassVar[str]
    description: ClassVar[str]
    family: ClassVar[str]  # structured | unstructured | distill | factorize | none
    options: ClassVar[Optional[type[BaseModel]]] = None
    # Methods whose result is only valid after training (e.g. pruning at init) say so.
    trains: ClassVar[bool] = False

    def apply(self, job: CompressJob) -> nn.Module:
        raise NotImplementedError

    def options_of(self, cfg: "CompressCfg") -> Optional[BaseModel]:
        """This method's options from ``cfg``'s extra keys, validated, defaults filled in."""
        if self.options is None:
            return None
        return self.options.model_validate(dict(cfg.__pydantic_extra__ or {}))

    def schedules(self, cfg: "CompressCfg") -> tuple[str, ...]:
        """The training schedules (``baseline``, ``finetune``) this method trains with under
        ``cfg``; their settings become part of the compress stage's cache key."""
        return ("finetune",) if cfg.steps > 1 else ()

    def output_spec(self, job: CompressJob) -> dict[str, Any]:
        """How the architecture of the model ``apply`` returns is built (its saved spec)."""
        return job.spec

    def after_step(self, model: nn.Module) -> Optional[Callable[[nn.Module], None]]:
        """A hook run after every optimizer step while training ``model`` (e.g. re-apply
        unstructured masks so pruned weights stay zero); None when nothing is needed."""
        return None


METHODS: Registry[Method] = Registry("compression method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    METHODS.register(cls.name, cls())
    return cls
