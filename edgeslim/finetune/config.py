"""The training sections: ``baseline`` (training from scratch), ``finetune`` (after
compression) and its ``distill`` teacher, and ``train`` (where and how every training
stage runs)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator

from edgeslim.config import StrictModel


class BaselineCfg(StrictModel):
    epochs: int = Field(8, ge=0)  # used only when model.weights is null
    lr: float = Field(0.05, gt=0)
    # Linear lr warm-up (capped at a quarter of the epochs). Deep plain-SGD nets need it from
    # scratch: resnet56 on digits at lr 0.05 reached 51.1% after 8 epochs without, 98.9% with
    # one epoch of it (resnet20: 99.2% -> 99.4%).
    warmup_epochs: float = Field(1.0, ge=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    weight_decay: float = Field(5e-4, ge=0)
    # A converged reference (edgeslim.finetune.convergence): stop once val accuracy has not
    # gained min_delta for `patience` epochs, keep the best epoch; epochs is the cap. null =
    # train every epoch (the report then says convergence was not checked).
    patience: Optional[int] = Field(3, ge=1)
    min_delta: float = Field(0.001, ge=0)


class ControlCfg(StrictModel):
    """The "trained longer" control: the baseline fine-tuned with the ``finetune`` section
    (its epochs, lr, schedule), uncompressed, so a compressed row's accuracy is set against
    the same extra training and not only against the baseline."""

    enabled: bool = True


class TrainCfg(StrictModel):
    """Where and how every training stage runs; ``auto`` is resolved per machine by
    :func:`edgeslim.finetune.device.resolve` (the resolved values are in the stage keys)."""

    device: str = "auto"  # auto (first CUDA device, else cpu) | cpu | cuda | cuda:N
    # auto: bf16 autocast on CUDA and on CPUs with AVX-512 BF16 or AMX (2.5x on resnet50 at
    # 160 px on a 2-core EPYC with channels_last), else fp32; fp16 only on CUDA (gradient scaler)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: Union[bool, Literal["auto"]] = "auto"  # auto: on with bf16/fp16 or CUDA
    workers: Union[int, Literal["auto"]] = "auto"  # DataLoader workers; auto: cores - 1
    ema: Optional[float] = Field(None, gt=0, lt=1)  # EMA decay of the weights, e.g. 0.999; null = off

    @field_validator("workers")
    @classmethod
    def _workers(cls, v):
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            raise ValueError(f"train.workers must be >= 0 or auto, got {v}")
        return v


class DistillCfg(StrictModel):
    method: str = "hinton"  # a registered loss (hinton | fitnet | attention | rkd); checked by the recipe
    teacher: str = "baseline"  # the baseline model, or a checkpoint path
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)  # weight of the distillation term vs hard labels
    layers: list[str] = []  # student:teacher layer pairs for feature-based losses
    weight: float = Field(1.0, ge=0)  # weight of feature/relation terms
    rkd_distance_weight: float = Field(25.0, ge=0)  # RKD paper's defaults (Park et al. 2019)
    rkd_angle_weight: float = Field(50.0, ge=0)



class FinetuneCfg(StrictModel):
    # 8 epochs at 0.05 (the baseline's lr): a net with half its channels gone needs to
    # relearn, not polish. Measured on the default run: 98.33% vs the baseline's 98.89%;
    # 4 epochs at 0.01 left it at 95.56% (3.3 points down).
    epochs: int = Field(8, ge=0)
    lr: float = Field(0.05, gt=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    # Lighter than the baseline's 5e-4: a pruned net has fewer weights to regularize and
    # little time to recover (measured on digits/resnet20: 98.3% vs 97.5% after 4 epochs).
    weight_decay: float = Field(1e-4, ge=0)
    # Off by default: from trained weights it changed nothing measurable (resnet56, 2x and 8x
    # MACs, 8 epochs at 0.05: 98.3-98.6% with or without one epoch of it).
    warmup_epochs: float = Field(0.0, ge=0)
    distill: Optional[DistillCfg] = None
    # The seed of the training after the baseline (fine-tuning, the control, what a compression
    # method trains); null = the recipe's seed. Separate from that one, which also draws the data
    # split and trains the baseline: `plan --seeds N` varies this, so only what trains after repeats.
    seed: Optional[int] = None

    def seed_or(self, default: int) -> int:
        """``seed`` when set, else ``default`` (the recipe's). Example: ``FinetuneCfg().seed_or(3) == 3``."""
        return default if self.seed is None else self.seed
