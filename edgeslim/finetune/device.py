"""Where and how training runs: the recipe's ``train`` section resolved for this machine.

``auto`` means different things on different machines, so the training stages hold the
*resolved* :class:`Placement` in their slices: a run on a GPU machine and a run on a laptop
have different stage keys, and a stage never reuses weights trained under another placement.

Rules (issue 15): device ``auto`` is the first CUDA device when there is one, else the CPU;
precision ``auto`` is bf16 autocast on CUDA and on CPUs with AVX-512 BF16 or AMX (fp32
elsewhere, where bf16 is emulated and slower); channels_last ``auto`` is on with bf16/fp16
or CUDA (it is what makes the oneDNN/cuDNN bf16 kernels fast, and a small loss in fp32 on
the CPU); workers ``auto`` is cores - 1 when training on CUDA (the CPU only feeds the GPU),
and 0 when training on the CPU: there a loader worker takes cores from the training step
(measured on 2 cores, resnet20 on digits, fp32: 228 img/s without workers, 64 with one), and
image folders are decoded once into a cache, so epochs read tensors anyway.

Example::

    placement = resolve(TrainCfg(device="cpu", precision="fp32"))
    placement  # Placement(device='cpu', precision='fp32', channels_last=False, workers=0, ema=None)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

import torch

from edgeslim.errors import RecipeError
from edgeslim.finetune.config import TrainCfg
from edgeslim.targets.base import cpu_info

# CPU flags whose kernels make bf16 autocast faster than fp32 (oneDNN picks them)
BF16_ISA = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Placement:
    """Resolved training settings (no ``auto`` left); part of the training stages' keys."""

    device: str = "cpu"  # "cpu" or "cuda:N"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast dtype; the weights stay fp32)
    channels_last: bool = False
    workers: int = 0
    ema: Optional[float] = None  # EMA decay of the weights; None = off

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]


def cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _device(name: str) -> str:
    name = name.strip().lower()
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not m:
        raise RecipeError(f"train.device: '{name}' is not a device; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise RecipeError(f"train.device: '{name}' asks for CUDA, but no CUDA device is available "
                          f"here (torch {torch.__version__}); use auto or cpu")
    index, count = int(m.group(1) or 0), torch.cuda.device_count()
    if index >= count:
        raise RecipeError(f"train.device: '{name}' does not exist; this machine has {count} CUDA "
                          f"device(s) (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def _precision(asked: str, device: str, isa: list[str]) -> str:
    cuda = device.startswith("cuda")
    if asked == "auto":
        if cuda:  # pre-Ampere GPUs emulate bf16: fp16 with a gradient scaler is their fast path
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if any(f in isa for f in BF16_ISA) else "fp32"
    if asked == "fp16" and not cuda:
        raise RecipeError("train.precision: fp16 training needs a CUDA device (its gradient scaler "
                          "and kernels are CUDA's); use bf16 or fp32 on the CPU")
    return asked


def resolve(cfg: TrainCfg, *, isa: Optional[list[str]] = None) -> Placement:
    """``cfg`` with every ``auto`` decided for this machine (``isa``: the CPU flags, read
    from /proc/cpuinfo when None).

    Example::

        resolve(TrainCfg())  # on a CPU with AVX-512 BF16: device='cpu', precision='bf16', channels_last=True
    """
    device = _device(cfg.device)
    precision = _precision(cfg.precision, device, cpu_info()["isa"] if isa is None else isa)
    channels_last = cfg.channels_last
    if channels_last == "auto":
        channels_last = precision in ("bf16", "fp16") or device.startswith("cuda")
    workers = cfg.workers
    if workers == "auto":
        workers = max(0, cores() - 1) if device.startswith("cuda") else 0
    return Placement(device=device, precision=precision, channels_last=bool(channels_last),
                     workers=int(workers), ema=cfg.ema)


def local_device(device: str) -> torch.device:
    """The device this process trains on: under torchrun a CUDA placement means
    ``cuda:LOCAL_RANK`` (the key says ``cuda:0`` on every rank, so ranks agree on stages)."""
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(device)
