"""TensorRT FP16 and INT8: the precision goes into the ONNX, then the engine is built from it.

TensorRT 10/11 builds strongly typed networks, so a reduced-precision engine starts from
an ONNX that already carries its types:

- FP16: the FP16 ONNX of :class:`~edgeslim.quantizers.onnx_ort.OnnxFp16` (FP32 I/O kept);
- INT8: explicit quantization, a Q/DQ ONNX as TensorRT expects it — symmetric INT8
  everywhere (zero points 0), per-channel weight scales, per-tensor activation scales —
  calibrated by :class:`~edgeslim.quantizers.onnx_ort.OnnxInt8` on the same training
  images as every other INT8 artifact.

:func:`tensorrt_onnx` makes that ONNX alone; it needs no GPU and runs in ONNX Runtime, so
it is checked on the CPU. The registered ``tensorrt-fp16``/``tensorrt-int8`` quantizers
add the engine build.

Example::

    onnx_int8 = tensorrt_onnx(onnx_fp32, "int8", out_dir, cfg=QuantizeCfg(), calibration=calib)
    onnx_int8.info["activations"]   # "int8 symmetric"
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.backends.tensorrt import tensorrt_status
from edgeslim.errors import QuantizeError
from edgeslim.exporters.onnx_files import check_onnx, load_onnx, save_onnx
from edgeslim.exporters.tensorrt import engine_artifact
from edgeslim.quantizers.base import Quantizer, register_quantizer
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.quantizers.onnx_ort import OnnxFp16, OnnxInt8


def float_biases(model: Any) -> int:
    """Replace every int32 ``DequantizeLinear`` (ONNX Runtime's quantized Conv/Gemm biases)
    by the float32 bias it decodes to; returns how many.

    TensorRT dequantizes INT8 (and FP8/INT4) only, and wants biases in floating point,
    where it fuses them into the INT8 convolution itself.
    """
    from onnx import TensorProto, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    drop, n = [], 0
    for node in g.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        if inits[node.input[0]].data_type != TensorProto.INT32:
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        zp = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64) \
            if len(node.input) > 2 and node.input[2] in inits else 0.0
        g.initializer.append(numpy_helper.from_array(((q - zp) * scale).astype(np.float32), node.output[0]))
        drop.append(node)
        n += 1
    for node in drop:
        g.node.remove(node)
    used = {i for node in g.node for i in node.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return n


def tensorrt_onnx(parent: Artifact, precision: str, out_dir: Path, *, cfg: QuantizeCfg,
                  calibration: Optional[np.ndarray]) -> Artifact:
    """The ONNX a ``precision`` TensorRT engine is built from, as ``out_dir/model.onnx``."""
    if parent.format != "onnx" or parent.precision != "fp32":
        raise QuantizeError(f"TensorRT ONNX variants start from an FP32 ONNX, got {parent.id}")
    if precision == "int8":
        # "auto" reduce_range judges this build CPU's kernels; TensorRT's GPU kernels do not
        # saturate, so its weights keep all 8 bits unless the recipe asks otherwise.
        qcfg = cfg.model_copy(update={"symmetric_activations": True, "per_channel": True,
                                      "reduce_range": cfg.reduce_range is True})
        art = OnnxInt8().quantize(parent, calibration, out_dir, cfg=qcfg)
        model = load_onnx(art.path)
        n = float_biases(model)
        save_onnx(model, art.path)
        check_onnx(art.path)
        art.info.update({"qdq": "explicit, symmetric int8, per-channel weights, per-tensor activations",
                         "biases": f"float32 ({n} int32 bias DequantizeLinear folded)"})
    elif precision == "fp16":
        art = OnnxFp16().quantize(parent, None, out_dir, cfg=cfg)
    else:
        raise QuantizeError(f"no TensorRT ONNX variant for precision '{precision}'")
    art.info["bound_for"] = "tensorrt"
    return art


class _TensorRtQuantizer(Quantizer):
    format = "tensorrt"

    def available(self) -> tuple[bool, str]:
        return tensorrt_status()

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        if parent.format != "tensorrt" or "onnx" not in parent.info:
            raise QuantizeError(f"tensorrt-{self.precision} starts from a TensorRT FP32 artifact, got {parent.id}")
        onnx_fp32 = Artifact(parent.path.parent / parent.info["onnx"], "onnx", "fp32",
                             parent.variant, parent.method)
        onnx_art = tensorrt_onnx(onnx_fp32, self.precision, out_dir, cfg=cfg, calibration=calibration)
        onnx_art.parent = parent.id
        cache = onnx_fp32.path.with_name(onnx_fp32.path.stem + ".timing.cache")
        if cache.is_file():  # same GPU and TensorRT: start from the FP32 build's timings
            shutil.copyfile(cache, onnx_art.path.with_name(onnx_art.path.stem + ".timing.cache"))
        return engine_artifact(onnx_art, out_dir, self.precision)


@register_quantizer
class TensorRtFp16(_TensorRtQuantizer):
    precision = "fp16"
    description = "TensorRT engine from the FP16 ONNX (strongly typed)"


@register_quantizer
class TensorRtInt8(_TensorRtQuantizer):
    precision = "int8"
    description = "TensorRT engine from a symmetric Q/DQ INT8 ONNX (explicit quantization)"
    needs_calibration = True
