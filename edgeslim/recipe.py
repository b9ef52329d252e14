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
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from edgeslim.compress.config import CompressCfg
from edgeslim.config import StrictModel
from edgeslim.data.config import DataCfg
from edgeslim.errors import EdgeslimError, RecipeError
from edgeslim.exporters import EXPORTERS
from edgeslim.exporters.config import ExportCfg, ParityCfg
from edgeslim.finetune.config import BaselineCfg, ControlCfg, DistillCfg, FinetuneCfg, TrainCfg
from edgeslim.finetune.distill import LOSSES
from edgeslim.models.config import ModelCfg
from edgeslim.quantizers.config import QuantizeCfg
from edgeslim.registry import suggest
from edgeslim.select.config import ConstraintsCfg
from edgeslim.targets import parse_target
from edgeslim.targets.config import ProfileCfg, TargetCfg

# Every section, re-exported: ``from edgeslim.recipe import CompressCfg`` keeps working.
__all__ = ["Recipe", "load_recipe", "recipe_from_dict", "recipe_to_dict", "dump_recipe",
           "apply_overrides", "ModelCfg", "DataCfg", "BaselineCfg", "CompressCfg", "DistillCfg",
           "FinetuneCfg", "ControlCfg", "TrainCfg", "ParityCfg", "ExportCfg", "QuantizeCfg", "ProfileCfg", "TargetCfg",
           "ConstraintsCfg"]


class Recipe(StrictModel):
    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    model: ModelCfg = ModelCfg()
    data: DataCfg = DataCfg()
    baseline: BaselineCfg = BaselineCfg()
    compress: CompressCfg = Field(default_factory=CompressCfg)
    finetune: FinetuneCfg = FinetuneCfg()
    control: ControlCfg = ControlCfg()  # the baseline trained as long as the compressed model
    train: TrainCfg = TrainCfg()  # device, precision, workers, EMA of every training stage
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
        if not v:
            raise ValueError("targets is empty")
        for t in v:
            parse_target(t)  # raises with the nearest names for an unknown target
        return v

    @field_validator("export")
    @classmethod
    def _formats(cls, v: ExportCfg) -> ExportCfg:
        for name in v.formats:
            EXPORTERS.get(name)  # raises with the nearest names
        return v

    @field_validator("finetune")
    @classmethod
    def _distill_loss(cls, v: FinetuneCfg) -> FinetuneCfg:
        if v.distill is not None:
            try:
                LOSSES.get(v.distill.method)
            except EdgeslimError as err:  # keeps the nearest names
                raise RecipeError(f"finetune.distill.method: {err}") from None
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
    loc = tuple(e["loc"])
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
    except EdgeslimError as err:  # a registry lookup inside a validator
        raise RecipeError(str(err)) from None


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
        if data is None:  # silently running the default model instead would hide the mistake
            raise RecipeError(f"recipe {p} is empty; write at least the fields to change "
                              f"(`edgeslim recipe` prints the full default to start from)")
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
