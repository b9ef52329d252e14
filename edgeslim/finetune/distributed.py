"""Training across processes with PyTorch's own engine: torchrun + DistributedDataParallel.

edgeslim does not launch or coordinate ranks itself: ``edgeslim run --nproc N`` re-executes
under ``torchrun`` (and multi-machine runs use torchrun's rendezvous arguments directly).
Inside a rank, :func:`init_from_env` joins the process group (``gloo`` on CPU; with
CUDA, ``nccl`` for CUDA tensors and ``gloo`` for CPU ones, each rank on ``cuda:LOCAL_RANK``)
and the training loop uses :func:`prepare` to get a DDP-wrapped model whose
BatchNorm layers compute statistics over the *global* batch, so a 2-process run equals a
1-process run with the same global batch up to floating-point tolerance.

Example (what the training loop does)::

    dist_ctx = prepare(model)            # no-op in a single process
    logits = dist_ctx.module(x)          # DDP forward: gradients averaged across ranks
    dist_ctx.restore()                   # plain BatchNorm layers again, for saving
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def world() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(timeout_s: float = 600.0) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; returns (rank, world)."""
    rank, size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if size > 1 and not dist.is_initialized():
        backend = "gloo"
        if torch.cuda.is_available():
            # each rank owns cuda:LOCAL_RANK; CUDA tensors reduce over NCCL and CPU ones (the
            # metric sums, a CPU placement's BatchNorm) over gloo, so either placement works
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return rank, size


def finish() -> None:
    """Leave the process group (all ranks together) once the training stages are done."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks (identity in a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


class _GlobalBatchNorm(torch.autograd.Function):
    """Batch normalization over the global batch, with SyncBatchNorm's analytic backward.

    Letting autograd differentiate the explicit formula is exact in float64 but loses
    several digits in float32 (the mean and variance terms cancel); the closed form
    dx = γ·invstd/N · (N·dy − Σdy − x̂·Σ(dy·x̂)) does not.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        c = x.shape[1]
        shape = (1, c, 1, 1)
        first = torch.cat([x.sum((0, 2, 3)), x.new_tensor([x.numel() / c])])
        dist.all_reduce(first)
        n = first[-1]
        mean = first[:c] / n
        centred = x - mean.view(shape)
        var = (centred * centred).sum((0, 2, 3))
        dist.all_reduce(var)
        var = var / n
        invstd = torch.rsqrt(var + eps)
        xhat = centred * invstd.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.n = n
        y = xhat * weight.view(shape) + bias.view(shape)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar):
        xhat, invstd, weight = ctx.saved_tensors
        c = dy.shape[1]
        shape = (1, c, 1, 1)
        sum_dy = dy.sum((0, 2, 3))
        sum_dy_xhat = (dy * xhat).sum((0, 2, 3))
        total = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(total)
        n = ctx.n
        dx = (weight * invstd).view(shape) / n * (
            n * dy - total[:c].view(shape) - xhat * total[c:].view(shape))
        # parameter gradients stay local: DDP averages them across ranks
        return dx, sum_dy_xhat, sum_dy, None


class GlobalBatchNorm2d(nn.modules.batchnorm._BatchNorm):
    """BatchNorm2d whose batch statistics span all ranks (CPU + gloo).

    ``nn.SyncBatchNorm`` only runs on GPUs; this is the same computation for gloo.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected 4D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        c = x.shape[1]
        weight = self.weight if self.affine else x.new_ones(c)
        bias = self.bias if self.affine else x.new_zeros(c)
        y, mean, var = _GlobalBatchNorm.apply(x, weight, bias, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                n = x.numel() / c * dist.get_world_size()
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean, alpha=m)
                self.running_var.mul_(1 - m).add_(var * n / (n - 1), alpha=m)
        return y


def _swap_bn(model: nn.Module, cls: type = GlobalBatchNorm2d) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace every BatchNorm2d by a ``cls`` (GlobalBatchNorm2d, or SyncBatchNorm on GPUs)
    sharing its tensors; :meth:`DistributedModel.restore` puts the originals back."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                g = cls(child.num_features, child.eps, child.momentum, child.affine,
                        child.track_running_stats)
                g.weight, g.bias = child.weight, child.bias
                g.running_mean, g.running_var = child.running_mean, child.running_var
                g.num_batches_tracked = child.num_batches_tracked
                setattr(parent, name, g)
                swapped.append((parent, name, child))
    return swapped


@dataclass
class DistributedModel:
    module: nn.Module  # what the loop calls: DDP-wrapped under torchrun, else the model
    rank: int = 0
    size: int = 1
    _swapped: list = field(default_factory=list)

    def restore(self) -> None:
        """Put the original BatchNorm modules back (their tensors were trained in place)."""
        for parent, name, original in self._swapped:
            setattr(parent, name, original)
        self._swapped = []


def prepare(model: nn.Module) -> DistributedModel:
    rank, size = world()
    if size == 1 or not dist.is_initialized():
        return DistributedModel(model)
    device = next(model.parameters()).device
    if device.type == "cuda":  # the placement put this rank's model on cuda:LOCAL_RANK
        swapped = _swap_bn(model, nn.SyncBatchNorm)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index],
                                                  output_device=device.index, broadcast_buffers=False)
    else:
        swapped = _swap_bn(model)
        ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    return DistributedModel(ddp, rank, size, swapped)
