"""The rule-based prior: from the constraints, which candidates are worth measuring.

It follows the lecture's decision guide ("which compression should I apply? it depends
on the deploy environment (CPU/GPU), the main problem (latency, or model size on an edge
device), the accuracy drop one accepts, and whether there is compute to retrain"):

- **always** ``ptq``: the original model post-training only, FP32 / FP16 / INT8 (PTQ):
  no training at all, and the reference every compression must beat;
  under an accuracy budget (``max_accuracy_drop`` below 100 points) its INT8 is the FP32
  fallback (``quantize.max_accuracy_drop``: the most sensitive layers stay FP32);
- **no retraining** (``retrain: none``): post-training methods only: one-shot structured
  pruning at mild ratios with BN re-estimation and no fine-tuning, and low-rank
  factorization (Tucker-2, else CP, else SVD) without fine-tuning;
- **GPU**: structured pruning with channels aligned (``round_to: 8``, tensor-core
  friendly) plus FP16 / INT8, in TensorRT when that format is registered;
- **bf16 on CPUs**: where a CPU or edge target is set and a listed format executes bf16 on
  this host (OpenVINO on a CPU listing BF16: AVX512-BF16 or AMX), the post-training and
  latency-bound candidates also ask for ``bf16``; the measurement then decides, and its
  accuracy is checked like every row's;
- **CPU, latency-bound** (a latency budget, or no budget at all: then latency is what the
  decision minimizes): structured pruning plus INT8 at increasing ratios; on an AVX-512
  host also ratio 0.5 with channels aligned to 16 (see :func:`~edgeslim.targets.base.channel_block`,
  which the prior proposes next to the others so that the measurement decides); and the
  latency-aware criterion when a latency budget is set;
- **edge, size-bound** (an edge target, or ``max_bytes``): pruning plus INT8 plus
  distillation from the baseline (the pruned student is fine-tuned against the teacher);
- **accuracy-bound INT8** (a ``max_accuracy_drop`` below 100 points): the post-training
  INT8 keeps its most sensitive layers in FP32 until the budget holds, and when retraining
  is allowed the pruned model is also trained for INT8 (quantization-aware, ``int8-qat``).

A candidate is a *recipe delta*: dotted keys overriding the user's recipe, so every
candidate is an ordinary recipe that ``edgeslim run`` could run alone. Everything is read
from the registries (METHODS, EXPORTERS, QUANTIZERS, TARGETS): a rule whose method or
format is not registered yields a candidate marked ``skipped`` with the reason. Each rule
above is one function (``_gpu``, ``_cpu_latency``, ...); :func:`candidate_notes` says which
whole family a constraint left out, and which option would bring it in.

Example::

    for c in propose(recipe, constraints):
        print(c.name, c.delta, c.reason)
    # l1-50  {'compress.method': 'l1', 'compress.ratio': 0.5, ...}  cpu is latency-bound: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from edgeslim.pipeline.matrix import QAT
from edgeslim.recipe import CompressCfg, Recipe
from edgeslim.select.constraints import SHORT_EPOCHS, Constraints
from edgeslim.compress import METHODS
from edgeslim.exporters import EXPORTERS
from edgeslim.quantizers import QUANTIZERS
from edgeslim.targets.base import channel_block, cpu_info

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
    rule: str  # post-training | no-retrain | gpu | cpu-latency | edge-size | qat | recipe
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
    return METHODS, EXPORTERS, QUANTIZERS


def _precisions(formats: list[str], wanted: list[str]) -> list[str]:
    """The wanted precisions some format has a registered quantizer for (fp32 needs none)."""
    _, _, quantizers = _registered()
    # fp32 needs no quantizer; int8-qat is made by the QAT stages for every format
    return [p for p in wanted if p in ("fp32", QAT) or any(f"{f}-{p}" in quantizers for f in formats)]


def _bf16(formats: list[str]) -> list[str]:
    """``["bf16"]`` where a bf16 quantizer of one of ``formats`` can run on this host (its
    ``available()`` asks the runtime's capability probe), else ``[]``."""
    _, _, quantizers = _registered()
    runs = any(f"{f}-bf16" in quantizers and quantizers.get(f"{f}-bf16").available()[0] for f in formats)
    return ["bf16"] if runs else []


def _structured(recipe: Recipe) -> Optional[str]:
    """The recipe's own structured criterion when it has one, else the first registered."""
    methods, _, _ = _registered()
    own = recipe.compress.method
    if own in methods and methods.get(own).family == "structured" and not methods.get(own).trains:
        return own
    return next((m for m in STRUCTURED if m in methods), None)


class _Rules:
    """What every rule of :func:`propose` reads, and the candidates proposed so far."""

    def __init__(self, recipe: Recipe, c: Constraints) -> None:
        self.recipe, self.c = recipe, c
        self.methods, self.exporters, _ = _registered()
        self.formats = [f for f in recipe.export.formats if f in self.exporters]
        self.gpu = [t for t in c.targets if c.kinds[t] == "gpu"]
        self.cpu = [t for t in c.targets if c.kinds[t] == "cpu"]
        self.edge = [t for t in c.targets if c.kinds[t] == "edge"]
        trt = ["tensorrt"] if "tensorrt" in self.exporters and "tensorrt" not in self.formats else []
        self.gpu_formats = self.formats + trt
        self.ptq_formats = self.gpu_formats if self.gpu else self.formats
        self.bf16 = _bf16(self.formats) if self.cpu or self.edge else []  # bf16 execution on a CPU
        epochs = c.finetune_epochs
        self.base: dict[str, Any] = {"finetune.epochs": epochs, "compress.steps": 1}
        if c.retrain == "none":
            self.base["finetune.distill"] = None
        self.crit = _structured(recipe)
        self.pruner = self.crit or "l1"  # the name a candidate gets when no criterion is registered
        self.ft = f"{epochs} fine-tune epoch{'s' if epochs != 1 else ''} under {c.retrain} retraining"
        self.out: list[Candidate] = []

    def add(self, name: str, rule: str, reason: str, delta: dict[str, Any], *, method: Optional[str] = None,
            fmts: Optional[list[str]] = None, precisions: list[str], variant: str = "compressed") -> None:
        if any(x.name == name for x in self.out):
            return
        fmts = list(fmts or self.formats)
        # the baseline variant is not trained: only its formats and precisions matter
        full = {**(self.base if variant != "baseline" else {}), **delta, "export.formats": fmts,
                "quantize.precisions": _precisions(fmts, precisions)}
        skipped = None
        if method is not None and method not in self.methods:
            skipped = f"compression method '{method}' is not registered"
        elif not fmts:
            skipped = "none of its export formats is registered"
        elif not full["quantize.precisions"]:
            skipped = f"no quantizer for {', '.join(precisions)} in {', '.join(fmts)} is registered"
        self.out.append(Candidate(name, full, reason, rule, variant=variant, skipped=skipped))


def _post_training(r: _Rules) -> None:
    bf16 = ", bf16 execution" if r.bf16 else ""
    delta, fallback = _accuracy_fallback(r)
    r.add("ptq", "post-training", f"post-training only: the original model as exported (FP32), FP16{bf16} and "
          f"INT8 PTQ{fallback}: no training at all, and the reference every compression must beat",
          delta, fmts=r.ptq_formats, precisions=["fp32", "fp16", "int8", *r.bf16], variant="baseline")


def _accuracy_fallback(r: _Rules) -> tuple[dict[str, Any], str]:
    """Under a ``max_accuracy_drop`` that can bind (below 100 points), the post-training INT8
    keeps its most sensitive layers in FP32 until it is within the budget of its FP32 parent
    (``quantize.max_accuracy_drop``), where a format's INT8 quantizer can: the delta and words."""
    d = r.c.max_accuracy_drop
    _, _, quantizers = _registered()
    fmts = [f for f in r.ptq_formats if f"{f}-int8" in quantizers and quantizers.get(f"{f}-int8").uses_validation]
    if d is None or d >= 100 or not fmts:
        return {}, ""
    return ({"quantize.max_accuracy_drop": d},
            f" with the most sensitive layers kept in FP32 until it is within max_accuracy_drop ({d:g} points) "
            f"of its FP32 parent ({', '.join(fmts)}: per-layer fallback or NNCF accuracy control)")


def _no_retrain(r: _Rules) -> None:
    why = "no retraining allowed: post-training methods only"
    for ratio in ONESHOT_RATIOS:
        r.add(f"{r.pruner}-{round(100 * ratio)}-oneshot", "no-retrain",
              f"{why}: one-shot structured pruning ({r.crit}) at a mild ratio {ratio} with BN statistics "
              "re-estimated and no fine-tuning",
              {"compress.method": r.crit, "compress.ratio": ratio, "compress.bn_recalibration": True,
               "compress.round_to": GPU_ALIGN if r.gpu else None},
              method=r.pruner, fmts=r.ptq_formats, precisions=["fp32", "int8"])
    fac = next((m for m in FACTORIZE if m in r.methods), FACTORIZE[0])
    fac_delta = {"compress.method": fac}
    opts = r.methods.get(fac).options if fac in r.methods else None
    if opts and "rank_method" in opts.model_fields:
        fac_delta.update({"compress.rank_method": "energy", "compress.energy": 0.9})
    r.add(fac, "no-retrain", f"{why}: low-rank factorization ({fac}, 90% of each layer's energy kept) "
          "without fine-tuning", fac_delta, method=fac, fmts=r.ptq_formats, precisions=["fp32", "int8"])


def _gpu(r: _Rules) -> None:
    if not r.gpu:
        return
    trt = "TensorRT" if "tensorrt" in r.exporters else "ONNX (TensorRT is not registered)"
    for ratio in (0.3, 0.5):
        r.add(f"{r.pruner}-{round(100 * ratio)}-a{GPU_ALIGN}", "gpu",
              f"{', '.join(r.gpu)} is a GPU: structured pruning ({r.crit}, ratio {ratio}) with channels "
              f"aligned to multiples of {GPU_ALIGN} for tensor cores, {r.ft}, then FP16 and INT8 in {trt}",
              {"compress.method": r.crit, "compress.ratio": ratio, "compress.round_to": GPU_ALIGN},
              method=r.pruner, fmts=r.gpu_formats, precisions=["fp16", "int8"])


def _cpu_latency(r: _Rules) -> None:
    c = r.c
    latency_bound = [t for t in r.cpu + r.edge if c.latency_bound(t)]
    no_budget = not c.latency_ms and c.max_bytes is None
    if not r.cpu or not (latency_bound or no_budget):
        return
    where = (f"{', '.join(latency_bound)} {'has' if len(latency_bound) == 1 else 'have'} a latency budget"
             if latency_bound else f"{', '.join(r.cpu)} is a CPU and no budget is set, so latency decides")
    bf16 = " and bf16 execution (this CPU computes in bf16)" if r.bf16 else ""
    for ratio in (0.3, 0.5, 0.7):
        r.add(f"{r.pruner}-{round(100 * ratio)}", "cpu-latency",
              f"{where}: structured pruning ({r.crit}, ratio {ratio}) removes MACs the CPU would spend "
              f"time on, {r.ft}, then INT8{bf16}", {"compress.method": r.crit, "compress.ratio": ratio},
              method=r.pruner, precisions=["int8", *r.bf16])
    block = channel_block(cpu_info()["isa"])  # the cpu target is this host
    if block > 8:
        r.add(f"{r.pruner}-50-a{block}", "cpu-latency",
              f"{where}: structured pruning ({r.crit}, ratio 0.5) with channel counts kept at multiples of "
              f"{block}, the channel block of this CPU's kernels (AVX-512), {r.ft}, then INT8{bf16}",
              {"compress.method": r.crit, "compress.ratio": 0.5, "compress.round_to": block},
              method=r.pruner, precisions=["int8", *r.bf16])
    if latency_bound:
        # layers are timed one at a time, which cannot see the kernels' channel blocks: align to them
        aligned = f", channel counts at multiples of {block}" if block > 8 else ""
        delta = {"compress.method": "latency", "compress.ratio": 0.5}
        if aligned:
            delta["compress.round_to"] = block
        r.add("latency-50", "cpu-latency", f"{where}: latency-aware structured pruning (ratio 0.5, "
              f"channels ranked by their measured cost on this machine{aligned}), {r.ft}, then INT8{bf16}",
              delta, method="latency", precisions=["int8", *r.bf16])


def _edge_size(r: _Rules) -> None:
    c = r.c
    if not (r.edge or c.size_bound):
        return
    where = (f"max_bytes is {c.max_bytes:,} bytes" if c.size_bound else
             f"{', '.join(r.edge)} is an edge device, where model size is the main problem")
    for ratio in (0.5, 0.7):
        r.add(f"{r.pruner}-{round(100 * ratio)}-kd", "edge-size",
              f"{where}: pruning ({r.crit}, ratio {ratio}) plus INT8 plus distillation: the pruned "
              f"student is fine-tuned against the baseline teacher (hinton, {r.ft})",
              {"compress.method": r.crit, "compress.ratio": ratio,
               "finetune.distill": {"method": "hinton", "teacher": "baseline"}},
              method=r.pruner, precisions=["int8"])


def _qat(r: _Rules) -> None:
    """INT8 that keeps its accuracy by training for it: under an accuracy budget that can bind,
    when retraining is allowed, the middle pruning ratio's model is also fine-tuned with fake
    quantizers (``int8-qat``). It shares every stage up to fine-tuning with ``<pruner>-50``, so
    the measurement costs only the QAT epochs."""
    d = r.c.max_accuracy_drop
    if d is None or d >= 100:
        return
    r.add(f"{r.pruner}-50-qat", "qat",
          f"max_accuracy_drop is {d:g} points and retraining is allowed: structured pruning ({r.crit}, "
          f"ratio 0.5), {r.ft}, then quantization-aware training (int8-qat) instead of post-training INT8, "
          "to keep INT8's accuracy", {"compress.method": r.crit, "compress.ratio": 0.5},
          method=r.pruner, precisions=[QAT])


def _own_recipe(r: _Rules) -> None:
    own = r.recipe.compress
    if own != CompressCfg() and own.method in r.methods:
        m = r.methods.get(own.method)
        r.add("recipe", "recipe", f"the recipe's own compression ({m.name}, ratio {own.ratio}), {r.ft}",
              {}, precisions=list(r.recipe.quantize.precisions))


# The decision guide, in the order its candidates run; without retraining only the first two apply.
RULES = (_post_training, _gpu, _cpu_latency, _edge_size, _qat, _own_recipe)
NO_RETRAIN_RULES = (_post_training, _no_retrain)


def propose(recipe: Recipe, c: Constraints) -> list[Candidate]:
    """The candidates for ``recipe`` under ``c``, in the order they run (``ptq`` first)."""
    rules = _Rules(recipe, c)
    for rule in NO_RETRAIN_RULES if c.retrain == "none" else RULES:
        rule(rules)
    return rules.out


def candidate_notes(recipe: Recipe, c: Constraints) -> list[str]:
    """Why a whole family of candidates is missing from ``propose(recipe, c)``, each with the
    constraint that would bring it in (the candidates it would add are proposed for real under
    that constraint, so a hint never names a candidate the prior would not make).

    Example (the default recipe on cpu and edge, ``retrain="short"``, ``max_bytes=150_000``)::

        candidate_notes(recipe, c)
        # ['max_bytes is set and cpu has no latency budget, so cpu is treated as size-bound and gets no
        #   latency-driven pruning: `--latency-ms cpu=MS` would also propose l1-30, l1-50, l1-70, ..., latency-50
        #   (cpu-latency); `--retrain full` would not (it sets fine-tune epochs, not which rules apply)']
    """
    now = [x.name for x in propose(recipe, c)]
    rules = {x.rule for x in propose(recipe, c)}
    notes = []
    for why, flag, wider in _widenings(recipe, c):
        then = propose(recipe, wider)
        if all(x.rule in rules for x in then):
            continue  # no family comes in: the set is not narrowed by this constraint
        more = [x for x in then if x.name not in now]
        what = ", ".join(x.name for x in more) + f" ({', '.join(dict.fromkeys(x.rule for x in more))})"
        gone = [n for n in now if n not in {x.name for x in then}]
        notes.append(f"{why}: {flag} would " + (f"propose {what} in place of {', '.join(gone)}" if gone
                                               else f"also propose {what}"))
    if notes and c.retrain == "short" and _same_as_full(recipe, c, now):
        notes[0] += "; `--retrain full` would not (it sets fine-tune epochs, not which rules apply)"
    return notes


def _widenings(recipe: Recipe, c: Constraints) -> list[tuple[str, str, Constraints]]:
    """(why the family is missing, the option that changes it, the constraints with it)."""
    out = []
    if c.retrain == "none":
        short = replace(c, retrain="short", finetune_epochs=min(SHORT_EPOCHS, recipe.finetune.epochs))
        out.append(("retrain is none, so only post-training candidates are proposed (no fine-tuning, "
                    "no distillation)", "`--retrain short`", short))
    free = [t for t in c.targets if c.kinds[t] == "cpu" and not c.latency_bound(t)]
    if c.max_bytes is not None and free:
        cpus = ", ".join(free)
        out.append((f"max_bytes is set and {cpus} {'has' if len(free) == 1 else 'have'} no latency budget, so "
                    f"{cpus} {'is' if len(free) == 1 else 'are'} treated as size-bound and {'gets' if len(free) == 1 else 'get'} "
                    "no latency-driven pruning", " and ".join(f"`--latency-ms {t}=MS`" for t in free),
                    replace(c, latency_ms={**c.latency_ms, **{t: 1.0 for t in free}})))
    if c.max_bytes is None and not any(c.kinds[t] == "edge" for t in c.targets):
        # a size budget alone would make an unbudgeted CPU size-bound: keep it latency-bound
        lat = {t: 1.0 for t in c.targets if c.kinds[t] == "cpu" and not c.latency_bound(t)}
        flag = " with ".join(["`--max-bytes BYTES`"] + [f"`--latency-ms {t}=MS`" for t in lat])
        out.append(("no size budget and no edge target, so no candidate is distilled", flag,
                    replace(c, max_bytes=1, latency_ms={**c.latency_ms, **lat})))
    return out


def _same_as_full(recipe: Recipe, c: Constraints, names: list[str]) -> bool:
    full = replace(c, retrain="full", finetune_epochs=recipe.finetune.epochs)
    return [x.name for x in propose(recipe, full)] == names


def trains(recipe: Recipe) -> bool:
    """True when running ``recipe`` trains after the baseline (fine-tuning, a method that
    trains, distillation, or a method option counting epochs)."""
    if recipe.finetune.epochs > 0 or recipe.finetune.distill is not None or recipe.compress.steps > 1:
        return True
    method = METHODS.get(recipe.compress.method)
    if method.trains:
        return True
    opts = recipe.compress.method_options()
    return any(k.endswith("epochs") and (getattr(opts, k) or 0) > 0
               for k in (type(opts).model_fields if opts is not None else {}))
