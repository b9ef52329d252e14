"""``imagefolder:PATH``: a folder with one sub-folder of images per class.

Class indices follow the sorted sub-folder names. Every image is verified when the data
is first loaded, so a corrupt file is reported up front instead of an hour into
fine-tuning, then decoded once into the decoded cache (:mod:`edgeslim.data.cache`), which
later epochs and runs read instead of the image files.

Example::

    # flowers/daisy/*.jpg, flowers/rose/*.jpg, flowers/tulip/*.jpg
    bundle = load_imagefolder_bundle("flowers", input_size=224)
    bundle.num_classes, bundle.class_names   # 3, ('daisy', 'rose', 'tulip')
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from edgeslim.data.bundle import DataBundle
from edgeslim.data.cache import VERSION as CACHE_VERSION
from edgeslim.data.cache import DecodedCache
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
    return to_input(decode_image(path, input_size))


def decode_image(path: Path, input_size: int) -> np.ndarray:
    """The RGB pixels of one image, shorter side resized and centre cropped: uint8
    ``[size, size, 3]`` (what the decoded cache stores).

    Example::

        decode_image(Path("flowers/rose/001.jpg"), 224).shape   # (224, 224, 3)
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
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def to_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` pixels -> the normalized float32 ``[3, H, W]`` model input."""
    array = pixels.astype(np.float32) / 255.0
    array = (array - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class ImageFolderDataset(Dataset):
    """Image files and labels. With a decoded cache, item ``i`` is row ``rows[i]`` of it;
    without one (cache folder not writable), each image is read when it is accessed."""

    def __init__(self, samples: list[tuple[Path, int]], input_size: int,
                 cache: DecodedCache | None = None, rows: list[int] | None = None):
        self.samples = samples
        self.input_size = int(input_size)
        self.cache = cache
        self.rows = rows

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        if self.cache is not None:
            x = to_input(np.asarray(self.cache.array[self.rows[index]]))
        else:
            x = read_image(path, self.input_size)
        return x, torch.tensor(label, dtype=torch.int64)


def folder_fingerprint(root: Path) -> str:
    """sha256 over the relative names, sizes and modification times of every file under
    ``root`` (contents are not read). See :func:`edgeslim.data.fingerprint`."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def scan_folder(root: Path, *, verify: bool = True) -> tuple[list[str], list[list[Path]]]:
    """Class names (sorted) and each class's image files (sorted), all verified unless
    ``verify`` is false (a complete decoded cache of the unchanged folder proves them).

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
    broken = [(path, why) for images in files for path in images if verify and (why := _unreadable(path))]
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
    classes, files = scan_folder(root, verify=False)
    if num_classes is not None and int(num_classes) != len(classes):
        raise DataError(
            f"data folder {root} has {len(classes)} classes but model.num_classes is {num_classes}"
        )
    cache = _decoded(root, [p for images in files for p in images], int(input_size))
    row = {p: i for i, p in enumerate(p for images in files for p in images)}
    train, val = _split(files, val_fraction, seed)
    if limit_train is not None:
        train = train[:limit_train]
    if limit_val is not None:
        val = val[:limit_val]
    dataset = lambda samples: ImageFolderDataset(  # noqa: E731
        samples, input_size, cache, [row[p] for p, _ in samples] if cache is not None else None)
    return DataBundle(
        name=f"imagefolder:{path}",
        train=dataset(train),
        val=dataset(val),
        num_classes=len(classes),
        labelled=True,
        input_size=int(input_size),
        class_names=tuple(classes),
    )


def _decoded(root: Path, paths: list[Path], size: int) -> DecodedCache | None:
    """The folder's decoded cache, built (after verifying every image) when absent; None
    when the cache folder cannot be written, and images are then read per access."""
    key = hashlib.sha256(f"{folder_fingerprint(root)}\0{size}\0v{CACHE_VERSION}".encode()).hexdigest()[:32]
    cache = DecodedCache.open(key, count=len(paths), size=size)
    if cache is not None:
        return cache
    scan_folder(root)  # names every unreadable image in one error before decoding anything
    try:
        return DecodedCache.build(key, paths, size=size, root=root, decode=decode_image)
    except OSError:
        return None
