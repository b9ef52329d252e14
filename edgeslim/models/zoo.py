"""The model registry: names -> builders, with the input size each model expects.

Every architecture file registers its entry points here with :func:`register_model`, so a
recipe can say ``model: resnet20`` and the rest of edgeslim (pruning, export, benchmarks)
can iterate over the zoo without knowing any family.

Example::

    from edgeslim.models import create_model, list_models

    list_models("resnet*")                       # ['resnet18', 'resnet20', ...]
    net = create_model("resnet20", num_classes=10)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from edgeslim.errors import EdgeslimError, ModelError
from edgeslim.registry import Registry

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder and what it expects as input.

    ``input_size`` is the square spatial size (H = W) the model is designed for, e.g. 32 for
    CIFAR models and 224 for ImageNet models; inputs are always 3-channel images.
    """

    name: str
    fn: Builder
    input_size: int
    description: str
    family: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image, e.g. ``(3, 32, 32)``."""
        return (3, self.input_size, self.input_size)

    def options(self) -> list[str]:
        """Keyword arguments the builder accepts besides ``num_classes``."""
        params = inspect.signature(self.fn).parameters.values()
        return [
            p.name
            for p in params
            if p.name != "num_classes" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    def build(self, num_classes: int = 10, **kwargs: Any) -> nn.Module:
        """Build the model after checking the options; see :func:`create_model`."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ModelError(
                f"model '{self.name}': num_classes must be a positive integer, got {num_classes!r}"
            )
        params = inspect.signature(self.fn).parameters.values()
        # A builder that takes **kwargs validates its own options; otherwise we reject
        # unknown ones here so a typo in a recipe is a one-line error, not a TypeError.
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            known = self.options()
            for key in kwargs:
                if key not in known:
                    hint = ", ".join(known) if known else "none"
                    raise ModelError(
                        f"model '{self.name}' has no option '{key}' (options: {hint})"
                    )
        try:
            return self.fn(num_classes=num_classes, **kwargs)
        except (TypeError, ValueError) as exc:
            # Bad option values (e.g. width_mult="big") surface as TypeError/ValueError.
            raise ModelError(f"cannot build model '{self.name}': {exc}") from exc


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str, *, input_size: int, description: str, family: str
) -> Callable[[Builder], Builder]:
    """Register a builder ``fn(num_classes=10, **options) -> nn.Module`` under ``name``.

    The builder itself is returned unchanged, so it stays callable as a plain function.

    Example::

        @register_model("tiny", input_size=32, description="a toy", family="small")
        def tiny(num_classes: int = 10) -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))
    """

    def add(fn: Builder) -> Builder:
        MODELS.register(name, ModelEntry(name, fn, input_size, description, family))
        return fn

    return add


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` for ``name``; unknown names raise :class:`ModelError`.

    Example::

        get_model_entry("mobilenet_v2").input_size   # 224
    """
    try:
        return MODELS.get(name)
    except ModelError:
        raise
    except EdgeslimError as exc:
        # Keep the registry's "did you mean" message, but as the model-specific error type.
        raise ModelError(str(exc)) from None


def create_model(name: str, *, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Build a fresh, randomly initialised zoo model.

    Unknown names and unknown options raise :class:`ModelError` naming the culprit.

    Example::

        net = create_model("mobilenet_v2", num_classes=100, width_mult=0.5)
    """
    return get_model_entry(name).build(num_classes=num_classes, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style wildcard.

    Example::

        list_models("vgg*")   # ['vgg11_bn', 'vgg16_bn']
    """
    return MODELS.names(pattern)
