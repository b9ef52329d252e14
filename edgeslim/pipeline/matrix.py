"""The variant × format × precision matrix of one run, as typed values.

A run exports each *variant* (the baseline and the compressed model) to each format of
``export.formats`` and derives one artifact per precision of ``quantize.precisions``
(``fp32`` is the exported artifact itself). A :class:`Cell` names one artifact and the
stage folders it comes from; a cell that cannot be made becomes a :class:`Skipped` row.

Example::

    for v in variants(recipe):
        for cell in cells(recipe, v, "onnx"):
            cell.export_folder, cell.quantize_folder   # '30-export/compressed-onnx', '40-quantize/...'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from edgeslim.recipe import Recipe

# the precision of quantization-aware training: its cells come from the QAT stages
# (pipeline/stages/qat.py), not from a registered post-training quantizer
QAT = "int8-qat"


@dataclass(frozen=True)
class Variant:
    name: str  # baseline | compressed
    method: str  # "none" for the baseline, else compress.method
    source: str  # the stage whose model it exports: 00-baseline | 20-finetune


@dataclass(frozen=True)
class Cell:
    variant: Variant
    format: str
    precision: str

    @property
    def export_folder(self) -> str:
        return f"30-export/{self.variant.name}-{self.format}"

    @property
    def quantize_folder(self) -> Optional[str]:
        """None for fp32: the exported artifact is the fp32 one."""
        if self.precision == "fp32":
            return None
        return f"40-quantize/{self.variant.name}-{self.format}-{self.precision}"

    @property
    def qat_folder(self) -> str:
        """Where the variant trains with fake quantizers, once for all its formats."""
        return qat_folder(self.variant)


@dataclass(frozen=True)
class Skipped:
    """A cell without an artifact: ``skipped`` (it cannot be made here) or ``failed`` (it was
    made and failed its check against its parent)."""

    cell: Cell
    reason: str
    status: str = "skipped"

    def to_json(self) -> dict[str, Any]:
        c = self.cell
        return {"variant": c.variant.name, "method": c.variant.method, "format": c.format,
                "precision": c.precision, "reason": self.reason,
                # only when failed: the stage keys of runs with skipped rows stay what they were
                **({"status": self.status} if self.status != "skipped" else {})}


def variants(recipe: Recipe) -> list[Variant]:
    """The models a run exports: the compressed one, and the baseline when
    ``export.include_baseline`` asks for it, except under ``compress.method: none``, whose
    compressed model is the baseline unchanged (exporting it twice would only time it twice).

    Example: ``[v.name for v in variants(recipe)]`` -> ``['baseline', 'compressed']``.
    """
    out = [Variant("compressed", recipe.compress.method, "20-finetune")]
    if recipe.export.include_baseline and recipe.compress.method != "none":
        out.insert(0, Variant("baseline", "none", "00-baseline"))
    return out


def qat_folder(variant: Variant) -> str:
    """``35-qat/<variant>``: the quantization-aware training of one variant's model."""
    return f"35-qat/{variant.name}"


def cells(recipe: Recipe, variant: Variant, fmt: str) -> list[Cell]:
    """The artifacts the recipe asks of one export, in ``quantize.precisions`` order (the
    exported fp32 artifact is one of them only when fp32 is listed)."""
    return [Cell(variant, fmt, p) for p in recipe.quantize.precisions]


def all_precisions(recipe: Recipe, variant: Variant, fmt: str) -> list[Cell]:
    """fp32 and every listed precision: the rows an export that could not run stands for."""
    return [Cell(variant, fmt, p) for p in dict.fromkeys(["fp32", *recipe.quantize.precisions])]
