"""What a compression method is, and the registry of them.

A method turns a trained model into a smaller one. Structured methods share one pruner
(:mod:`edgeslim.compress.pruner`) and differ only in their importance criterion; other
families (unstructured masks, distillation into a smaller student, factorization) each
implement :meth:`Method.apply` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import torch
import torch.nn as nn
from pydantic import BaseModel

from edgeslim.registry import Registry


@dataclass
class CompressJob:
    """Everything a method may use. ``finetune(model, epochs)`` trains in place."""

    model: nn.Module
    example_inputs: torch.Tensor
    data: Any  # edgeslim.data.DataBundle
    cfg: Any  # edgeslim.recipe.CompressCfg
    options: Optional[BaseModel]
    spec: dict[str, Any]  # how the baseline architecture is built (name, num_classes, kwargs)
    batch_size: int = 64
    seed: int = 0
    finetune: Optional[Callable[[nn.Module, int], None]] = None
    # train(model, *, epochs=None, loss_fn=None, extra_params=None, from_scratch=False,
    # description="train") -> history: train() with the recipe's fine-tune settings, or its
    # baseline settings when from_scratch (epochs=None: that section's epochs).
    train: Optional[Callable[..., list[dict[str, Any]]]] = None
    # ...it also takes after_step (a hook replacing the method's own, e.g. a mask keeper)
    # and start_epoch (resume the lr schedule there, for lottery-ticket rewinding).
    # build_fresh() -> the baseline architecture freshly initialized from the recipe seed
    # (the init the baseline stage trains from); train_epochs: baseline.epochs.
    build_fresh: Optional[Callable[[], nn.Module]] = None
    train_epochs: int = 0
    log: Callable[[str], None] = lambda msg: None
    notes: dict[str, Any] = field(default_factory=dict)  # method-specific facts for the report


class Method:
    """A registered compression method. Subclasses set the class attributes."""

    name: ClassVar[str]
    description: ClassVar[str]
    family: ClassVar[str]  # structured | unstructured | distill | factorize
    options: ClassVar[Optional[type[BaseModel]]] = None
    # Methods whose result is only valid after training (e.g. pruning at init) say so.
    trains: ClassVar[bool] = False

    def apply(self, job: CompressJob) -> nn.Module:
        raise NotImplementedError

    def after_step(self, model: nn.Module) -> Optional[Callable[[nn.Module], None]]:
        """A hook run after every optimizer step while training ``model`` (e.g. re-apply
        unstructured masks so pruned weights stay zero); None when nothing is needed."""
        return None


METHODS: Registry[Method] = Registry("compression method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    METHODS.register(cls.name, cls())
    return cls
