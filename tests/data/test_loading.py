"""Loaders with workers (reproducible batches) and the decoded image cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from edgeslim.data import cache_dir, load_data
from edgeslim.data.imagefolder import MEAN, STD, read_image
from tests.data.test_data import make_folder


def batches(bundle, **kw):
    return [(x.clone(), y.clone()) for x, y in bundle.train_loader(16, seed=3, **kw)]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_workers_give_the_same_batches_as_in_process():
    bundle = load_data("digits", input_size=16, num_classes=10, limit_train=80)
    two = batches(bundle, workers=2)
    assert len(two) == 5 and two[0][0].shape == (16, 3, 16, 16)
    assert_same(two, batches(bundle, workers=2))  # same seed and workers: same batches
    assert_same(two, batches(bundle, workers=0))  # and the worker count does not change them
    # a second epoch of one loader is another order, the same for any worker count
    loaders = [bundle.train_loader(16, seed=3, workers=w) for w in (0, 2)]
    epochs = [[y for _, y in loader] + [y for _, y in loader] for loader in loaders]
    assert [torch.equal(a, b) for a, b in zip(*epochs)] == [True] * 10
    assert not torch.equal(torch.cat(epochs[0][:5]), torch.cat(epochs[0][5:]))


def test_worker_count_must_not_be_negative():
    bundle = load_data("digits", input_size=8, num_classes=10, limit_train=8)
    with pytest.raises(Exception, match="train.workers must be 0 or more, got -1"):
        bundle.train_loader(4, workers=-1)


def test_imagefolder_workers_read_the_cache(tmp_path):
    root = make_folder(tmp_path / "colours")
    bundle = load_data(f"imagefolder:{root}", input_size=12, num_classes=3)
    assert_same(batches(bundle, workers=2), batches(bundle, workers=0))


def cache_files():
    return sorted(p.name for p in cache_dir().glob("*") if p.suffix in (".u8", ".json"))


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("EDGESLIM_CACHE")
    assert str(cache_dir()) == os.path.expanduser("~/.cache/edgeslim/data")


def test_decoded_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "colours")
    first = load_data(f"imagefolder:{root}", input_size=10, num_classes=3)
    names = cache_files()
    assert len(names) == 2  # <key>.u8 and <key>.json
    u8 = cache_dir() / names[1]
    meta = json.loads((cache_dir() / names[0]).read_text())
    assert meta["count"] == 18 and meta["size"] == 10 and u8.stat().st_size == 18 * 10 * 10 * 3
    # the cached item is exactly what decoding the file gives
    path, _ = first.train.samples[0]
    assert torch.equal(first.train[0][0], read_image(path, 10))
    # overwrite the cache with zeros: a second load that decoded again would not see them
    u8.write_bytes(bytes(u8.stat().st_size))
    second = load_data(f"imagefolder:{root}", input_size=10, num_classes=3)
    assert cache_files() == names
    expected = torch.from_numpy((-MEAN / STD).astype(np.float32))[:, None, None].expand(3, 10, 10)
    assert torch.allclose(second.train[0][0], expected)


def test_changed_folder_or_size_gets_a_new_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "colours")
    load_data(f"imagefolder:{root}", input_size=10, num_classes=3)
    before = cache_files()
    load_data(f"imagefolder:{root}", input_size=12, num_classes=3)
    after_size = cache_files()
    assert len(after_size) == 4 and set(before) < set(after_size)
    (root / "red" / "img0.png").unlink()
    changed = load_data(f"imagefolder:{root}", input_size=10, num_classes=3)
    assert len(cache_files()) == 6
    assert len(changed.train) + len(changed.val) == 17
    for x, y in changed.train:  # fresh values, not rows of the stale cache
        assert int(x.mean((1, 2)).argmax()) == {0: 2, 1: 1, 2: 0}[int(y)]


def test_unwritable_cache_folder_falls_back_to_reading_files(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EDGESLIM_CACHE", str(blocker / "cache"))
    root = make_folder(tmp_path / "colours")
    bundle = load_data(f"imagefolder:{root}", input_size=10, num_classes=3)
    assert bundle.train.cache is None
    path, _ = bundle.train.samples[0]
    assert torch.equal(bundle.train[0][0], read_image(path, 10))
