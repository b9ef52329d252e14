"""ONNX Runtime quantization: static INT8 (QDQ) and FP16.

INT8: the graph is pre-processed (shape inference, Conv+BN fusion), then quantized with
Q/DQ pairs, per-channel INT8 weights and UINT8 activations (the fast path of ORT's x86
kernels), calibrated on training images with minmax, entropy or percentile ranges.
``quantize.symmetric_activations`` switches to symmetric INT8 activations and weights —
what TensorRT expects from an explicit-quantization ONNX.
FP16: weights and arithmetic in FP16 with FP32 inputs/outputs kept at the boundary.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import onnx

from edgeslim.artifacts import Artifact
from edgeslim.backends.common import quiet
from edgeslim.errors import QuantizeError, first_line
from edgeslim.exporters.onnx_files import check_onnx, load_onnx, save_onnx
from edgeslim.quantizers.base import Quantizer, register_quantizer
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.quantizers.entropy import use_fast_entropy
from edgeslim.quantizers.onnx_graph import compact_names
from edgeslim.targets.base import cpu_info

_CALIB = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class _Reader:
    """ORT's CalibrationDataReader protocol over an array of training images."""

    def __init__(self, name: str, data: np.ndarray, batch: int = 32):
        self.name, self.data, self.batch = name, data, batch
        self._it: Optional[Iterator[dict[str, np.ndarray]]] = None

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        if self._it is None:
            self._it = ({self.name: self.data[i:i + self.batch]} for i in range(0, len(self.data), self.batch))
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def _entropy_ranges(model: Path, reader: "_Reader", cache: Path, symmetric: bool) -> None:
    """KL-divergence ranges over a 2048-bin histogram, written where quantize_static reads them.

    quantize_static builds its entropy calibrator with 128 histogram bins and 128 quantized
    bins, which leaves the KL search a single candidate (the full range, i.e. minmax); the
    usual setting (TensorRT's) is 2048 bins searched down to 128.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    with tempfile.TemporaryDirectory(prefix="edgeslim-calib-") as tmp:
        calibrator = create_calibrator(model, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.Entropy,
                                       extra_options={"num_bins": 2048, "num_quantized_bins": 128,
                                                      "symmetric": symmetric})
        calibrator.collect_data(reader)
        use_fast_entropy(calibrator)  # same thresholds, NumPy instead of Python loops
        save_tensors_data(calibrator.compute_data(), cache)
    reader.rewind()


def resolve_reduce_range(setting: Any, isa: Optional[list[str]] = None) -> bool:
    """``quantize.reduce_range``: True/False as given; "auto" = AVX2 without any VNNI."""
    if setting != "auto":
        return bool(setting)
    if isa is None:
        isa = cpu_info()["isa"]
    return "avx2" in isa and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(isa)


@register_quantizer
class OnnxInt8(Quantizer):
    format = "onnx"
    precision = "int8"
    description = "ONNX Runtime static INT8, QDQ, per-channel weights, calibrated"
    needs_calibration = True

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if calibration is None or len(calibration) == 0:
            raise QuantizeError("INT8 quantization needs calibration samples")
        pre = out_dir / "preprocessed.onnx"
        raw = out_dir / "quantized.raw.onnx"
        path = out_dir / "model.onnx"
        symmetric = bool(cfg.symmetric_activations)
        reduce_range = resolve_reduce_range(cfg.reduce_range)
        method = getattr(CalibrationMethod, _CALIB[cfg.calibration_method])
        ranges = out_dir / "calibration.json"  # the activation ranges, kept with the artifact
        try:
            reader = _Reader(parent_input_name(parent), calibration)
            with quiet(stderr=True):  # ORT logs and prints per tensor
                quant_pre_process(str(parent.path), str(pre), skip_symbolic_shape=True)
                if cfg.calibration_method == "entropy":
                    _entropy_ranges(pre, reader, ranges, symmetric)
                quantize_static(
                    str(pre), str(raw), reader, calibration_cache_path=str(ranges),
                    quant_format=QuantFormat.QDQ,
                    per_channel=cfg.per_channel,
                    reduce_range=reduce_range,
                    activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=method,
                    extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                                   "CalibMovingAverage": False},
                )
        except QuantizeError:
            raise
        except Exception as err:
            raise QuantizeError(f"ONNX Runtime INT8 quantization of {parent.id} failed: "
                                f"{first_line(err)}") from None
        model = compact_names(load_onnx(raw))
        save_onnx(model, path)
        for p in (pre, raw):
            for f in p.parent.glob(p.name + "*"):
                f.unlink()
        check_onnx(path)
        art = Artifact(path, "onnx", "int8", parent.variant, parent.method, parent=parent.id)
        art.info = {"quantizer": "onnxruntime.quantize_static", "format": "QDQ",
                    "calibration_method": cfg.calibration_method,
                    "calibration_samples": int(len(calibration)), "per_channel": cfg.per_channel,
                    "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
                    "weights": "int8 symmetric, 7-bit (reduce_range)" if reduce_range else "int8 symmetric",
                    "reduce_range": reduce_range}
        return art


@register_quantizer
class OnnxFp16(Quantizer):
    format = "onnx"
    precision = "fp16"
    description = "FP16 weights and compute, FP32 inputs/outputs (onnxconverter-common)"

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg) -> Artifact:
        from onnxconverter_common import float16

        path = out_dir / "model.onnx"
        try:
            with quiet(stderr=True):
                model = float16.convert_float_to_float16(load_onnx(parent.path), keep_io_types=True)
        except Exception as err:
            raise QuantizeError(f"FP16 conversion of {parent.id} failed: {first_line(err)}") from None
        save_onnx(model, path)
        check_onnx(path)
        art = Artifact(path, "onnx", "fp16", parent.variant, parent.method, parent=parent.id)
        art.info = {"quantizer": "onnxconverter_common.float16", "io_types": "fp32"}
        return art


def parent_input_name(parent: Artifact) -> str:
    model = onnx.load(str(parent.path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)
