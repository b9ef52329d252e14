"""What a stage is: a name, its upstream stages, the slice of the recipe it reads, and
``run(workdir, inputs, slice, ctx)``.

The slice is a frozen, typed part of the recipe (:class:`Slice`). A stage's ``run`` gets
the slice, never the recipe, and the cache key is ``hash(slice) + hash(inputs)``
(:func:`edgeslim.pipeline.stage.stage_key`): a stage cannot read what its key does not
cover. Two runs (or two plan candidates) whose stage has equal slices and inputs compute
the same folder, which is how ``plan`` shares stages.

Example::

    stage = BaselineStage()
    cfg = stage.slice(recipe)          # BaselineSlice(model=..., data=..., train=...)
    outputs = stage.run(workdir, {}, cfg, ctx)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, Optional, TypeVar

import torch
from pydantic import BaseModel, ConfigDict

from edgeslim.data import DataBundle, load_data
from edgeslim.data.config import DataCfg
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.recipe import Recipe


class Slice(BaseModel):
    """The part of the recipe one stage reads; its JSON is the stage's config key."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def key(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DataSlice(Slice):
    """What loading the data reads: the data section, input size, classes and seed."""

    data: DataCfg
    input_size: int
    num_classes: int
    seed: int

    @classmethod
    def of(cls, recipe: Recipe) -> "DataSlice":
        return cls(data=recipe.data, input_size=recipe.model.input_size,
                   num_classes=recipe.model.num_classes, seed=recipe.seed)

    def load(self, ctx: Context) -> DataBundle:
        """The dataset, loaded once per run (stages with equal data slices share it)."""
        key = ("data", repr(self.key()))
        if key not in ctx.cache:
            d = self.data
            ctx.cache[key] = load_data(d.name, input_size=self.input_size, num_classes=self.num_classes,
                                       seed=self.seed, val_fraction=d.val_fraction,
                                       limit_train=d.limit_train, limit_val=d.limit_val)
        return ctx.cache[key]

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A seeded random input of the model's shape (tracing, MAC counts)."""
        s = self.input_size
        return torch.randn(batch, 3, s, s, generator=torch.Generator().manual_seed(self.seed))

    def val_loader(self, data: DataBundle):
        return data.val_loader(self.data.batch_size) if data.labelled else None


class ModelSpec(Slice):
    """How the reference architecture is built (saved beside every model as its spec)."""

    name: str
    num_classes: int
    kwargs: dict[str, Any] = {}

    @classmethod
    def of(cls, recipe: Recipe) -> "ModelSpec":
        m = recipe.model
        return cls(name=m.name, num_classes=m.num_classes, kwargs=dict(m.kwargs))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "kwargs": dict(self.kwargs)}


S = TypeVar("S", bound=Slice)


class Stage(ABC, Generic[S]):
    """One step of the pipeline. Subclasses set ``folder`` and ``upstream`` and implement
    :meth:`slice` and :meth:`run`; ``run`` writes only inside ``workdir``."""

    folder: ClassVar[str]  # its folder (or folder prefix) in the run directory
    upstream: ClassVar[tuple[str, ...]] = ()  # the stages whose results are its inputs

    @abstractmethod
    def slice(self, recipe: Recipe, **where: Any) -> S:
        """The typed part of ``recipe`` this stage reads (``where``: which instance)."""

    @abstractmethod
    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: S, ctx: Context) -> dict[str, Any]:
        """Do the work into ``workdir``; return JSON-able outputs (paths relative to it)."""


def input_hashes(inputs: dict[str, Optional[StageResult]]) -> list[str]:
    """The inputs' content hashes in a stable order (absent inputs count as empty)."""
    return [f"{k}:{v.hash if v is not None else ''}" for k, v in sorted(inputs.items())]
