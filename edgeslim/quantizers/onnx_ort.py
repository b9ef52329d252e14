"""ONNX Runtime quantization: static INT8 (QDQ) and FP16.

INT8: the graph is pre-processed (shape inference, Conv+BN fusion), then quantized with
Q/DQ pairs, per-channel INT8 weights and UINT8 activations (the fast path of ORT's x86
kernels), calibrated on training images with minmax, entropy or percentile ranges.
``quantize.symmetric_activations`` switches to symmetric INT8 activations and weights —
what TensorRT expects from an explicit-quantization ONNX.
With ``quantize.sensitivity.enabled`` each Conv/Gemm/MatMul is also quantized alone over the
same ranges (``nodes_to_quantize``) and scored on the val split (``sensitivity.json``, see
:mod:`.sensitivity`); with ``quantize.max_accuracy_drop`` the most sensitive of them stay in
FP32 one by one (``nodes_to_exclude``) until the budget holds (:mod:`.fallback`).
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
from edgeslim.errors import EdgeslimError, QuantizeError, first_line
from edgeslim.exporters.onnx_files import check_onnx, load_onnx, save_onnx
from edgeslim.quantizers.base import Quantizer, register_quantizer
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.quantizers.entropy import use_fast_entropy
from edgeslim.quantizers.fallback import fallback
from edgeslim.quantizers.onnx_graph import compact_names
from edgeslim.quantizers.sensitivity import Reference, layer_sensitivity, summary, write_sensitivity
from edgeslim.targets.base import cpu_info

_CALIB = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
# the layers sensitivity scores and the fallback keeps in FP32: ops ORT quantizes with weights
# (or as int8 matmuls); the Q/DQ it puts around Add, pooling and the like follow them
QUANTIZABLE = ("Conv", "ConvTranspose", "Gemm", "MatMul")


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


class _Static:
    """``quantize_static`` over one pre-processed model, with its activation ranges calibrated
    once: the first call calibrates and writes ``ranges`` (calibration.json); later calls (one
    per layer for sensitivity, one per fallback step) read them back instead of calibrating."""

    def __init__(self, pre: Path, ranges: Path, cfg: QuantizeCfg, reduce_range: bool):
        self.pre, self.ranges, self.cfg, self.reduce_range = pre, ranges, cfg, reduce_range

    def __call__(self, out: Path, *, reader: Optional[_Reader] = None, only: Optional[list[str]] = None,
                 exclude: Optional[list[str]] = None) -> Path:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        symmetric = bool(self.cfg.symmetric_activations)
        quantize_static(
            str(self.pre), str(out), reader, calibration_cache_path=str(self.ranges),
            quant_format=QuantFormat.QDQ,
            per_channel=self.cfg.per_channel,
            reduce_range=self.reduce_range,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, _CALIB[self.cfg.calibration_method]),
            nodes_to_quantize=only, nodes_to_exclude=exclude,
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                           "CalibMovingAverage": False},
        )
        return out


def quantizable_layers(path: Path) -> list[tuple[str, str]]:
    """(name, op) of the layers ORT quantizes with weights or as matmuls, naming unnamed nodes
    in place (``nodes_to_quantize``/``nodes_to_exclude`` select by name)."""
    model = onnx.load(str(path))
    unnamed = [n for n in model.graph.node if not n.name]
    for i, node in enumerate(unnamed):
        node.name = f"{node.op_type}_edgeslim_{i}"
    if unnamed:
        onnx.save_model(model, str(path))
    out = []
    for node in model.graph.node:
        if node.op_type in QUANTIZABLE:
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            out.append((node.name, node.op_type + (f" groups={groups}" if groups > 1 else "")))
    return out


@register_quantizer
class OnnxInt8(Quantizer):
    format = "onnx"
    precision = "int8"
    description = ("ONNX Runtime static INT8, QDQ, per-channel weights, calibrated "
                   "(per-layer FP32 fallback with quantize.max_accuracy_drop)")
    needs_calibration = True
    uses_validation = True  # sensitivity and the fallback score candidates on the val split

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg, val: Optional[tuple[np.ndarray, Optional[np.ndarray]]] = None) -> Artifact:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if calibration is None or len(calibration) == 0:
            raise QuantizeError("INT8 quantization needs calibration samples")
        pre = out_dir / "preprocessed.onnx"
        raw = out_dir / "quantized.raw.onnx"
        path = out_dir / "model.onnx"
        symmetric = bool(cfg.symmetric_activations)
        reduce_range = resolve_reduce_range(cfg.reduce_range)
        ranges = out_dir / "calibration.json"  # the activation ranges, kept with the artifact
        try:
            reader = _Reader(parent_input_name(parent), calibration)
            # quiet: ORT logs and prints per tensor
            with quiet(stderr=True), tempfile.TemporaryDirectory(prefix="edgeslim-int8-") as tmp:
                ranges.unlink(missing_ok=True)  # quantize_static would reuse stale ranges
                quant_pre_process(str(parent.path), str(pre), skip_symbolic_shape=True)
                layers = quantizable_layers(pre)
                if cfg.calibration_method == "entropy":
                    _entropy_ranges(pre, reader, ranges, symmetric)
                static = _Static(pre, ranges, cfg, reduce_range)
                static(raw, reader=reader)
                measured = _Measure(parent, static, Path(tmp)).run(layers, raw, out_dir, cfg=cfg, val=val)
        except EdgeslimError:
            raise
        except Exception as err:
            raise QuantizeError(f"ONNX Runtime INT8 quantization of {parent.id} failed: "
                                f"{first_line(err)}") from None
        finally:
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
                    "reduce_range": reduce_range, **measured}
        return art


class _Measure:
    """Sensitivity (``quantize.sensitivity``) and the FP32 fallback (``quantize.max_accuracy_drop``)
    of one ORT INT8 model; leaves the chosen model, compacted, at ``out_dir/model.onnx``."""

    def __init__(self, parent: Artifact, static: _Static, tmp: Path):
        self.parent, self.static, self.tmp = parent, static, tmp
        self.n = 0

    def _int8(self, **which: Optional[list[str]]) -> Artifact:
        self.n += 1
        path = self.static(self.tmp / f"candidate{self.n}.onnx", **which)
        return Artifact(path, "onnx", "int8", self.parent.variant, self.parent.method)

    def run(self, layers: list[tuple[str, str]], raw: Path, out_dir: Path, *, cfg: QuantizeCfg,
            val: Optional[tuple[np.ndarray, Optional[np.ndarray]]]) -> dict[str, Any]:
        info: dict[str, Any] = {}
        control = cfg.max_accuracy_drop is not None
        if (cfg.sensitivity.enabled or control) and val is None:
            # a caller without the val split (TensorRT's ONNX): nothing to score on
            info["sensitivity"] = "not measured: no validation split was given"
        elif cfg.sensitivity.enabled or control:
            vx, vy = val
            if control and (vy is None or len(vy) == 0):
                raise QuantizeError("quantize.max_accuracy_drop needs labelled validation data; "
                                    "this data set has no labels")
            n = cfg.sensitivity.samples
            ref = Reference.of(self.parent, vx[:n], None if vy is None else vy[:n])
            floor = Artifact(self.static.pre, "onnx", "fp32", self.parent.variant, self.parent.method)
            result = layer_sensitivity(layers, lambda names: self._int8(only=names), ref,
                                       full=Artifact(raw, "onnx", "int8", self.parent.variant, self.parent.method),
                                       floor=floor)
            write_sensitivity(out_dir, result)
            info["sensitivity"] = summary(result)
            if control:
                full = ref if len(vx) <= n else Reference.of(self.parent, vx, vy)
                chosen, info["accuracy_control"] = fallback(
                    [r["layer"] for r in result["layers"]], lambda names: self._int8(exclude=names), full,
                    budget_points=float(cfg.max_accuracy_drop), sample=vx[:1])
                raw = chosen.path
        save_onnx(compact_names(load_onnx(raw)), out_dir / "model.onnx")
        return info


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
