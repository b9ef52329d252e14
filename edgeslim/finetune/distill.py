"""Knowledge distillation losses: response-, feature- and relation-based.

Each loss is a class in :data:`LOSSES`, built from a :class:`~edgeslim.recipe.DistillCfg`
with the student, the teacher and one example input (to find and check layers). The
teacher runs in eval mode under ``no_grad``; features of both models are captured with
forward hooks (:mod:`edgeslim.finetune.features`).

- ``hinton`` (Hinton et al. 2015): KL between softened outputs at temperature T, scaled
  by T², weighted α against the hard-label loss (which gets 1 - α).
- ``fitnet`` (Romero et al. 2015): learnable 1×1 conv regressors map student features
  to teacher features; MSE relative to the teacher features' mean square.
- ``attention`` (Zagoruyko & Komodakis 2017): squared L2 between normalized spatial
  attention maps (mean of squared activations over channels).
- ``rkd`` (Park et al. 2019): distance-wise and angle-wise relations between the
  samples of a batch, on the penultimate embeddings (input of the final Linear).

Example::

    cfg = DistillCfg(method="hinton", temperature=4, alpha=0.9)
    loss_fn, extra = build_distillation(cfg, student=small, baseline_dir=run / "00-baseline",
                                        example=torch.randn(2, 3, 32, 32))
    train(small, data, spec, loss_fn=loss_fn, extra_params=extra)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeslim.errors import CompressionError, RecipeError
from edgeslim.finetune.config import DistillCfg
from edgeslim.finetune.features import FeatureTap, eval_mode, final_linear, parse_pairs, probe
from edgeslim.models.checkpoint import STRUCTURE, load_model
from edgeslim.models.loading import build_model, load_weights
from edgeslim.registry import Registry



class DistillLoss(nn.Module):
    """One distillation loss. ``forward(s_logits, t_logits)`` is the weighted term,
    read from hooked features where the loss needs them; its own parameters (FitNet
    regressors) are trained with the student."""

    name: ClassVar[str]
    description: ClassVar[str]
    uses: ClassVar[tuple[str, ...]]  # the DistillCfg fields this loss reads
    hard_label_weight: float = 1.0  # weight of the hard-label cross-entropy next to this loss

    def __init__(self, cfg: DistillCfg, *, student: nn.Module, teacher: nn.Module,
                 example: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        self.taps: list[FeatureTap] = []

    @classmethod
    def options_help(cls) -> str:
        """The recipe fields this loss reads, with their defaults, on one line."""
        fields = DistillCfg.model_fields
        return ", ".join(f"{k}={fields[k].default!r}" for k in cls.uses)

    def close(self) -> None:
        """Remove the hooks this loss put on the student and teacher."""
        for tap in self.taps:
            tap.close()


LOSSES: Registry[type[DistillLoss]] = Registry("distillation loss")


def register_loss(cls: type[DistillLoss]) -> type[DistillLoss]:
    LOSSES.register(cls.name, cls)
    return cls


@register_loss
class Hinton(DistillLoss):
    name = "hinton"
    description = "response-based: KL to the teacher's soft targets at temperature T (x T^2), weight alpha"
    uses = ("temperature", "alpha")

    def __init__(self, cfg, *, student, teacher, example):
        super().__init__(cfg, student=student, teacher=teacher, example=example)
        self.hard_label_weight = 1.0 - cfg.alpha

    def forward(self, s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        t = self.cfg.temperature
        kl = F.kl_div(F.log_softmax(s_logits / t, 1), F.log_softmax(t_logits / t, 1),
                      reduction="batchmean", log_target=True)
        # T² keeps the soft-target gradients on the scale of the hard-label ones
        return self.cfg.alpha * kl * t * t


class _FeatureLoss(DistillLoss):
    """Base of losses on 4-D feature maps at (student, teacher) layer pairs."""

    def __init__(self, cfg, *, student, teacher, example):
        super().__init__(cfg, student=student, teacher=teacher, example=example)
        self.pairs = parse_pairs(cfg.layers, student, teacher, example)
        s_out = probe(student, [s for s, _ in self.pairs], example)
        t_out = probe(teacher, [t for _, t in self.pairs], example)
        self.shapes = []
        for s, t in self.pairs:
            for role, name, out in (("student", s, s_out), ("teacher", t, t_out)):
                if name not in out or out[name].dim() != 4:
                    got = list(out[name].shape) if name in out else "nothing"
                    raise CompressionError(f"finetune.distill.layers: the {role} layer '{name}' "
                                           f"gives {got}; {self.name} needs a 4-D feature map")
            self.shapes.append((tuple(s_out[s].shape), tuple(t_out[t].shape)))
        self.s_tap = FeatureTap(student, [s for s, _ in self.pairs])
        self.t_tap = FeatureTap(teacher, [t for _, t in self.pairs])
        self.taps = [self.s_tap, self.t_tap]


def _same_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger map down to the smaller one's height and width."""
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    if tuple(a.shape[-2:]) != size:
        a = F.adaptive_avg_pool2d(a, size)
    if tuple(b.shape[-2:]) != size:
        b = F.adaptive_avg_pool2d(b, size)
    return a, b


@register_loss
class FitNet(_FeatureLoss):
    name = "fitnet"
    description = "feature-based: 1x1 conv regressors map student to teacher features (MSE relative to the teacher)"
    uses = ("layers", "weight")

    def __init__(self, cfg, *, student, teacher, example):
        super().__init__(cfg, student=student, teacher=teacher, example=example)
        regs = []
        for (s_shape, t_shape) in self.shapes:
            conv = nn.Conv2d(s_shape[1], t_shape[1], 1)
            nn.init.zeros_(conv.bias)
            if s_shape[1] == t_shape[1]:
                # equal widths start as the identity: a copy of the teacher has zero loss
                with torch.no_grad():
                    conv.weight.copy_(torch.eye(s_shape[1]).view(s_shape[1], s_shape[1], 1, 1))
            regs.append(conv)
        device = next(student.parameters()).device
        self.regressors = nn.ModuleList(regs).to(device)

    def forward(self, s_logits, t_logits):
        losses = []
        for (s, t), reg in zip(self.pairs, self.regressors):
            fs, ft = _same_size(reg(self.s_tap.out[s]), self.t_tap.out[t])
            # MSE relative to the teacher's mean square: deep residual teachers carry
            # activations in the 1e4s (resnet56 layer3 on digits), where plain MSE
            # swamps the hard-label loss and blows the student up; this keeps `weight`
            # meaningful across layers and teachers, and is still 0 for a perfect match
            losses.append(F.mse_loss(fs, ft) / ft.pow(2).mean().clamp(min=1e-8))
        return self.cfg.weight * torch.stack(losses).mean()


def attention_map(f: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Spatial attention: mean over channels of squared activations, L2-normalized, [B, H*W]."""
    a = f.pow(2).mean(1, keepdim=True)
    if size is not None and tuple(a.shape[-2:]) != size:
        a = F.adaptive_avg_pool2d(a, size)
    return F.normalize(a.flatten(1), dim=1)


@register_loss
class Attention(_FeatureLoss):
    name = "attention"
    description = "feature-based: attention transfer, L2 between normalized spatial attention maps"
    uses = ("layers", "weight")

    def forward(self, s_logits, t_logits):
        total = s_logits.new_zeros(())
        for s, t in self.pairs:
            fs, ft = self.s_tap.out[s], self.t_tap.out[t]
            size = (min(fs.shape[-2], ft.shape[-2]), min(fs.shape[-1], ft.shape[-1]))
            diff = attention_map(fs, size) - attention_map(ft, size)
            total = total + diff.pow(2).sum(1).mean()  # summed over layers, as in the paper
        return self.cfg.weight * total


def _pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def rkd_distance(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Huber loss between pairwise distances, each normalized by its mean distance."""
    with torch.no_grad():
        td = _pairwise_distances(t)
        td = td / td[td > 0].mean().clamp(min=1e-12) if (td > 0).any() else td
    sd = _pairwise_distances(s)
    sd = sd / sd[sd > 0].mean().clamp(min=1e-12) if (sd > 0).any() else sd
    return F.smooth_l1_loss(sd, td)


def rkd_angle(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Huber loss between cosines of the angles formed by every triplet of samples."""
    def angles(e):
        v = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(v, v.transpose(1, 2)).flatten()

    with torch.no_grad():
        ta = angles(t)
    return F.smooth_l1_loss(angles(s), ta)


@register_loss
class RKD(DistillLoss):
    name = "rkd"
    description = "relation-based: RKD distance + angle losses on penultimate embeddings"
    uses = ("layers", "weight", "rkd_distance_weight", "rkd_angle_weight")

    def __init__(self, cfg, *, student, teacher, example):
        super().__init__(cfg, student=student, teacher=teacher, example=example)
        if cfg.layers:
            self.pairs, inputs = parse_pairs(cfg.layers, student, teacher, example), False
        else:  # the embedding is what the final Linear reads
            self.pairs = [(final_linear(student, example, "student"),
                           final_linear(teacher, example, "teacher"))]
            inputs = True
        self.s_tap = FeatureTap(student, [s for s, _ in self.pairs], inputs=inputs)
        self.t_tap = FeatureTap(teacher, [t for _, t in self.pairs], inputs=inputs)
        self.taps = [self.s_tap, self.t_tap]

    @staticmethod
    def _embed(f: torch.Tensor) -> torch.Tensor:
        return (F.adaptive_avg_pool2d(f, 1) if f.dim() == 4 else f).flatten(1)

    def forward(self, s_logits, t_logits):
        total = s_logits.new_zeros(())
        if len(s_logits) < 2:  # relations need at least two samples
            return total
        for s, t in self.pairs:
            es, et = self._embed(self.s_tap.out[s]), self._embed(self.t_tap.out[t])
            total = total + self.cfg.rkd_distance_weight * rkd_distance(es, et) \
                + self.cfg.rkd_angle_weight * rkd_angle(es, et)
        return self.cfg.weight * total


# --------------------------------------------------------------------------- building


class Distillation:
    """The ``loss_fn(model, x, y, logits)`` that :func:`~edgeslim.finetune.train.train` calls.

    Returns ``(term, hard_label_weight)``: the distillation term, and the weight train()
    gives the hard-label loss next to it (1 - α for ``hinton``, 1 otherwise).
    """

    def __init__(self, loss: DistillLoss, teacher: nn.Module):
        self.loss, self.teacher = loss, teacher

    def __call__(self, model, x, y, logits):
        with torch.no_grad():
            t_logits = self.teacher(x)
        return self.loss(logits, t_logits), self.loss.hard_label_weight

    def parameters(self) -> list[nn.Parameter]:
        return list(self.loss.parameters())

    def close(self) -> None:
        self.loss.close()


def num_classes(model: nn.Module, example: torch.Tensor) -> int:
    with eval_mode(model):
        return int(model(example[:1]).shape[1])


def load_teacher(cfg: DistillCfg, *, baseline_dir: Optional[Path] = None,
                 spec: Optional[dict[str, Any]] = None) -> nn.Module:
    """The baseline model, a saved stage folder (``structure.json``), or a weights file
    for the baseline's architecture."""
    if cfg.teacher == "baseline":
        if baseline_dir is None:
            raise CompressionError("distillation: no baseline model to use as the teacher")
        return load_model(baseline_dir)
    path = Path(cfg.teacher)
    if path.is_dir():
        if not (path / STRUCTURE).is_file():
            stages = sorted(p.parent.name for p in path.glob(f"*/{STRUCTURE}"))
            hint = f"; did you mean a stage folder inside it ({', '.join(stages)})?" if stages else ""
            raise RecipeError(f"finetune.distill.teacher: {path} holds no saved model "
                              f"({STRUCTURE}){hint}")
        return load_model(path)
    if not path.is_file():
        raise RecipeError(f"finetune.distill.teacher: {path} does not exist")
    if spec is None:
        spec = json.loads((Path(baseline_dir) / STRUCTURE).read_text())["spec"]
    model = build_model(spec["name"], num_classes=spec["num_classes"], kwargs=spec.get("kwargs", {}))
    return load_weights(model, path).eval()


def build_distillation(cfg: DistillCfg, *, student: nn.Module, example: torch.Tensor,
                       baseline_dir: Optional[Path] = None,
                       teacher: Optional[nn.Module] = None) -> tuple[Distillation, list[nn.Parameter]]:
    """The loss_fn for train() and the extra parameters its optimizer must train.

    ``teacher`` overrides ``cfg.teacher`` (the compress-stage ``distill`` method passes
    the model it compresses). The teacher is frozen and put in eval mode.
    """
    if teacher is None:
        teacher = load_teacher(cfg, baseline_dir=baseline_dir)
    if teacher is student:
        raise CompressionError("distillation: the student and the teacher are the same model")
    teacher.eval().requires_grad_(False)
    n_s, n_t = num_classes(student, example), num_classes(teacher, example)
    if n_s != n_t:
        raise CompressionError(f"distillation: the student outputs {n_s} classes but the "
                               f"teacher outputs {n_t}; they must match")
    loss = LOSSES.get(cfg.method)(cfg, student=student, teacher=teacher, example=example)
    fn = Distillation(loss, teacher)
    return fn, fn.parameters()
