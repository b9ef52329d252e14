"""Pruning at initialization: ``snip``, ``grasp``, ``synflow`` (and ``random_init``).

Each scores the weights of a *freshly initialized* network (the baseline architecture,
seeded from the recipe's seed — not the trained baseline), removes ``compress.ratio`` of
the prunable weights, then trains the sparse network from scratch with the baseline's
hyperparameters for ``epochs`` (default ``baseline.epochs``); the masks hold throughout.

- ``snip`` (Lee et al. 2019): connection sensitivity |g ⊙ w| on ``batches`` batch(es).
- ``grasp`` (Wang et al. 2020): gradient-flow preservation; removes the weights with the
  largest −w ⊙ Hg (H the Hessian, g the gradient, logits divided by ``temperature``).
- ``synflow`` (Tanaka et al. 2020): data-free; scores |∂R/∂w ⊙ w| where R is the summed
  output of the network with every parameter replaced by its absolute value on an
  all-ones input, re-scored over ``iterations`` rounds of exponentially increasing
  sparsity so no layer collapses. Computed in float64 (R grows with depth).
- ``random_init``: random masks at the same sparsity, the baseline the others must beat.

Example::

    edgeslim run --set compress.method=synflow --set compress.ratio=0.9 --set compress.scope=global
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.compress.base import CompressJob, register_method
from edgeslim.compress.masks import (Masks, MaskKeeper, SparseMethod, apply_masks, check_sparsity,
                                     score_masks)
from edgeslim.errors import CompressionError


class InitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: Optional[int] = Field(None, ge=0)  # training of the sparse net; default baseline.epochs


class DataInitOptions(InitOptions):
    batches: int = Field(1, ge=1)  # training batches the saliency is computed on


class GraspOptions(DataInitOptions):
    temperature: float = Field(200.0, gt=0)  # logits / T before the loss, as in the paper


class SynflowOptions(InitOptions):
    iterations: int = Field(100, ge=1)  # prune-rescore rounds


def _batches(job: CompressJob, n: int):
    for i, (x, y) in enumerate(job.data.train_loader(job.batch_size, seed=job.seed)):
        if i >= n:
            break
        yield x, y


class _AtInit(SparseMethod):
    trains = True

    def schedules(self, cfg) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("baseline",) + super().schedules(cfg)))  # trains from scratch
    options = InitOptions

    def masks(self, model: nn.Module, layers: dict[str, nn.Module], job: CompressJob,
              sparsity: float, opts) -> Masks:
        raise NotImplementedError

    def apply(self, job: CompressJob) -> nn.Module:
        sparsity = check_sparsity(job.cfg.ratio)
        trainer = job.require_trainer(self.name)
        if job.build_fresh is None:
            raise CompressionError(f"{self.name} prunes a fresh network and trains it: it needs "
                                   "CompressJob.build_fresh (the pipeline provides it)")
        opts = job.options or self.options()
        model = job.build_fresh()
        layers = self.prunable(model, job)
        state = copy.deepcopy(model.state_dict())  # scoring must not move the init (BN stats)
        masks = self.masks(model, layers, job, sparsity, opts)
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        apply_masks(model, masks)
        epochs = opts.epochs if opts.epochs is not None else trainer.epochs("baseline")
        job.notes.update({"pruned_at": "initialization", "train_epochs": epochs, "scope": job.cfg.scope})
        if epochs:
            job.log(f"{self.name}: training the {100 * sparsity:.0f}%-sparse network for {epochs} epochs")
            trainer.fit(model, schedule="baseline", epochs=epochs, after_step=MaskKeeper(masks),
                        description=f"{self.name} sparse training")
        self.record(model, layers, job, masks)
        return model


@register_method
class Snip(_AtInit):
    name = "snip"
    description = "prune at init: SNIP connection sensitivity |g*w| on one batch, then train"
    options = DataInitOptions

    def masks(self, model, layers, job, sparsity, opts):
        model.train()
        model.zero_grad(set_to_none=True)
        for x, y in _batches(job, opts.batches):
            F.cross_entropy(model(x), y).backward()
        scores = {n: (m.weight.grad * m.weight).detach().abs() for n, m in layers.items()}
        return score_masks(scores, sparsity, job.cfg.scope)


@register_method
class Grasp(_AtInit):
    name = "grasp"
    description = "prune at init: GraSP gradient-flow preservation (-w*Hg), then train"
    options = GraspOptions

    def masks(self, model, layers, job, sparsity, opts):
        model.train()
        names = list(layers)
        weights = [layers[n].weight for n in names]
        batches = list(_batches(job, opts.batches))
        g = [torch.zeros_like(w) for w in weights]
        for x, y in batches:  # g: the gradient, held constant
            grads = torch.autograd.grad(F.cross_entropy(model(x) / opts.temperature, y), weights)
            g = [a + b.detach() for a, b in zip(g, grads)]
        model.zero_grad(set_to_none=True)
        for x, y in batches:  # Hg = d(g·∇L)/dw, accumulated into .grad
            grads = torch.autograd.grad(F.cross_entropy(model(x) / opts.temperature, y), weights,
                                        create_graph=True)
            sum((a * b).sum() for a, b in zip(grads, g)).backward()
        # GraSP removes the largest -w⊙Hg, i.e. keeps the largest w⊙Hg.
        scores = {n: (w * w.grad).detach() for n, w in zip(names, weights)}
        return score_masks(scores, sparsity, job.cfg.scope)


@register_method
class Synflow(_AtInit):
    name = "synflow"
    description = "prune at init, data-free: iterative synaptic flow |dR/dw*w|, then train"
    options = SynflowOptions

    def masks(self, model, layers, job, sparsity, opts):
        net = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.abs_()
        modules = dict(net.named_modules())
        weights = {n: modules[n].weight for n in layers}
        x = torch.ones((1,) + tuple(job.example_inputs.shape[1:]), dtype=torch.float64)
        dense = {n: w.detach().clone() for n, w in weights.items()}
        masks: Masks | None = None
        for i in range(1, opts.iterations + 1):
            with torch.no_grad():
                for n, w in weights.items():
                    w.copy_(dense[n] if masks is None else dense[n] * masks[n])
            net.zero_grad(set_to_none=True)
            net(x).sum().backward()
            scores = {n: (w.grad * w).detach().abs() for n, w in weights.items()}
            # Exponential schedule: remaining fraction (1 - s)^(i / iterations).
            step_sparsity = 1.0 - (1.0 - sparsity) ** (i / opts.iterations)
            masks = score_masks(scores, step_sparsity, job.cfg.scope, previous=masks)
        return masks


@register_method
class RandomInit(_AtInit):
    name = "random_init"
    description = "prune at init: random masks, then train (the baseline snip/grasp/synflow must beat)"

    def masks(self, model, layers, job, sparsity, opts):
        g = torch.Generator().manual_seed(job.seed)
        return score_masks({n: torch.rand(m.weight.shape, generator=g) for n, m in layers.items()},
                           sparsity, job.cfg.scope)
