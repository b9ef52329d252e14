"""Network Slimming (Liu et al. 2017, "Learning Efficient Convolutional Networks through
Network Slimming", ICCV).

Every BatchNorm channel already has a learned scale γ. A sparsity-training phase adds
``λ·Σ|γ|`` to the loss, pushing the γ of channels the task does not need towards zero;
then every channel whose |γ| falls below one *global* threshold (the ``ratio`` quantile of
all scales, or whatever ``target_macs`` asks) is removed. Because the threshold is global,
layers lose different fractions of their channels: the network chooses its own widths.

λ defaults to the paper's values: 1e-4 for plain (VGG-style) networks, 1e-5 for networks
with residual additions, whose γ are coupled across a whole stage. Sparsity training uses
the recipe's fine-tuning settings (lr, optimizer) for ``sparsity_epochs`` epochs. Channel
groups without a BatchNorm (e.g. squeeze-excitation convs, an MLP head) have no γ and are
not pruned.

Example::

    edgeslim run --set compress.method=slimming --set compress.sparsity_epochs=2 \\
                 --set compress.slimming_lambda=1e-4
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn as nn
import torch_pruning as tp
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.compress.base import CompressJob, register_method
from edgeslim.compress.pruner import StructuredMethod, prune_structured
from edgeslim.errors import CompressionError

VGG_LAMBDA, RESIDUAL_LAMBDA = 1e-4, 1e-5


class SlimmingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # L1 weight on BatchNorm scales; null: 1e-5 for nets with residual adds, else 1e-4
    slimming_lambda: Optional[float] = Field(None, ge=0)
    sparsity_epochs: int = Field(2, ge=0)  # sparsity training before pruning (0: prune as is)


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


def has_residual_adds(model: nn.Module, example: torch.Tensor) -> bool:
    """True when the forward pass adds two computed tensors (a residual connection).

    Read from the autograd graph, so it works for any model, not only known names: an
    ``AddBackward0`` with two differentiable inputs is a tensor + tensor addition (conv
    and linear biases live inside their own backward nodes).
    """
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(example[:1])
    finally:
        model.train(was)
    seen, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        inputs = [f for f, _ in fn.next_functions if f is not None]
        if fn.name().startswith("AddBackward") and len(inputs) >= 2:
            return True
        stack.extend(inputs)
    return False


class _GammaImportance(tp.importance.BNScaleImportance):
    """Raw |γ| (no per-group normalization: one threshold must mean the same everywhere),
    times a (1 + 1e-5·noise) seeded tie-break so equal scales (an untrained net's γ=1) do not all fall on
    the threshold together and empty a layer."""

    def __init__(self, seed: int) -> None:
        super().__init__(normalizer=None)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, group):
        imp = super().__call__(group)
        return None if imp is None else imp * (1 + 1e-5 * torch.rand(len(imp), generator=self.generator))


@register_method
class Slimming(StructuredMethod):
    name = "slimming"
    description = ("structured: sparsity-train an L1 penalty on BatchNorm scales, then remove "
                   "channels below a global |gamma| threshold (Network Slimming)")
    options = SlimmingOptions

    def importance(self, model, job):
        return _GammaImportance(job.seed)

    def schedules(self, cfg) -> tuple[str, ...]:
        # sparsity training runs at the fine-tuning settings
        opts = self.options_of(cfg)
        own = ("finetune",) if opts.sparsity_epochs > 0 else ()
        return tuple(dict.fromkeys(own + super().schedules(cfg)))

    def apply(self, job: CompressJob) -> nn.Module:
        opts = job.options if isinstance(job.options, SlimmingOptions) else SlimmingOptions()
        model = job.model
        bns = batchnorms(model)
        if not bns:
            raise CompressionError(
                f"compress.method 'slimming' needs BatchNorm layers (it prunes by their scale "
                f"factors) but model '{job.spec.get('name', type(model).__name__)}' has none; "
                f"use l1, l2, taylor, hrank or latency")
        lam = opts.slimming_lambda
        if lam is None:
            lam = RESIDUAL_LAMBDA if has_residual_adds(model, job.example_inputs) else VGG_LAMBDA
        job.notes["slimming_lambda"] = lam
        if opts.sparsity_epochs > 0:
            def l1_on_gamma(_model, _x, _y, _logits) -> torch.Tensor:
                return lam * sum(bn.weight.abs().sum() for bn in bns)

            trainer = job.require_trainer(self.name)
            history = trainer.fit(model, schedule="finetune", epochs=opts.sparsity_epochs,
                                  loss_fn=l1_on_gamma, description="sparsity training")
            job.notes["sparsity_training"] = history
        gammas = torch.cat([bn.weight.detach().abs().flatten() for bn in bns])
        job.notes["gamma_below_1e-2"] = round(float((gammas < 1e-2).float().mean()), 4)
        # The threshold is global by definition of the method, whatever compress.scope says.
        global_job = dataclasses.replace(job, cfg=job.cfg.model_copy(update={"scope": "global"}))
        return prune_structured(global_job, self.importance, explain_global=False)
