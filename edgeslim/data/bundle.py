"""The :class:`DataBundle`: a train/val pair of datasets plus what the pipeline needs to know.

Every data source (``digits``, ``synthetic``, ``imagefolder:PATH``) returns a bundle, so
fine-tuning, calibration and evaluation never depend on where the images came from.

Items of both splits are ``(x, y)`` with ``x`` a float32 tensor ``[3, H, W]`` (already
normalized) and ``y`` an int64 scalar tensor.

Example::

    bundle = load_data("digits", input_size=32, num_classes=10)
    for x, y in bundle.train_loader(64, seed=0):
        ...
    calib = bundle.calibration(128, seed=0)   # float32 [128, 3, 32, 32], train split only
    xs, ys = bundle.val_arrays()              # whole val split, in order
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edgeslim.data.augment import describe_augmentation, random_resized_crop_flip
from edgeslim.errors import DataError


@dataclass(frozen=True)
class Preprocessing:
    """How one image becomes the model's input, for whoever deploys the model: read it in
    ``channel_order``, resize by ``resize``, multiply by ``scale``, then per channel
    ``(x - mean) / std``, as a ``dtype`` tensor in ``layout`` of ``input_size``².

    Example::

        Preprocessing(224, "shorter side to 224 (bilinear), centre crop 224x224", 1 / 255,
                      (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB").as_dict()["layout"]  # 'NCHW'
    """

    input_size: int
    resize: str
    scale: float  # pixel values are multiplied by this before normalizing (1/255: 8-bit images)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str  # RGB, or how a grayscale source fills the three channels
    layout: str = "NCHW"
    dtype: str = "float32"

    def as_dict(self) -> dict:
        return {"input_size": self.input_size, "input_shape": [1, 3, self.input_size, self.input_size],
                "resize": self.resize, "scale": self.scale, "mean": list(self.mean), "std": list(self.std),
                "channel_order": self.channel_order, "layout": self.layout, "dtype": self.dtype}


@dataclass
class DataBundle:
    """Train and val datasets of one source, with their class count and input size."""

    name: str
    train: Dataset
    val: Dataset
    num_classes: int
    # False for synthetic data: its labels are meaningless, so accuracy is absent, not 0.
    labelled: bool
    input_size: int
    # Class names in label order, when the source has them (imagefolder folder names).
    class_names: tuple[str, ...] | None = None
    # How an image becomes an input (filled in by load_data; see Preprocessing).
    preprocessing: Preprocessing | None = None
    # What augment_batch does to training batches (edgeslim.data.augment.describe_augmentation).
    augmentation: dict = field(default_factory=lambda: describe_augmentation(False))

    def classes(self) -> tuple[str, ...]:
        """Class names in label order; the label indices as strings when the source has none.

        Example: ``load_data("synthetic", input_size=8, num_classes=3).classes()`` -> ``('0', '1', '2')``.
        """
        return self.class_names or tuple(str(i) for i in range(self.num_classes))

    def train_loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        sampler=None,
        drop_last: bool = False,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> DataLoader:
        """A loader over the train split, shuffled by a seeded generator, read by ``workers``
        processes (0: in this process) into pinned memory when ``pin_memory``.

        The batches are the same for any worker count: the order comes from the seeded
        generator in this process, and each worker's numpy/random/torch generators are
        seeded from it and the worker's id (:func:`seed_worker`).

        Example::

            loader = bundle.train_loader(32, seed=1, workers=2)   # same seed -> same batches
        """
        workers = int(workers)
        if workers < 0:
            raise DataError(f"train.workers must be 0 or more, got {workers}")
        generator = torch.Generator().manual_seed(int(seed))
        # DataLoader refuses shuffle together with a sampler; the sampler decides the order.
        # Workers are not persistent: a persistent loader draws its worker seed once, not
        # per epoch, so later epochs' order would depend on the worker count.
        return DataLoader(
            self.train,
            batch_size=batch_size,
            shuffle=bool(shuffle) and sampler is None,
            sampler=sampler,
            drop_last=drop_last,
            generator=generator,
            num_workers=workers,
            pin_memory=bool(pin_memory),
            worker_init_fn=seed_worker if workers else None,
        )

    def augment_batch(self, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch augmented on its device (random-resized-crop + horizontal flip)
        when the bundle's augmentation is on, else ``(x, y)`` unchanged.

        Example::

            g = torch.Generator(device=x.device).manual_seed(seed)
            x, y = bundle.augment_batch(x.to(device), y.to(device), g)
        """
        if not self.augmentation.get("enabled"):
            return x, y
        return random_resized_crop_flip(x, generator), y

    def val_loader(self, batch_size: int) -> DataLoader:
        """A loader over the val split, in its fixed order.

        Example::

            for x, y in bundle.val_loader(256): ...
        """
        return DataLoader(self.val, batch_size=batch_size, shuffle=False, num_workers=0)

    def calibration(self, n: int, *, seed: int = 0) -> np.ndarray:
        """A seeded random subset of ``n`` train inputs, float32 ``[n, 3, H, W]``.

        Calibration never touches the val split, so quantized accuracy is measured on
        images the quantizer has not seen.

        Example::

            calib = bundle.calibration(64, seed=0)   # deterministic for a given seed
        """
        n = int(n)
        available = len(self.train)
        if n < 1:
            raise DataError(
                f"calibration set needs at least 1 sample, {n} were asked (data.calibration_samples)"
            )
        if n > available:
            raise DataError(
                # the default (256) exceeds a small image folder's split: say the value that fits
                f"calibration set has only {available} training samples, {n} were asked "
                f"(data.calibration_samples; --set data.calibration_samples={available} uses them all)"
            )
        indices = np.random.default_rng(int(seed)).choice(available, size=n, replace=False)
        return _stack_inputs(self.train, indices.tolist())

    def val_arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """All val inputs (float32) and labels (int64, or ``None`` when unlabelled), in order.

        Example::

            xs, ys = bundle.val_arrays(limit=100)   # the first 100 val samples
        """
        count = len(self.val) if limit is None else min(int(limit), len(self.val))
        indices = list(range(count))
        xs = _stack_inputs(self.val, indices)
        if not self.labelled:
            return xs, None
        ys = np.array([int(self.val[i][1]) for i in indices], dtype=np.int64)
        return xs, ys


def seed_worker(worker_id: int) -> None:
    """Seed a DataLoader worker's numpy and ``random`` from its torch seed, which the
    loader derives from its seeded generator plus ``worker_id``: a worker that draws
    random numbers draws the same ones in every run with the same seed and worker count."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _stack_inputs(dataset: Dataset, indices: list[int]) -> np.ndarray:
    """Stack the inputs of ``dataset[i]`` for ``i`` in ``indices`` as one float32 array."""
    if not indices:
        first = dataset[0][0] if len(dataset) else torch.zeros(3, 1, 1)
        return np.zeros((0, *first.shape), dtype=np.float32)
    return np.stack([dataset[i][0].numpy() for i in indices]).astype(np.float32, copy=False)
