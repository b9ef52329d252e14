"""The rule-based prior: from the constraints, which candidates are worth measuring.

It follows the lecture's decision guide ("which compression should I apply? it depends
on the deploy environment (CPU/GPU), the main problem (latency, or model size on an edge
device), the accuracy drop one accepts, and whether there is compute to retrain"):

- **always** ``ptq``: the original model post-training only, FP32 / FP16 / INT8 (PTQ):
  no training at all, and the reference every compression must beat;
- **no retraining** (``retrain: none``): post-training methods only: one-shot structured
  pruning at mild ratios with BN re-estimation and no fine-tuning, and low-rank
  factorization (Tucker-2, else CP, else SVD) without fine-tuning;
- **GPU**: structured pruning with channels aligned (``round_to: 8``, tensor-core
  friendly) plus FP16 / INT8, in TensorRT when that format is registered;
- **CPU, latency-bound** (a latency budget, or no budget at all: then latency is what the
  decision minimizes): structured pruning plus INT8 at increasing ratios; on an AVX-512
  host also ratio 0.5 with channels aligned to 16 (see :func:`~edgeslim.targets.base.channel_block`,
  which the prior proposes next to the others so that the measurement decides); and the
  latency-aware criterion when a latency budget is set;
- **edge, size-bound** (an edge target, or ``max_bytes``): pruning plus INT8 plus
  distillation from the baseline (the pruned student is fine-tuned against the teacher).

A candidate is a *recipe delta*: dotted keys overriding the user's recipe, so every
candidate is an ordinary recipe that ``edgeslim run`` could run alone. Everything is read
from the registries (METHODS, EXPORTERS, QUANTIZERS, TARGETS): a rule whose method or
format is not registered yields a candidate marked ``skipped`` with the reason.

Example::

    for c in propose(recipe, constraints):
        print(c.name, c.delta, c.reason)
    # l1-50  {'compress.method': 'l1', 'compress.ratio': 0.5, ...}  cpu is latency-bound: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from edgeslim.recipe import CompressCfg, Recipe
from edgeslim.select.constraints import Constraints

STRUCTURED = ("l1", "l2", "taylor", "hrank")  # criteria the prior may use, in preference order
FACTORIZE = ("tucker", "cp", "svd")
# No fine-tuning to recover: stay mild, and unaligned on CPUs (round_to 8 turns 20% of a
# 16-channel layer into 0% or 50%, nothing in between: measured on resnet20/digits, l1 0.2 keeps 72% accuracy
# unaligned and 17% aligned; 0.1 unaligned keeps 95.6% of the baseline's 99.4%).
ONESHOT_RATIOS = (0.1, 0.2)
GPU_ALIGN = 8  # channel multiple for FP16/INT8 tensor-core kernels


@dataclass
class Candidate:
    """One recipe to measure: ``delta`` overrides the user's recipe (dotted keys)."""

    name: str
    delta: dict[str, Any]
    reason: str
    rule: str  # post-training | no-retrain | gpu | cpu-latency | edge-size | recipe
    variant: str = "compressed"  # the rows of its run that are its artifacts
    skipped: Optional[str] = None  # why it is not run (a method or format is not registered)
    failed: Optional[str] = None  # set by the plan when its run fails
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def formats(self) -> list[str]:
        return list(self.delta.get("export.formats", []))

    @property
    def precisions(self) -> list[str]:
        return list(self.delta.get("quantize.precisions", []))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "delta": self.delta, "reason": self.reason, "rule": self.rule,
                "variant": self.variant, "skipped": self.skipped, "failed": self.failed}


def _registered() -> tuple[Any, Any, Any]:
    from edgeslim.compress import METHODS
    from edgeslim.exporters import EXPORTERS
    from edgeslim.quantizers import QUANTIZERS

    return METHODS, EXPORTERS, QUANTIZERS


def _precisions(formats: list[str], wanted: list[str]) -> list[str]:
    """The wanted precisions some format has a registered quantizer for (fp32 needs none)."""
    _, _, quantizers = _registered()
    return [p for p in wanted if p == "fp32" or any(f"{f}-{p}" in quantizers for f in formats)]


def _structured(recipe: Recipe) -> Optional[str]:
    """The recipe's own structured criterion when it has one, else the first registered."""
    methods, _, _ = _registered()
    own = recipe.compress.method
    if own in methods and methods.get(own).family == "structured" and not methods.get(own).trains:
        return own
    return next((m for m in STRUCTURED if m in methods), None)


def propose(recipe: Recipe, c: Constraints) -> list[Candidate]:
    """The candidates for ``recipe`` under ``c``, in the order they run (``ptq`` first)."""
    methods, exporters, _ = _registered()
    formats = [f for f in recipe.export.formats if f in exporters]
    gpu = [t for t in c.targets if c.kinds[t] == "gpu"]
    cpu = [t for t in c.targets if c.kinds[t] == "cpu"]
    edge = [t for t in c.targets if c.kinds[t] == "edge"]
    gpu_formats = formats + (["tensorrt"] if "tensorrt" in exporters and "tensorrt" not in formats else [])
    ptq_formats = gpu_formats if gpu else formats
    epochs = c.finetune_epochs
    base = {"finetune.epochs": epochs, "compress.steps": 1}
    if c.retrain == "none":
        base["finetune.distill"] = None
    out: list[Candidate] = []

    def add(name: str, rule: str, reason: str, delta: dict[str, Any], *, method: Optional[str] = None,
            fmts: Optional[list[str]] = None, precisions: list[str], variant: str = "compressed") -> None:
        if any(x.name == name for x in out):
            return
        fmts = list(fmts or formats)
        # the baseline variant is not trained: only its formats and precisions matter
        full = {**(base if variant != "baseline" else {}), **delta, "export.formats": fmts,
                "quantize.precisions": _precisions(fmts, precisions)}
        skipped = None
        if method is not None and method not in methods:
            skipped = f"compression method '{method}' is not registered"
        elif not fmts:
            skipped = "none of its export formats is registered"
        elif not full["quantize.precisions"]:
            skipped = f"no quantizer for {', '.join(precisions)} in {', '.join(fmts)} is registered"
        out.append(Candidate(name, full, reason, rule, variant=variant, skipped=skipped))

    add("ptq", "post-training", "post-training only: the original model as exported (FP32), FP16 and "
        "INT8 PTQ: no training at all, and the reference every compression must beat",
        {}, fmts=ptq_formats, precisions=["fp32", "fp16", "int8"], variant="baseline")
    crit = _structured(recipe)
    if c.retrain == "none":
        why = "no retraining allowed: post-training methods only"
        for ratio in ONESHOT_RATIOS:
            add(f"{crit or 'l1'}-{round(100 * ratio)}-oneshot", "no-retrain",
                f"{why}: one-shot structured pruning ({crit}) at a mild ratio {ratio} with BN statistics "
                "re-estimated and no fine-tuning",
                {"compress.method": crit, "compress.ratio": ratio, "compress.bn_recalibration": True,
                 "compress.round_to": GPU_ALIGN if gpu else None},
                method=crit or "l1", fmts=ptq_formats, precisions=["fp32", "int8"])
        fac = next((m for m in FACTORIZE if m in methods), FACTORIZE[0])
        fac_delta = {"compress.method": fac}
        if fac in methods and methods.get(fac).options and "rank_method" in methods.get(fac).options.model_fields:
            fac_delta.update({"compress.rank_method": "energy", "compress.energy": 0.9})
        add(fac, "no-retrain", f"{why}: low-rank factorization ({fac}, 90% of each layer's energy kept) "
            "without fine-tuning", fac_delta, method=fac, fmts=ptq_formats, precisions=["fp32", "int8"])
        return out
    ft = f"{epochs} fine-tune epoch{'s' if epochs != 1 else ''} under {c.retrain} retraining"
    if gpu:
        trt = "TensorRT" if "tensorrt" in exporters else "ONNX (TensorRT is not registered)"
        for ratio in (0.3, 0.5):
            add(f"{crit or 'l1'}-{round(100 * ratio)}-a{GPU_ALIGN}", "gpu",
                f"{', '.join(gpu)} is a GPU: structured pruning ({crit}, ratio {ratio}) with channels "
                f"aligned to multiples of {GPU_ALIGN} for tensor cores, {ft}, then FP16 and INT8 in {trt}",
                {"compress.method": crit, "compress.ratio": ratio, "compress.round_to": GPU_ALIGN},
                method=crit or "l1", fmts=gpu_formats, precisions=["fp16", "int8"])
    latency_bound = [t for t in cpu + edge if c.latency_bound(t)]
    no_budget = not c.latency_ms and c.max_bytes is None
    if cpu and (latency_bound or no_budget):
        where = (f"{', '.join(latency_bound)} {'has' if len(latency_bound) == 1 else 'have'} a latency budget"
                 if latency_bound else f"{', '.join(cpu)} is a CPU and no budget is set, so latency decides")
        for ratio in (0.3, 0.5, 0.7):
            add(f"{crit or 'l1'}-{round(100 * ratio)}", "cpu-latency",
                f"{where}: structured pruning ({crit}, ratio {ratio}) removes MACs the CPU would spend "
                f"time on, {ft}, then INT8", {"compress.method": crit, "compress.ratio": ratio},
                method=crit or "l1", precisions=["int8"])
        from edgeslim.targets.base import channel_block, cpu_info

        block = channel_block(cpu_info()["isa"])  # the cpu target is this host
        if block > 8:
            add(f"{crit or 'l1'}-50-a{block}", "cpu-latency",
                f"{where}: structured pruning ({crit}, ratio 0.5) with channel counts kept at multiples of "
                f"{block}, the channel block of this CPU's kernels (AVX-512), {ft}, then INT8",
                {"compress.method": crit, "compress.ratio": 0.5, "compress.round_to": block},
                method=crit or "l1", precisions=["int8"])
        if latency_bound:
            # layers are timed one at a time, which cannot see the kernels' channel blocks: align to them
            aligned = f", channel counts at multiples of {block}" if block > 8 else ""
            delta = {"compress.method": "latency", "compress.ratio": 0.5}
            if aligned:
                delta["compress.round_to"] = block
            add("latency-50", "cpu-latency", f"{where}: latency-aware structured pruning (ratio 0.5, "
                f"channels ranked by their measured cost on this machine{aligned}), {ft}, then INT8",
                delta, method="latency", precisions=["int8"])
    if edge or c.size_bound:
        where = (f"max_bytes is {c.max_bytes:,} bytes" if c.size_bound else
                 f"{', '.join(edge)} is an edge device, where model size is the main problem")
        for ratio in (0.5, 0.7):
            add(f"{crit or 'l1'}-{round(100 * ratio)}-kd", "edge-size",
                f"{where}: pruning ({crit}, ratio {ratio}) plus INT8 plus distillation: the pruned "
                f"student is fine-tuned against the baseline teacher (hinton, {ft})",
                {"compress.method": crit, "compress.ratio": ratio,
                 "finetune.distill": {"method": "hinton", "teacher": "baseline"}},
                method=crit or "l1", precisions=["int8"])
    if recipe.compress != CompressCfg() and recipe.compress.method in methods:
        m = methods.get(recipe.compress.method)
        add("recipe", "recipe", f"the recipe's own compression ({m.name}, ratio {recipe.compress.ratio}), "
            f"{ft}", {}, precisions=list(recipe.quantize.precisions))
    return out


def trains(recipe: Recipe) -> bool:
    """True when running ``recipe`` trains after the baseline (fine-tuning, a method that
    trains, distillation, or a method option counting epochs)."""
    from edgeslim.compress import METHODS

    if recipe.finetune.epochs > 0 or recipe.finetune.distill is not None or recipe.compress.steps > 1:
        return True
    method = METHODS.get(recipe.compress.method)
    if method.trains:
        return True
    opts = recipe.compress.method_options()
    return any(k.endswith("epochs") and (getattr(opts, k) or 0) > 0
               for k in (type(opts).model_fields if opts is not None else {}))
