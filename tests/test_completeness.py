"""Every registered method, distillation loss, exporter, quantizer and target has a test.

The lists come from the registries themselves, so a new entry without a test fails here
(optimum's completeness check, timm's registry-driven tests). A name counts as tested when

- a collected test's parameters name it (``test_x[l1]``, ``test_y[onnx-int8-0.5]``): the
  suite's node ids come from ``pytest --collect-only`` over ``tests/`` (slow tests
  included), so a test parametrized over ``METHODS.names()`` covers every method; or
- a test module names it in a call that exercises it: ``METHODS.get("l1")`` (an f-string
  ``QUANTIZERS.get(f"tensorrt-{p}")`` counts for the values of ``p`` its module's tests are
  parametrized with), ``CompressCfg(method="l1")`` (or ``method="l1"`` passed to a test's
  own helper), ``DistillCfg(method="hinton")``,
  ``TargetCfg(name="edge")``, ``parse_target("edge")``, or a recipe override
  (``compress.method=l1``, ``finetune.distill.method=hinton``, ``export.formats=[onnx]``,
  ``targets=[cpu, gpu]``).

Membership checks (``"onnx" in EXPORTERS``) and listings do not count: they exercise nothing.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import pytest

from edgeslim.compress import METHODS
from edgeslim.exporters import EXPORTERS
from edgeslim.finetune.distill import LOSSES
from edgeslim.quantizers import QUANTIZERS
from edgeslim.targets import TARGETS

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
REGISTRIES = {"METHODS": METHODS, "LOSSES": LOSSES, "EXPORTERS": EXPORTERS, "QUANTIZERS": QUANTIZERS,
              "TARGETS": TARGETS}
# Config constructors whose keyword names a registry entry; ``method=`` on any other call
# (a test's helper: ``_prune(model, method="magnitude")``) names a compression method.
CONFIG_CALLS = {("CompressCfg", "method"): "METHODS", ("DistillCfg", "method"): "LOSSES",
                ("TargetCfg", "name"): "TARGETS", ("*", "method"): "METHODS"}
# Recipe overrides (``--set key=value`` or load_recipe(overrides=[...])) that name entries.
OVERRIDES = {"compress.method": "METHODS", "finetune.distill.method": "LOSSES",
             "export.formats": "EXPORTERS", "targets": "TARGETS"}
_OVERRIDE = re.compile(r"^\s*(%s)\s*=\s*(.+?)\s*$" % "|".join(re.escape(k) for k in OVERRIDES))

Evidence = dict[str, set[str]]  # registry variable -> names a test exercises


def tokens(text: str) -> list[str]:
    """Words of a test id or name: ``onnx-int8-0.5`` -> ``['onnx', 'int8', '0.5']``."""
    return [t for t in re.split(r"[^\w.]+", text) if t]


def _contains(seq: list[str], sub: list[str]) -> bool:
    return bool(sub) and any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def param_tokens(node_id: str) -> list[str]:
    """The parameter words of a node id (``tests/x.py::test_y[l1-0.5]`` -> ``['l1', '0.5']``)."""
    m = re.search(r"\[(.*)\]$", node_id)
    return tokens(m.group(1)) if m else []


def named_by_params(node_ids: Iterable[str], names: Iterable[str]) -> set[str]:
    params = [param_tokens(i) for i in node_ids]
    return {n for n in names if any(_contains(p, tokens(n)) for p in params)}


def _listed(value: str) -> list[str]:
    """``[onnx, openvino]`` or ``onnx`` -> the names."""
    return [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]


def _registry_of_get(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute) and f.attr == "get" and len(call.args) == 1:
        owner = f.value
        name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else None
        return name if name in REGISTRIES else None
    return None


def _fstring_names(node: ast.JoinedStr, names: list[str], module_params: list[list[str]]) -> set[str]:
    """Names an f-string key can build, where each formatted part is a value its module's
    tests are parametrized with (``f"tensorrt-{p}"`` with ``test_x[int8]`` -> tensorrt-int8)."""
    pattern, holes = "", 0
    for part in node.values:
        if isinstance(part, ast.Constant):
            pattern += re.escape(str(part.value))
        else:
            pattern += "(.+)"
            holes += 1
    out = set()
    for n in names:
        m = re.fullmatch(pattern, n)
        if m and holes and all(any(_contains(p, tokens(g)) for p in module_params) for g in m.groups()):
            out.add(n)
    return out


def evidence_in_source(source: str, module_ids: Iterable[str] = ()) -> Evidence:
    """Registry names a test module's source exercises (see the module docstring)."""
    found: Evidence = {k: set() for k in REGISTRIES}
    module_params = [param_tokens(i) for i in module_ids]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            reg = _registry_of_get(node)
            arg = node.args[0] if node.args else None
            if reg and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found[reg].add(arg.value)
            elif reg and isinstance(arg, ast.JoinedStr):
                found[reg] |= _fstring_names(arg, REGISTRIES[reg].names(), module_params)
            f = node.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            for kw in node.keywords:
                reg = CONFIG_CALLS.get((fname, kw.arg)) or (
                    CONFIG_CALLS.get(("*", kw.arg)) if fname not in {c for c, _ in CONFIG_CALLS} else None)
                if reg and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    found[reg].add(kw.value.value)
            if fname == "parse_target" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found["TARGETS"].add(arg.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _OVERRIDE.match(node.value)
            if m:
                found[OVERRIDES[m.group(1)]].update(_listed(m.group(2)))
    return found


def missing(names: Iterable[str], node_ids: Iterable[str], exercised: set[str]) -> list[str]:
    """The names no collected test's parameters and no exercising call name."""
    names = list(names)
    return sorted(set(names) - named_by_params(node_ids, names) - exercised)


@pytest.fixture(scope="module")
def suite() -> tuple[list[str], Evidence]:
    """The suite's node ids (this file left out) and the names its sources exercise."""
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "", "-p", "no:cacheprovider",
                        str(TESTS), f"--ignore={Path(__file__)}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"collecting the suite failed:\n{r.stdout[-3000:]}{r.stderr[-2000:]}"
    ids = [line.strip() for line in r.stdout.splitlines() if "::" in line]
    assert len(ids) > 100, r.stdout[-2000:]  # the whole suite, not one folder
    evidence: Evidence = {k: set() for k in REGISTRIES}
    for path in sorted(TESTS.rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        rel = path.relative_to(ROOT).as_posix()
        found = evidence_in_source(path.read_text(encoding="utf-8"), [i for i in ids if i.startswith(rel + "::")])
        for k, v in found.items():
            evidence[k] |= v
    return ids, evidence


@pytest.mark.parametrize("registry", sorted(REGISTRIES))
def test_every_registered_name_has_a_test(suite, registry):
    ids, evidence = suite
    names = REGISTRIES[registry].names()
    assert names, f"{registry} is empty: the registry did not load its entries"
    gone = missing(names, ids, evidence[registry])
    assert not gone, (f"{registry}: no test exercises {', '.join(gone)}; parametrize a test over "
                      f"{registry}.names() or add one that calls {registry}.get(name) (see {Path(__file__).name})")


def test_a_new_name_without_a_test_is_reported(suite):
    ids, evidence = suite
    gone = missing(METHODS.names() + ["zz_untested"], ids, evidence["METHODS"])
    assert "zz_untested" in gone and "l1" not in gone
    # a dash-joined name counts only whole: "onnx-int8" is tested, "onnx-int9" is not
    gone = missing(QUANTIZERS.names() + ["onnx-int9"], ids, evidence["QUANTIZERS"])
    assert "onnx-int9" in gone and "onnx-int8" not in gone


def test_what_counts_as_exercising():
    src = '''
import pytest
from edgeslim.exporters import EXPORTERS
from edgeslim.quantizers import QUANTIZERS

def test_listing():
    assert "openvino" in EXPORTERS and "cpu" in TARGETS.names()

def test_calls():
    METHODS.get("l1"); targets.TARGETS.get("edge")
    CompressCfg(method="taylor"); DistillCfg(method="rkd"); parse_target("ssh")
    _prune(model, method="magnitude"); QuantizeCfg(calibration_method="entropy")
    run(["--set", "compress.method=snip", "--set", "export.formats=[onnx, tensorrt]"])

@pytest.mark.parametrize("p", ["fp16"])
def test_fstring(p):
    QUANTIZERS.get(f"openvino-{p}")
'''
    ev = evidence_in_source(src, ["tests/x.py::test_fstring[fp16]"])
    assert ev["METHODS"] == {"l1", "taylor", "snip", "magnitude"}  # not rkd: DistillCfg's is a loss
    assert ev["TARGETS"] == {"edge", "ssh"}
    assert ev["LOSSES"] == {"rkd"}
    assert ev["EXPORTERS"] == {"onnx", "tensorrt"}  # a membership test is not a use of "openvino"
    assert ev["QUANTIZERS"] == {"openvino-fp16"}  # only the parametrized precision, not bf16 or int8


def test_params_match_whole_words():
    ids = ["tests/a.py::test_x[onnx-int8-0.5]", "tests/a.py::test_y[random_init]", "tests/a.py::test_z"]
    assert named_by_params(ids, ["onnx-int8", "onnx-fp16", "random", "random_init", "int8"]) == \
        {"onnx-int8", "random_init", "int8"}
