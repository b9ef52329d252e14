"""OpenVINO runner: an IR compiled for a device at an explicit inference precision.

OpenVINO picks the inference precision itself unless told: on a CPU with bf16 support
(AVX512-BF16, AMX) it runs FP32 models in bf16, silently, and on this plugin a request for
``f16`` where the CPU has no FP16 arithmetic quietly becomes bf16. So the runner always
sets ``INFERENCE_PRECISION_HINT``, refuses a precision the device does not list in its
``OPTIMIZATION_CAPABILITIES``, reads the precision back from the compiled model, and
records what the compute layers of the compiled graph actually run in.

The precision defaults to the artifact's: ``fp32`` → f32, ``bf16`` → bf16, ``fp16`` → f16
where the device has it (else f32 over the FP16-stored weights), ``int8`` → f32 for the
layers that stay in floating point. Targets pass ``inference_precision="auto"``
(:mod:`edgeslim.targets.runtime_options`): the same, except that an INT8 IR's float layers
run at the device's fastest precision (bf16 where the CPU lists BF16), as OpenVINO itself
would; export parity and quantizer checks use the f32 default.

Example::

    with OpenVinoRunner(artifact, threads=2, inference_precision="bf16") as r:
        logits = r.infer(x)
        r.semantics()["precision_executed"]   # "bf16"
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edgeslim.artifacts import is_int8
from edgeslim.backends.openvino import (PRECISIONS, capabilities, check_ir, core, error_line, supports,
                                       version)
from edgeslim.errors import TargetError
from edgeslim.targets.base import usable_cores
from edgeslim.targets.runner import RUNNERS, Runner

__all__ = ["OpenVinoRunner", "PRECISIONS", "HINTS", "capabilities", "core", "default_precision", "supports"]

HINTS = ("LATENCY", "THROUGHPUT")
# Layers whose runtime precision says what the model's arithmetic ran in.
_COMPUTE = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul",
            "Gemm", "InnerProduct"}
_NAMES = {"i8": "int8", "u8": "int8", "f32": "f32", "bf16": "bf16", "f16": "f16"}


def default_precision(artifact_precision: str, device: str = "CPU", *, fastest: bool = False) -> str:
    """The inference precision for an artifact of ``artifact_precision``.

    ``fastest`` (a target's ``auto``) lets the float layers of an INT8 IR run in bf16 where
    the device lists BF16: OpenVINO's own default there, 1.1x faster on a Zen 4 (issue 20),
    and the row records it. Without it (parity and quantizer checks) they run f32.

    Example::

        default_precision("int8", fastest=True)   # "bf16" on a CPU with AVX512-BF16 or AMX
    """
    if artifact_precision == "bf16":
        return "bf16"
    if artifact_precision == "fp16" and supports("f16", device):
        return "f16"
    # int8 and its variants (int8-qat): the float layers an INT8 IR keeps
    if is_int8(artifact_precision) and fastest and supports("bf16", device):
        return "bf16"
    return "f32"


class OpenVinoRunner(Runner):
    """Options: ``inference_precision`` (auto|f32|bf16|f16), ``performance_hint`` (LATENCY|
    THROUGHPUT, default LATENCY), ``streams`` (int), ``pinning`` (bool: ENABLE_CPU_PINNING;
    default OpenVINO's), ``device`` (default CPU)."""

    format = "openvino"
    runtime = "openvino"
    kinds = ("cpu", "edge")

    def load_impl(self) -> None:
        check_ir(self.artifact.path, error=TargetError)
        device = str(self.options.get("device") or "CPU")
        if device not in core().available_devices:
            raise TargetError(f"OpenVINO device '{device}' is not available here "
                              f"(available: {', '.join(core().available_devices)})")
        asked = self.options.get("inference_precision")
        precision = (default_precision(self.artifact.precision, device, fastest=asked == "auto")
                     if asked in (None, "auto") else asked)
        if precision not in PRECISIONS:
            raise TargetError(f"OpenVINO inference precision must be auto or one of {', '.join(PRECISIONS)}, "
                              f"got '{precision}'")
        if not supports(precision, device):
            raise TargetError(f"OpenVINO {device} cannot run inference precision {precision} on this "
                              f"machine (it supports {', '.join(capabilities(device)) or 'nothing'})")
        hint = str(self.options.get("performance_hint") or "LATENCY").upper()
        if hint not in HINTS:
            raise TargetError(f"OpenVINO performance hint must be LATENCY or THROUGHPUT, got '{hint}'")
        self.device, self._settings = device, self._config(precision, hint)
        try:
            self.model = core().read_model(str(self.artifact.path))
        except Exception as err:
            raise TargetError(f"OpenVINO cannot load {self.artifact.path}: {error_line(err)}") from None
        shape = self.model.inputs[0].get_partial_shape()
        # A dynamic batch (edgeslim exports one) compiles for any batch, and runs slower than
        # the same IR compiled for one shape (mobilenet_v2 INT8 at 224: 1.77 vs 1.62 ms p50 on an
        # AVX-512 EPYC), so each batch size gets its own static compilation, made on first use,
        # as `benchmark_app -shape` would; batch 1 is compiled now, with the load.
        self._static_from_dynamic = shape.rank.is_static and shape[0].is_dynamic and all(
            d.is_static for d in list(shape)[1:])
        self._requests: dict[tuple[int, ...], Any] = {}
        first = tuple([1] + [d.get_length() for d in list(shape)[1:]]) if self._static_from_dynamic else ()
        self.request = self._request_for(first)
        executed = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if executed != precision:  # never report a precision that did not run
            raise TargetError(f"OpenVINO {device} was asked for inference precision {precision} "
                              f"but compiled {self.artifact.path.name} for {executed}")

    def _request_for(self, shape: tuple[int, ...]) -> Any:
        """The infer request compiled for input ``shape`` (``()``: the IR's own shapes)."""
        key = shape if self._static_from_dynamic else ()
        if key not in self._requests:
            model = self.model
            if key:
                model = self.model.clone()
                model.reshape({model.inputs[0]: list(key)})
            try:
                compiled = core().compile_model(model, self.device, self._settings)
            except Exception as err:
                raise TargetError(f"OpenVINO cannot load {self.artifact.path}: {error_line(err)}") from None
            if not self._requests:  # the first compilation is the one semantics() describes
                self.compiled = compiled
            self._requests[key] = compiled.create_infer_request()
        return self._requests[key]

    def _config(self, precision: str, hint: str) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint,
                                  "INFERENCE_NUM_THREADS": int(self.threads or usable_cores())}
        if self.options.get("streams"):
            config["NUM_STREAMS"] = int(self.options["streams"])
        if self.options.get("pinning") is not None:
            config["ENABLE_CPU_PINNING"] = bool(self.options["pinning"])
        return config

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        request = self._request_for(x.shape) if self._static_from_dynamic else self.request
        request.infer({0: x})
        return np.array(request.get_output_tensor(0).data, copy=True)

    def compute_layers(self) -> tuple[dict[str, int], list[str]]:
        """How many compute layers of the compiled graph take activations in each precision,
        and the kernels they run.

        The activation input's type is what the arithmetic runs in: ``runtimePrecision``
        reports f16 for an f32 convolution over FP16-stored weights, the input type does not.
        """
        counts: Counter = Counter()
        kernels: set[str] = set()
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            rt = op.get_rt_info()
            if "layerType" in rt and rt["layerType"].astype(str) in _COMPUTE and op.inputs():
                p = op.inputs()[0].get_element_type().get_type_name()
                counts[_NAMES.get(p, p)] += 1
                if "primitiveType" in rt:
                    kernels.add(rt["primitiveType"].astype(str))
        return dict(counts), sorted(kernels)

    def semantics(self) -> dict[str, Any]:
        layers, kernels = self.compute_layers()
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        # int8 where quantized layers run; otherwise the precision most compute layers ran in
        executed = "int8" if layers.get("int8") else (max(layers, key=layers.get) if layers else hint)
        return {
            "runtime": "openvino",
            "runtime_version": version(),
            "openvino_device": self.device,
            "device_name": str(core().get_property(self.device, "FULL_DEVICE_NAME")).strip(),
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "precision_executed": executed,
            "inference_precision": hint,
            "layer_precisions": layers,
            "kernels": kernels,
            "weights_precision": self.artifact.info.get("weights", "int8" if self.artifact.precision == "int8"
                                                         else self.artifact.precision),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
            "streams": int(self.compiled.get_property("NUM_STREAMS")),
            "pinning": bool(self.compiled.get_property("ENABLE_CPU_PINNING")),
            # who chose the precision: the target's auto (INT8 float layers at the fastest),
            # an explicit request, or the f32-for-checks default
            "precision_policy": str(self.options.get("inference_precision") or "default"),
            # how the IR's shapes were compiled: per batch size from a dynamic batch, or as stored
            "shapes": "static per input shape (the IR's dynamic batch reshaped)" if self._static_from_dynamic
                      else "as in the IR",
            "device_capabilities": capabilities(self.device),
            "sync": True,
        }


RUNNERS.register("openvino", OpenVinoRunner)
