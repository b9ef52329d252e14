"""``idx:DIR`` and ``fashion-mnist``: datasets in the MNIST file format (IDX).

MNIST, Fashion-MNIST, KMNIST and EMNIST ship as four IDX files (gzipped or not)::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

The ``t10k`` files are the validation split (the official test set: no random split), so
accuracies compare with published ones; calibration draws from the training split, as for
every source. ``fashion-mnist`` is the folder the Debian package ``dataset-fashion-mnist``
installs. Images are resized once, at load, to ``input_size`` and kept as uint8 in memory
(60,000 images at 32 px are 61 MB); items are normalized with the training split's mean
and std and the gray channel is repeated into three.

Example::

    bundle = load_idx_bundle("/usr/share/datasets/fashion-mnist", input_size=32)
    len(bundle.train), len(bundle.val), bundle.class_names[:2]   # 60000, 10000, ('T-shirt/top', 'Trouser')
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from edgeslim.data.bundle import DataBundle
from edgeslim.errors import DataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
SPLITS = {"train": "train", "val": "t10k"}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # 0x00000803 (uint8, 3 dims), 0x00000801 (uint8, 1 dim)
_RESIZE_CHUNK = 4096


class IdxDataset(Dataset):
    """uint8 ``[N, 1, S, S]`` images and int64 labels; items normalized, gray -> 3 channels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        self.images, self.labels = images, labels
        self.mean, self.std = float(mean), float(std)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = (self.images[index].float() / 255.0 - self.mean) / self.std
        return x.expand(3, -1, -1).contiguous(), self.labels[index]


def find_files(root: Path) -> dict[str, tuple[Path, Path]]:
    """``{"train": (images, labels), "val": (...)}`` of an IDX folder; :class:`DataError`
    naming what is missing."""
    if not root.is_dir():
        raise DataError(f"IDX data folder {root} does not exist")
    out, missing = {}, []
    for split, prefix in SPLITS.items():
        pair = []
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            stem = f"{prefix}-{kind}"
            found = next((root / n for n in (stem, stem + ".gz") if (root / n).is_file()), None)
            if found is None:
                missing.append(f"{stem}[.gz]")
            pair.append(found)
        out[split] = tuple(pair)
    if missing:
        raise DataError(f"IDX data folder {root} lacks {', '.join(missing)} (an IDX dataset has "
                        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
                        "and t10k-labels-idx1-ubyte, optionally gzipped)")
    return out


def read_idx(path: Path, *, dims: int) -> np.ndarray:
    """The uint8 array of one IDX file with ``dims`` dimensions (3: images, 1: labels)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    magic = _IMAGES_MAGIC if dims == 3 else _LABELS_MAGIC
    header = 4 + 4 * dims
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an IDX file of uint8 with {dims} dimension(s) "
                        f"(its magic number is not {magic:#010x})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: its header says {shape} "
                        f"({expected} bytes), the file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _split(images_path: Path, labels_path: Path, size: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, dims=3)
    labels = read_idx(labels_path, dims=1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return _resized(images, size), torch.from_numpy(labels.astype(np.int64))


def _resized(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[N, H, W]`` -> uint8 ``[N, 1, size, size]``, bilinear, in chunks."""
    data = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))[:, None]
    if data.shape[-2:] == (size, size):
        return data.clone()
    out = torch.empty((len(data), 1, size, size), dtype=torch.uint8)
    for start in range(0, len(data), _RESIZE_CHUNK):
        chunk = data[start:start + _RESIZE_CHUNK].float()
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False)
        out[start:start + _RESIZE_CHUNK] = resized.round().clamp_(0, 255).to(torch.uint8)
    return out


def fingerprint_idx(root: Path) -> str | None:
    """Names, sizes and modification times of the four files (None when incomplete)."""
    try:
        files = find_files(root)
    except DataError:
        return None
    h = hashlib.sha256()
    for pair in files.values():
        for p in pair:
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def class_names(root: Path, num_classes: int) -> tuple[str, ...] | None:
    """Fashion-MNIST's names for its folder; None (label indices) for other IDX data."""
    if root.resolve() == FASHION_MNIST_DIR.resolve() and num_classes == len(FASHION_MNIST_CLASSES):
        return FASHION_MNIST_CLASSES
    return None


def load_idx_bundle(root: str | Path, *, input_size: int, num_classes: int, seed: int = 0,
                    limit_train: int | None = None, limit_val: int | None = None) -> DataBundle:
    """The train and t10k splits of an IDX folder as a bundle (``seed`` is unused: no random split)."""
    root = Path(root).expanduser()
    files = find_files(root)
    train_x, train_y = _split(*files["train"], int(input_size), limit_train)
    val_x, val_y = _split(*files["val"], int(input_size), limit_val)
    top = int(max(train_y.max(), val_y.max())) if len(train_y) and len(val_y) else -1
    if top >= num_classes:
        raise DataError(f"IDX data {root} has labels up to {top}, but model.num_classes is {num_classes} "
                        f"(--set model.num_classes={top + 1})")
    pixels = train_x.double() / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    std = std if std > 1e-8 else 1.0
    return DataBundle(name=f"idx:{root}", train=IdxDataset(train_x, train_y, mean, std),
                      val=IdxDataset(val_x, val_y, mean, std), num_classes=num_classes, labelled=True,
                      input_size=int(input_size), class_names=class_names(root, num_classes))
