"""What a target is, and the registry of them.

A target is where artifacts run: this machine's CPU, a constrained edge profile, a GPU,
or a remote device. Each declares its ``kind`` (cpu, gpu or edge: which rule of the plan's
prior applies), runs the formats whose runners list that kind, and says whether it is
available here (with the reason when not). ``profile`` returns one results row per artifact; it never
raises for a runtime failure of one artifact: that becomes a ``failed`` row.
"""

from __future__ import annotations

import os
import platform
import traceback
from functools import lru_cache
from typing import Any, ClassVar, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from edgeslim.artifacts import Artifact
from edgeslim.errors import EdgeslimError, TargetError
from edgeslim.registry import Registry, suggest
from edgeslim.targets.config import ProfileCfg, TargetCfg
from edgeslim.targets.runner import RUNNERS

KINDS = ("cpu", "gpu", "edge")  # which rule of the plan's prior applies to a target


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormatsOfKind:
    """A target's formats: those whose runner runs on the target's kind of device.

    Read when asked, not at class creation, so runners registered later count too.
    """

    def __get__(self, obj: Any, cls: Any) -> tuple[str, ...]:
        return tuple(name for name, runner in RUNNERS.items() if cls.kind in runner.kinds)


class Target:
    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str]  # one of KINDS
    formats: ClassVar[tuple[str, ...]] = FormatsOfKind()  # type: ignore[assignment]
    options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, label: str, opts: BaseModel):
        self.label = label  # how the recipe names it (e.g. "edge" or "ssh://pi@host")
        self.opts = opts

    def available(self) -> tuple[bool, str]:
        return True, ""

    def runs(self, artifact: Artifact) -> tuple[bool, str]:
        if artifact.format not in self.formats:
            return False, f"target '{self.label}' does not run {artifact.format} artifacts"
        return True, ""

    def profile(self, artifact: Artifact, sample: np.ndarray, cfg: ProfileCfg,
                val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        """Measure ``artifact``; returns the measurement part of a results row."""
        raise NotImplementedError


TARGETS: Registry[type[Target]] = Registry("target")


def register_target(cls: type[Target]) -> type[Target]:
    if getattr(cls, "kind", None) not in KINDS:
        raise ValueError(f"target '{cls.name}' must declare kind, one of {', '.join(KINDS)}")
    TARGETS.register(cls.name, cls)
    return cls


def parse_target(cfg: Union[TargetCfg, str]) -> Target:
    """A configured Target from a recipe entry (a name, or a mapping with ``name``)."""
    name = cfg.name if hasattr(cfg, "name") else str(cfg)
    extra = dict(getattr(cfg, "__pydantic_extra__", None) or {})
    try:
        if name.startswith("ssh://"):
            cls = TARGETS.get("ssh")
            extra = {"url": name, **extra}
        else:
            cls = TARGETS.get(name)
    except TargetError:
        raise
    except EdgeslimError as err:
        raise TargetError(str(err)) from None
    try:
        opts = cls.options.model_validate(extra)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            raise TargetError(f"unknown option '{key}' for target '{name}'"
                              f"{suggest(key, list(cls.options.model_fields))}") from None
        raise TargetError(f"target '{name}' option '{key}': {e['msg']}") from None
    return cls(name, opts)


def usable_cores() -> int:
    """The CPUs this process may run on (all of them where the OS does not say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model name and the ISA flags that decide which kernels runtimes pick."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                if name and flags:
                    break
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
              "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "neon", "asimd"]
    return {"cpu": name, "isa": [f for f in wanted if f in flags], "machine": platform.machine()}


def channel_block(isa: list[str]) -> int:
    """The channel multiple that suits a CPU with these ISA flags: 16 with AVX-512, else 8.

    Measured, not derived: on an AVX-512 Xeon, INT8 models pruned to multiples of 16 ran
    1.02-1.40x faster than the same ratio at multiples of 8 in 20 of 20 comparisons (l1 and
    latency; ONNX Runtime and OpenVINO; cpu and edge), although they keep up to 3.4x the MACs
    (benchmarks/results/alignment.md); the likely cause is that both runtimes block
    activations by the SIMD width in fp32 lanes. FP32 went either way (0.72-1.43x).

    Example::

        channel_block(cpu_info()["isa"])  # 16 on an AVX-512 Xeon
    """
    return 16 if "avx512f" in isa else 8


def failed_row(err: BaseException) -> dict[str, Any]:
    if isinstance(err, EdgeslimError):
        reason = str(err)
    else:
        tb = traceback.extract_tb(err.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        first = (str(err).strip().splitlines() or [""])[0][:300]
        reason = f"{type(err).__name__}: {first}{where}"
    return {"status": "failed", "reason": reason}
