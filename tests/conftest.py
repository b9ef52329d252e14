"""Shared test setup: decoded image caches go to a temporary folder, not ~/.cache."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _decoded_cache_in_tmp(tmp_path_factory):
    # os.environ, not monkeypatch: subprocesses (`edgeslim run` in tests) inherit it too
    previous = os.environ.get("EDGESLIM_CACHE")
    os.environ["EDGESLIM_CACHE"] = str(tmp_path_factory.mktemp("edgeslim-cache"))
    yield
    if previous is None:
        os.environ.pop("EDGESLIM_CACHE", None)
    else:
        os.environ["EDGESLIM_CACHE"] = previous


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``):
    their models are tiny, and two threads on a busy 2-core CI machine only add contention."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
