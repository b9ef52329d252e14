"""What an exporter is, and the registry of them.

An exporter turns a PyTorch model into an :class:`~edgeslim.artifacts.Artifact` of one
format and validates it against the model before returning (a parity failure raises
:class:`~edgeslim.errors.ParityError`; it is never downgraded to a warning).

``Exporter.export`` is a template method: the subclass writes only ``export_impl`` (the
conversion); the base runs the artifact in its runtime next to the PyTorch model, once,
the same way for every format, and records the report in ``art.info["parity"]``.

Example::

    art = EXPORTERS.get("onnx").export(model, sample, out_dir, cfg=ExportCfg(),
                                       variant="baseline", method="none")
    art.info["parity"]["max_abs"]   # e.g. 2.4e-06
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import torch
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.errors import ParityError
from edgeslim.exporters.config import ExportCfg
from edgeslim.exporters.parity import compare
from edgeslim.registry import Registry
from edgeslim.targets.runner import RUNNERS, Runner


class Exporter:
    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()  # python packages it imports
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")  # what its quantizers emit
    parity_subject: ClassVar[str]  # how a parity failure names the artifact ("ONNX export")

    def available(self) -> tuple[bool, str]:
        """(True, "") or (False, reason) — e.g. "tensorrt is not installed"."""
        return True, ""

    def export(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: ExportCfg,
               variant: str, method: str) -> Artifact:
        """Convert ``model`` into ``out_dir`` and check the artifact against it on ``sample``.

        Raises ParityError when the artifact's outputs differ beyond ``cfg.parity``.
        """
        art = self.export_impl(model, sample, out_dir, cfg=cfg, variant=variant, method=method)
        with torch.no_grad():
            ref = model.eval()(torch.from_numpy(sample)).numpy()
        max_abs, min_cosine = self.parity_tolerance(art, cfg)
        with self.parity_runner(art) as runner:
            out = runner.infer(sample)
            facts = self.parity_facts(runner)
        report = compare(ref, out, max_abs=max_abs, min_cosine=min_cosine)
        art.info.update({"parity": report.to_json(), "parity_reference": "pytorch", **facts})
        if not report.passed:
            raise ParityError(f"{self.parity_subject} of the {variant} model differs from PyTorch: "
                              f"{report.summary()}")
        return art

    # -- subclass hooks
    def export_impl(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: ExportCfg,
                    variant: str, method: str) -> Artifact:
        """Write the artifact (its ``info`` filled with the conversion's facts)."""
        raise NotImplementedError

    def parity_runner(self, art: Artifact) -> Runner:
        """The runner the parity check runs ``art`` in: its format's, with default options."""
        return RUNNERS.get(art.format)(art, threads=None)

    def parity_tolerance(self, art: Artifact, cfg: ExportCfg) -> tuple[Optional[float], float]:
        """(max abs error or None, min cosine) the artifact must meet against PyTorch."""
        return cfg.parity.max_abs, cfg.parity.min_cosine

    def parity_facts(self, runner: Runner) -> dict[str, Any]:
        """Extra ``art.info`` entries read from the parity runner (e.g. what precision ran)."""
        return {}


EXPORTERS: Registry[Exporter] = Registry("export format")


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    EXPORTERS.register(cls.name, cls())
    return cls
