"""Measured latency of single layers in ONNX Runtime, for latency-aware pruning.

Each Conv2d/Linear is rebuilt as a one-node ONNX graph at its real input shape (batch 1)
and timed in ONNX Runtime's CPU provider, the runtime the ``cpu`` target profiles with.
Timing the layer at full width and with a fraction of its output (or input) channels
removed tells how much latency each channel of that layer is worth, which is not what
its MACs say: depthwise and small-spatial layers are bound by memory and per-op
overhead, wide 1x1 layers by arithmetic.

Example::

    timer = LayerTimer(threads=1, repeats=20)
    ms = timer.time(LayerShape.of(conv, input_shape=(1, 64, 56, 56)))
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import onnx
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

OPSET, IR_VERSION = 17, 8


@dataclass(frozen=True)
class LayerShape:
    """What determines a layer's latency: its kind, widths, kernel and input size."""

    kind: str  # conv | linear
    cin: int
    cout: int
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    bias: bool = False
    spatial: tuple[int, ...] = ()  # conv: (H, W) of the input; linear: leading dims of the input

    @staticmethod
    def of(layer: nn.Module, input_shape: tuple[int, ...]) -> Optional["LayerShape"]:
        """The shape record of a Conv2d/Linear called on ``input_shape``; None for other layers."""
        if isinstance(layer, nn.Conv2d):
            pad = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
            return LayerShape("conv", layer.in_channels, layer.out_channels, layer.groups,
                              tuple(layer.kernel_size), tuple(layer.stride), pad, tuple(layer.dilation),
                              layer.bias is not None, tuple(input_shape[2:]))
        if isinstance(layer, nn.Linear):
            rows = int(np.prod(input_shape[1:-1])) if len(input_shape) > 2 else 1
            return LayerShape("linear", layer.in_features, layer.out_features, bias=layer.bias is not None,
                              spatial=(rows,))
        return None

    def with_widths(self, cin: int, cout: int) -> "LayerShape":
        """The same layer with ``cin`` inputs and ``cout`` outputs (a depthwise conv stays depthwise)."""
        depthwise = self.kind == "conv" and self.groups == self.cin == self.cout and self.groups > 1
        groups = cin if depthwise else self.groups
        return replace(self, cin=cin, cout=cout, groups=groups)

    def macs(self) -> int:
        if self.kind == "linear":
            return self.cin * self.cout * self.spatial[0]
        h, w = self.out_hw()
        return self.cout * (self.cin // self.groups) * self.kernel[0] * self.kernel[1] * h * w

    def out_hw(self) -> tuple[int, int]:
        h, w = self.spatial
        if isinstance(self.padding, str):
            return (h, w) if self.padding == "same" else (
                (h - self.dilation[0] * (self.kernel[0] - 1) - 1) // self.stride[0] + 1,
                (w - self.dilation[1] * (self.kernel[1] - 1) - 1) // self.stride[1] + 1)
        return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
                     zip((h, w), self.padding, self.dilation, self.kernel, self.stride))  # type: ignore


def _graph(shape: LayerShape) -> tuple[onnx.ModelProto, np.ndarray]:
    rng = np.random.default_rng(0)
    inits, inputs = [], ["x"]
    if shape.kind == "conv":
        h, w = shape.spatial
        x = rng.standard_normal((1, shape.cin, h, w), dtype=np.float32)
        weight = rng.standard_normal((shape.cout, shape.cin // shape.groups, *shape.kernel), dtype=np.float32)
        attrs = dict(kernel_shape=list(shape.kernel), strides=list(shape.stride),
                     dilations=list(shape.dilation), group=shape.groups)
        if isinstance(shape.padding, str):
            attrs["auto_pad"] = "SAME_UPPER" if shape.padding == "same" else "VALID"
        else:
            attrs["pads"] = list(shape.padding) * 2
        op = "Conv"
    else:
        x = rng.standard_normal((shape.spatial[0], shape.cin), dtype=np.float32)
        weight = rng.standard_normal((shape.cout, shape.cin), dtype=np.float32)
        attrs, op = dict(transB=1), "Gemm"
    inits.append(numpy_helper.from_array(weight, "W"))
    inputs.append("W")
    if shape.bias:
        inits.append(numpy_helper.from_array(np.zeros(shape.cout, np.float32), "B"))
        inputs.append("B")
    node = helper.make_node(op, inputs, ["y"], **attrs)
    graph = helper.make_graph([node], "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model, x


class LayerTimer:
    """Median ONNX Runtime latency (ms) of one layer; identical shapes are timed once."""

    def __init__(self, *, threads: int, repeats: int = 20, warmup: int = 3):
        self.threads, self.repeats, self.warmup = threads, repeats, warmup
        self._cache: dict[LayerShape, float] = {}

    def time(self, shape: LayerShape) -> float:
        if shape not in self._cache:
            self._cache[shape] = self._measure(shape)
        return self._cache[shape]

    @property
    def measured(self) -> int:
        return len(self._cache)

    def _measure(self, shape: LayerShape) -> float:
        import onnxruntime as ort

        model, x = _graph(shape)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {"x": x}
        for _ in range(self.warmup):
            sess.run(None, feed)
        samples = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            sess.run(None, feed)
            samples.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(samples)
