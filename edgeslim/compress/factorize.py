"""Low-rank factorization: ``tucker`` and ``cp`` for convs, ``svd`` for linear layers.

Each factorized layer is replaced by an ``nn.Sequential`` of smaller layers, so the model
has physically fewer parameters and MACs (checkpoint.py rebuilds the Sequential on load):

- ``tucker`` (Kim et al., ICLR 2016): Tucker-2 over the output and input channel modes,
  ``conv k×k (I→O)`` → ``1×1 (I→r_in)`` → ``k×k (r_in→r_out)`` → ``1×1 (r_out→O)``.
  Ranks from VBMF (``rank_method: vbmf``, the paper's choice), from the singular values
  holding ``energy`` of each unfolding's energy (``rank_method: energy``), or ``ranks``.
- ``cp`` (Lebedev et al., ICLR 2015): rank-R CP by ALS, ``1×1 (I→R)`` → depthwise ``k×1``
  → depthwise ``1×k`` → ``1×1 (R→O)``. R from ``ranks``, else the largest R that removes
  ``compress.ratio`` of each layer's parameters.
- ``svd``: ``Linear (I→O)`` → ``Linear (I→r)`` → ``Linear (r→O)``, ranks as for tucker.

By default every eligible layer is factorized (tucker/cp: ``Conv2d`` with ``groups=1``
and a kernel larger than 1×1; svd: ``Linear``), the classifier included (its outputs do
not change), ``compress.ignored_layers`` excepted; a layer whose factorization would not
be smaller is left alone and listed in the report. ``layers`` names the layers explicitly.
BatchNorm statistics are re-estimated afterwards (``compress.bn_recalibration``), and
fine-tuning (``finetune.epochs``) is optional: at high energy the factorized model is
already close to the original.

Example::

    edgeslim run --set compress.method=tucker --set compress.rank_method=energy --set compress.energy=0.8
"""

from __future__ import annotations

from typing import Literal, Optional, Union

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field

from edgeslim.compress.base import CompressJob, Method, register_method
from edgeslim.compress import lowrank
from edgeslim.errors import CompressionError
from edgeslim.registry import suggest
from edgeslim.compress.pruner import recalibrate_bn

RankSpec = Union[int, list[int]]


class FactorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank_method: Literal["vbmf", "energy"] = "vbmf"
    energy: float = Field(0.9, gt=0, le=1)  # for rank_method=energy
    # Fixed ranks instead: one int for every layer (capped at its size), or per layer
    # {name: r} / {name: [r_out, r_in]} (must fit the layer).
    ranks: Optional[Union[int, dict[str, RankSpec]]] = None
    layers: Optional[list[str]] = None  # factorize exactly these (default: every eligible layer)


class TuckerOptions(FactorOptions):
    refine_iters: int = Field(2, ge=0)  # HOOI rounds after the HOSVD


class CpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ranks: Optional[Union[int, dict[str, int]]] = None  # default: from compress.ratio
    layers: Optional[list[str]] = None
    iterations: int = Field(50, ge=1)  # ALS sweeps


def _replace(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _weight(m: nn.Module) -> torch.Tensor:
    return m.weight.detach().to(torch.float64).cpu()


def _tensor(a: torch.Tensor, like: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(a.contiguous().to(device=like.device, dtype=like.dtype))


def _conv(i: int, o: int, k, *, like: nn.Conv2d, weight: torch.Tensor, bias: bool = False, groups: int = 1,
          stride=1, padding=0, dilation=1) -> nn.Conv2d:
    conv = nn.Conv2d(i, o, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                     padding_mode=like.padding_mode)
    conv.weight = _tensor(weight, like.weight)
    if bias and like.bias is not None:
        conv.bias = nn.Parameter(like.bias.detach().clone())
    return conv


class _Factorize(Method):
    family = "factorize"
    supported: tuple[type, ...] = (nn.Conv2d,)
    what = "Conv2d with groups=1"

    def eligible(self, name: str, m: nn.Module, explicit: bool) -> str | None:
        """None when ``m`` can be factorized, else why not."""
        if type(m) not in self.supported:
            return f"it is {type(m).__name__}"
        if isinstance(m, nn.Conv2d):
            if m.groups != 1:
                return f"it is a grouped conv (groups={m.groups})"
            if m.kernel_size == (1, 1) and not explicit:
                return "1x1 kernel"
        return None

    def select(self, model: nn.Module, job: CompressJob, opts) -> dict[str, nn.Module]:
        modules = dict(model.named_modules())
        names = list(opts.layers or [])
        fixed = opts.ranks if isinstance(opts.ranks, dict) else {}
        for name in names + list(fixed):
            if name not in modules or not name:
                raise CompressionError(f"compress.layers/ranks: no layer named '{name}'{suggest(name, list(modules))}")
        for name in names + list(fixed):
            why = self.eligible(name, modules[name], explicit=True)
            if why:
                hint = "; use svd for Linear layers" if isinstance(modules[name], nn.Linear) else \
                       "; use tucker or cp for convs" if isinstance(modules[name], nn.Conv2d) else ""
                raise CompressionError(f"{self.name} cannot factorize layer '{name}' ({why}): it supports "
                                       f"{self.what}{hint}")
        if names:
            return {n: modules[n] for n in dict.fromkeys(names + list(fixed))}
        ignored = set(job.cfg.ignored_layers)
        for name in ignored:
            if name not in modules:
                raise CompressionError(f"compress.ignored_layers: no layer named '{name}'{suggest(name, list(modules))}")
        return {n: m for n, m in modules.items()
                if n and (n in fixed or n not in ignored and self.eligible(n, m, explicit=False) is None)}

    def factorize(self, name: str, m: nn.Module, job: CompressJob, opts) -> tuple[nn.Module | None, dict]:
        raise NotImplementedError

    def apply(self, job: CompressJob) -> nn.Module:
        opts = job.options or self.options()
        model = job.model
        chosen = self.select(model, job, opts)
        if not chosen:
            raise CompressionError(f"{self.name}: the model has no layer it can factorize ({self.what})")
        done, skipped = {}, {}
        for name, m in chosen.items():
            new, facts = self.factorize(name, m, job, opts)
            if new is None:
                skipped[name] = facts["skipped"]
                continue
            _replace(model, name, new)
            done[name] = facts
        job.notes.update({"factorized": done, "skipped": skipped})
        if not done:
            raise CompressionError(f"{self.name}: no layer gets smaller at these ranks "
                                   f"({len(skipped)} tried); lower compress.energy or set compress.ranks")
        job.log(f"{self.name}: factorized {len(done)} layers, left {len(skipped)} unchanged")
        if job.cfg.bn_recalibration and job.data is not None:
            # truncated ranks drop energy from every factorized output: BN statistics follow
            recalibrate_bn(model, job.data.train_loader(job.batch_size, seed=job.seed), job.cfg.recalibration_batches)
        return model


def _channel_ranks(name: str, m: nn.Module, opts, dims: tuple[int, int], matrices) -> tuple[list[int], bool]:
    """(ranks per mode, fixed?) from ``ranks`` or the rank method; ``dims`` are the mode sizes."""
    if isinstance(opts.ranks, int):
        if opts.ranks < 1:
            raise CompressionError(f"compress.ranks must be >= 1, got {opts.ranks}")
        return [min(opts.ranks, d) for d in dims], True
    if isinstance(opts.ranks, dict) and name in opts.ranks:
        spec = opts.ranks[name]
        ranks = [spec] * len(dims) if isinstance(spec, int) else list(spec)
        if len(ranks) != len(dims):
            raise CompressionError(f"compress.ranks['{name}'] needs {len(dims)} ranks, got {spec}")
        labels = ("output channels", "input channels") if isinstance(m, nn.Conv2d) else \
            ("singular values (the smaller of its in and out features)",)
        for r, d, label in zip(ranks, dims, labels):
            if not 1 <= r <= d:
                what = "is larger than the layer" if r > d else "must be at least 1"
                raise CompressionError(f"compress.ranks: rank {r} for layer '{name}' {what} "
                                       f"(1..{d}: its {d} {label})")
        return ranks, True
    mats = matrices()
    if opts.rank_method == "energy":
        return [lowrank.energy_rank(a, opts.energy) for a in mats], False
    return [lowrank.evbmf_rank(a) for a in mats], False


@register_method
class Tucker(_Factorize):
    name = "tucker"
    description = "factorize: Tucker-2 of conv kernels into 1x1 -> kxk -> 1x1 (VBMF or energy ranks)"
    options = TuckerOptions

    def factorize(self, name, m: nn.Conv2d, job, opts):
        w = _weight(m)
        O, I, kh, kw = w.shape
        (r_out, r_in), fixed = _channel_ranks(name, m, opts, (O, I), lambda: [lowrank.unfold(w, 0), lowrank.unfold(w, 1)])
        before = O * I * kh * kw
        after = I * r_in + r_in * r_out * kh * kw + r_out * O
        if after >= before and not (fixed and isinstance(opts.ranks, dict)):
            return None, {"skipped": f"ranks {r_out}/{r_in} would not reduce its {before} weights"}
        core, u_out, u_in = lowrank.tucker2(w, r_out, r_in, opts.refine_iters)
        seq = nn.Sequential(
            _conv(I, r_in, 1, like=m, weight=u_in.T[:, :, None, None]),
            _conv(r_in, r_out, m.kernel_size, like=m, weight=core, stride=m.stride, padding=m.padding,
                  dilation=m.dilation),
            _conv(r_out, O, 1, like=m, weight=u_out[:, :, None, None], bias=m.bias is not None),
        )
        err = lowrank.relative_error(w, lowrank.tucker2_reconstruct(core, u_out, u_in))
        return seq, {"ranks": [r_out, r_in], "weights_before": before, "weights_after": after,
                     "relative_error": round(err, 5)}


@register_method
class CP(_Factorize):
    name = "cp"
    description = "factorize: CP of conv kernels into 1x1 -> kx1 dw -> 1xk dw -> 1x1 (ALS)"
    options = CpOptions

    def factorize(self, name, m: nn.Conv2d, job, opts):
        w = _weight(m)
        O, I, kh, kw = w.shape
        before = O * I * kh * kw
        per_rank = I + kh + kw + O
        if isinstance(opts.ranks, dict) and name in opts.ranks or isinstance(opts.ranks, int):
            r = opts.ranks[name] if isinstance(opts.ranks, dict) else opts.ranks
            if r < 1 or r * per_rank >= before:
                raise CompressionError(f"compress.ranks: CP rank {r} for layer '{name}' is larger than the layer "
                                       f"(a rank-{r} factorization has {r * per_rank} weights, the layer "
                                       f"{before}; use 1..{max(1, (before - 1) // per_rank)})")
        else:
            r = int((1.0 - job.cfg.ratio) * before // per_rank)
            if r < 1:
                return None, {"skipped": f"no CP rank keeps {100 * (1 - job.cfg.ratio):.0f}% of its {before} weights"}
        a, b, c, d = lowrank.cp_als(w, r, opts.iterations, seed=job.seed)
        sh, sw = m.stride
        ph, pw = m.padding
        dh, dw = m.dilation
        seq = nn.Sequential(
            _conv(I, r, 1, like=m, weight=b.T[:, :, None, None]),
            _conv(r, r, (kh, 1), like=m, weight=c.T[:, None, :, None], groups=r, stride=(sh, 1), padding=(ph, 0),
                  dilation=(dh, 1)),
            _conv(r, r, (1, kw), like=m, weight=d.T[:, None, None, :], groups=r, stride=(1, sw), padding=(0, pw),
                  dilation=(1, dw)),
            _conv(r, O, 1, like=m, weight=a[:, :, None, None], bias=m.bias is not None),
        )
        err = lowrank.relative_error(w, lowrank.cp_reconstruct([a, b, c, d]))
        return seq, {"rank": r, "weights_before": before, "weights_after": r * per_rank,
                     "relative_error": round(err, 5)}


@register_method
class SVD(_Factorize):
    name = "svd"
    description = "factorize: truncated SVD of Linear layers into two thinner Linears"
    options = FactorOptions
    supported = (nn.Linear,)
    what = "Linear"

    def factorize(self, name, m: nn.Linear, job, opts):
        w = _weight(m)
        O, I = w.shape
        (r,), fixed = _channel_ranks(name, m, opts, (min(O, I),), lambda: [w])
        before, after = O * I, r * (O + I)
        if after >= before and not (fixed and isinstance(opts.ranks, dict)):
            return None, {"skipped": f"rank {r} would not reduce its {before} weights"}
        first, second = lowrank.svd_factors(w, r)
        down = nn.Linear(I, r, bias=False)
        down.weight = _tensor(second, m.weight)
        up = nn.Linear(r, O, bias=m.bias is not None)
        up.weight = _tensor(first, m.weight)
        if m.bias is not None:
            up.bias = nn.Parameter(m.bias.detach().clone())
        err = lowrank.relative_error(w, first @ second)
        return nn.Sequential(down, up), {"ranks": [r], "weights_before": before, "weights_after": after,
                                         "relative_error": round(err, 5)}
