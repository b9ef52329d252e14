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
import os
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from safetensors.torch import load_file

from edgeslim.errors import ModelError, first_line
from edgeslim.models.zoo import create_model
from edgeslim.registry import suggest


def build_model(name: str, *, num_classes: int, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A fresh model from the zoo or from ``package.module:callable``.

    Example::

        build_model("mynets:build_net", num_classes=10)   # mynets.py in the current folder
    """
    kwargs = dict(kwargs or {})
    if ":" in name:
        module_name, _, attr = name.partition(":")
        fn = _user_callable(module_name, attr)
        try:
            model = fn(num_classes=num_classes, **kwargs)
        except TypeError:
            # a user callable may not take num_classes; its head is checked later
            try:
                model = fn(**kwargs)
            except Exception as err:
                raise ModelError(f"calling '{name}' failed: {type(err).__name__}: {first_line(err)}") from None
        except Exception as err:
            raise ModelError(f"calling '{name}' failed: {type(err).__name__}: {first_line(err)}") from None
        if not isinstance(model, nn.Module):
            raise ModelError(f"'{name}' returned {type(model).__name__}, not a torch.nn.Module")
        return model
    return create_model(name, num_classes=num_classes, **kwargs)


def _user_callable(module_name: str, attr: str) -> Callable[..., Any]:
    """``attr`` of the user's module, imported as ``python -m`` would find it.

    The ``edgeslim`` console script, unlike ``python -m edgeslim``, does not put the
    current folder on ``sys.path``, so ``mynets.py`` next to the recipe would not import.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module file written after start-up must be found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.split(".")[0] != err.name.split(".")[0]:
            # the user's module imports something that is not installed
            raise ModelError(f"cannot import model module '{module_name}': {first_line(err)}") from None
        file = module_name.replace(".", "/") + ".py"
        raise ModelError(
            f"cannot import model module '{module_name}': {first_line(err)} (looked in the current "
            f"folder {cwd} and the installed packages; check that {file} is there, or run edgeslim "
            f"from the folder that holds it)"
        ) from None
    except Exception as err:  # a syntax error or a failing import-time statement in user code
        raise ModelError(f"cannot import model module '{module_name}': {type(err).__name__}: "
                         f"{first_line(err)}") from None
    if not hasattr(module, attr):
        where = getattr(module, "__file__", None) or module_name
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        raise ModelError(f"'{attr}' not found in model module '{module_name}' ({where})"
                         f"{suggest(attr, public)}")
    fn = getattr(module, attr)
    if not callable(fn):
        raise ModelError(f"'{attr}' in module '{module_name}' is not a callable")
    return fn


_SAVE_HINT = "save the weights with torch.save(model.state_dict(), path) or as .safetensors"


def _torch_reason(message: str) -> str:
    """What torch refused, without its advice to retry with ``weights_only=False``: edgeslim
    never does that, so echoing the advice would only mislead."""
    _, sep, rest = message.partition("WeightsUnpickler error:")
    text = " ".join((rest if sep else message).split())
    sentences = re.split(r"(?<=[.!])\s+", text)
    kept = [x for x in sentences if x and not re.search(
        r"weights_only|trusted source|add_safe_globals|safe_globals|file an issue|documentation of torch.load", x)]
    return kept[0].rstrip(".") if kept else "disallowed content"


def _not_a_checkpoint(p: Path) -> str | None:
    """Why ``p`` is plainly not a torch checkpoint (an ONNX model, say), or None.

    ``torch.save`` writes a zip archive (``PK``) or, in its legacy format, a pickle
    (protocol 2+, first byte 0x80). Anything else fed to the unpickler fails with a
    meaningless "Unsupported operand"."""
    with open(p, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK") or head.startswith(b"\x80"):
        return None
    if p.suffix.lower() == ".onnx" or head[:1] == b"\x08":  # an ONNX ModelProto opens with ir_version
        return "it is an ONNX model, not PyTorch weights"
    return "it is neither a torch.save checkpoint nor a .safetensors file"


def _read_torch_file(p: Path) -> Any:
    why = _not_a_checkpoint(p)
    if why:
        raise ModelError(f"weights file {p}: {why}; model.weights expects a state dict: {_SAVE_HINT}")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _torch_reason(str(err))
        found = re.search(r"GLOBAL ([\w.]+)", reason)
        hint = ""
        if found:  # a class in the pickle: most often a whole model from torch.save(model)
            reason = f"it holds a pickled {found.group(1)}"
            hint = f"; if it is a whole model saved with torch.save(model), {_SAVE_HINT}"
        raise ModelError(f"refused to load {p}: edgeslim loads tensors only and never unpickles code "
                         f"({reason}){hint}") from None
    except Exception as err:
        if "TorchScript" in str(err):
            raise ModelError(f"weights file {p} is a TorchScript archive, not a state dict; "
                             f"{_SAVE_HINT}") from None
        raise ModelError(f"cannot read weights file {p}: {type(err).__name__}: {_torch_reason(str(err))}"
                         ) from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, without unpickling code.

    Example::

        state = read_state_dict("resnet20.pt")   # {"conv1.weight": tensor, ...}
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        try:
            state = load_file(str(p))
        except Exception as err:
            raise ModelError(f"weights file {p} is not a valid safetensors file: {first_line(err)}") from None
    else:
        state = _read_torch_file(p)
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"weights file {p} does not hold a state dict of tensors; {_SAVE_HINT}")
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


def output_classes(model: nn.Module, input_size: int, num_classes: int | None = None) -> int:
    """Run one zero input through ``model`` and return its number of outputs.

    Example::

        output_classes(build_model("resnet20", num_classes=10), 32)   # 10
    """
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, input_size, input_size))
    except Exception as err:
        msg = first_line(err)
        wants = re.search(r"to have (\d+) channels, but got 3 channels", msg)
        if wants:  # torch's words when the first convolution is not made for RGB
            raise ModelError(f"the model's first convolution takes {wants.group(1)} input channel(s); edgeslim "
                             f"feeds [N, 3, H, W] images (grayscale data repeated into three channels): make it "
                             f"take 3, or average them first inside the model (x.mean(1, keepdim=True))") from None
        raise ModelError(f"the model cannot take a {input_size}x{input_size} input: {msg}") from None
    expected = f"(N, {num_classes})" if num_classes is not None else "(N, num_classes)"
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"the model must return one tensor of logits of shape {expected}; "
                         f"it returned a {type(out).__name__}")
    if out.dim() != 2:
        raise ModelError(f"the model must return logits of shape {expected}; for a batch of 1 "
                         f"{input_size}x{input_size} image it returned shape {tuple(out.shape)}")
    if not math.isfinite(float(out.abs().sum())):
        raise ModelError("the model produces NaN/Inf on a zero input")
    return int(out.shape[1])
