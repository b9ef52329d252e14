"""OpenVINO INT8 through NNCF post-training quantization.

The FP32 IR is quantized by ``nncf.quantize`` on the very calibration array the ONNX
Runtime path gets (``DataBundle.calibration``, training split), one image per calibration
step as NNCF expects. ``quantize.nncf_preset`` (performance: symmetric activations;
mixed: asymmetric activations), ``quantize.nncf_subset_size`` (default: every
calibration image) and ``quantize.nncf_fast_bias_correction`` pass straight through.

When ``quantize.max_accuracy_drop`` (points) is set, ``nncf.quantize_with_accuracy_control``
is used instead: it measures top-1 accuracy of the FP32 and INT8 models (both at f32
inference precision) on the labelled validation split and reverts the most harmful layers
to floating point until the drop is within bound.

Example::

    art = QUANTIZERS.get("openvino-int8").quantize(ir, calib, out_dir, cfg=QuantizeCfg())
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.backends.common import quiet
from edgeslim.backends.openvino import check_ir, core
from edgeslim.errors import EdgeslimError, QuantizeError, first_line
from edgeslim.quantizers.base import Quantizer, register_quantizer
from edgeslim.quantizers.config import QuantizeCfg


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs progress bars and INFO lines of its own; the pipeline reports progress."""
    import nncf

    level = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)  # its handlers too, not only the logger
    try:
        with quiet("nncf", stderr=True):
            yield
    finally:
        logging.getLogger("nncf").setLevel(level)


def _top1(compiled: Any, items: Any) -> tuple[float, list[float]]:
    """NNCF's validation function: accuracy and a 0/1 value per (x, y) item."""
    hits: list[float] = []
    for x, y in items:
        logits = compiled(x)[0]
        hits.extend((np.asarray(logits).argmax(1) == y).astype(float).tolist())
    return (float(np.mean(hits)) if hits else 0.0), hits


@register_quantizer
class OpenVinoInt8(Quantizer):
    format = "openvino"
    precision = "int8"
    description = "NNCF post-training INT8 (accuracy-controlled with quantize.max_accuracy_drop)"
    needs_calibration = True
    uses_validation = True

    def available(self) -> tuple[bool, str]:
        try:
            import nncf  # noqa: F401
        except ImportError:
            return False, "nncf is not installed"
        return True, ""

    def quantize(self, parent: Artifact, calibration: Optional[np.ndarray], out_dir: Path, *,
                 cfg: QuantizeCfg, val: Optional[tuple[np.ndarray, Optional[np.ndarray]]] = None) -> Artifact:
        import nncf  # seconds to import: only when quantizing
        import openvino as ov

        if parent.format != "openvino":
            raise QuantizeError(f"openvino-int8 quantizes OpenVINO IR, got a {parent.format} artifact")
        if calibration is None or len(calibration) == 0:
            raise QuantizeError("INT8 quantization needs calibration samples")
        subset = cfg.nncf_subset_size or len(calibration)
        if subset > len(calibration):
            raise QuantizeError(f"quantize.nncf_subset_size={subset} exceeds the {len(calibration)} "
                                "calibration samples (data.calibration_samples)")
        check_ir(parent.path, error=QuantizeError)
        model = core().read_model(str(parent.path))
        calib = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))])
        preset = nncf.QuantizationPreset.MIXED if cfg.nncf_preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
        common = dict(preset=preset, subset_size=subset, fast_bias_correction=cfg.nncf_fast_bias_correction)
        controlled = cfg.max_accuracy_drop is not None
        info: dict[str, Any] = {}
        try:
            with _quiet_nncf():
                if not controlled:
                    q = nncf.quantize(model, calib, **common)
                else:
                    vx, vy = val if val is not None else (None, None)
                    if vx is None or vy is None or len(vy) == 0:
                        raise QuantizeError("quantize.max_accuracy_drop needs labelled validation data; "
                                            "this data set has no labels")
                    items = nncf.Dataset([(vx[i:i + 1], vy[i:i + 1]) for i in range(len(vy))],
                                         lambda item: item[0])
                    q = nncf.quantize_with_accuracy_control(
                        model, calib, items, validation_fn=_top1,
                        max_drop=cfg.max_accuracy_drop / 100.0, drop_type=nncf.DropType.ABSOLUTE,
                        **common)
                    info = {"accuracy_control": {"max_drop_points": cfg.max_accuracy_drop,
                                                 "validation": f"val split, {len(vy)} labelled images"}}
        except EdgeslimError:
            raise
        except Exception as err:
            raise QuantizeError(f"NNCF INT8 quantization of {parent.id} failed: {first_line(err)}") from None
        xml = out_dir / "model.xml"
        ov.save_model(q, str(xml), compress_to_fp16=False)
        art = Artifact(xml, "openvino", "int8", parent.variant, parent.method,
                       files=check_ir(xml), parent=parent.id)
        fq = sum(op.get_type_name() == "FakeQuantize" for op in q.get_ops())
        art.info = {"quantizer": "nncf.quantize_with_accuracy_control" if controlled else "nncf.quantize",
                    "nncf": nncf.__version__, "preset": cfg.nncf_preset, "subset_size": subset,
                    "fast_bias_correction": cfg.nncf_fast_bias_correction,
                    "calibration_samples": int(len(calibration)), "fake_quantize_ops": fq,
                    "weights": "int8", **info}
        return art
