"""``imagefolder:PATH``: a folder with one sub-folder of images per class.

Class indices follow the sorted sub-folder names. Every image is verified when the data
is loaded, so a corrupt file is reported up front instead of an hour into fine-tuning.

Example::

    # flowers/daisy/*.jpg, flowers/rose/*.jpg, flowers/tulip/*.jpg
    bundle = load_imagefolder_bundle("flowers", input_size=224)
    bundle.num_classes, bundle.class_names   # 3, ('daisy', 'rose', 'tulip')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from edgeslim.data.bundle import DataBundle
from edgeslim.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# ImageNet statistics: pretrained backbones expect inputs normalized with these.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MAX_LISTED = 10  # unreadable images named in one error; the rest are counted


def read_image(path: Path, input_size: int) -> torch.Tensor:
    """Read one image as a normalized float32 ``[3, size, size]`` tensor.

    The shorter side is resized to ``input_size`` and the centre cropped, which keeps the
    aspect ratio as the usual ImageNet evaluation transform does.

    Example::

        x = read_image(Path("flowers/rose/001.jpg"), 224)
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            scale = input_size / min(width, height)
            new_w, new_h = max(input_size, round(width * scale)), max(input_size, round(height * scale))
            image = image.resize((new_w, new_h), Image.BILINEAR)
            left, top = (new_w - input_size) // 2, (new_h - input_size) // 2
            image = image.crop((left, top, left + input_size, top + input_size))
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    array = (array - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class ImageFolderDataset(Dataset):
    """Image files and labels; each image is read and resized when it is accessed."""

    def __init__(self, samples: list[tuple[Path, int]], input_size: int):
        self.samples = samples
        self.input_size = int(input_size)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return read_image(path, self.input_size), torch.tensor(label, dtype=torch.int64)


def scan_folder(root: Path) -> tuple[list[str], list[list[Path]]]:
    """Class names (sorted) and each class's image files (sorted), all verified.

    Example::

        classes, files = scan_folder(Path("flowers"))
    """
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"data path is not a directory: {root}")
    # Hidden folders (.git, .ipynb_checkpoints) are never classes.
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {root} has no class sub-folders (one folder per class is expected)")
    if len(classes) < 2:
        raise DataError(f"data folder {root} has only 1 class ('{classes[0]}'); at least 2 are needed")
    files = []
    for name in classes:
        images = sorted(
            p for p in (root / name).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DataError(f"class folder '{name}' in {root} has no images")
        files.append(images)
    # Every broken file at once: a user fixing them one run at a time would rerun N times.
    broken = [(path, why) for images in files for path in images if (why := _unreadable(path))]
    if broken:
        shown = "; ".join(f"{path.relative_to(root)} ({why})" for path, why in broken[:MAX_LISTED])
        more = f"; and {len(broken) - MAX_LISTED} more" if len(broken) > MAX_LISTED else ""
        noun = "image" if len(broken) == 1 else "images"
        raise DataError(f"cannot read {len(broken)} {noun} in {root}: {shown}{more}")
    return classes, files


def _unreadable(path: Path) -> str | None:
    """Why Pillow cannot read ``path``, or None when it can."""
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as exc:  # Pillow raises many types for broken files; all mean "unreadable"
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _split(files: list[list[Path]], val_fraction: float, seed: int):
    """Per-class seeded split; a class with >= 2 images puts at least one in each split."""
    rng = np.random.default_rng(int(seed))
    train, val = [], []
    for label, paths in enumerate(files):
        order = rng.permutation(len(paths))
        n_val = int(round(len(paths) * val_fraction))
        if len(paths) >= 2:
            n_val = min(max(n_val, 1), len(paths) - 1)
        else:
            n_val = 0  # a lone image is more useful for training than as a one-sample val
        val += [(paths[i], label) for i in sorted(order[:n_val])]
        train += [(paths[i], label) for i in sorted(order[n_val:])]
    # Interleave classes in a seeded order so "the first K" (limits) spans all classes.
    train = [train[i] for i in rng.permutation(len(train))]
    val = [val[i] for i in rng.permutation(len(val))]
    return train, val


def load_imagefolder_bundle(
    path: str | Path,
    *,
    input_size: int,
    num_classes: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit_train: int | None = None,
    limit_val: int | None = None,
) -> DataBundle:
    """An image-folder bundle with a seeded stratified train/val split.

    Example::

        bundle = load_imagefolder_bundle("flowers", input_size=224, num_classes=3)
    """
    root = Path(path).expanduser()
    classes, files = scan_folder(root)
    if num_classes is not None and int(num_classes) != len(classes):
        raise DataError(
            f"data folder {root} has {len(classes)} classes but model.num_classes is {num_classes}"
        )
    train, val = _split(files, val_fraction, seed)
    if limit_train is not None:
        train = train[:limit_train]
    if limit_val is not None:
        val = val[:limit_val]
    return DataBundle(
        name=f"imagefolder:{path}",
        train=ImageFolderDataset(train, input_size),
        val=ImageFolderDataset(val, input_size),
        num_classes=len(classes),
        labelled=True,
        input_size=int(input_size),
        class_names=tuple(classes),
    )
