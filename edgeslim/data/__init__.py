"""Datasets: ``digits``, ``synthetic``, ``imagefolder:PATH``, ``idx:DIR`` and ``fashion-mnist``,
all as a :class:`DataBundle`.

Every bundle says how an image becomes an input (:class:`Preprocessing`) and names its
classes, and :func:`describe_data` says both without loading the images (a release's
manifest carries them).

Example::

    from edgeslim.data import load_data

    bundle = load_data("imagefolder:~/flowers", input_size=224, num_classes=5, seed=0)
    calib = bundle.calibration(256)
    bundle.classes(), bundle.preprocessing.as_dict()["mean"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from edgeslim.data import imagefolder
from edgeslim.data.augment import describe_augmentation, resolve_augment
from edgeslim.data.bundle import DataBundle, Preprocessing
from edgeslim.data.digits import load_digits_bundle
from edgeslim.data.cache import cache_dir
from edgeslim.data.idx import FASHION_MNIST_DIR, fingerprint_idx, load_idx_bundle
from edgeslim.data.imagefolder import folder_fingerprint, load_imagefolder_bundle, scan_folder
from edgeslim.data.synthetic import load_synthetic_bundle
from edgeslim.errors import DataError
from edgeslim.registry import suggest

__all__ = ["DataBundle", "Preprocessing", "load_data", "describe_data", "fingerprint", "resolve_augment",
           "cache_dir", "DATA_NAMES"]

# What a recipe may name; imagefolder and idx take a path after the colon.
DATA_NAMES = ("digits", "synthetic", "imagefolder:PATH", "idx:DIR", "fashion-mnist")


def load_data(
    name: str,
    *,
    input_size: int,
    num_classes: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit_train: int | None = None,
    limit_val: int | None = None,
    augment: Union[bool, str] = "auto",
) -> DataBundle:
    """Load the dataset a recipe names, split into train and val.

    ``limit_train`` / ``limit_val`` keep only the first K samples of each split (after the
    split), for fast tests. ``augment`` (``data.augment``: true, false or auto = image
    folders only) decides what :meth:`DataBundle.augment_batch` does.

    Example::

        bundle = load_data("digits", input_size=32, num_classes=10, limit_train=200)
        bundle = load_data("synthetic", input_size=224, num_classes=1000)
        bundle = load_data("imagefolder:data/flowers", input_size=96, num_classes=5)
    """
    name = str(name).strip()
    _check_options(input_size, val_fraction, limit_train, limit_val)
    augmentation = describe_augmentation(resolve_augment(name, augment))
    bundle = _load(name, input_size=int(input_size), num_classes=num_classes, seed=int(seed),
                   val_fraction=val_fraction, limit_train=limit_train, limit_val=limit_val)
    bundle.augmentation = augmentation
    return bundle


def _load(name: str, *, num_classes: int, val_fraction: float, **options) -> DataBundle:
    """The bundle of ``name`` with its preprocessing filled in."""
    input_size = options["input_size"]
    if name == "digits":
        bundle = load_digits_bundle(num_classes=num_classes, val_fraction=val_fraction, **options)
        # one mean/std of the resized training images, the same for the three channels
        mean, std = bundle.train.mean, bundle.train.std
        bundle.preprocessing = Preprocessing(
            int(input_size), f"the 8x8 image resized to {input_size}x{input_size} (bilinear, align_corners=False)",
            1 / 16, (mean,) * 3, (std,) * 3, "grayscale, repeated into the 3 channels")
        return bundle
    if name == "synthetic":
        bundle = load_synthetic_bundle(num_classes=num_classes, **options)
        bundle.preprocessing = Preprocessing(int(input_size), "none: inputs are standard normal noise",
                                             1.0, (0.0,) * 3, (1.0,) * 3, "RGB")
        return bundle
    idx_root = _idx_root(name)
    if idx_root is not None:
        bundle = load_idx_bundle(idx_root, num_classes=num_classes, **options)
        bundle.preprocessing = _idx_preprocessing(bundle, int(input_size))
        return bundle
    path = _folder(name)
    bundle = load_imagefolder_bundle(path, num_classes=num_classes, val_fraction=val_fraction, **options)
    bundle.preprocessing = _imagefolder_preprocessing(int(input_size))
    return bundle


def describe_data(name: str, *, input_size: int, num_classes: int, seed: int = 0,
                  val_fraction: float = 0.2) -> tuple[tuple[str, ...], Preprocessing]:
    """The class names (label order) and the :class:`Preprocessing` of the data a recipe
    names, as :func:`load_data` with the same arguments gives them; an image folder is only
    listed, not read.

    Example::

        classes, pre = describe_data("digits", input_size=32, num_classes=10)
        classes[:3], pre.layout   # ('0', '1', '2'), 'NCHW'
    """
    name = str(name).strip()
    if name in ("digits", "synthetic"):  # both load in well under a second, images made per item
        b = load_data(name, input_size=input_size, num_classes=num_classes, seed=seed,
                      val_fraction=val_fraction, limit_train=1, limit_val=1)
        return b.classes(), b.preprocessing
    idx_root = _idx_root(name)
    if idx_root is not None:  # the train mean/std are part of the preprocessing: load once
        b = load_data(name, input_size=input_size, num_classes=num_classes, seed=seed, limit_val=1)
        return b.classes(), b.preprocessing
    classes, _ = scan_folder(Path(_folder(name)).expanduser())
    return tuple(classes), _imagefolder_preprocessing(int(input_size))


def fingerprint(name: str) -> str | None:
    """A cheap fingerprint of the files behind a data source (relative names, sizes and
    modification times of an image folder), or None for embedded and generated data.

    It goes into the stages' cache keys: adding, removing or replacing an image redoes
    what was computed from the folder. Contents are not read (a file rewritten with the same
    size and time is not seen). A missing folder gives None: loading it says so clearly.
    """
    name = str(name).strip()
    idx_root = _idx_root(name)
    if idx_root is not None:
        return fingerprint_idx(idx_root)
    if not name.startswith("imagefolder:"):
        return None
    root = Path(name[len("imagefolder:"):].strip()).expanduser()
    return folder_fingerprint(root) if root.is_dir() else None


def _folder(name: str) -> str:
    """The path of ``imagefolder:PATH``; :class:`DataError` for any other unknown name."""
    if name == "imagefolder" or name.startswith("imagefolder:"):
        path = name[len("imagefolder:"):].strip()
        if not path:
            raise DataError("data 'imagefolder:' needs a folder path, e.g. imagefolder:data/flowers")
        return path
    hint = suggest(name.split(":", 1)[0], ("digits", "synthetic", "imagefolder", "idx", "fashion-mnist"))
    raise DataError(f"unknown data '{name}'{hint} (known: {', '.join(DATA_NAMES)})")


def _idx_root(name: str) -> Path | None:
    """The folder of ``idx:DIR`` or ``fashion-mnist``; None for other names."""
    if name == "fashion-mnist":
        if not FASHION_MNIST_DIR.is_dir():
            raise DataError(f"data 'fashion-mnist' reads {FASHION_MNIST_DIR}, which is not there: install it "
                            "with 'apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or point "
                            "data.name at a folder of its IDX files with idx:DIR")
        return FASHION_MNIST_DIR
    if name == "idx" or name.startswith("idx:"):
        path = name[len("idx:"):].strip()
        if not path:
            raise DataError("data 'idx:' needs a folder of IDX files, e.g. idx:data/mnist")
        return Path(path).expanduser()
    return None


def _idx_preprocessing(bundle: DataBundle, size: int) -> Preprocessing:
    mean, std = bundle.train.mean, bundle.train.std
    return Preprocessing(size, f"the grayscale IDX image resized to {size}x{size} (bilinear, "
                         "align_corners=False, rounded to 8 bits)", 1 / 255, (mean,) * 3, (std,) * 3,
                         "grayscale, repeated into the 3 channels")


def _imagefolder_preprocessing(size: int) -> Preprocessing:
    # read_image's transform: RGB, shorter side resized, centre crop, /255, ImageNet mean/std
    return Preprocessing(size, f"shorter side resized to {size} (bilinear), centre crop {size}x{size}",
                         1 / 255, tuple(float(v) for v in imagefolder.MEAN),
                         tuple(float(v) for v in imagefolder.STD), "RGB")


def _check_options(input_size, val_fraction, limit_train, limit_val) -> None:
    """Reject values that would otherwise fail deep inside scikit-learn or a DataLoader."""
    if int(input_size) < 1:
        raise DataError(f"input size must be a positive integer, got {input_size}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise DataError(f"data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    for key, value in (("limit_train", limit_train), ("limit_val", limit_val)):
        if value is not None and int(value) < 1:
            raise DataError(f"data.{key} must be at least 1, got {value}")
