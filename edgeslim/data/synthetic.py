"""``synthetic``: seeded random-normal inputs with no real labels.

For smoke runs and latency benchmarks where accuracy does not matter. The bundle is
``labelled=False`` so reports show accuracy as absent rather than a meaningless number;
labels are all zero only so loaders keep the usual ``(x, y)`` shape.

Example::

    bundle = load_synthetic_bundle(input_size=224, num_classes=1000)
    bundle.labelled   # False
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from edgeslim.data.bundle import DataBundle

DEFAULT_TRAIN = 256
DEFAULT_VAL = 64


class SyntheticDataset(Dataset):
    """``length`` random-normal images, each generated from its own seed on access.

    Generating per item keeps memory flat at large input sizes and makes item ``i``
    the same whatever order items are read in.
    """

    def __init__(self, length: int, input_size: int, seed: int):
        self.length = int(length)
        self.input_size = int(input_size)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        x = torch.randn(3, self.input_size, self.input_size, generator=generator)
        return x, torch.tensor(0, dtype=torch.int64)


def load_synthetic_bundle(
    *,
    input_size: int,
    num_classes: int,
    seed: int = 0,
    limit_train: int | None = None,
    limit_val: int | None = None,
) -> DataBundle:
    """A random-normal bundle: 256 train and 64 val samples unless limits say otherwise.

    Example::

        bundle = load_synthetic_bundle(input_size=32, num_classes=10, limit_train=16)
    """
    n_train = DEFAULT_TRAIN if limit_train is None else int(limit_train)
    n_val = DEFAULT_VAL if limit_val is None else int(limit_val)
    # Train and val draw from disjoint seed streams so no val item repeats a train item.
    return DataBundle(
        name="synthetic",
        train=SyntheticDataset(n_train, input_size, seed=2 * int(seed)),
        val=SyntheticDataset(n_val, input_size, seed=2 * int(seed) + 1),
        num_classes=int(num_classes),
        labelled=False,
        input_size=int(input_size),
    )
