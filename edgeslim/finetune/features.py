"""Capturing intermediate activations for feature- and relation-based distillation.

A :class:`FeatureTap` holds forward hooks on named modules of a model and keeps the
latest output of each (or the input, for the penultimate embedding that feeds the final
``nn.Linear``). :func:`stage_ends` finds default layers to distill at: the last block of
each resolution stage, found by running one example through the model.

Example::

    names = stage_ends(model, torch.randn(2, 3, 32, 32))    # ['layer1.2', 'layer2.2', 'layer3.2']
    with FeatureTap(model, names) as tap:
        model(x)
        tap.out["layer3.2"].shape                           # [B, 64, 8, 8]
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from edgeslim.errors import CompressionError
from edgeslim.registry import suggest


class FeatureTap:
    """Forward hooks keeping the latest output (``inputs=True``: first input) per module.

    Captured tensors are cloned: a later in-place op (``ReLU(inplace=True)``, ``x += y``)
    would otherwise change the stored value silently. The clone stays in the autograd
    graph, so gradients flow back to the student through it.
    """

    def __init__(self, model: nn.Module, names: list[str], *, inputs: bool = False):
        self.out: dict[str, torch.Tensor] = {}
        self._handles = []
        modules = dict(model.named_modules())
        for name in dict.fromkeys(names):
            module = modules[name]
            if inputs:
                hook = module.register_forward_pre_hook(self._keep_input(name))
            else:
                hook = module.register_forward_hook(self._keep_output(name))
            self._handles.append(hook)

    def _keep_output(self, name: str):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                self.out[name] = output.clone()
        return hook

    def _keep_input(self, name: str):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor):
                self.out[name] = args[0].clone()
        return hook

    def close(self) -> None:
        """Remove the hooks (the model is left as it was) and drop captured tensors."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.out.clear()

    def __enter__(self) -> "FeatureTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a probe forward without touching BN running statistics or the train flag."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was)


def probe(model: nn.Module, names: list[str], example: torch.Tensor, *,
          inputs: bool = False) -> dict[str, torch.Tensor]:
    """Outputs (or inputs) of ``names`` for one ``example`` forward, in execution order."""
    with FeatureTap(model, names, inputs=inputs) as tap, eval_mode(model):
        model(example)
        return dict(tap.out)  # a dict keeps insertion order: the order modules ran in


def _block_candidates(model: nn.Module) -> list[str]:
    """Children of Sequential/ModuleList containers, not nested inside another candidate."""
    names: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Sequential, nn.ModuleList)):
            continue
        for child, _ in module.named_children():
            full = f"{name}.{child}" if name else child
            if not any(full.startswith(p + ".") for p in names):
                names.append(full)
    return names


def stage_ends(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The last block of each spatial resolution, in forward order.

    Blocks are the children of ``nn.Sequential`` containers (ResNet stages, MobileNet
    ``features``); a model without any falls back to its ``nn.Conv2d`` layers. Blocks
    are grouped by the height and width of their output; the last block of each group
    ends a stage.
    """
    names = _block_candidates(model) or [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    outs = probe(model, names, example)
    ends: dict[tuple[int, int], str] = {}
    for name, t in outs.items():  # execution order: the last block of a resolution wins
        if t.dim() == 4:
            ends.pop(tuple(t.shape[-2:]), None)
            ends[tuple(t.shape[-2:])] = name
    if not ends:
        raise CompressionError("cannot find feature maps to distill at: the model has no 4-D "
                               "block outputs; name them in finetune.distill.layers")
    return list(ends.values())


def check_layer(model: nn.Module, name: str, role: str) -> None:
    """Raise a one-line :class:`CompressionError` when ``model`` has no module ``name``."""
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        raise CompressionError(f"finetune.distill.layers: the {role} has no layer '{name}'"
                               f"{suggest(name, names)}")


def parse_pairs(layers: list[str], student: nn.Module, teacher: nn.Module,
                example: torch.Tensor) -> list[tuple[str, str]]:
    """``"student_layer:teacher_layer"`` strings (or one name for both) as checked pairs.

    Without any, the stage ends of both models are paired from the deepest stage back,
    as many as the shallower of the two has.
    """
    if not layers:
        s, t = stage_ends(student, example), stage_ends(teacher, example)
        n = min(len(s), len(t))
        return list(zip(s[len(s) - n:], t[len(t) - n:]))
    pairs = []
    for item in layers:
        s_name, _, t_name = item.partition(":")
        s_name, t_name = s_name.strip(), (t_name or s_name).strip()
        check_layer(student, s_name, "student")
        check_layer(teacher, t_name, "teacher")
        pairs.append((s_name, t_name))
    return pairs


def final_linear(model: nn.Module, example: torch.Tensor, role: str) -> str:
    """Name of the last ``nn.Linear`` run in forward: its input is the embedding."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    ran = list(probe(model, linears, example, inputs=True))
    if not ran:
        raise CompressionError(f"rkd: the {role} has no nn.Linear classifier whose input is the "
                               "embedding; name embedding layers in finetune.distill.layers")
    return ran[-1]
