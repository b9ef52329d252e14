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

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, Optional, TypeVar

import torch
from pydantic import BaseModel, ConfigDict

from edgeslim.data import DataBundle, fingerprint, load_data, resolve_augment
from edgeslim.io import sha256_file
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.stage import StageResult
from edgeslim.recipe import Recipe


class Slice(BaseModel):
    """The part of the recipe one stage reads; its JSON is the stage's config key."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def key(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DataSlice(Slice):
    """What loading the data reads: the source, its split, input size, classes and seed.

    Not the batch size or the calibration count: the stages that use those hold them in
    their own slices, so changing how many images calibrate INT8 does not retrain the
    baseline. ``content`` fingerprints the files of an image folder (names, sizes, mtimes),
    so adding or replacing an image redoes what was computed from them.
    """

    name: str
    val_fraction: float
    limit_train: Optional[int] = None
    limit_val: Optional[int] = None
    input_size: int
    num_classes: int
    seed: int
    content: Optional[str] = None
    augment: bool = False  # data.augment resolved (auto -> image folders): it changes training

    @classmethod
    def of(cls, recipe: Recipe) -> "DataSlice":
        d = recipe.data
        return cls(name=d.name, val_fraction=d.val_fraction, limit_train=d.limit_train,
                   limit_val=d.limit_val, input_size=recipe.model.input_size,
                   num_classes=recipe.model.num_classes, seed=recipe.seed, content=fingerprint(d.name),
                   augment=resolve_augment(d.name, d.augment))

    def load(self, ctx: Context) -> DataBundle:
        """The dataset, loaded once per run (stages with equal data slices share it)."""
        key = ("data", repr(self.key()))
        if key not in ctx.cache:
            ctx.cache[key] = load_data(self.name, input_size=self.input_size, num_classes=self.num_classes,
                                       seed=self.seed, val_fraction=self.val_fraction,
                                       limit_train=self.limit_train, limit_val=self.limit_val,
                                       augment=self.augment)
        return ctx.cache[key]

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A seeded random input of the model's shape (tracing, MAC counts)."""
        s = self.input_size
        return torch.randn(batch, 3, s, s, generator=torch.Generator().manual_seed(self.seed))

    @staticmethod
    def val_loader(data: DataBundle, batch_size: int):
        return data.val_loader(batch_size) if data.labelled else None


class ModelSpec(Slice):
    """How the reference architecture is built (saved beside every model as its spec)."""

    name: str
    num_classes: int
    kwargs: dict[str, Any] = {}
    # the source file of a ``module:callable`` model: editing it redoes the model stages
    source_sha256: Optional[str] = None

    @classmethod
    def of(cls, recipe: Recipe) -> "ModelSpec":
        m = recipe.model
        return cls(name=m.name, num_classes=m.num_classes, kwargs=dict(m.kwargs),
                   source_sha256=module_source_hash(m.name))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "kwargs": dict(self.kwargs)}


def module_source_hash(name: str) -> Optional[str]:
    """sha256 of the file defining a user model ``package.module:callable`` (only that file,
    not what it imports); None for zoo names or when the file cannot be found (building
    the model says why)."""
    if ":" not in name:
        return None
    try:
        spec = importlib.util.find_spec(name.split(":", 1)[0].strip())
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return sha256_file(origin) if origin and Path(origin).is_file() else None


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
