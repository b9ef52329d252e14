"""Training as one protocol: what a compression method that trains is handed.

A method never builds its own loop or reaches into the recipe for learning rates. It
asks its :class:`Trainer` to ``fit`` a model under a named *schedule*: ``"baseline"``
(the settings the baseline was trained from scratch with) or ``"finetune"`` (the
settings used after compression). The pipeline builds the trainer from the schedules the
method declared (``Method.schedules(cfg)``), and only from those, so every setting a
method can train with is part of its stage's cache key; asking for an undeclared schedule
is a bug and fails loudly.

Example::

    trainer = LoopTrainer(data, {"finetune": TrainSpec(epochs=2, lr=0.01)})
    history = trainer.fit(model, schedule="finetune", epochs=1, description="sparsity")
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Protocol

import torch.nn as nn

from edgeslim.finetune.device import Placement
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.finetune.train import LossFn, TrainSpec, train
from edgeslim.pipeline.context import NullReporter, Reporter

SCHEDULES = ("baseline", "finetune")


class Trainer(Protocol):
    def fit(self, model: nn.Module, *, schedule: str = "finetune", epochs: Optional[int] = None,
            loss_fn: Optional[LossFn] = None, extra_params: Optional[list[nn.Parameter]] = None,
            after_step: Optional[Callable[[nn.Module], None]] = None, start_epoch: int = 0,
            description: str = "train") -> list[dict[str, Any]]:
        """Train ``model`` in place; ``epochs`` None = the schedule's own. Returns the history."""

    def epochs(self, schedule: str) -> int:
        """The schedule's own number of epochs."""


class LoopTrainer:
    """:class:`Trainer` over :func:`edgeslim.finetune.train.train` with fixed schedules.

    ``after_step_for(model)`` gives the hook run after every optimizer step when a call
    passes none (a method's mask keeper: pruned weights stay zero while training).
    ``resume``: the stage's :class:`EpochCheckpoints`; a method may fit several times per
    stage (lottery rounds), so fit call *i* keeps its state in its own ``fit-i`` sub-store: a
    rerun replays the finished calls from their last state and resumes the killed one.
    """

    def __init__(self, data: Any, schedules: dict[str, TrainSpec], *, reporter: Reporter | None = None,
                 after_step_for: Optional[Callable[[nn.Module], Optional[Callable]]] = None,
                 resume: Optional[EpochCheckpoints] = None, placement: Optional[Placement] = None):
        self.data = data
        self.placement = placement  # where every fit trains (the stage's resolved train section)
        self.schedules = dict(schedules)
        self.reporter = reporter or NullReporter()
        self.after_step_for = after_step_for
        self.resume = resume
        self._fits = 0  # fit calls so far: the sub-store of the next one

    def spec(self, schedule: str) -> TrainSpec:
        if schedule not in self.schedules:
            raise LookupError(f"training schedule '{schedule}' was not declared for this stage "
                              f"(declared: {sorted(self.schedules) or 'none'}); a method lists the "
                              "schedules it trains with in Method.schedules(), which its cache key covers")
        return self.schedules[schedule]

    def epochs(self, schedule: str) -> int:
        return self.spec(schedule).epochs

    def fit(self, model, *, schedule="finetune", epochs=None, loss_fn=None, extra_params=None,
            after_step=None, start_epoch=0, description="train"):
        spec = dataclasses.replace(self.spec(schedule), start_epoch=start_epoch,
                                   **({} if epochs is None else {"epochs": epochs}))
        if after_step is None and self.after_step_for is not None:
            after_step = self.after_step_for(model)
        resume = self.resume.sub(f"fit-{self._fits}", label=description) if self.resume else None
        self._fits += 1
        return train(model, self.data, spec, reporter=self.reporter, loss_fn=loss_fn,
                     extra_params=extra_params, after_step=after_step, description=description,
                     resume=resume, placement=self.placement)
