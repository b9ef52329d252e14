"""The recipe: one pydantic schema, loaded from YAML, printed back as YAML.

A recipe file names only what differs from the default; everything else is filled in.
``--set key.path=value`` overrides any field after the file is read. Validation happens
once, here, and every problem becomes one :class:`RecipeError` line naming the field
(with the nearest valid key for a typo).

Example::

    recipe = load_recipe("my.yaml", overrides=["compress.ratio=0.3"])
    print(dump_recipe(recipe))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeslim.errors import RecipeError
from edgeslim.registry import suggest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelCfg(_Strict):
    name: str = "resnet20"  # zoo name, or package.module:callable returning an nn.Module
    weights: Optional[str] = None  # state dict (.pt/.pth, loaded weights_only) or .safetensors
    input_size: int = Field(32, gt=0, le=4096)
    num_classes: int = Field(10, gt=0)
    kwargs: dict[str, Any] = {}  # passed to the zoo builder or callable (e.g. width_mult)


class DataCfg(_Strict):
    name: str = "digits"  # digits | synthetic | imagefolder:PATH
    batch_size: int = Field(64, gt=0)
    calibration_samples: int = Field(256, gt=0)  # drawn from the training split only
    val_fraction: float = Field(0.2, gt=0, lt=1)
    limit_train: Optional[int] = Field(None, gt=0)  # first K training samples (quick runs)
    limit_val: Optional[int] = Field(None, gt=0)


class BaselineCfg(_Strict):
    epochs: int = Field(8, ge=0)  # used only when model.weights is null
    lr: float = Field(0.05, gt=0)
    # Linear lr warm-up (capped at a quarter of the epochs). Deep plain-SGD nets need it from
    # scratch: resnet56 on digits at lr 0.05 reached 51.1% after 8 epochs without, 98.9% with
    # one epoch of it (resnet20: 99.2% -> 99.4%).
    warmup_epochs: float = Field(1.0, ge=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    weight_decay: float = Field(5e-4, ge=0)


class CompressCfg(BaseModel):
    """Common pruning options; method-specific options are validated by the method itself."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    method: str = "l1"
    ratio: float = 0.5  # fraction of channels (or weights, for unstructured methods) removed
    scope: Literal["local", "global"] = "local"
    target_macs: Optional[float] = None  # fraction of MACs to remove; overrides ratio
    steps: int = Field(1, ge=1)  # iterative pruning with fine-tuning in between
    round_to: Optional[int] = Field(8, ge=1)  # channel counts kept at multiples of this
    bn_recalibration: bool = True  # re-estimate BN statistics right after pruning
    recalibration_batches: int = Field(10, ge=1)
    ignored_layers: list[str] = []  # module names never pruned

    @field_validator("ratio")
    @classmethod
    def _ratio_in_range(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            # For unstructured methods the ratio is the sparsity: 1.0 would zero every weight.
            raise ValueError(f"compress.ratio must be in (0, 1), got {v}: it is the fraction of channels "
                             "(or, for unstructured methods, of weights: the sparsity) removed")
        return v

    @field_validator("target_macs")
    @classmethod
    def _macs_in_range(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not 0.0 < v < 1.0:
            raise ValueError(f"compress.target_macs must be in (0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _method_options(self) -> "CompressCfg":
        from edgeslim.compress import METHODS  # late: the registry imports torch

        method = METHODS.get(self.method)
        extra = dict(self.__pydantic_extra__ or {})
        allowed = sorted(method.options.model_fields) if method.options else []
        for key in extra:
            if key not in allowed:
                valid = sorted(type(self).model_fields) + allowed
                raise ValueError(
                    f"unknown key 'compress.{key}' for method '{self.method}'{suggest(key, valid)}"
                )
        if method.options is not None:
            method.options.model_validate(extra)
        return self

    def method_options(self) -> BaseModel | None:
        """The method's own options (its pydantic model), defaults filled in."""
        from edgeslim.compress import METHODS

        method = METHODS.get(self.method)
        if method.options is None:
            return None
        return method.options.model_validate(dict(self.__pydantic_extra__ or {}))


class DistillCfg(_Strict):
    method: str = "hinton"  # hinton | fitnet | attention | rkd
    teacher: str = "baseline"  # the baseline model, or a checkpoint path
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)  # weight of the distillation term vs hard labels
    layers: list[str] = []  # student:teacher layer pairs for feature-based losses
    weight: float = Field(1.0, ge=0)  # weight of feature/relation terms
    rkd_distance_weight: float = Field(25.0, ge=0)  # RKD paper's defaults (Park et al. 2019)
    rkd_angle_weight: float = Field(50.0, ge=0)

    @field_validator("method")
    @classmethod
    def _known_loss(cls, v: str) -> str:
        from edgeslim.errors import EdgeslimError
        from edgeslim.finetune.distill import LOSSES  # late: the losses import torch

        try:
            LOSSES.get(v)
        except EdgeslimError as err:  # keeps the nearest names
            raise RecipeError(f"finetune.distill.method: {err}") from None
        return v


class FinetuneCfg(_Strict):
    # 8 epochs at 0.05 (the baseline's lr): a net with half its channels gone needs to
    # relearn, not polish. Measured on the default run: 98.33% vs the baseline's 98.89%;
    # 4 epochs at 0.01 left it at 95.56% (3.3 points down).
    epochs: int = Field(8, ge=0)
    lr: float = Field(0.05, gt=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    # Lighter than the baseline's 5e-4: a pruned net has fewer weights to regularize and
    # little time to recover (measured on digits/resnet20: 98.3% vs 97.5% after 4 epochs).
    weight_decay: float = Field(1e-4, ge=0)
    # Off by default: from trained weights it changed nothing measurable (resnet56, 2x and 8x
    # MACs, 8 epochs at 0.05: 98.3-98.6% with or without one epoch of it).
    warmup_epochs: float = Field(0.0, ge=0)
    distill: Optional[DistillCfg] = None


class ParityCfg(_Strict):
    max_abs: float = Field(1e-3, gt=0)  # FP32 artifact vs PyTorch
    min_cosine: float = Field(0.999, gt=0, le=1)
    samples: int = Field(32, gt=0)


class ExportCfg(_Strict):
    formats: list[str] = ["onnx"]
    opset: Optional[int] = Field(None, ge=13)
    include_baseline: bool = True  # also export the uncompressed model, for comparison
    parity: ParityCfg = ParityCfg()
    openvino_weights: Literal["fp32", "fp16"] = "fp32"

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        from edgeslim.exporters import EXPORTERS

        if not v:
            raise ValueError("export.formats is empty")
        for name in v:
            EXPORTERS.get(name)
        return list(dict.fromkeys(v))


class QuantizeCfg(_Strict):
    precisions: list[Literal["fp32", "fp16", "bf16", "int8"]] = ["fp32", "fp16", "int8"]
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    symmetric_activations: bool = False  # TensorRT-style symmetric INT8 activations
    # 7-bit INT8 weights (ONNX Runtime's reduce_range): x86 CPUs without VNNI multiply
    # uint8 x int8 with VPMADDUBSW, whose int16 sums saturate at 8 bits; "auto" = on when
    # this CPU has AVX2 but neither AVX-512 VNNI nor AVX-VNNI (it builds for itself).
    reduce_range: Union[bool, Literal["auto"]] = "auto"
    # points of top-1 accuracy; set = accuracy-controlled PTQ (NNCF) on the labelled val split
    max_accuracy_drop: Optional[float] = Field(None, ge=0)
    # INT8 may lose this much accuracy (points) against its FP32 parent before the
    # quantize stage fails; null = record only.
    tolerance_points: Optional[float] = Field(None, ge=0)
    nncf_preset: Literal["performance", "mixed"] = "performance"
    nncf_fast_bias_correction: bool = True
    nncf_subset_size: Optional[int] = Field(None, gt=0)  # calibration images NNCF uses; null = all


class ProfileCfg(_Strict):
    warmup: int = Field(10, ge=0)  # warm-up iterations...
    warmup_seconds: float = Field(0.2, ge=0)  # ...and at least this long
    min_iterations: int = Field(20, ge=1)
    # ...and at least this long (bounded by max_seconds): a sub-millisecond model meets the CI
    # after 20 iterations, 5 ms of timing that one stray interrupt can move; measured on the
    # default plan, two builds of one architecture differed by 3-10% between such profiles.
    min_seconds: float = Field(0.5, ge=0)
    max_iterations: int = Field(100_000, ge=1)
    max_seconds: float = Field(3.0, gt=0)  # time budget for the timed loop
    ci_threshold: float = Field(0.02, gt=0)  # stop when the median's 95% CI is within ±2%
    batch_sizes: list[int] = [1]  # latency at the first; throughput at each
    accuracy: bool = True  # measure the artifact's accuracy on the validation split


class TargetCfg(BaseModel):
    """A deployment target: a registered name (cpu, edge, gpu) or ssh://user@host[:port]."""

    model_config = ConfigDict(extra="allow")
    name: str


class ConstraintsCfg(_Strict):
    latency_ms: Optional[Union[float, dict[str, float]]] = None  # one budget or per target
    latency_percentile: Literal["p50", "p90", "p99"] = "p50"
    max_bytes: Optional[int] = Field(None, gt=0)
    max_accuracy_drop: Optional[float] = None  # points vs the baseline
    retrain: Literal["none", "short", "full"] = "full"

    @field_validator("max_accuracy_drop")
    @classmethod
    def _drop(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and v < 0:
            raise ValueError(f"constraints.max_accuracy_drop must be >= 0, got {v}")
        return v

    @field_validator("latency_ms")
    @classmethod
    def _latency(cls, v):
        values = v.values() if isinstance(v, dict) else [v] if v is not None else []
        for x in values:
            if x <= 0:
                raise ValueError(f"constraints.latency_ms must be > 0, got {x}")
        return v


class Recipe(_Strict):
    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    model: ModelCfg = ModelCfg()
    data: DataCfg = DataCfg()
    baseline: BaselineCfg = BaselineCfg()
    compress: CompressCfg = Field(default_factory=CompressCfg)
    finetune: FinetuneCfg = FinetuneCfg()
    export: ExportCfg = Field(default_factory=ExportCfg)
    quantize: QuantizeCfg = QuantizeCfg()
    targets: list[TargetCfg] = Field(default_factory=lambda: [TargetCfg(name="cpu")])
    profile: ProfileCfg = ProfileCfg()
    constraints: ConstraintsCfg = ConstraintsCfg()

    @field_validator("targets", mode="before")
    @classmethod
    def _target_names(cls, v):
        if isinstance(v, (str, dict)):
            v = [v]
        if isinstance(v, list):
            return [{"name": t} if isinstance(t, str) else t for t in v]
        return v

    @field_validator("targets")
    @classmethod
    def _targets(cls, v):
        from edgeslim.targets import parse_target

        if not v:
            raise ValueError("targets is empty")
        for t in v:
            parse_target(t)  # raises with the nearest names for an unknown target
        return v


# --------------------------------------------------------------------------- loading


def _nearest_key(model_cls: type[BaseModel], loc: tuple) -> str:
    """For an extra_forbidden error at ``loc``, the nearest valid key at that level."""
    cls: Any = model_cls
    for part in loc[:-1]:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return ""
        ann = field.annotation
        # unwrap Optional[X]
        for arg in getattr(ann, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                ann = arg
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ""
        cls = ann
    return suggest(str(loc[-1]), sorted(getattr(cls, "model_fields", {})))


def _format_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = tuple(p for p in e["loc"] if not isinstance(p, int) or True)
    path = ".".join(str(p) for p in loc)
    if e["type"] == "extra_forbidden":
        return f"unknown recipe key '{path}'{_nearest_key(Recipe, loc)}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # our validators already name the field
        return msg if path.split(".")[0] in msg or "compress." in msg else f"{path}: {msg}"
    if e["type"] == "literal_error":
        return f"{path}: {msg}, got {e.get('input')!r}"
    where = f"recipe field '{path}'" if path else "recipe"
    return f"{where}: {msg} (got {e.get('input')!r})"


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise RecipeError(f"--set: bad key '{dotted}'")
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = {}
            node[p] = child
        if not isinstance(child, dict):
            raise RecipeError(f"--set: '{dotted}': '{p}' is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings; values are parsed as YAML (``0.3``, ``[onnx]``)."""
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set expects key.path=value, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(data, key.strip(), value)
    return data


def recipe_from_dict(data: Any) -> Recipe:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a mapping of keys, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(_format_error(err)) from None
    except RecipeError:
        raise
    except Exception as err:  # a registry lookup inside a validator (EdgeslimError)
        from edgeslim.errors import EdgeslimError

        if isinstance(err, EdgeslimError):
            raise RecipeError(str(err)) from None
        raise


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe (or the embedded default when ``path`` is None) and apply overrides."""
    data: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise RecipeError(f"recipe file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise RecipeError(f"recipe {p} is not valid YAML{where}") from None
        except UnicodeDecodeError:
            raise RecipeError(f"recipe {p} is not UTF-8 text") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RecipeError(f"recipe {p} must be a mapping of keys, got {type(data).__name__}")
    if overrides:
        data = apply_overrides(data, overrides)
    return recipe_from_dict(data)


def recipe_to_dict(recipe: Recipe) -> dict:
    data = recipe.model_dump(mode="json")
    data["targets"] = [
        t["name"] if set(t) == {"name"} else t for t in data["targets"]
    ]
    return data


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML a user can copy and edit."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None)
