"""Latency-aware channel allocation, in the spirit of energy-aware pruning (Yang et al. 2017,
"Designing Energy-Efficient Convolutional Neural Networks using Energy-Aware Pruning").

Uniform pruning removes the same fraction of every layer, so it spends the budget where
channels are cheap to run as readily as where they are expensive. Here every layer is
timed in ONNX Runtime (see :mod:`edgeslim.compress.layer_latency`) at full width and with
``latency_probe`` of its output or input channels removed; that gives each channel group
a measured latency saving per channel. A greedy allocator then removes, step by step
(``round_to`` channels at a time), the channels that buy the most latency for the least
L1 importance, until the same overall budget as the other criteria is spent: ``ratio`` of
all prunable channels, or ``target_macs`` of the MACs. Importance is counted LAMP-style
(relative to what is left of the layer) and in every layer a channel spans, so the greedy
does not hollow out one cheap layer (measured on a digits resnet20 at 10% of channels:
95.6% accuracy before fine-tuning vs 86.7% for uniform l1; with plain per-group mean
importance it emptied stage 1 and fell to 15%). The per-group ratios go to the shared
pruner, which removes the lowest-L1 channels of each group.

Latency is measured for the ``cpu`` target's runtime (ONNX Runtime CPU, batch 1, the
target's thread count unless ``latency_threads`` is set); other targets are not timed here.
Each layer is timed alone, in its own graph, so what a whole network pays for channel
counts that are not multiples of its kernels' block is not seen: on an AVX-512 Xeon a
resnet20 at ratio 0.5 ran INT8 in ONNX Runtime at 0.341 ms with ``round_to: 8`` and
0.244 ms with ``round_to: 16`` (benchmarks/results/alignment.md). On such a host
``edgeslim plan`` aligns this criterion to 16.

Example::

    edgeslim run --set compress.method=latency --set compress.target_macs=0.5
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch
import torch.nn as nn
import torch_pruning as tp
from pydantic import BaseModel, ConfigDict, Field
from torch_pruning import ops

from edgeslim.compress.base import CompressJob, register_method
from edgeslim.compress.layer_latency import LayerShape, LayerTimer
from edgeslim.compress.pruner import (StructuredMethod, _make_pruner, count_macs_params,
                                      prune_structured, resolve_ignored)
from edgeslim.compress.safety import channel_indexing_layers
from edgeslim.errors import CompressionError
from edgeslim.targets.ort_runner import usable_cores


class LatencyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_probe: float = Field(0.5, gt=0, lt=1)  # fraction of a layer's channels removed to measure its saving
    latency_repeats: int = Field(20, ge=3)  # timed runs per layer variant (median)
    latency_threads: Optional[int] = Field(None, ge=1)  # default: the cpu target's (all usable cores)


class _Layer:
    """One conv/linear touched by pruning: its groups, measured latency model and MACs."""

    def __init__(self, shape: LayerShape, timer: LayerTimer, probe: float):
        self.shape, self.out_group, self.in_group = shape, None, None
        self.depthwise = shape.kind == "conv" and shape.groups == shape.cin == shape.cout > 1
        full = timer.time(shape)
        self.full_ms = full

        def slope(cin: int, cout: int, removed: float) -> float:
            # latency saved per unit fraction of channels removed, from one measured point
            saved = 1.0 - timer.time(shape.with_widths(cin, cout)) / full if full > 0 else 0.0
            return min(1.0, max(0.0, saved / removed)) if removed > 0 else 0.0

        unit = shape.groups if shape.groups > 1 and not self.depthwise else 1
        cout = _shrink(shape.cout, probe, unit)
        cin = _shrink(shape.cin, probe, unit)
        if self.depthwise:
            self.s_out, self.s_in = slope(cout, cout, 1 - cout / shape.cout), 0.0
        else:
            self.s_out = slope(shape.cin, cout, 1 - cout / shape.cout)
            self.s_in = slope(cin, shape.cout, 1 - cin / shape.cin)

    def ms(self, keep: dict[int, float]) -> float:
        xo = keep.get(self.out_group, 1.0)
        xi = keep.get(self.in_group, 1.0)
        if self.depthwise:  # one group sets both widths, whichever side the graph lists it on
            return self.full_ms * (1 - self.s_out * (1 - min(xo, xi)))
        return self.full_ms * (1 - self.s_out * (1 - xo)) * (1 - self.s_in * (1 - xi))

    def macs(self, keep: dict[int, float]) -> float:
        xo = keep.get(self.out_group, 1.0)
        xi = keep.get(self.in_group, 1.0)
        if self.depthwise:
            return self.shape.macs() * min(xo, xi)
        return self.shape.macs() * xo * xi


def _shrink(n: int, probe: float, unit: int) -> int:
    return max(unit, int(round(n * (1 - probe) / unit)) * unit)


class _Group:
    def __init__(self, name: str, channels: int, importance: torch.Tensor, step: int):
        self.name, self.channels, self.keep = name, channels, channels
        # LAMP-style cost (Lee et al. 2021): a channel's importance relative to what remains of
        # its layer once the weaker ones are gone. The last channels of a layer cost ~1 each,
        # the first ~1/C: thinning one layer to nothing gets ever dearer, so the budget spreads.
        imp = importance.sort().values.clamp_min(1e-12)
        remaining = imp.flip(0).cumsum(0).flip(0)
        self.cumulative = torch.cat([torch.zeros(1), (imp / remaining).cumsum(0)])
        # keep counts allowed: multiples of `step`, at least 5% of the channels (the pruner's cap)
        floor = max(step, math.ceil(0.05 * channels))
        self.allowed = [channels] + [k for k in range((channels - 1) // step * step, 0, -step) if k >= floor]
        self.layers: list[_Layer] = []

    def next_keep(self) -> Optional[int]:
        i = self.allowed.index(self.keep)
        return self.allowed[i + 1] if i + 1 < len(self.allowed) else None

    def cost(self, new_keep: int) -> float:
        """Importance lost, counted in every layer the channels live in (as the latency gain is):
        a residual stream's channel costs as many layers as it spans, not one."""
        c = self.cumulative
        return float(c[self.channels - new_keep] - c[self.channels - self.keep]) * max(1, len(self.layers))


def _groups(model: nn.Module, job: CompressJob, ignored: list[nn.Module]):
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=job.example_inputs)
    expanded = [m for layer in ignored for m in layer.modules()]
    expanded += [m for layer in channel_indexing_layers(dg, expanded) for m in layer.modules()]
    return dg, list(dg.get_all_groups(ignored_layers=expanded, root_module_types=(ops.TORCH_CONV, ops.TORCH_LINEAR)))


def _input_shapes(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, tuple[int, ...]]:
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(mod, inp) -> None:  # a pre-hook's return value would replace the input
        shapes.setdefault(mod, tuple(inp[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(example[:1])
    model.train(was)
    for h in hooks:
        h.remove()
    return shapes


def allocate(groups: list[_Group], layers: list[_Layer], *, channel_budget: Optional[int],
             macs_budget: Optional[float]) -> bool:
    """Greedy: take the step with the most measured latency saved per unit of importance lost.

    Returns False when every group reached its narrowest width before the budget was spent."""
    keep = {i: 1.0 for i in range(len(groups))}
    removed_channels, removed_macs = 0, 0.0
    while True:
        if channel_budget is not None and removed_channels >= channel_budget:
            return True
        if macs_budget is not None and removed_macs >= macs_budget:
            return True
        best = None
        for i, g in enumerate(groups):
            new = g.next_keep()
            if new is None:
                continue
            trial = dict(keep)
            trial[i] = new / g.channels
            gain = sum(layer.ms(keep) - layer.ms(trial) for layer in g.layers)
            cost = g.cost(new)
            score = gain / (cost + 1e-6)
            if best is None or score > best[0]:
                macs = sum(layer.macs(keep) - layer.macs(trial) for layer in g.layers)
                best = (score, i, new, macs)
        if best is None:
            return False
        _, i, new, macs = best
        removed_channels += groups[i].keep - new
        removed_macs += macs
        groups[i].keep = new
        keep[i] = new / groups[i].channels


@register_method
class LatencyAware(StructuredMethod):
    name = "latency"
    description = ("structured: per-layer ratios from measured ONNX Runtime layer latency; prune where it "
                   "saves the most latency per unit of L1 importance")
    options = LatencyOptions

    def importance(self, model, job):
        return tp.importance.MagnitudeImportance(p=1)

    def apply(self, job: CompressJob) -> nn.Module:
        opts = job.options if isinstance(job.options, LatencyOptions) else LatencyOptions()
        model, cfg = job.model, job.cfg
        ignored = resolve_ignored(model, cfg.ignored_layers, job.spec.get("num_classes"))
        dg, tp_groups = _groups(model, job, ignored)
        names = {m: n for n, m in model.named_modules()}
        inputs = _input_shapes(model, job.example_inputs)
        timer = LayerTimer(threads=opts.latency_threads or usable_cores(), repeats=opts.latency_repeats)
        scorer = tp.importance.MagnitudeImportance(p=1)
        step = cfg.round_to or 1
        groups: list[_Group] = []
        layers: dict[nn.Module, _Layer] = {}
        for group in tp_groups:
            root = group[0].dep.target.module
            imp = scorer(group)
            if imp is None:
                continue
            grouped = [d.target.module.groups for d, _ in group if isinstance(d.target.module, nn.Conv2d)
                       and 1 < d.target.module.groups < d.target.module.out_channels]
            g = _Group(names[root], dg.get_out_channels(root), imp.float(),
                       math.lcm(step, *grouped) if grouped else step)
            index = len(groups)
            groups.append(g)
            for dep, _ in group:
                m = dep.target.module
                shape = LayerShape.of(m, inputs[m]) if m in inputs else None
                if shape is None:
                    continue
                if m not in layers:
                    layers[m] = _Layer(shape, timer, opts.latency_probe)
                layer = layers[m]
                if dg.is_out_channel_pruning_fn(dep.handler):
                    layer.out_group = index
                elif dg.is_in_channel_pruning_fn(dep.handler):
                    layer.in_group = index
                if layer not in g.layers:
                    g.layers.append(layer)
        if not groups:
            raise CompressionError("compress.method 'latency': no prunable layer groups in this model")
        total_channels = sum(g.channels for g in groups)
        base_macs, _ = count_macs_params(model, job.example_inputs)
        layer_macs = sum(layer.shape.macs() for layer in layers.values())  # the model's conv/linear MACs
        target = cfg.target_macs
        budget = target * layer_macs if target is not None else None
        ratio_dict: dict[str, float] = {}
        for _ in range(5):  # target_macs: correct the layer-MAC model against the real count
            for g in groups:
                g.keep = g.channels
            reached = allocate(groups, list(layers.values()),
                               channel_budget=None if target is not None else math.ceil(cfg.ratio * total_channels),
                               macs_budget=budget)
            if not reached and target is None:
                raise CompressionError(f"compress.ratio={cfg.ratio} cannot be met by 'latency': every group is "
                                       f"at the narrowest width round_to={cfg.round_to} allows")
            # (k - 0.5)/C: the pruner keeps int(C * (1 - r)) = C - k channels, safe from float error
            ratio_dict = {g.name: (g.channels - g.keep - 0.5) / g.channels if g.keep < g.channels else 0.0
                          for g in groups}
            if target is None:
                break
            removed = self._trial_macs_removed(job, ratio_dict, base_macs)
            if removed >= target - 0.005:
                break
            if not reached:
                raise CompressionError(f"compress.target_macs={target} cannot be reached by 'latency': at the "
                                       f"narrowest widths round_to={cfg.round_to} allows, {removed:.1%} of MACs go")
            budget += (target - removed) * layer_macs
        keep = {i: g.keep / g.channels for i, g in enumerate(groups)}
        job.notes["latency"] = {
            "runtime": f"onnxruntime CPUExecutionProvider, {timer.threads} threads, batch 1",
            "layers_timed": timer.measured,
            "estimated_ms_before": round(sum(layer.full_ms for layer in layers.values()), 4),
            "estimated_ms_after": round(sum(layer.ms(keep) for layer in layers.values()), 4),
            "ratios": {n: round(r, 4) for n, r in ratio_dict.items()},
        }
        return prune_structured(job, self.importance, ratio=0.0, ratio_dict=ratio_dict)

    def _trial_macs_removed(self, job: CompressJob, ratio_dict: dict[str, float], base_macs: int) -> float:
        trial = copy.deepcopy(job.model)
        modules = dict(trial.named_modules())
        ignored = resolve_ignored(trial, job.cfg.ignored_layers, job.spec.get("num_classes"))
        pruner = _make_pruner(trial, job, self.importance(trial, job), 0.0, 1, ignored,
                              {modules[n]: r for n, r in ratio_dict.items()})
        pruner.step()
        macs, _ = count_macs_params(trial, job.example_inputs)
        return 1 - macs / base_macs
