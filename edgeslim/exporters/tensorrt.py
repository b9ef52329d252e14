"""TensorRT engines, built from ONNX with the TensorRT Python API (10.x and 11.x).

TensorRT is optional and imported lazily: every module of edgeslim imports without it,
and :func:`~edgeslim.backends.tensorrt.tensorrt_status` says why this path is unavailable ("tensorrt is not
installed", "no CUDA device").

Precision lives in the ONNX, not in builder flags. TensorRT 11 removed weak typing (the
FP16/INT8 builder flags) and TensorRT 10 deprecates it, so networks are created strongly
typed and each precision gets its own ONNX: the FP32 export, an FP16 ONNX (FP32 I/O kept),
or an explicit-quantization Q/DQ ONNX with symmetric INT8 (per-channel weights, per-tensor
activations) — see :mod:`edgeslim.quantizers.tensorrt_onnx`. Only a TensorRT without the
strongly-typed flag (8.x) falls back to the FP16/INT8 builder flags.

Beside the ONNX the build leaves ``model.timing.cache`` (reused by the next build on the
same GPU and TensorRT) and the serialized ``model.engine``.

Example::

    build_engine(Path("out/model.onnx"), Path("out/model.engine"), precision="fp16")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn

from edgeslim.artifacts import Artifact
from edgeslim.backends.tensorrt import import_tensorrt, logger, strongly_typed_flag, tensorrt_status
from edgeslim.errors import ExportError
from edgeslim.exporters.base import Exporter, register_exporter
from edgeslim.exporters.config import ExportCfg
from edgeslim.exporters.onnx import OnnxExporter

MAX_BATCH = 64  # the optimization profile covers batch 1..64 (accuracy runs at 64), tuned for 1
WORKSPACE = 1 << 30


def build_engine(onnx_path: Path, engine_path: Path, *, precision: str, max_batch: int = MAX_BATCH,
                 workspace: int = WORKSPACE) -> dict[str, Any]:
    """Parse ``onnx_path``, build and serialize an engine to ``engine_path``; returns build facts."""
    trt = import_tensorrt()
    log = logger(trt)
    builder = trt.Builder(log)
    typed = strongly_typed_flag(trt)
    network = builder.create_network(typed if typed is not None else 0)
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors or 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if typed is None:  # weakly typed TensorRT only: precision by builder flag
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 means FP32: parity is checked at 1e-3
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        shape = tuple(inp.shape)
        rest = tuple(int(d) for d in shape[1:])
        profile.set_shape(inp.name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    cache_path = onnx_path.with_name(onnx_path.stem + ".timing.cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} ({precision})")
    engine_path.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": trt.__version__, "strongly_typed": typed is not None, "max_batch": max_batch,
            "onnx": onnx_path.name, "timing_cache": cache_path.name, "engine": engine_path.name}


def engine_artifact(onnx_art: Artifact, out_dir: Path, precision: str) -> Artifact:
    """Build the engine for an ONNX artifact living in ``out_dir``: a ``tensorrt`` artifact."""
    engine = out_dir / "model.engine"
    facts = build_engine(onnx_art.path, engine, precision=precision)
    art = Artifact(engine, "tensorrt", precision, onnx_art.variant, onnx_art.method, files=[engine],
                   parent=onnx_art.parent)
    art.info = {**facts, "onnx_info": {k: v for k, v in onnx_art.info.items() if k != "parity"}}
    return art


@register_exporter
class TensorRtExporter(Exporter):
    name = "tensorrt"
    description = "TensorRT engine built from ONNX (strongly typed), for NVIDIA GPUs and Jetsons"
    requires = ("tensorrt",)

    parity_subject = "TensorRT engine"

    def available(self) -> tuple[bool, str]:
        return tensorrt_status()

    def export_impl(self, model: nn.Module, sample: np.ndarray, out_dir: Path, *, cfg: ExportCfg,
                    variant: str, method: str) -> Artifact:
        # The engine is built from the ONNX export, itself checked against PyTorch first.
        onnx_art = OnnxExporter().export(model, sample, out_dir, cfg=cfg, variant=variant, method=method)
        return engine_artifact(onnx_art, out_dir, "fp32")
