"""Save and load models as tensors plus a structural description — never as pickles.

A pruned or factorized model has a different shape from the architecture its builder
makes. We save ``model.safetensors`` (the tensors) and ``structure.json``: how to build
the original architecture (zoo name or ``module:callable`` and its kwargs) plus the
constructor arguments of every layer. Loading builds the architecture, replaces each
layer whose recorded arguments differ (or that did not exist, e.g. a Tucker-factorized
conv that became a Sequential), then loads the tensors strictly. No code is unpickled.

Example::

    save_model(pruned, "run/10-compress", spec)
    model = load_model("run/10-compress")   # same architecture, same outputs
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from edgeslim.errors import ModelError
from edgeslim.io import atomic_write_text
from edgeslim.models.loading import build_model

WEIGHTS = "model.safetensors"
STRUCTURE = "structure.json"

# Layer types whose constructor arguments we record, and how to read them back.
_ARGS: dict[type, tuple[str, ...]] = {
    nn.Conv1d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
    nn.Linear: ("in_features", "out_features"),
    nn.BatchNorm1d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.BatchNorm2d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.GroupNorm: ("num_groups", "num_channels", "eps", "affine"),
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine"),
    nn.PReLU: ("num_parameters",),
    nn.Sequential: (),
    nn.Identity: (),
    nn.ReLU: ("inplace",),
}
_BY_NAME = {cls.__name__: cls for cls in _ARGS}


def _layer_spec(m: nn.Module) -> dict[str, Any] | None:
    cls = type(m)
    if cls not in _ARGS:
        return None
    args = {}
    for a in _ARGS[cls]:
        v = getattr(m, a)
        args[a] = list(v) if isinstance(v, tuple) else v
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        args["bias"] = m.bias is not None
    if isinstance(m, nn.LayerNorm):
        args["bias"] = m.bias is not None
    return {"type": cls.__name__, "args": args}


def _build_layer(spec: dict[str, Any]) -> nn.Module:
    cls = _BY_NAME.get(spec.get("type", ""))
    if cls is None:
        raise ModelError(f"structure.json names an unsupported layer type {spec.get('type')!r}")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["args"].items()}
    return cls(**args)


def describe(model: nn.Module) -> dict[str, Any]:
    """Constructor arguments of every recordable layer, by qualified name, in order."""
    layers = {}
    for name, m in model.named_modules():
        if name:
            spec = _layer_spec(m)
            if spec is not None:
                layers[name] = spec
    return layers


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)


def apply_structure(model: nn.Module, layers: dict[str, Any]) -> nn.Module:
    """Reshape ``model`` (freshly built) to the recorded layers, in place."""
    for path, spec in layers.items():  # parents come before their children
        try:
            current = model.get_submodule(path)
        except AttributeError:
            current = None
        if current is None or _layer_spec(current) != spec:
            _set_module(model, path, _build_layer(spec))
    return model


def _fit_tensors(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize parameters/buffers of layer types we do not record (e.g. a custom gate).

    Recorded layers were rebuilt from structure.json already; a tensor that disagrees with
    one of them is a mismatch for load_state_dict to report, not something to resize.
    """
    own = dict(model.named_parameters()) | dict(model.named_buffers())
    for key, t in state.items():
        cur = own.get(key)
        if cur is not None and cur.shape != t.shape:
            mod_path, _, attr = key.rpartition(".")
            mod = model.get_submodule(mod_path) if mod_path else model
            if type(mod) in _ARGS:
                continue
            new = torch.empty_like(t)
            if isinstance(cur, nn.Parameter):
                setattr(mod, attr, nn.Parameter(new, requires_grad=cur.requires_grad))
            else:
                mod.register_buffer(attr, new)


def save_model(model: nn.Module, directory: str | Path, spec: dict[str, Any]) -> dict[str, str]:
    """Write ``model.safetensors`` + ``structure.json`` into ``directory``.

    ``spec`` says how to build the unmodified architecture:
    ``{"name": ..., "num_classes": ..., "kwargs": {...}}``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(directory / WEIGHTS)
    atomic_write_text(directory / STRUCTURE, json.dumps({"spec": spec, "layers": describe(model)}, indent=1))
    return {"weights": WEIGHTS, "structure": STRUCTURE}


def load_model(directory: str | Path) -> nn.Module:
    """Rebuild a model saved by :func:`save_model`, in eval mode."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / STRUCTURE).read_text())
        spec, layers = meta["spec"], meta["layers"]
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"cannot read {directory / STRUCTURE}: {err}") from None
    model = build_model(spec["name"], num_classes=spec["num_classes"], kwargs=spec.get("kwargs", {}))
    apply_structure(model, layers)
    try:
        state = load_file(str(directory / WEIGHTS))
    except Exception as err:  # safetensors raises its own error types
        raise ModelError(f"cannot read {directory / WEIGHTS}: {err}") from None
    _fit_tensors(model, state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = [f"missing '{missing[0]}'" if missing else "", f"unexpected '{unexpected[0]}'" if unexpected else "",
                 f"'{wrong[0]}' has shape {list(state[wrong[0]].shape)} but the structure says "
                 f"{list(own[wrong[0]].shape)}" if wrong else ""]
        raise ModelError(f"{directory / WEIGHTS} does not match its structure: " + "; ".join(x for x in parts if x))
    model.load_state_dict(state, strict=True)
    return model.eval()
