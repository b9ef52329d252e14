"""Build the artifacts the target benchmarks measure, with the pipeline's own pieces.

Random-weight zoo models at a given input size, their BatchNorm statistics estimated on
synthetic data so activations (and INT8 ranges) look like a trained network's; exported
with the registered exporters, pruned with a registered method, quantized with the
registered quantizers. Shared by ``ladder.py``, ``profiler_stability.py`` and
``benchmark_app_crosscheck.py`` (a helper, not a benchmark).

    from _artifacts import Builder
    b = Builder(Path("/tmp/w"), "resnet50", 224)
    fp32 = b.export(b.model, "onnx", "baseline")
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from a checkout
    sys.path.insert(0, str(ROOT))


class Builder:
    """One random-weight model and the artifacts derived from it, under ``work``."""

    def __init__(self, work: Path, model: str, input_size: int, *, calibration: int = 64, seed: int = 0):
        import torch

        from edgeslim.compress.pruner import recalibrate_bn
        from edgeslim.data import load_data
        from edgeslim.models import create_model

        torch.manual_seed(seed)
        self.work, self.name, self.input_size = Path(work), model, input_size
        self.data = load_data("synthetic", input_size=input_size, num_classes=1000, seed=seed,
                              limit_train=max(64, calibration), limit_val=8)
        self.sample = self.data.val_arrays(limit=2)[0]
        self.model = create_model(model, num_classes=1000).eval()
        recalibrate_bn(self.model, self.data.train_loader(16), 4)
        self.model.eval()
        self.calibration = self.data.calibration(calibration)

    def pruned(self, method: str = "l1", ratio: float = 0.5, round_to: int | None = 8):
        import torch

        from edgeslim.compress import METHODS, CompressJob
        from edgeslim.recipe import CompressCfg

        job = CompressJob(model=copy.deepcopy(self.model), example_inputs=torch.from_numpy(self.sample[:1]),
                          data=self.data, cfg=CompressCfg(method=method, ratio=ratio, round_to=round_to), options=None,
                          spec={"name": self.name, "num_classes": 1000, "kwargs": {}}, batch_size=16)
        return METHODS.get(method).apply(job).eval()

    def export(self, model, fmt: str, variant: str, method: str = "none"):
        from edgeslim.exporters import EXPORTERS
        from edgeslim.recipe import ExportCfg

        d = self._dir(f"{variant}-{fmt}")
        # Random weights give large logits: hold parity to cosine, with a loose absolute bound.
        cfg = ExportCfg(parity={"max_abs": 1e-2, "min_cosine": 0.999})
        return EXPORTERS.get(fmt).export(model, self.sample, d, cfg=cfg, variant=variant, method=method)

    def quantize(self, parent, precision: str = "int8"):
        from edgeslim.quantizers import QUANTIZERS
        from edgeslim.recipe import QuantizeCfg

        d = self._dir(f"{parent.variant}-{parent.format}-{precision}")
        return QUANTIZERS.get(f"{parent.format}-{precision}").quantize(parent, self.calibration, d,
                                                                       cfg=QuantizeCfg())

    def _dir(self, name: str) -> Path:
        d = self.work / self.name / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d


def machine() -> dict[str, Any]:
    import os

    from edgeslim.targets.base import cpu_info

    info = cpu_info()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": info["cpu"], "isa": info["isa"], "usable_cores": len(os.sched_getaffinity(0)),
            "loadavg_1m_at_start": load[0] if load else None}


def spread(values: list[float]) -> float:
    """Largest relative distance of any value from their median."""
    med = float(np.median(values))
    return max(abs(v - med) / med for v in values)
