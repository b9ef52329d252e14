"""Build the model a recipe names and load its weights safely.

``model.name`` is a zoo name (``resnet20``) or ``package.module:callable`` returning an
``nn.Module``. ``model.weights`` is a state dict loaded with ``torch.load(weights_only=True)``
or a ``.safetensors`` file: no code in a checkpoint is ever executed.

Example::

    model = build_model("resnet20", num_classes=10)
    load_weights(model, "resnet20_digits.safetensors")
"""

from __future__ import annotations

import importlib
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from edgeslim.errors import ModelError


def build_model(name: str, *, num_classes: int, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A fresh model from the zoo or from ``package.module:callable``."""
    kwargs = dict(kwargs or {})
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ModelError(f"cannot import model module '{module_name}': {err}") from None
        fn = getattr(module, attr, None)
        if fn is None or not callable(fn):
            raise ModelError(f"'{attr}' in module '{module_name}' is not a callable")
        try:
            model = fn(num_classes=num_classes, **kwargs)
        except TypeError:
            # a user callable may not take num_classes; its head is checked later
            try:
                model = fn(**kwargs)
            except Exception as err:
                raise ModelError(f"calling '{name}' failed: {type(err).__name__}: {err}") from None
        except Exception as err:
            raise ModelError(f"calling '{name}' failed: {type(err).__name__}: {err}") from None
        if not isinstance(model, nn.Module):
            raise ModelError(f"'{name}' returned {type(model).__name__}, not a torch.nn.Module")
        return model
    from edgeslim.models.zoo import create_model

    return create_model(name, num_classes=num_classes, **kwargs)


def _unpickler_reason(message: str) -> str:
    """The part of torch's weights-only refusal that names what was refused (torch wraps it
    in advice to retry with ``weights_only=False``, which is exactly what must not happen)."""
    _, sep, rest = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if sep else message).splitlines() if line.strip()]
    return lines[0].split(". Please")[0].rstrip(".") if lines else "disallowed content"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, without unpickling code."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(p))
        except Exception as err:
            raise ModelError(f"weights file {p} is not a valid safetensors file: {err}") from None
    else:
        try:
            with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below says it all
                warnings.simplefilter("ignore")
                state = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ModelError(
                f"refused to load {p}: it holds more than tensors and plain containers, and edgeslim "
                f"never unpickles code ({_unpickler_reason(str(err))})"
            ) from None
        except Exception as err:
            raise ModelError(f"cannot read weights file {p}: {type(err).__name__}: {err}") from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"weights file {p} does not hold a state dict of tensors")
    # DataParallel / DDP checkpoints prefix every key with "module."
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_finite(model: nn.Module, where: str) -> None:
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ModelError(f"{where}: tensor '{name}' contains NaN or Inf values")


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict into ``model``; a checkpoint of another architecture is an error."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. '{missing[0]}')")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. '{unexpected[0]}')")
        raise ModelError(f"weights {path} do not match the model: keys " + ", ".join(detail))
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ModelError(
                f"weights {path} do not match the model: '{k}' has shape "
                f"{list(v.shape)} in the file, {list(own[k].shape)} in the model"
            )
    model.load_state_dict(state, strict=True)
    check_finite(model, f"weights {path}")
    return model


def output_classes(model: nn.Module, input_size: int) -> int:
    """Run one zero input through ``model`` and return its number of outputs."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, input_size, input_size))
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelError(f"the model cannot take a {input_size}x{input_size} input: {msg}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ModelError("the model must return a [batch, classes] tensor of logits")
    if not math.isfinite(float(out.abs().sum())):
        raise ModelError("the model produces NaN/Inf on a zero input")
    return int(out.shape[1])
