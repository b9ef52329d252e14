"""Pre-flight: every check that can fail before the first stage runs, in one place.

A recipe that validates can still name a model that does not build, outputs the wrong
number of classes, or a distillation whose layers or teacher do not fit. These fail here,
in seconds, instead of after an hour of training.

Example::

    preflight(load_recipe("my.yaml"))   # raises ModelError / RecipeError / CompressionError
"""

from __future__ import annotations

import torch

from edgeslim.compress import METHODS
from edgeslim.compress.distill_student import build_student
from edgeslim.errors import ModelError
from edgeslim.finetune.distill import build_distillation, load_teacher
from edgeslim.models.loading import build_model, load_weights, output_classes
from edgeslim.recipe import Recipe


def preflight(recipe: Recipe) -> None:
    """Fail before any stage when the recipe's models cannot work together."""
    check_model(recipe)
    check_distillation(recipe)


def check_model(recipe: Recipe) -> None:
    """The model builds, its weights (if any) load into it, and it outputs
    ``model.num_classes`` logits: a bad checkpoint fails before the run folder is written."""
    m = recipe.model
    model = build_model(m.name, num_classes=m.num_classes, kwargs=m.kwargs)
    if m.weights:
        load_weights(model, m.weights)
    n = output_classes(model, m.input_size, m.num_classes)
    if n != m.num_classes:
        raise ModelError(f"model '{m.name}' outputs {n} classes but model.num_classes is {m.num_classes}")


def check_distillation(recipe: Recipe) -> None:
    """Distillation layers, teacher and student fit: an unknown layer, mismatched class
    counts, a missing teacher file or a bad student fail here, before any training."""
    m = recipe.model
    student = None
    if recipe.compress.method == "distill":
        student = build_student(METHODS.get("distill").options_of(recipe.compress),
                                num_classes=m.num_classes, input_size=m.input_size)
    cfg = recipe.finetune.distill
    if cfg is None:
        return
    spec = {"name": m.name, "num_classes": m.num_classes, "kwargs": dict(m.kwargs)}
    example = torch.zeros(2, 3, m.input_size, m.input_size)
    if cfg.teacher == "baseline":
        teacher = build_model(m.name, num_classes=m.num_classes, kwargs=m.kwargs)
    else:
        teacher = load_teacher(cfg, spec=spec)
    if student is None:  # pruning keeps layer names: the architecture stands in for it
        student = build_model(m.name, num_classes=m.num_classes, kwargs=m.kwargs)
    fn, _ = build_distillation(cfg, student=student, teacher=teacher, example=example)
    fn.close()
