"""Guards that keep structured pruning from silently producing a wrong model.

Torch-Pruning's dependency graph is traced once, from autograd. Three things it cannot
get right on its own, and what edgeslim does about each:

- A slice, split or unbind along the channel dimension (``x[:, :8]``, ``torch.split(x,
  [8, 8], 1)``) has its sizes written as constants in ``forward``. The pruner updates its
  own record of the op but not the user's code, so after pruning the slice selects other
  channels than before: the model still runs, wrongly. The layers feeding such an op are
  left out (``auto_ignored``) and named in the compression report.
- A ratio that would remove every channel of a layer is skipped by Torch-Pruning without a
  word; here it is a :class:`CompressionError` naming the layer. A global threshold instead
  leaves such a layer its ``round_to`` best channels (:func:`fix_rounding`).
- A ``forward`` that hard-codes a channel count (``x.view(-1, 64)``) fails only when the
  pruned model runs; :func:`check_still_runs` runs it and names the layer that fails.

Example::

    unsafe = channel_indexing_layers(pruner.DG, groups)   # {conv: "sliced along channels"}
    refuse_emptying(pruner)
    check_still_runs(pruned, example, expected_shape=(2, 10))
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch_pruning as tp
from torch_pruning import ops

from edgeslim.errors import CompressionError

_INDEXING_OPS = (ops._SliceOp, ops._SplitOp, ops._UnbindOp)


class EmptyLayerError(CompressionError):
    """Pruning would leave a layer with no channels."""


def _channel_dim_op(node: Any) -> bool:
    """True when the traced slice/split/unbind node acts on dimension 1 (channels)."""
    if not isinstance(node.module, _INDEXING_OPS):
        return False
    fn = node.grad_fn
    dim = getattr(fn, "_saved_dim", None)
    if dim is None:
        return True  # unknown dimension: assume the worst
    if dim >= 2**63:  # autograd saves negative dims as unsigned 64-bit
        dim -= 2**64
    sizes = getattr(fn, "_saved_self_sym_sizes", None)
    if dim < 0 and sizes is not None:
        dim += len(sizes)
    return dim == 1 or dim < 0


def channel_indexing_layers(dg: tp.DependencyGraph, ignored: list[nn.Module],
                            root_types: tuple = (ops.TORCH_CONV, ops.TORCH_LINEAR)) -> dict[nn.Module, str]:
    """Layers whose output channels reach a channel-dim slice/split/unbind, with why."""
    unsafe_ops = {m for m, node in dg.module2node.items() if _channel_dim_op(node)}
    if not unsafe_ops:
        return {}
    found: dict[nn.Module, str] = {}
    for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=root_types):
        ops_in_group = [dep.target.module for dep, _ in group if dep.target.module in unsafe_ops]
        if not ops_in_group:
            continue
        kind = type(ops_in_group[0]).__name__.strip("_").replace("Op", "").lower()
        for dep, _ in group:
            layer = dep.target.module
            if isinstance(layer, root_types) and dg.is_out_channel_pruning_fn(dep.handler):
                found[layer] = f"its channels reach a {kind} along the channel dimension"
    return found


def fix_rounding(pruner: tp.pruner.MetaPruner) -> None:
    """Replace Torch-Pruning's ``round_to`` rounding, which has two faults.

    It rounds the kept channels *down* to a multiple of ``round_to`` (its documentation says
    "nearest"), so a layer asked to keep 6 of 12 channels keeps 0 (and is then silently
    skipped), and ratio 0.3 of a 32-channel layer keeps 16, as much as ratio 0.5. Here the
    kept count goes to the *nearest* multiple (halfway: the larger), never to 0 and never
    above the layer's width: 22 of 32 keeps 24, 6 of 12 keeps 8. And for grouped
    convolutions it mixes units (the count to prune is per channel group, the layer width
    is not), emptying the layer; here the kept width is a multiple of lcm(round_to, groups).

    A *global* threshold is not a per-layer request: where it falls above every score of a
    layer, the layer keeps one step (``round_to``, or one channel group) of its best channels
    instead of vanishing, as Network Slimming's implementations floor each layer's width.
    """
    if pruner.global_pruning and not pruner.round_to:
        pruner.round_to = 1  # Torch-Pruning only calls _round_to when round_to is set
    dg = pruner.DG
    channel_groups = {group[0].dep.target.module: pruner._get_channel_groups(group)
                      for group in dg.get_all_groups(ignored_layers=pruner.ignored_layers,
                                                     root_module_types=pruner.root_module_types)}
    last: dict[str, Any] = {}
    # The pruner asks for the root layer's width right before rounding: remember which layer.
    for attr in ("get_out_channels", "get_in_channels"):
        def asked(module_or_node, _orig=getattr(dg, attr)):
            last["module"] = getattr(module_or_node, "module", module_or_node)
            return _orig(module_or_node)
        setattr(dg, attr, asked)

    def round_to(n_pruned: int, current: int, multiple: int) -> int:
        groups = channel_groups.get(last.get("module"), 1) or 1
        units = current // groups  # n_pruned counts these
        if n_pruned >= units and not pruner.global_pruning:
            return units  # the ratio itself removes everything: refuse_emptying names it
        keep = (units - n_pruned) * groups
        step = math.lcm(multiple, groups)
        rounded = min((keep + step // 2) // step * step, current)
        if rounded == 0:
            rounded = min(step, current)
        return units - rounded // groups

    pruner._round_to = round_to


def refuse_emptying(pruner: tp.pruner.MetaPruner) -> None:
    """Make Torch-Pruning raise, instead of silently skipping, a group that would lose every channel."""
    dg = pruner.DG
    check = dg.check_pruning_group

    def strict(group) -> bool:
        if check(group):
            return True
        emptied = []
        for dep, idxs in group:
            out = dg.is_out_channel_pruning_fn(dep.handler)
            n = dg.get_out_channels(dep.target.module) if out else dg.get_in_channels(dep.target.module)
            if n is not None and n <= len(idxs):
                emptied.append((dep.target.module in dg._module2name, dep.target.module, n))
        if not emptied:
            raise EmptyLayerError("pruning would remove every channel of a layer; lower compress.ratio")
        _, layer, n = max(emptied, key=lambda e: e[0])  # name a user layer over a traced op
        name = dg._module2name.get(layer, type(layer).__name__)
        raise EmptyLayerError(
            f"pruning would remove every channel of layer '{name}' ({n} channels, "
            f"round_to={pruner.round_to}); lower compress.ratio/target_macs, lower "
            f"compress.round_to, or list it in compress.ignored_layers")

    dg.check_pruning_group = strict


def output_shape(model: nn.Module, example: torch.Tensor) -> tuple[int, ...]:
    """Output shape of ``model`` on a batch of two copies of ``example`` (eval mode)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(_batch2(example))
    model.train(was)
    return tuple(out.shape)


def _batch2(example: torch.Tensor) -> torch.Tensor:
    return example[:1].repeat(2, *[1] * (example.dim() - 1))


def check_still_runs(model: nn.Module, example: torch.Tensor, expected_shape: tuple[int, ...]) -> None:
    """Run the pruned model; a failure or a changed output shape names the layer at fault."""
    entered: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    def enter(mod, _inp) -> None:  # hooks return None: a value would replace the input/output
        entered.append(names[mod])

    def leave(_mod, _inp, _out) -> None:
        entered.pop()

    children = [m for m in model.modules() if m is not model]
    hooks = [m.register_forward_pre_hook(enter) for m in children]
    hooks += [m.register_forward_hook(leave) for m in children]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(_batch2(example))
    except Exception as err:
        where = f" in layer '{entered[-1]}'" if entered else ""
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CompressionError(
            f"the pruned model no longer runs{where} ({first}): its forward depends on a channel "
            f"count; list the layers that feed it in compress.ignored_layers") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    if tuple(out.shape) != tuple(expected_shape):
        raise CompressionError(
            f"the pruned model's output shape changed from {tuple(expected_shape)} to "
            f"{tuple(out.shape)}: its forward depends on a channel count; list the layers "
            f"before the output in compress.ignored_layers")
