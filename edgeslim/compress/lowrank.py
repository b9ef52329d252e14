"""The linear algebra behind factorization: rank selection, Tucker-2, CP and SVD.

torch float64 linear algebra (it follows ``torch.set_num_threads``; numpy's OpenBLAS spins
its own threads and was 70x slower on a busy machine), scipy for the one scalar search.
Arrays in, arrays out: numpy arrays are accepted and converted. Used by
:mod:`edgeslim.compress.factorize`.

Example::

    W = conv.weight.detach().double()                       # [O, I, kh, kw]
    r_out = evbmf_rank(unfold(W, 0)); r_in = evbmf_rank(unfold(W, 1))
    core, u_out, u_in = tucker2(W, r_out, r_in)            # W ≈ core ×0 u_out ×1 u_in
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize_scalar

Array = torch.Tensor


def _t(a) -> torch.Tensor:
    return a.to(torch.float64) if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a), dtype=torch.float64)


def _left(a: torch.Tensor, r: int) -> torch.Tensor:
    return torch.linalg.svd(a, full_matrices=False)[0][:, :r]


def unfold(w, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding: that axis becomes the rows."""
    w = _t(w)
    return torch.movedim(w, mode, 0).reshape(w.shape[mode], -1)


def energy_rank(matrix, energy: float) -> int:
    """Smallest rank whose singular values hold ``energy`` of the squared Frobenius norm."""
    s2 = torch.linalg.svdvals(_t(matrix)).numpy() ** 2
    total = s2.sum()
    if total == 0:
        return 1
    return int(min(len(s2), np.searchsorted(np.cumsum(s2) / total, energy - 1e-12) + 1))


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    b = x - (1.0 + alpha)
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4.0 * alpha, 0.0)))


def evbmf_rank(matrix: np.ndarray) -> int:
    """Rank chosen by empirical variational Bayesian matrix factorization.

    The global analytic solution of Nakajima, Sugiyama, Babacan & Tomioka (JMLR 2013):
    the noise variance σ² is estimated by minimizing the free energy over a bounded
    interval, and the singular values above the EVB threshold
    ``sqrt(M σ² (1 + τ̄)(1 + α/τ̄))`` (α = L/M, τ̄ ≈ 2.5129 √α) are the signal. Kim et al.
    (ICLR 2016) apply it to the unfoldings of a conv kernel to pick Tucker ranks.
    Returns at least 1.
    """
    y = _t(matrix)
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    s = torch.linalg.svdvals(y).numpy()
    if s[0] == 0:
        return 1
    alpha = L / M
    tau_bar = 2.5129 * math.sqrt(alpha)
    x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar)
    # Bounds on σ² from the paper: above, all energy is noise; below, at most the
    # largest rank EVB can ever retain is signal.
    upper = float((s ** 2).sum() / (L * M))
    h_max = int(min(math.ceil(L / (1.0 + alpha)) - 1, L)) - 1
    tail = s[h_max + 1:]
    lower = float(max(tail[0] ** 2 / (M * x_bar), np.mean(tail ** 2) / M)) if len(tail) else upper * 1e-6

    def free_energy(sigma2: float) -> float:
        x = s ** 2 / (M * sigma2)
        small, big = x[x <= x_bar], x[x > x_bar]
        t = _tau(big, alpha)
        return float(np.sum(small - np.log(small)) + np.sum(big - t) + np.sum(np.log((t + 1.0) / big))
                     + alpha * np.sum(np.log(t / alpha + 1.0)))

    if lower >= upper:
        sigma2 = upper
    else:
        sigma2 = float(minimize_scalar(free_energy, bounds=(lower, upper), method="bounded").x)
    threshold = math.sqrt(M * sigma2 * (1.0 + tau_bar) * (1.0 + alpha / tau_bar))
    return max(1, int((s > threshold).sum()))


def tucker2(w, r_out: int, r_in: int, iters: int = 2) -> tuple[Array, Array, Array]:
    """Tucker-2 of a conv kernel ``w`` [O, I, kh, kw] over its two channel modes.

    HOSVD (leading singular vectors of each unfolding), refined by ``iters`` rounds of
    HOOI. Returns ``core`` [r_out, r_in, kh, kw], ``u_out`` [O, r_out], ``u_in`` [I, r_in]
    with ``w ≈ einsum('rsyx,or,is->oiyx', core, u_out, u_in)``.
    """
    w = _t(w)
    u_out, u_in = _left(unfold(w, 0), r_out), _left(unfold(w, 1), r_in)
    for _ in range(iters):
        u_out = _left(unfold(torch.einsum("oiyx,is->osyx", w, u_in), 0), r_out)
        u_in = _left(unfold(torch.einsum("oiyx,or->iryx", w, u_out), 0), r_in)
    core = torch.einsum("oiyx,or,is->rsyx", w, u_out, u_in)
    return core, u_out, u_in


def tucker2_reconstruct(core, u_out, u_in) -> Array:
    return torch.einsum("rsyx,or,is->oiyx", _t(core), _t(u_out), _t(u_in))


def cp_als(w, rank: int, iters: int = 50, seed: int = 0) -> list[Array]:
    """CP decomposition of a 4-way tensor by alternating least squares.

    Returns factors ``[A (d0×R), B (d1×R), C (d2×R), D (d3×R)]`` with
    ``w ≈ einsum('ar,br,cr,dr->abcd', A, B, C, D)``, the column scales balanced across
    factors. Initialized from the unfoldings' singular vectors where a mode is at least
    ``rank`` wide, seeded random columns elsewhere.
    """
    w = _t(w)
    g = torch.Generator().manual_seed(seed)
    factors = []
    for mode in range(4):
        u, s, _ = torch.linalg.svd(unfold(w, mode), full_matrices=False)
        f = torch.randn(w.shape[mode], rank, generator=g, dtype=torch.float64)
        k = min(rank, u.shape[1])
        f[:, :k] = u[:, :k] * s[:k].sqrt()
        factors.append(f)
    letters = "abcd"
    for _ in range(iters):
        for mode in range(4):
            others = [m for m in range(4) if m != mode]
            # MTTKRP, one factor at a time: "abcd,br->acdr", then "acdr,cr->adr", "adr,dr->ar"
            first, *rest = others
            idx = "abcd".replace(letters[first], "") + "r"
            acc = torch.einsum(f"abcd,{letters[first]}r->{idx}", w, factors[first])
            for m in rest:
                out = idx.replace(letters[m], "")
                acc = torch.einsum(f"{idx},{letters[m]}r->{out}", acc, factors[m])
                idx = out
            gram = torch.ones(rank, rank, dtype=torch.float64)
            for m in others:
                gram *= factors[m].T @ factors[m]
            factors[mode] = acc @ torch.linalg.pinv(gram)
    norms = [f.norm(dim=0) + 1e-300 for f in factors]
    scale = torch.stack(norms).prod(dim=0) ** 0.25
    return [f / n * scale for f, n in zip(factors, norms)]


def cp_reconstruct(factors) -> Array:
    return torch.einsum("ar,br,cr,dr->abcd", *[_t(f) for f in factors])


def svd_factors(w, rank: int) -> tuple[Array, Array]:
    """``w`` [O, I] ≈ ``first`` [O, r] @ ``second`` [r, I], singular values split evenly."""
    u, s, vt = torch.linalg.svd(_t(w), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vt[:rank]


def relative_error(w, approx) -> float:
    w, approx = _t(w), _t(approx)
    n = float(w.norm())
    return float((w - approx).norm()) / n if n > 0 else 0.0
