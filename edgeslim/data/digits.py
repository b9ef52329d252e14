"""``digits``: scikit-learn's real 8x8 handwritten digits (1797 samples, 10 classes).

It ships with scikit-learn, so it needs no download and makes a real, labelled, fast
dataset for tests and demos. Images stay 8x8 in memory and are resized per item: the
whole set pre-resized to 224x224 would take over 1 GB.

Example::

    bundle = load_digits_bundle(input_size=32)
    x, y = bundle.train[0]        # float32 [3, 32, 32], int64 scalar
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from edgeslim.data.bundle import DataBundle
from edgeslim.errors import DataError

NUM_CLASSES = 10
# Pixel values of load_digits run from 0 to 16.
_MAX_VALUE = 16.0


class DigitsDataset(Dataset):
    """Raw 8x8 digit images, resized, replicated to 3 channels and normalized per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, input_size: int, mean: float, std: float):
        # [N, 1, 8, 8] in [0, 1]: the channel axis is what interpolate expects.
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / _MAX_VALUE)[:, None]
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.input_size = int(input_size)
        self.mean = float(mean)
        self.std = float(std)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = _resize(self.images[index : index + 1], self.input_size)[0]
        x = ((x - self.mean) / self.std).expand(3, -1, -1).contiguous()
        return x, self.labels[index]


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``[N, 1, 8, 8]`` images to ``[N, 1, size, size]``."""
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def _resized_stats(images: np.ndarray, size: int, chunk: int = 128) -> tuple[float, float]:
    """Mean and std of the images *after* resizing, computed in chunks to bound memory.

    Bilinear upsampling smooths the image and lowers its std, so stats of the raw 8x8
    pixels would leave the model inputs visibly off unit variance.
    """
    data = torch.from_numpy(np.asarray(images, dtype=np.float32) / _MAX_VALUE)[:, None]
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, len(data), chunk):
        resized = _resize(data[start : start + chunk], size).double()
        total += float(resized.sum())
        total_sq += float((resized * resized).sum())
        count += resized.numel()
    mean = total / count
    std = max((total_sq / count - mean * mean), 0.0) ** 0.5
    return mean, std if std > 1e-8 else 1.0


def load_digits_bundle(
    *,
    input_size: int,
    num_classes: int = NUM_CLASSES,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit_train: int | None = None,
    limit_val: int | None = None,
) -> DataBundle:
    """The digits dataset with a fixed, seeded, stratified train/val split.

    Normalization stats come from the full train split, so ``limit_train`` speeds up
    tests without changing what the model sees.

    Example::

        bundle = load_digits_bundle(input_size=64, seed=0)   # 1437 train / 360 val
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if int(num_classes) != NUM_CLASSES:
        raise DataError(f"digits has {NUM_CLASSES} classes but model.num_classes is {num_classes}")
    digits = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        digits.images,
        digits.target,
        test_size=val_fraction,
        stratify=digits.target,
        random_state=int(seed),
    )
    mean, std = _resized_stats(x_train, int(input_size))
    if limit_train is not None:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    if limit_val is not None:
        x_val, y_val = x_val[:limit_val], y_val[:limit_val]
    return DataBundle(
        name="digits",
        train=DigitsDataset(x_train, y_train, input_size, mean, std),
        val=DigitsDataset(x_val, y_val, input_size, mean, std),
        num_classes=NUM_CLASSES,
        labelled=True,
        input_size=int(input_size),
        class_names=tuple(str(i) for i in range(NUM_CLASSES)),
    )
