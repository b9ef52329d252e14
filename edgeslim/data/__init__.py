"""Datasets: ``digits``, ``synthetic`` and ``imagefolder:PATH``, all as a :class:`DataBundle`.

Example::

    from edgeslim.data import load_data

    bundle = load_data("imagefolder:~/flowers", input_size=224, num_classes=5, seed=0)
    calib = bundle.calibration(256)
"""

from __future__ import annotations

from edgeslim.data.bundle import DataBundle
from edgeslim.errors import DataError
from edgeslim.registry import suggest

__all__ = ["DataBundle", "load_data", "DATA_NAMES"]

# What a recipe may name; imagefolder takes a path after the colon.
DATA_NAMES = ("digits", "synthetic", "imagefolder:PATH")


def load_data(
    name: str,
    *,
    input_size: int,
    num_classes: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit_train: int | None = None,
    limit_val: int | None = None,
) -> DataBundle:
    """Load the dataset a recipe names, split into train and val.

    ``limit_train`` / ``limit_val`` keep only the first K samples of each split (after the
    split), for fast tests.

    Example::

        bundle = load_data("digits", input_size=32, num_classes=10, limit_train=200)
        bundle = load_data("synthetic", input_size=224, num_classes=1000)
        bundle = load_data("imagefolder:data/flowers", input_size=96, num_classes=5)
    """
    name = str(name).strip()
    _check_options(input_size, val_fraction, limit_train, limit_val)
    options = dict(input_size=int(input_size), seed=int(seed), limit_train=limit_train, limit_val=limit_val)
    if name == "digits":
        from edgeslim.data.digits import load_digits_bundle

        return load_digits_bundle(num_classes=num_classes, val_fraction=val_fraction, **options)
    if name == "synthetic":
        from edgeslim.data.synthetic import load_synthetic_bundle

        return load_synthetic_bundle(num_classes=num_classes, **options)
    if name == "imagefolder" or name.startswith("imagefolder:"):
        path = name[len("imagefolder:"):].strip()
        if not path:
            raise DataError("data 'imagefolder:' needs a folder path, e.g. imagefolder:data/flowers")
        from edgeslim.data.imagefolder import load_imagefolder_bundle

        return load_imagefolder_bundle(path, num_classes=num_classes, val_fraction=val_fraction, **options)
    hint = suggest(name.split(":", 1)[0], ("digits", "synthetic", "imagefolder"))
    raise DataError(f"unknown data '{name}'{hint} (known: {', '.join(DATA_NAMES)})")


def _check_options(input_size, val_fraction, limit_train, limit_val) -> None:
    """Reject values that would otherwise fail deep inside scikit-learn or a DataLoader."""
    if int(input_size) < 1:
        raise DataError(f"input size must be a positive integer, got {input_size}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise DataError(f"data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    for key, value in (("limit_train", limit_train), ("limit_val", limit_val)):
        if value is not None and int(value) < 1:
            raise DataError(f"data.{key} must be at least 1, got {value}")
