"""Batched augmentation: random-resized-crop + horizontal flip, and when it is on."""

from __future__ import annotations

import pytest
import torch

from edgeslim.data import load_data, resolve_augment
from edgeslim.data.augment import random_resized_crop_flip
from edgeslim.errors import DataError
from edgeslim.pipeline.stages.base import DataSlice
from edgeslim.recipe import Recipe
from tests.data.test_data import make_folder


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_augment_keeps_shape_dtype_and_labels_and_is_reproducible():
    x = torch.randn(8, 3, 24, 24, generator=gen(0))
    y = torch.arange(8)
    bundle = load_data("digits", input_size=24, num_classes=10, limit_train=8, augment=True)
    assert bundle.augmentation["enabled"] and bundle.augmentation["horizontal_flip"] == 0.5
    out, labels = bundle.augment_batch(x, y, gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.equal(labels, y)
    assert not torch.allclose(out, x, atol=1e-3)
    again, _ = bundle.augment_batch(x, y, gen(1))
    assert torch.equal(out, again)
    other, _ = bundle.augment_batch(x, y, gen(2))
    assert not torch.equal(out, other)
    half = random_resized_crop_flip(x.to(torch.bfloat16), gen(1))
    assert half.dtype == torch.bfloat16 and half.shape == x.shape


def test_augment_is_identity_when_off():
    bundle = load_data("digits", input_size=16, num_classes=10, limit_train=8)
    assert bundle.augmentation == {"enabled": False}
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4)
    out, labels = bundle.augment_batch(x, y, gen(0))
    assert out is x and labels is y


def test_a_flip_of_a_full_crop_mirrors_the_image():
    # every crop is the whole image when the scale range is (1, 1): only flips remain
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).repeat(16, 1, 1, 1)
    out = random_resized_crop_flip(x, gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)]
    kept = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_augment_rejects_a_single_image():
    with pytest.raises(DataError, match=r"expects a batch \[N, C, H, W\], got shape \(3, 8, 8\)"):
        random_resized_crop_flip(torch.zeros(3, 8, 8), gen(0))


def test_augment_defaults_by_data(tmp_path):
    assert Recipe().data.augment == "auto"
    assert resolve_augment("digits", "auto") is False
    assert resolve_augment("synthetic", "auto") is False
    assert resolve_augment("imagefolder:/x", "auto") is True
    assert resolve_augment("imagefolder:/x", False) is False
    root = make_folder(tmp_path / "colours")
    assert load_data(f"imagefolder:{root}", input_size=8, num_classes=3).augmentation["enabled"]
    assert not load_data("digits", input_size=8, num_classes=10, limit_train=4).augmentation["enabled"]


def test_augment_is_in_the_data_slice(tmp_path):
    assert DataSlice.of(Recipe()).augment is False
    root = make_folder(tmp_path / "colours")
    recipe = Recipe.model_validate({"data": {"name": f"imagefolder:{root}"}, "model": {"num_classes": 3}})
    assert DataSlice.of(recipe).augment is True
    off = Recipe.model_validate({"data": {"name": f"imagefolder:{root}", "augment": False},
                                 "model": {"num_classes": 3}})
    assert DataSlice.of(off).key() != DataSlice.of(recipe).key()
    with pytest.raises(Exception, match="augment"):
        Recipe.model_validate({"data": {"augment": "sometimes"}})
