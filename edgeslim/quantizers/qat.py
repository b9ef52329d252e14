"""Quantization-aware training (the ``int8-qat`` precision) with NNCF's PyTorch backend.

The model a variant ships (fine-tuned, or the baseline) gets NNCF fake quantizers
(``nncf.quantize`` on calibration images: 8-bit symmetric per-channel weights, 8-bit
activations at the inputs of every convolution, matmul and add, as the OpenVINO and ONNX
Runtime INT8 kernels take them), trains a little through them (straight-through
gradients; the scales train too), and is exported once as an ONNX with explicit
QuantizeLinear/DequantizeLinear pairs: ONNX Runtime fuses them into QLinearConv, OpenVINO
reads them as FakeQuantize with int8 weights, a strongly typed TensorRT build takes them.

BatchNorm is folded into its convolution first (when the model traces with ``torch.fx``):
the exported graph is then DQ -> Conv -> Q, the pattern runtimes fuse into one INT8
convolution; a BatchNorm left between them keeps that convolution in floating point.

Why NNCF (measured, issue 17): it is already a dependency, its torch QAT trains on this
CPU (bf16 autocast too), and its quantizers export Q/DQ through the TorchScript exporter.
``nncf.strip`` and NNCF's FX path need ``torchao`` (not a dependency), so neither is used.

Example::

    folded = fold_batchnorm(model)                     # 21 on resnet20
    qmodel = prepare_qat(model, calib, preset="performance")
    train(qmodel, data, TrainSpec(epochs=2, lr=0.005))
    qat_to_onnx(qmodel, calib[:2], Path("out/model.onnx"))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper
from pydantic import Field

from edgeslim.backends.common import quiet
from edgeslim.config import StrictModel
from edgeslim.errors import QuantizeError, first_line
from edgeslim.exporters.onnx import INPUT, OUTPUT, strip_debug_info
from edgeslim.exporters.onnx_files import check_onnx, save_onnx
from edgeslim.exporters.parity import MIN_COSINE, compare
from edgeslim.quantizers.onnx_graph import compact_names

# QDQ export needs opset 13 (per-channel DequantizeLinear)
MIN_OPSET, DEFAULT_OPSET = 13, 17
CALIBRATION_BATCH = 32


class QatCfg(StrictModel):
    """``quantize.qat``: how ``int8-qat`` trains."""

    # Two epochs: QAT starts from converged weights and only adapts them (and the scales) to
    # the rounding grid; NVIDIA's and NNCF's guides use ~10 % of the original schedule.
    epochs: int = Field(2, ge=1)
    # null = 0.01 x finetune.lr (0.0005 by default). BatchNorm is folded into the convolutions
    # before QAT, which takes away its scale invariance: on resnet20/digits (pruned l1 0.5)
    # 0.1 x (0.005) diverged to 10 % accuracy within 10 SGD steps, 0.0005 kept 99.2 %.
    lr: Optional[float] = Field(None, gt=0)
    # true: distill from the baseline with finetune.distill's loss (hinton when none is set)
    distill: bool = False
    # per_tensor: one scale per activation tensor, what ONNX Runtime's QLinearConv and a
    # strongly typed TensorRT build take. NNCF's CPU default quantizes the inputs of depthwise
    # convolutions per channel, which OpenVINO runs but ONNX Runtime cannot fuse: on
    # mobilenet_v2 (Fashion-MNIST, 28 px) that QAT ONNX ran 0.80 ms against 0.14 ms for PTQ.
    activations: Literal["per_tensor", "per_channel"] = "per_tensor"


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that follows a Conv2d alone into it, in place (eval-mode
    statistics); returns how many were folded (0 when the model does not trace with fx).

    Example: ``fold_batchnorm(resnet20)`` -> ``21``; ``resnet20`` then has ``Identity`` for BNs.
    """
    import torch.fx as fx
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # control flow fx cannot trace: quantize with BatchNorm in place
        return 0
    modules = dict(model.named_modules())
    folded = 0
    for node in graph.nodes:
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.BatchNorm2d) or not node.args:
            continue
        prev = node.args[0]
        conv = modules.get(prev.target) if getattr(prev, "op", None) == "call_module" else None
        if isinstance(conv, nn.Conv2d) and len(prev.users) == 1:
            model.set_submodule(prev.target, fuse_conv_bn_eval(conv, bn))
            model.set_submodule(node.target, nn.Identity())
            folded += 1
    return folded


class _Top(nn.Module):
    """A top module of its own around an ``nn.Sequential``: NNCF stores its hooks in a child of
    the top module, and a Sequential's forward would call that child as a layer."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def prepare_qat(model: nn.Module, calibration: np.ndarray, *, preset: str = "performance",
                per_channel_activations: bool = False) -> nn.Module:
    """``model`` with NNCF fake quantizers calibrated on ``calibration`` (NCHW float32);
    trainable (``model.train()``), exported with :func:`qat_to_onnx`.

    ``preset``: ``performance`` (symmetric activations) or ``mixed`` (asymmetric), as
    ``quantize.nncf_preset`` for the OpenVINO PTQ path. An ``nn.Sequential`` comes back inside
    a top module of its own: its layers are then ``model.0``, ``model.1``, ... (as a feature
    distillation's ``layers`` must name them for QAT). ``per_channel_activations`` False
    (``quantize.qat.activations: per_tensor``) keeps one scale per activation tensor.
    """
    import nncf  # seconds to import: only QAT runs pay it

    if len(calibration) == 0:
        raise QuantizeError("int8-qat: no calibration images (data.calibration_samples is 0?)")
    batches = [torch.from_numpy(np.ascontiguousarray(calibration[i:i + CALIBRATION_BATCH], dtype=np.float32))
               for i in range(0, len(calibration), CALIBRATION_BATCH)]
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    advanced = AdvancedQuantizationParameters(
        disable_bias_correction=True,
        activations_quantization_params=None if per_channel_activations else QuantizationParameters(per_channel=False))
    if isinstance(model, nn.Sequential):
        model = _Top(model)
    level = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        with quiet("nncf", stderr=True):
            # no bias correction: the training that follows corrects biases along with the rest
            return nncf.quantize(model.eval(), nncf.Dataset(batches), subset_size=len(batches),
                                 preset=nncf.QuantizationPreset(preset), advanced_parameters=advanced)
    except Exception as err:  # a model NNCF's tracer cannot take
        raise QuantizeError(f"int8-qat: NNCF cannot insert fake quantizers: {first_line(err)}") from None
    finally:
        logging.getLogger("nncf").setLevel(level)


def quantizer_count(model: nn.Module) -> int:
    """How many NNCF fake quantizers ``model`` holds (0: not prepared)."""
    from nncf.torch.quantization.layers import BaseQuantizer

    return sum(isinstance(m, BaseQuantizer) for m in model.modules())


def qat_to_onnx(model: nn.Module, sample: np.ndarray, path: Path, opset: Optional[int] = None) -> Path:
    """Write the fake-quantized ``model`` as a Q/DQ ONNX at ``path`` with a dynamic batch
    axis; weights are stored as int8 initializers (their QuantizeLinear folded away).

    The TorchScript exporter is the one NNCF's quantizers emit Q/DQ pairs under; the
    torch.export one would trace into their kernels.
    """
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    for m in model.modules():
        if isinstance(m, BaseQuantizer):
            m.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    x = torch.from_numpy(np.ascontiguousarray(sample[:2], dtype=np.float32))
    raw = path.with_name(path.stem + ".raw.onnx")
    try:
        with quiet("torch.onnx", warnings_too=True), torch.no_grad():
            torch.onnx.export(model.eval(), (x,), str(raw), input_names=[INPUT], output_names=[OUTPUT],
                              opset_version=max(MIN_OPSET, opset or DEFAULT_OPSET), dynamo=False,
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        # int8 weights, and short names: on a small model the long ones weigh as much as they do
        proto = compact_names(fold_weight_quantizers(strip_debug_info(onnx.load(str(raw)))))
    except QuantizeError:
        raise
    except Exception as err:
        raise QuantizeError(f"int8-qat: the fake-quantized model cannot be exported to ONNX: {first_line(err)}") from None
    finally:
        raw.unlink(missing_ok=True)
    save_onnx(proto, path)
    check_onnx(path)
    return path


def export_parity(model: nn.Module, path: Path, images: np.ndarray) -> dict:
    """The Q/DQ ONNX at ``path`` in ONNX Runtime against the fake-quantized ``model`` it was
    exported from, on ``images``: its parity report, or a :class:`QuantizeError` when the export
    strayed from the trained model (the int8-qat minimum cosine)."""
    import onnxruntime as ort

    x = np.ascontiguousarray(images, dtype=np.float32)
    device = next(model.parameters()).device
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x).to(device)).float().cpu().numpy()
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {INPUT: x})[0]
    # compare and raise here: quantizers.base (check_against_parent) imports this module's config
    report = compare(ref, out, max_abs=None, min_cosine=MIN_COSINE["int8-qat"])
    if not report.passed:
        raise QuantizeError(f"int8-qat: the exported Q/DQ ONNX differs from the trained model beyond tolerance: "
                            f"{report.summary()}")
    return report.to_json()


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every constant value of the graph by name: initializers and Constant nodes."""
    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _quantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    """ONNX QuantizeLinear: round half to even, saturate to the zero point's type."""
    if scale.ndim == 1 and scale.size > 1:  # per channel along ``axis``
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    info = np.iinfo(zero.dtype)
    q = np.rint(x.astype(np.float64) / scale) + zero.astype(np.int64)
    return np.clip(q, info.min, info.max).astype(zero.dtype)


def fold_weight_quantizers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every QuantizeLinear of a constant (the weights) by its int8 result, so the
    file stores int8 weights and DequantizeLinear reads them, as a PTQ Q/DQ model does."""
    g = model.graph
    consts = _constants(g)
    inits = {t.name for t in g.initializer}
    keep, new = [], []
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in inits and len(n.input) == 3 \
                and n.input[1] in consts and n.input[2] in consts:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            q = _quantize(consts[n.input[0]], consts[n.input[1]], consts[n.input[2]], axis)
            new.append(numpy_helper.from_array(q, n.output[0]))
        else:
            keep.append(n)
    used = {i for n in keep for i in n.input} | {o.name for o in g.output}
    survivors = [t for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(survivors + new)
    return model


def unsigned_activations(model: onnx.ModelProto) -> int:
    """Re-express every int8 activation Q/DQ pair (zero point z) as uint8 with zero point z + 128,
    in place; returns how many. The same grid of real values (int8 saturates at -128/127, uint8
    at 0/255 around z + 128): the graph as written computes the same outputs bit for bit (ONNX
    Runtime with its graph optimizations off); fused, its INT8 kernels round as a PTQ model's do.

    Why: NNCF exports signed quantizers where an activation can be negative (mobilenet_v2's
    linear bottlenecks, a residual sum) and unsigned ones after a ReLU. ONNX Runtime fuses
    DQ -> Conv -> Q into QLinearConv only when input and output share a type, and on x86 turns
    an int8 Q -> DQ pair into uint8 itself only where the tensor has one reader: a residual
    block's output (read by the next block and by the skip Add) stays int8, and the convolutions
    on either side of it stay in float. mobilenet_v2's Fashion-MNIST QAT ONNX kept 15 of 52 in
    float, each int8 -> uint8 or uint8 -> int8 (2.0x its PTQ twin's p50; uint8 throughout:
    1.0x, benchmarks/results/qat_onnx.md). Weights stay int8: ONNX Runtime's U8S8 path, the one its
    own static quantization emits. Not for TensorRT, which takes symmetric int8 only: the
    trained Q/DQ ONNX is left as exported. Graphs with subgraphs (If, Loop) are left as they are.
    """
    g = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        return 0  # names read inside a subgraph are not in ``readers`` below: leave such a graph alone
    consts = _constants(g)
    weights = set(consts)  # initializers and Constant nodes: a Q of one of them quantizes a weight
    taken = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}

    def grid(node: onnx.NodeProto) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        return consts.get(node.input[1]), (consts.get(node.input[2]) if len(node.input) > 2 else None)

    def same(a: tuple, b: tuple) -> bool:
        return all(x is not None and y is not None and np.array_equal(x, y) for x, y in zip(a, b))

    changed, retyped = 0, set()
    for n in g.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in weights or n.output[0] in outputs:
            continue  # weights (folded already) or a graph output
        scale, zero = grid(n)
        deqs = readers.get(n.output[0], [])
        if any(a.name == "output_dtype" for a in n.attribute):
            continue  # opset 21: the type is an attribute too
        if zero is None or zero.dtype != np.int8 or not deqs \
                or any(d.op_type != "DequantizeLinear" or not same(grid(d), (scale, zero)) for d in deqs):
            continue  # uint8 already, or not a plain Q -> DQ pair on one grid: left as it is
        name = f"{n.output[0]}_zp_u8"
        while name in taken:
            name += "_"
        taken.add(name)
        shifted = numpy_helper.from_array((zero.astype(np.int16) + 128).astype(np.uint8), name)
        g.initializer.append(shifted)
        retyped.add(n.output[0])
        for node in (n, *deqs):
            node.input[2] = shifted.name
        changed += 1
    stale = [v for v in g.value_info if v.name in retyped]  # shape hints typed int8
    for v in stale:
        g.value_info.remove(v)
    _drop_unread(g)
    return changed


def _drop_unread(g: onnx.GraphProto) -> None:
    """Remove initializers and Constant nodes nothing reads any more."""
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output} | {i.name for i in g.input}
    keep = [n for n in g.node if n.op_type != "Constant" or n.output[0] in read]
    del g.node[:]
    g.node.extend(keep)
    used = [t for t in g.initializer if t.name in read]
    del g.initializer[:]
    g.initializer.extend(used)


def library() -> str:
    """What trains the fake quantizers, with its version (recorded with the artifact)."""
    import nncf

    return f"nncf {nncf.__version__}"


def int8_weight_count(path: Path) -> int:
    """How many int8 initializers the ONNX at ``path`` stores (its quantized weights)."""
    g = onnx.load(str(path)).graph
    return sum(t.data_type == onnx.TensorProto.INT8 for t in g.initializer)
