"""Summaries and Markdown of benchmarks/fashion.py: one ``fashion-<part>.{md,json}`` per part
(and ``quantization.{md,json}`` for ``quant``), each with the load check line, the CPU, the
command, the subset and epochs, and the wall time.

The statistics follow the plan's own rules (:mod:`edgeslim.select.seeds`): a figure over
seeds is mean ± sample sd; two figures whose mean ± sd overlap are tied; the smallest
difference a run resolves combines the validation size and the widest seed spread.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any, Optional

from _noise import write_result

from edgeslim.select.decide import TIE, label
from edgeslim.select.pareto import latency
from edgeslim.select.seeds import resolution, tied
from edgeslim.targets.base import cpu_info

KIND = {"fp32": "FP32", "int8": "PTQ INT8", "int8-qat": "QAT INT8"}
# Per dataset: its name in titles, what its validation split is, the prefix of its result files
DATA = {"fashion-mnist": ("Fashion-MNIST", "the t10k split", "fashion"),
        "digits": ("scikit-learn's digits", "a random 20% validation split", "digits")}


def prefix_of(dataset: str) -> str:
    """Of the result files (``<prefix>-<part>.md``) and the default work folder."""
    return DATA[dataset][2]


def _data(s: dict[str, Any]) -> tuple[str, str]:
    return DATA[s.get("dataset", "fashion-mnist")][:2]


def _lr(s: dict[str, Any]) -> str:
    """`` at lr X`` when the invocation set ``--finetune-lr``, else nothing (the recipe's)."""
    return "" if s.get("finetune_lr") is None else f" at lr {s['finetune_lr']}"


def _subset(s: dict[str, Any]) -> str:
    return "all training images" if not s["train_limit"] else f"the first {s['train_limit']:,} training images"


def stats(values: list[float]) -> dict[str, Any]:
    """n, mean, sd (None under 2 values), min, max of ``values``."""
    if not values:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None, "min": min(values), "max": max(values)}


def pts(x: Optional[float], sign: bool = False) -> str:
    """A fraction as accuracy points (``91.23`` or ``+0.41``); — when absent."""
    return "—" if x is None else f"{100 * x:+.2f}" if sign else f"{100 * x:.2f}"


def pm(st: dict[str, Any], sign: bool = False) -> str:
    """``mean ± sd`` in points (sd omitted with one value)."""
    if st.get("mean") is None:
        return "—"
    return pts(st["mean"], sign) + ("" if st.get("sd") is None else f" ± {100 * st['sd']:.2f}")


def _int(v: Optional[int]) -> str:
    return "—" if v is None else f"{v:,}"


def _ms(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.3f}"


def _as_row(name: str, st: dict[str, Any], reference: float) -> dict[str, Any]:
    """A figure over seeds in the shape :mod:`edgeslim.select.seeds` compares."""
    return {"label": name, "accuracy": st["mean"], "accuracy_sd": st["sd"], "accuracy_n": st["n"],
            "reference_accuracy": reference, "seed_independent": False}


# --------------------------------------------------------------------------- criteria


def criteria_summary(runs: list[dict[str, Any]], s: Any) -> dict[str, Any]:
    """Per criterion and level: fine-tuned accuracy over seeds, − baseline, − the control of
    the same seed (paired), and whether it is above random beyond the seed spread."""
    ok = [r for r in runs if "error" not in r]
    if not ok:  # every run failed: the table lists the errors
        return {"stats": [{"level": r["level"], "method": r["method"], "error": r["error"]} for r in runs],
                "baseline": None, "control": stats([]), "control_by_seed": {}, "control_minus_baseline": None,
                "resolution": {"text": "No run succeeded, so nothing is resolved."}, "goals": []}
    base = ok[0]["baseline"]
    controls = {r["seed"]: r["control"] for r in ok}
    out = []
    for level in s.levels:
        for method in s.criteria:
            rs = [r for r in ok if r["level"] == level and r["method"] == method]
            errs = sorted({r["error"] for r in runs if r["level"] == level and r["method"] == method and "error" in r})
            if not rs:
                out.append({"level": level, "method": method, "error": "; ".join(errs)})
                continue
            acc = stats([r["acc_finetuned"] for r in rs])
            out.append({"level": level, "method": method, "seeds": [r["seed"] for r in rs], "accuracy": acc,
                        "pruned": stats([r["acc_pruned"] for r in rs]),
                        "minus_baseline": acc["mean"] - base,
                        "minus_control": stats([r["acc_finetuned"] - r["control"] for r in rs]),
                        "macs": rs[0]["macs"], "params": rs[0]["params"],
                        "mac_reduction": rs[0]["macs_before"] / rs[0]["macs"],
                        "seconds": statistics.fmean(r["seconds_compress"] + r["seconds_finetune"] for r in rs),
                        "errors": errs})
    for level in s.levels:
        rnd = next((x for x in out if x["level"] == level and x["method"] == "random" and "accuracy" in x), None)
        for x in out:
            if x["level"] == level and "accuracy" in x and rnd is not None and x is not rnd:
                x["vs_random"] = _vs(x, rnd, base)
    ctrl = stats(list(controls.values()))
    rows = [_as_row(f"{x['method']}-{x['level']}", x["accuracy"], base) for x in out if "accuracy" in x]
    res = resolution(rows, val_samples=s.val_limit or 10_000, seeds=s.seeds)
    return {"stats": out, "baseline": base, "control": ctrl, "control_by_seed": controls,
            "control_minus_baseline": None if ctrl["mean"] is None else ctrl["mean"] - base,
            "resolution": res.to_json(), "goals": _goals(out, base)}


def _vs(x: dict[str, Any], rnd: dict[str, Any], base: float) -> dict[str, Any]:
    a, b = _as_row(x["method"], x["accuracy"], base), _as_row("random", rnd["accuracy"], base)
    diff = x["accuracy"]["mean"] - rnd["accuracy"]["mean"]
    if a["accuracy_sd"] is None or b["accuracy_sd"] is None:
        verdict = "not assessed (one seed: no spread)"
    elif tied(a, b):
        verdict = "tie"
    else:
        verdict = "above" if diff > 0 else "below"
    return {"diff": diff, "verdict": verdict}


def _vs_text(vr: Optional[dict[str, Any]]) -> str:
    return "—" if vr is None else f"{pts(vr['diff'], True)} ({vr['verdict']})"


def _goals(out: list[dict[str, Any]], base: float) -> list[dict[str, Any]]:
    """Issue 16: the best structured method within 0.5 points of the baseline at 2x, 1.5 at 4x."""
    goals = []
    for level, limit in (("2x", 0.5), ("4x", 1.5)):
        rs = [x for x in out if x["level"] == level and "accuracy" in x and x["method"] != "random"]
        if rs:
            best = max(rs, key=lambda x: x["accuracy"]["mean"])
            gap = 100 * (base - best["accuracy"]["mean"])
            goals.append({"level": level, "best": best["method"], "points_below_baseline": gap,
                          "limit": limit, "met": gap <= limit})
    return goals


def criteria_md(out: dict[str, Any], base: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    s, ft = meta["settings"], out.get("finetune", {})
    counts = meta["class_counts"]
    lines = ["# Fashion-MNIST: structured criteria against a converged baseline and a \"trained longer\" control", "",
             *_header(meta, out),
             f"Baseline: {base['model']} at {base['input_size']} px, {pts(base['accuracy'])}% on the t10k split "
             f"({base['val_images']:,} images), trained once on {base['train_images']:,} images "
             f"({_converged(base)}; fashion-baseline.md). Every row starts from its weights.",
             f"Subset: pruning, fine-tuning and the control train on the first {s['train_limit']:,} training images "
             f"(per class {min(counts)}–{max(counts)}: the training file is in random order); fine-tuning "
             f"{ft.get('epochs')} epoch(s) at lr {ft.get('lr')} (cosine), weight decay {ft.get('weight_decay')}, "
             f"over fine-tune seeds {', '.join(str(k) for k in range(s['seeds']))} (`finetune.seed`); budget "
             "`compress.target_macs` (2x = 0.5, 4x = 0.75), BN re-estimated after pruning; slimming also "
             "sparsity-trains 2 epochs on the subset before pruning (the control does not).",
             f"Control (`25-control`, the baseline fine-tuned the same way, nothing removed): {pm(out['control'])}% "
             f"({pts(out['control_minus_baseline'], True)} vs the baseline). \"− control\" pairs each run with the "
             "control of its seed.", ""]
    for level in s["levels"]:
        lines += [f"## {level} MAC reduction", "",
                  "| criterion | MACs (M) | × fewer | params | pruned % | fine-tuned % (mean ± sd) | min–max | "
                  "− baseline | − control | vs random |", "|" + "---|" * 10]
        for x in (x for x in out["stats"] if x["level"] == level):
            if "accuracy" not in x:
                lines.append(f"| {x['method']} | error: {x['error'][:160]} |" + " |" * 8)
                continue
            a, vr = x["accuracy"], x.get("vs_random")
            lines.append(f"| {x['method']} | {x['macs'] / 1e6:.2f} | {x['mac_reduction']:.2f} | {x['params']:,} | "
                         f"{pm(x['pruned'])} | {pm(a)} | {pts(a['min'])}–{pts(a['max'])} | "
                         f"{pts(x['minus_baseline'], True)} | {pm(x['minus_control'], True)} | "
                         f"{_vs_text(vr)} |")
        lines.append("")
    lines += ["## Reading", "", "- " + out["resolution"]["text"],
              "- vs random: \"above\"/\"below\" only when the mean ± sd intervals do not overlap (the plan's tie "
              "rule); otherwise \"tie\"."]
    for level in s["levels"]:
        rs = [x for x in out["stats"] if x["level"] == level and "vs_random" in x]
        above = [x["method"] for x in rs if x["vs_random"]["verdict"] == "above"]
        below = [x["method"] for x in rs if x["vs_random"]["verdict"] == "below"]
        lines.append(f"- {level}: above random beyond the spread: {', '.join(above) or 'none'}"
                     + (f"; below: {', '.join(below)}" if below else "") + ".")
    for g in out["goals"]:
        gap = g["points_below_baseline"]
        where = f"{gap:.2f} points below it" if gap > 0 else f"{-gap:.2f} points above it"
        lines.append(f"- Goal at {g['level']} (best structured within {g['limit']} points of the baseline): "
                     f"best {g['best']}, {where}: {'met' if g['met'] else 'not met'}.")
    return lines + [""]


# --------------------------------------------------------------------------- quant


def quant_row(r: dict[str, Any], *, model: str, seed: int, fallback: bool) -> dict[str, Any]:
    """One profile row of a quant run, trimmed, with what the table shows."""
    kind = "fallback INT8" if fallback else KIND.get(r["precision"], r["precision"])
    info = r.get("info") or {}
    control = info.get("accuracy_control")
    out = {"model": model, "seed": seed, "format": r["format"], "precision": r["precision"], "kind": kind,
           "label": f"{r['format']} {kind}", "status": r["status"], "reason": r.get("reason"),
           "accuracy": r.get("accuracy"), "bytes": r.get("bytes"), "target": r["target"],
           "p50_ms": (r.get("latency_ms") or {}).get("p50"), "noise": r.get("noise"),
           "threads": (r.get("semantics") or {}).get("threads"), "qat_torch_accuracy": info.get("qat_torch_accuracy")}
    if isinstance(control, dict):
        out["control"] = {k: control.get(k) for k in ("method", "met", "drop_points", "kept_fp32",
                                                      "quantizable_layers", "latency_cost", "why")}
        out["control"]["raw"] = {k: v for k, v in control.items() if k != "steps"}
    return out


def quant_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model, format and kind: accuracy over seeds, its drop from the FP32 of the same
    seed (paired), bytes and p50 (median over seeds) from the profile rows."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("accuracy") is not None]
    fp32 = {(r["model"], r["format"], r["seed"]): r["accuracy"] for r in ok if r["kind"] == "FP32"}
    out = []
    for key in dict.fromkeys((r["model"], r["format"], r["kind"]) for r in rows):
        rs = [r for r in ok if (r["model"], r["format"], r["kind"]) == key]
        bad = [r for r in rows if (r["model"], r["format"], r["kind"]) == key and r not in rs]
        drops = [fp32[(r["model"], r["format"], r["seed"])] - r["accuracy"] for r in rs
                 if (r["model"], r["format"], r["seed"]) in fp32]
        p50s = [r["p50_ms"] for r in rs if r.get("p50_ms") is not None]
        out.append({"model": key[0], "format": key[1], "kind": key[2], "accuracy": stats([r["accuracy"] for r in rs]),
                    "drop": stats(drops), "bytes": rs[0]["bytes"] if rs else None,
                    "p50_ms": statistics.median(p50s) if p50s else None, "p50_by_seed": p50s,
                    "control": [r["control"] for r in rs if r.get("control")],
                    "noisy": any((r.get("noise") or {}).get("noisy") for r in rs),
                    "not_ok": [f"seed {r['seed']}: {r['status']}: {r.get('reason')}" for r in bad]})
    return {"stats": out, "goals": _quant_goals(out)}


def _quant_goals(out: list[dict[str, Any]]) -> list[str]:
    """Issue 17: QAT within 0.3 point of FP32 or recovering ≥ 70% of PTQ's drop (when PTQ drops
    more than 0.5); the fallback within 0.5 point at ≤ 15% latency over PTQ INT8."""
    lines = []
    by = {(x["model"], x["format"], x["kind"]): x for x in out}
    for (model, fmt, kind), x in by.items():
        ptq = by.get((model, fmt, "PTQ INT8"))
        if x["drop"]["mean"] is None or kind not in ("QAT INT8", "fallback INT8"):
            continue
        lost = 100 * x["drop"]["mean"]
        head = f"{model} {fmt} {kind}: {lost:+.2f} points lost vs FP32"
        if kind == "QAT INT8":
            ptq_lost = None if ptq is None or ptq["drop"]["mean"] is None else 100 * ptq["drop"]["mean"]
            met = lost <= 0.3
            text = f"{head} (goal ≤ 0.3"
            if ptq_lost is not None and ptq_lost > 0.5:
                recovered = (ptq_lost - lost) / ptq_lost
                met = met or recovered >= 0.7
                text += f", or ≥ 70% of PTQ's {ptq_lost:.2f} recovered: {100 * recovered:.0f}%"
            elif ptq_lost is not None:
                text += f"; PTQ loses {ptq_lost:+.2f}"
            lines.append(f"{text}): {'met' if met else 'not met'}.")
            continue
        cost = None if ptq is None or not ptq["p50_ms"] or x["p50_ms"] is None else x["p50_ms"] / ptq["p50_ms"] - 1
        lines.append(f"{head} (budget 0.5: {'met' if lost <= 0.5 else 'not met'}); p50 "
                     + ("unmeasured" if cost is None else
                        f"{100 * cost:+.0f}% vs PTQ INT8 (goal ≤ +15%: {'met' if cost <= 0.15 else 'not met'})") + ".")
    return lines


def quant_md(out: dict[str, Any], base: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    s = meta["settings"]
    name, split = _data(s)
    prefix = prefix_of(s.get("dataset", "fashion-mnist"))
    lines = [f"# INT8 that keeps its accuracy on {name}: PTQ, per-layer fallback, QAT", "",
             *_header(meta, out),
             f"Model: {', '.join(s['quant_models'])} at {s['size']} px, from the baseline ({prefix}-baseline.md) "
             f"({', '.join(f'{m} {pts(a)}%' for m, a in out['baselines'].items())} on {split}), pruned with l1 at "
             f"`compress.ratio` 0.5, fine-tuned {s['finetune_epochs']} epoch(s) on {_subset(s)}"
             f"{_lr(s)}, over fine-tune seeds {', '.join(str(k) for k in range(s['quant_seeds']))}; "
             f"QAT: `int8-qat`, {s['qat_epochs']} epoch(s) on the same subset; fallback: "
             "`quantize.max_accuracy_drop: 0.5` (ONNX Runtime: most sensitive layers kept FP32 one by one; "
             f"OpenVINO: NNCF accuracy control). Accuracy: each artifact in its runtime on {split} "
             f"({base['val_images']:,} images). "
             "**p50: from each run's own profile rows** (target cpu, batch 1, median over the seeds' rows; "
             "measured while the rest of the benchmark ran, so indicative); bytes: every file of the first seed's artifact.", "",
             "| model | format | artifact | accuracy % (mean ± sd) | points lost vs FP32 (paired) | bytes | p50 ms | notes |",
             "|" + "---|" * 8]
    for x in out["stats"]:
        notes = []
        if x["kind"] == "fallback INT8":  # ORT records the layers it kept; NNCF's accuracy control does not
            kept = [len(c["kept_fp32"]) for c in x["control"] if c.get("kept_fp32") is not None]
            notes.append(f"FP32 layers kept per seed: {', '.join(map(str, kept))}" if kept
                         else "NNCF accuracy control (kept layers not recorded)")
        notes += x["not_ok"][:2] + (["noisy"] if x["noisy"] else [])
        drop = "—" if x["kind"] == "FP32" else pm(x["drop"], True)
        lines.append(f"| {x['model']} | {x['format']} | {x['kind']} | {pm(x['accuracy'])} | {drop} | "
                     f"{_int(x['bytes'])} | {_ms(x['p50_ms'])} | {'; '.join(notes)} |")
    by_model = {m: stats([t["accuracy"] for t in out["torch_accuracy"] if t["model"] == m])
                for m in dict.fromkeys(t["model"] for t in out["torch_accuracy"])}
    lines += ["", "PyTorch accuracy of the fine-tuned pruned model (the FP32 parent's source): "
              + ", ".join(f"{m} {pm(st)}%" for m, st in by_model.items()) + ".",
              "", "## Goals (issue 17)", ""] + [f"- {g}" for g in out["goals"]]
    return lines + [""]


# --------------------------------------------------------------------------- plan


def plan_summary(result: Any) -> dict[str, Any]:
    """Per target: the choice, its rationale, and whether it is a tie (on latency within the
    decision's 2%, or on accuracy within the seed spread) and with what."""
    p = result.constraints.percentile
    targets = {}
    for t, d in result.decisions.items():
        rows = [r for r in result.rows if r.get("target") == t and r.get("status") == "ok"]
        chosen = next((r for r in rows if label(r) == d.chosen), None)
        feas = [r for r in rows if label(r) in d.feasible and r is not chosen]
        lat = [] if chosen is None else [label(r) for r in feas if latency(r, p) is not None
                                         and latency(r, p) <= latency(chosen, p) * (1 + TIE)]
        acc = [] if chosen is None else [label(r) for r in feas if tied(chosen, r)]
        targets[t] = {"chosen": d.chosen, "rationale": d.rationale, "feasible": len(d.feasible),
                      "tie": bool(lat or acc), "tied_latency": lat, "tied_accuracy": acc,
                      "accuracy": None if chosen is None else chosen.get("accuracy"),
                      "accuracy_sd": None if chosen is None else chosen.get("accuracy_sd"),
                      "p50_ms": None if chosen is None else latency(chosen, p),
                      "bytes": None if chosen is None else chosen.get("bytes")}
    keep = ("target", "candidate", "label", "bytes", "accuracy", "accuracy_sd", "accuracy_n", "accuracy_drop",
            "latency_ms", "chosen", "feasible", "status", "reason", "noise")
    return {"targets": targets, "seconds": result.seconds,
            "candidates": [c.to_json() for c in result.candidates],
            "stages": len(result.stages), "cached": sum(x["cached"] for x in result.stages),
            "resolution": result.resolution.to_json() if result.resolution else None,
            "out_dir": str(result.out_dir), "rows": [{k: r.get(k) for k in keep} for r in result.rows]}


def plan_md(out: dict[str, Any], base: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    s = meta["settings"]
    cands = [c for c in out["candidates"] if not c["skipped"]]
    lines = ["# The default plan on Fashion-MNIST", "", *_header(meta, out),
             f"`edgeslim plan` without a recipe (targets cpu and edge, `max_accuracy_drop` 1 point) on "
             f"`data.name: fashion-mnist` at {s['size']} px, from the baseline's weights "
             f"({pts(base['accuracy'])}% on t10k, {_converged(base)}), fine-tuning on the first {s['train_limit']:,} training images "
             f"({s['finetune_epochs']} epoch(s){_lr(s)}, `retrain: full`), `--seeds {s['plan_seeds']}`; plan folder "
             f"`{out['out_dir']}` ({out['stages']} stages, {out['cached']} cached).",
             f"Candidates ({len(cands)}): {', '.join(c['name'] for c in cands)}"
             + "".join(f"; {c['name']} skipped: {c['skipped']}" for c in out["candidates"] if c["skipped"])
             + "".join(f"; {c['name']} failed: {c['failed']}" for c in out["candidates"] if c.get("failed")) + ".", "",
             "| target | choice | accuracy | p50 ms | bytes | tie? |", "|---|---|---|---|---|---|"]
    for t, d in out["targets"].items():
        acc = "—" if d["accuracy"] is None else pts(d["accuracy"]) + (
            "" if d["accuracy_sd"] is None else f" ± {100 * d['accuracy_sd']:.2f}") + "%"
        tie = ("yes: " + "; ".join(x for x in (
            f"latency within {100 * TIE:.0f}% of {', '.join(d['tied_latency'])}" if d["tied_latency"] else "",
            f"accuracy within the seed spread of {', '.join(d['tied_accuracy'])}" if d["tied_accuracy"] else "")
            if x)) if d["tie"] else "no"
        lines.append(f"| {t} | {d['chosen'] or 'nothing feasible'} | {acc} | {_ms(d['p50_ms'])} | "
                     f"{_int(d['bytes'])} | {tie} |")
    lines += ["", "## Rationales", ""] + [f"- **{t}**: {d['rationale']}" for t, d in out["targets"].items()]
    if out.get("resolution"):
        lines += ["", out["resolution"]["text"]]
    return lines + [""]


# --------------------------------------------------------------------------- baseline


def _converged(base: dict[str, Any]) -> str:
    c = base.get("convergence") or {}
    return ("converged" if c.get("converged") else "did NOT converge" if c.get("converged") is False
            else "convergence not checked") + f", {base['epochs']} epochs"


def baseline_md(out: dict[str, Any], base: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    r, c = out["recipe"], out.get("convergence") or {}
    b = r["baseline"]
    acc, n = out["accuracy"], out["train_images"]
    name, val = _data(meta["settings"])
    fashion = meta["settings"].get("dataset", "fashion-mnist") == "fashion-mnist"
    split = f"all {n:,} training images" if n == 60_000 or not fashion else f"the first {n:,} training images"
    lines = [f"# {name} baseline: {out['model']} at {out['input_size']} px, with the patience rule", "",
             *_header(meta, out),
             f"Training: {split}, validation: {val} "
             f"({out['val_images']:,} images{', the official test set' if fashion else ''}); batch {r['data']['batch_size']}, "
             f"{b['optimizer']} lr {b['lr']} (cosine over the {out['cap']}-epoch cap, {b['warmup_epochs']:g} warm-up "
             f"epoch), weight decay {b['weight_decay']}, `data.augment: {r['data'].get('augment')}`"
             f"{' (off for IDX data)' if fashion else ''}, "
             f"{out['precision']} autocast; `baseline.patience` {out['patience']} (min gain {100 * b['min_delta']:g} point), "
             "best epoch kept." + (" 28 px is the dataset's own size: no resampling, 23% fewer MACs than 32 px."
                                   if fashion and out["input_size"] == 28 else ""), "",
             f"**Accuracy {pts(acc)}%** on {val}" + (f" (goal ≥ 92%: {'met' if acc >= 0.92 else 'not met'}; published "
                                                      "ResNet-18: 94.9%)" if fashion else "") + f", after {out['epochs']} epochs: {c.get('reason', 'no convergence record')}. "
             f"Training took {out['seconds'] / 60:.1f} min ({out['images_per_s'] or 0:.0f} img/s median) "
             + ("(cached from an earlier invocation)." if out["cached"] else "in this invocation."),
             f"The best epoch is chosen on {val} itself (it is the only validation split), so the figure is "
             "slightly optimistic, as for every early-stopped model validated on its test set.", "",
             "| epoch | lr | train % | val % | img/s |", "|---|---|---|---|---|"]
    for h in out["history"]:
        lines.append(f"| {h['epoch']} | {h['lr']:.4f} | {pts(h.get('train_accuracy'))} | "
                     f"{pts(h.get('val_accuracy'))} | {h['images_per_s']:.0f} |")
    return lines + [""]


# --------------------------------------------------------------------------- files


def _header(meta: dict[str, Any], out: dict[str, Any]) -> list[str]:
    info = cpu_info()
    wall = out.get("part_wall_s") if out.get("part_wall_s", 0) > 1 else out.get("wall_s")
    return [f"Command: `{meta['command'].strip()}`. CPU: {info['cpu']} ({', '.join(info['isa'])}), "
            f"{meta['cores']} usable cores. Wall time of this part in this invocation: {(wall or 0) / 60:.1f} min "
            "(stages cached from an earlier invocation cost nothing here)."
            + (" **Smoke run: tiny slice, figures meaningless.**" if meta["settings"]["smoke"] else ""), ""]


RENDER = {"baseline": baseline_md, "criteria": criteria_md, "quant": quant_md, "plan": plan_md}


QUANT_FILES = ("fashion-quant", "digits-quant")  # the sections of quantization.md, in this order


def write_part(part: str, out: dict[str, Any], base: dict[str, Any], meta: dict[str, Any], results: Path,
               args: Any, quiet: dict[str, Any], prefix: str = "fashion", label: str = "") -> list[Path]:
    """``<prefix>-<part>.{json,md}`` (and, for quant, ``quantization.{json,md}``: every
    dataset's quant result found in ``results``, Fashion-MNIST first); the paths written."""
    md = "\n".join(RENDER[part](out, base, meta))
    payload = json.dumps({"meta": meta, "result": out}, indent=1, default=str) + "\n"
    rows = out.get("rows")  # rows marked noisy keep a committed result from being replaced
    written, name = [], f"{prefix}-{part}" + (f"-{label}" if label else "")
    for suffix, text in ((".json", payload), (".md", md)):
        if write_result(results / f"{name}{suffix}", text, args, rows=rows, quiet=quiet):
            written.append(results / f"{name}{suffix}")
    if part == "quant" and written and not label:
        written += _write_quantization(results, args)
    return written


def _write_quantization(results: Path, args: Any) -> list[Path]:
    """quantization.{json,md}: the per-dataset quant results side by side, each section as its
    own file has it (load check line, command, CPU), under one title."""
    parts = {n: json.loads((results / f"{n}.json").read_text()) for n in QUANT_FILES if (results / f"{n}.json").exists()}
    md = ["# INT8 that keeps its accuracy: PTQ, per-layer fallback, QAT", "",
          "Each section is one invocation of `benchmarks/fashion.py --parts quant` (its own file: "
          + ", ".join(f"{n}.md" for n in parts) + "), with its machine load, command and settings.", ""]
    for n in parts:
        body = (results / f"{n}.md").read_text(encoding="utf-8").splitlines()
        md += ["#" + line if line.startswith("#") else line for line in body] + [""]
    paths = [results / "quantization.json", results / "quantization.md"]
    paths[0].write_text(json.dumps(parts, indent=1, default=str) + "\n", encoding="utf-8")
    paths[1].write_text("\n".join(md), encoding="utf-8")  # each section carries its own load check line
    return paths


def work_plan(s: Any, parts: list[str]) -> list[str]:
    """What each part will train, so a user sees the size of the run before it starts."""
    runs = len(s.criteria) * len(s.levels) * s.seeds
    base_imgs = s.baseline_limit or (60_000 if s.dataset == "fashion-mnist" else 1_437)
    sub = f"{s.train_limit:,}" if s.train_limit else "all"
    out = {"baseline": f"baseline: ≤ {s.baseline_epochs} epochs × {base_imgs:,} images (patience {s.patience})",
           "criteria": f"criteria: {runs} fine-tunes ({len(s.criteria)} criteria × {len(s.levels)} levels × "
                       f"{s.seeds} seeds) + {s.seeds} controls, each {s.finetune_epochs} epoch(s) × {sub} images",
           "quant": f"quant: {len(s.quant_models)} model(s) × {s.quant_seeds} seeds: fine-tune {s.finetune_epochs} + "
                    f"QAT {s.qat_epochs} epoch(s) × {sub} images, 2 formats × 4 INT8/FP32 artifacts",
           "plan": f"plan: default candidates × {s.plan_seeds} seeds, {s.finetune_epochs} fine-tune epoch(s) × "
                   f"{sub} images, profiled on cpu and edge"}
    return [out[p] for p in parts]


def smoke_estimate(base: dict[str, Any], done: dict[str, Any]) -> str:
    """The smoke's measured rates, from which a full run's time is estimated (see the docstring)."""
    walls = ", ".join(f"{p} {v.get('part_wall_s', 0):.0f} s" for p, v in done.items())
    return (f"baseline trained at {base.get('images_per_s') or 0:.0f} img/s ({base.get('precision')}); "
            f"part wall times: {walls}; {os.cpu_count()} cores")
