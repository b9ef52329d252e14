"""What ``edgeslim bench`` feeds an artifact: its input shape, a real image, validation data.

- :func:`model_io` reads an ONNX or OpenVINO model's input/output shapes and what precision
  it stores, without running it;
- :func:`resolve_shape` checks the shape the user gave against the model's, and says what
  is missing (a dynamic axis without ``--input-shape``, a fixed batch asked for another);
- :func:`time_preprocess` times decode + resize + normalize of a real image, the part of
  an application's latency that is not the runtime's;
- :func:`validation` loads a recipe data source (``digits``, ``imagefolder:PATH``, ...)
  shaped for the model, for a classifier's accuracy.

Example::

    io = model_io(Path("resnet18.onnx"), "onnx")   # io.input_shape == (None, 3, 224, 224)
    resolve_shape(artifact, parse_shape("1x3x224x224"), [1, 8])   # (1, 3, 224, 224)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeslim.artifacts import Artifact
from edgeslim.backends.openvino import core
from edgeslim.data import load_data
from edgeslim.errors import EdgeslimError, TargetError, first_line
from edgeslim.targets.config import ProfileCfg
from edgeslim.targets.profiler import time_infer

Shape = tuple[Optional[int], ...]  # None: a dynamic axis
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
              "MatMulInteger", "FakeQuantize"}
# ImageNet statistics: what torchvision-style classifiers expect unless told otherwise.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class ModelIO:
    input_name: str
    input_shape: Shape
    output_shape: Shape
    precision: str  # what the weights/ops say: int8, fp16 or fp32
    external: list[Path] = field(default_factory=list)  # ONNX external data files


def model_io(path: Path, fmt: str) -> ModelIO:
    """Input/output shapes and stored precision of an ONNX or OpenVINO model."""
    try:
        return _onnx_io(path) if fmt == "onnx" else _openvino_io(path)
    except EdgeslimError:
        raise
    except Exception as err:  # a corrupt file: one line naming it
        raise TargetError(f"cannot read {path.name} as {fmt}: {first_line(err)}") from None


def _onnx_io(path: Path) -> ModelIO:
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if not inputs or not g.output:
        raise TargetError(f"{path.name} has no graph input or output")
    dims = lambda v: tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None  # noqa: E731
                           for d in v.type.tensor_type.shape.dim)
    ops = {n.op_type for n in g.node}
    fp16 = any(i.data_type == TensorProto.FLOAT16 for i in g.initializer)
    external = sorted({path.parent / e.value for i in g.initializer for e in i.external_data if e.key == "location"})
    for f in external:
        if path.parent.resolve() not in f.resolve().parents:
            raise TargetError(f"{path.name} points at external data outside its folder: {f}")
    return ModelIO(inputs[0].name, dims(inputs[0]), dims(g.output[0]),
                   "int8" if ops & _QUANT_OPS else "fp16" if fp16 else "fp32", external)


def _openvino_io(path: Path) -> ModelIO:
    model = core().read_model(str(path))
    dims = lambda ps: tuple(d.get_length() if d.is_static else None for d in ps)  # noqa: E731
    ops = {op.get_type_name() for op in model.get_ops()}
    f16 = any(op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() == "f16"
              for op in model.get_ops())
    inp = model.inputs[0]
    return ModelIO(inp.get_any_name(), dims(inp.get_partial_shape()),
                   dims(model.outputs[0].get_partial_shape()),
                   "int8" if ops & _QUANT_OPS else "fp16" if f16 else "fp32")


def parse_shape(text: str) -> tuple[int, ...]:
    """``1x3x224x224`` (or with commas) → (1, 3, 224, 224)."""
    parts = re.split(r"[x,]", text.strip().lower())
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise TargetError(f"--input-shape must be four positive integers NxCxHxW like 1x3x224x224, got '{text}'")
    return tuple(int(p) for p in parts)


def _fmt(shape: Shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def resolve_shape(art: Artifact, given: Optional[tuple[int, ...]], batches: list[int]) -> Optional[tuple[int, ...]]:
    """The [N,C,H,W] input to time ``art`` with (N = the first batch size); None for a
    TensorRT engine without ``given`` (its rows then say so)."""
    if art.format == "tensorrt":
        return (batches[0], *given[1:]) if given else None
    io = model_io(art.path, art.format)
    shape = io.input_shape
    if len(shape) != 4:
        raise TargetError(f"{art.path.name}: input '{io.input_name}' has shape {_fmt(shape)}; edgeslim bench "
                          f"times image models with one [N,C,H,W] input")
    if given:
        for axis, (m, g) in enumerate(zip(shape[1:], given[1:]), start=1):
            if m is not None and m != g:
                raise TargetError(f"--input-shape {_fmt(given)} does not fit {art.path.name}: its input "
                                  f"'{io.input_name}' is {_fmt(shape)}")
    elif any(d is None for d in shape[1:]):
        raise TargetError(f"{art.path.name}: input '{io.input_name}' has dynamic axes ({_fmt(shape)}): "
                          f"give --input-shape, e.g. 1x3x224x224")
    if shape[0] is not None and any(b != shape[0] for b in batches):
        raise TargetError(f"{art.path.name}: input '{io.input_name}' has a fixed batch of {shape[0]}; "
                          f"batch sizes {batches} need a model exported with a dynamic batch axis")
    dims = given[1:] if given else tuple(int(d) for d in shape[1:])  # type: ignore[arg-type]
    return (batches[0], *dims)


@dataclass
class Preprocessed:
    array: np.ndarray  # float32 [1,C,H,W]: the image as the model takes it
    latency_ms: dict[str, float]
    semantics: dict[str, Any]


class _Preprocess:
    """The work an application does per image, shaped like a runner for the timing loop."""

    def __init__(self, image: Path, shape: tuple[int, ...]):
        self.image, self.size = image, (shape[3], shape[2])  # PIL wants (W, H)
        self.mean = np.asarray(MEAN, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(STD, np.float32).reshape(3, 1, 1)

    def infer(self, _: Any) -> np.ndarray:
        from PIL import Image

        with Image.open(self.image) as im:  # decode from the file each time, as an app does
            rgb = im.convert("RGB").resize(self.size, Image.BILINEAR)
        x = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return ((x - self.mean) / self.std)[None].astype(np.float32)


def time_preprocess(image: Path, shape: tuple[int, ...], cfg: ProfileCfg) -> Preprocessed:
    """Time decode + resize + normalize of ``image`` for an input of ``shape`` in this process."""
    from PIL import Image, UnidentifiedImageError

    image = Path(image).expanduser()
    if shape[1] != 3:
        raise TargetError(f"--preprocess makes 3-channel RGB inputs; the model takes {shape[1]} channels")
    try:
        with Image.open(image) as im:
            im.load()
            source = f"{im.format} {im.width}x{im.height}"
    except (OSError, UnidentifiedImageError) as err:
        raise TargetError(f"cannot read image {image}: {first_line(err)}") from None
    step = _Preprocess(image, shape)
    stats = time_infer(step, np.empty(0, np.float32), cfg)  # type: ignore[arg-type]
    return Preprocessed(step.infer(None), stats["latency_ms"], {
        "image": str(image), "image_source": source, "steps": "decode, RGB, bilinear resize, /255, ImageNet mean/std",
        "measured_in": "this process (PIL + numpy)", "iterations": stats["iterations"],
        "end_to_end": "preprocess p50 + artifact p50 (batch 1)"})


def validation(art: Artifact, data: str, shape: tuple[int, ...]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The validation split of recipe data source ``data``, sized for ``art``'s input."""
    if shape[2] != shape[3]:
        raise TargetError(f"--accuracy needs a square input; {art.path.name} takes {shape[2]}x{shape[3]}")
    classes = None
    if art.format != "tensorrt":
        out = model_io(art.path, art.format).output_shape
        classes = out[-1] if out else None
    if not classes:
        raise TargetError(f"--accuracy: cannot tell how many classes {art.path.name} predicts")
    bundle = load_data(data, input_size=shape[2], num_classes=int(classes))
    return bundle.val_arrays()
