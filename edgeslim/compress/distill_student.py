"""Distillation as compression: train a smaller architecture from the model as teacher.

``compress.method: distill`` builds ``compress.student`` from the zoo (or
``package.module:callable``) with the teacher's number of classes, trains it from
scratch against the teacher with a registered distillation loss
(:data:`edgeslim.finetune.distill.LOSSES`), and hands it on as the compressed model. The
saved structure describes the student, so export and profiling measure the student.

Example (recipe)::

    model: {name: resnet56}
    compress: {method: distill, student: resnet20, loss: hinton,
               loss_options: {temperature: 4, alpha: 0.9}}
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeslim.compress.base import CompressJob, Method, register_method
from edgeslim.errors import CompressionError, EdgeslimError, RecipeError
from edgeslim.finetune.config import BaselineCfg, DistillCfg
from edgeslim.finetune.distill import LOSSES, build_distillation, num_classes
from edgeslim.finetune.train import TrainSpec
from edgeslim.finetune.trainer import LoopTrainer
from edgeslim.models import MODELS
from edgeslim.models.loading import build_model, output_classes
from edgeslim.registry import suggest


class DistillOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    student: Optional[str] = None  # zoo name or package.module:callable (required)
    student_kwargs: dict[str, Any] = {}  # builder options, e.g. {width_mult: 0.5}
    loss: str = "hinton"  # a registered distillation loss
    epochs: Optional[int] = Field(None, ge=1)  # null: the recipe's baseline epochs
    loss_options: dict[str, Any] = {}  # finetune.distill fields: temperature, alpha, layers...

    @field_validator("student")
    @classmethod
    def _known_student(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and ":" not in v:
            if v not in MODELS:
                raise RecipeError(f"compress.student: unknown model '{v}'"
                                  f"{suggest(v, MODELS.names())}")
        return v

    @field_validator("student_kwargs")
    @classmethod
    def _no_num_classes(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "num_classes" in v:
            raise RecipeError("compress.student_kwargs must not set num_classes: the student "
                              "always has the teacher's number of classes")
        return v

    @model_validator(mode="after")
    def _check(self) -> "DistillOptions":
        if self.student is None:
            raise RecipeError("compress.student is required for method 'distill' "
                              "(a zoo name such as resnet20)")
        self.distill_cfg()  # the loss name and its options
        return self

    def distill_cfg(self):
        """The :class:`~edgeslim.recipe.DistillCfg` of ``loss`` with ``loss_options``."""
        if self.loss not in LOSSES:
            try:
                LOSSES.get(self.loss)
            except EdgeslimError as err:  # keeps the nearest names
                raise RecipeError(f"compress.loss: {err}") from None
        if "method" in self.loss_options or "teacher" in self.loss_options:
            raise RecipeError("compress.loss_options: set the loss with compress.loss; the "
                              "teacher is always the model being compressed")
        try:
            return DistillCfg.model_validate({**self.loss_options, "method": self.loss})
        except ValidationError as err:
            e = err.errors()[0]
            key = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                raise RecipeError(f"compress.loss_options: unknown key '{key}'"
                                  f"{suggest(key, sorted(DistillCfg.model_fields))}") from None
            raise RecipeError(f"compress.loss_options.{key}: {e['msg']} "
                              f"(got {e.get('input')!r})") from None


def build_student(options: DistillOptions, *, num_classes: int, input_size: int) -> nn.Module:
    """A fresh student with ``num_classes`` outputs; a builder that ignores it is an error."""
    student = build_model(options.student, num_classes=num_classes, kwargs=options.student_kwargs)
    n = output_classes(student, input_size)
    if n != num_classes:
        raise CompressionError(f"compress.student '{options.student}' outputs {n} classes but the "
                               f"teacher has {num_classes}; they must match")
    return student


@register_method
class DistillStudent(Method):
    name = "distill"
    description = "distillation: train a smaller student architecture from the model as teacher"
    family = "distill"
    options = DistillOptions
    trains = True

    def schedules(self, cfg) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("baseline",) + super().schedules(cfg)))  # trains from scratch

    def apply(self, job: CompressJob) -> nn.Module:
        opts: DistillOptions = job.options
        teacher = job.model
        n = num_classes(teacher, job.example_inputs)
        torch.manual_seed(job.seed)  # the student's initialisation is part of the recipe
        student = build_student(opts, num_classes=n, input_size=job.example_inputs.shape[-1])
        cfg = opts.distill_cfg()
        loss_fn, extra = build_distillation(cfg, student=student, teacher=teacher,
                                            example=job.example_inputs)
        description = f"distill student {opts.student} ({opts.loss})"
        # library use without the pipeline: the recipe's default baseline settings
        trainer = job.trainer or LoopTrainer(job.data, {"baseline": TrainSpec.of(
            BaselineCfg(), batch_size=job.batch_size, seed=job.seed)})
        try:
            history = trainer.fit(student, schedule="baseline", epochs=opts.epochs, loss_fn=loss_fn,
                                  extra_params=extra, description=description)
        finally:
            loss_fn.close()  # the hooks must not stay on the teacher or the student
        job.notes.update({"student": opts.student, "loss": opts.loss, "epochs": len(history),
                          "history": history})
        job.log(f"distill: {opts.student} trained {len(history)} epochs from the teacher with {opts.loss}")
        return student.eval()

    def output_spec(self, job: CompressJob) -> dict[str, Any]:
        opts: DistillOptions = job.options
        return {"name": opts.student, "num_classes": job.spec["num_classes"],
                "kwargs": dict(opts.student_kwargs)}
