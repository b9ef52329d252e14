"""Low-rank factorization: tucker, cp, svd — smaller, close to the original, exportable, savable."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgeslim.compress import METHODS, CompressJob, lowrank
from edgeslim.compress.pruner import count_macs_params
from edgeslim.errors import CompressionError
from edgeslim.models.checkpoint import load_model, save_model
from edgeslim.models.zoo import create_model
from edgeslim.recipe import CompressCfg, ExportCfg

SPEC = {"name": "plain_cnn", "num_classes": 10, "kwargs": {}}
X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def _low_rank_cnn(noise: float = 1e-3) -> nn.Module:
    """plain_cnn whose conv kernels have Tucker ranks (8, 8) and linears rank 8, plus noise."""
    torch.manual_seed(0)
    model = create_model("plain_cnn", num_classes=10).eval()
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.in_channels > 3:
                O, I, kh, kw = m.weight.shape
                w = lowrank.tucker2_reconstruct(rand(8, 8, kh, kw), rand(O, 8), rand(I, 8))
            elif isinstance(m, nn.Linear):
                O, I = m.weight.shape
                w = rand(O, 8) @ rand(8, I)
            else:
                continue
            w = w / w.norm() * m.weight.norm().double()
            m.weight.copy_((w + noise * rand(*w.shape) * w.std()).float())
    return model


@pytest.fixture(scope="module")
def low_rank():
    return _low_rank_cnn()


def _factorize(model, method, ratio=0.5, ignored=(), **opts):
    cfg = CompressCfg(method=method, ratio=ratio, ignored_layers=list(ignored), **opts)
    job = CompressJob(model=copy.deepcopy(model), example_inputs=X[:1], data=None, cfg=cfg,
                      options=cfg.method_options(), spec=SPEC)
    return METHODS.get(method).apply(job).eval(), job


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_vbmf_finds_the_rank_of_a_noisy_low_rank_matrix():
    rng = np.random.default_rng(0)
    for L, M, r in [(64, 576, 5), (32, 288, 12)]:
        y = rng.standard_normal((L, r)) @ rng.standard_normal((r, M)) + 0.3 * rng.standard_normal((L, M))
        assert lowrank.evbmf_rank(y) == r
        assert lowrank.evbmf_rank(y.T) == r
    assert lowrank.evbmf_rank(rng.standard_normal((64, 576))) <= 2  # pure noise: (almost) nothing
    assert lowrank.energy_rank(np.diag([3.0, 2.0, 1.0, 0.0]), 0.9) == 2


@pytest.mark.parametrize("rank_method", ["vbmf", "energy"])
def test_tucker_is_smaller_and_close_to_the_original(low_rank, rank_method):
    fact, job = _factorize(low_rank, "tucker", rank_method=rank_method, energy=0.999, ignored=["features.0"])
    for name in ("features.3", "features.6"):
        assert isinstance(fact.get_submodule(name), nn.Sequential)
        assert job.notes["factorized"][name]["ranks"] == [8, 8]
        first, core, last = fact.get_submodule(name)
        assert first.kernel_size == (1, 1) and core.kernel_size == (3, 3) and last.kernel_size == (1, 1)
        assert core.weight.shape == (8, 8, 3, 3) and last.bias is not None
    assert isinstance(fact.features[0], nn.Conv2d)  # ignored
    macs0, p0 = count_macs_params(low_rank, X[:1])
    macs1, p1 = count_macs_params(fact, X[:1])
    assert p1 < 0.6 * p0 and macs1 < 0.5 * macs0
    assert sum(p.numel() for p in fact.parameters()) == p1
    with torch.no_grad():
        assert _rel(fact(X), low_rank(X)) < 0.01


def test_tucker_at_full_rank_is_exact():
    torch.manual_seed(0)
    model = create_model("plain_cnn", num_classes=10).eval()
    fact, job = _factorize(model, "tucker", ranks={"features.3": [64, 32]}, rank_method="energy", energy=0.999)
    assert job.notes["factorized"]["features.3"]["relative_error"] < 1e-6
    # random kernels hold their energy in (almost) every rank: no gain, left alone
    assert set(job.notes["skipped"]) == {"features.0", "features.6"}
    with torch.no_grad():
        assert _rel(fact(X), model(X)) < 1e-5


def test_tucker_energy_trades_error_for_size():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).eval()
    rows = []
    for energy in (0.4, 0.7):
        fact, _ = _factorize(model, "tucker", rank_method="energy", energy=energy)
        _, params = count_macs_params(fact, X[:1])
        with torch.no_grad():
            rows.append((params, _rel(fact(X), model(X))))
    (p_lo, e_lo), (p_hi, e_hi) = rows
    assert p_lo < p_hi < 272474 and e_hi < e_lo


def test_cp_is_smaller_and_exact_for_a_cp_kernel():
    rng = np.random.default_rng(0)
    factors = [rng.standard_normal((d, 4)) for d in (16, 8, 3, 3)]
    w = lowrank.cp_reconstruct(factors)
    got = lowrank.cp_als(w, 4, iters=100)
    assert lowrank.relative_error(w, lowrank.cp_reconstruct(got)) < 1e-4
    conv = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1))
    with torch.no_grad():
        conv[0].weight.copy_(w.float())
    fact, job = _factorize(conv, "cp", ranks=4, iterations=100)
    seq = fact[0]
    assert [m.groups for m in seq] == [1, 4, 4, 1]
    assert seq[1].kernel_size == (3, 1) and seq[2].kernel_size == (1, 3) and seq[1].stride == (2, 1)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        assert _rel(fact(x), conv(x)) < 1e-3
    assert sum(p.numel() for p in fact.parameters()) < sum(p.numel() for p in conv.parameters())


def test_cp_rank_from_ratio_reduces_params_and_macs(low_rank):
    fact, job = _factorize(low_rank, "cp", ratio=0.75, iterations=5)
    note = job.notes["factorized"]["features.6"]
    assert note["weights_after"] <= 0.25 * note["weights_before"]
    macs0, p0 = count_macs_params(low_rank, X[:1])
    macs1, p1 = count_macs_params(fact, X[:1])
    assert p1 < p0 and macs1 < macs0


def test_svd_factorizes_linears_only(low_rank):
    fact, job = _factorize(low_rank, "svd", rank_method="vbmf")
    assert isinstance(fact.classifier[0], nn.Sequential)
    down, up = fact.classifier[0]
    assert down.out_features == 8 and up.in_features == 8 and up.bias is not None
    assert isinstance(fact.features[3], nn.Conv2d)  # convs untouched
    with torch.no_grad():
        assert _rel(fact(X), low_rank(X)) < 0.01


def test_onnx_export_of_a_factorized_model_passes_parity(low_rank, tmp_path):
    from edgeslim.exporters import EXPORTERS

    fact, _ = _factorize(low_rank, "tucker", ignored=["features.0"])
    art = EXPORTERS.get("onnx").export(fact, X.numpy(), tmp_path, cfg=ExportCfg(), variant="compressed",
                                       method="tucker")
    assert art.info["parity"]["passed"] and art.info["parity"]["max_abs"] < 1e-3
    import onnx

    convs = [n for n in onnx.load(str(art.path)).graph.node if n.op_type == "Conv"]
    assert len(convs) == 1 + 3 + 3  # stem + two Tucker triples


@pytest.mark.parametrize("method", ["tucker", "cp", "svd"])
def test_save_load_roundtrip_is_identical(low_rank, tmp_path, method):
    opts = {"iterations": 3} if method == "cp" else {}
    fact, _ = _factorize(low_rank, method, **opts)
    save_model(fact, tmp_path, SPEC)
    back = load_model(tmp_path)
    assert str(back) == str(fact)
    with torch.no_grad():
        assert torch.equal(back(X), fact(X))


def test_bad_ranks_and_layers_are_one_line(low_rank):
    cases = [
        ("tucker", {"ranks": {"features.3": [65, 8]}}, r"rank 65 for layer 'features.3' is larger than the layer \(1..64"),
        ("tucker", {"ranks": {"features.3": [8, 33]}}, r"rank 33 for layer 'features.3' is larger .* 32 input channels"),
        ("tucker", {"layers": ["classifier.0"]}, r"tucker cannot factorize layer 'classifier.0' \(it is Linear\).*use svd"),
        ("svd", {"layers": ["features.3"]}, r"svd cannot factorize layer 'features.3' \(it is Conv2d\).*use tucker"),
        ("svd", {"ranks": {"classifier.2": 11}}, r"rank 11 for layer 'classifier.2' is larger than the layer"),
        ("cp", {"ranks": {"features.3": 10000}}, r"CP rank 10000 for layer 'features.3' is larger than the layer"),
        ("tucker", {"layers": ["features.9"]}, r"no layer named 'features.9'"),
        ("tucker", {"layers": ["features.1"]}, r"cannot factorize layer 'features.1' \(it is ReLU\)"),
    ]
    for method, opts, pattern in cases:
        with pytest.raises(CompressionError, match=pattern) as e:
            _factorize(low_rank, method, **opts)
        assert "\n" not in str(e.value)


def test_grouped_convs_are_unsupported_and_nothing_to_do_is_an_error():
    torch.manual_seed(0)
    model = create_model("resnext_tiny", num_classes=10).eval()
    grouped = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    with pytest.raises(CompressionError, match=rf"cannot factorize layer '{grouped}' \(it is a grouped conv"):
        _factorize(model, "tucker", layers=[grouped])
    lin = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(CompressionError, match="tucker: the model has no layer it can factorize"):
        _factorize(lin, "tucker")
