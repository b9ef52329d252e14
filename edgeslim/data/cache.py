"""The decoded-image cache: every image of a folder decoded and resized once, then read
as a memory-mapped uint8 array, so epochs (and every run after the first) read tensors,
not JPEGs.

Where: ``$EDGESLIM_CACHE`` when set, else ``~/.cache/edgeslim/data``. One cache is two
files named by a key: ``<key>.u8`` (``[N, size, size, 3]`` uint8, raw) and ``<key>.json``
(the count, size and relative file names, written last: it marks the array complete).
The key hashes the folder's fingerprint (names, sizes, mtimes of its files) and the input
size, so adding, removing or touching an image, or another input size, makes a new cache.
Old caches are never deleted here; removing the folder is always safe.

Example::

    cache = DecodedCache.open(key, count=len(files), size=224)
    if cache is None:
        cache = DecodedCache.build(key, files, size=224, decode=decode_image, root=root)
    cache.array[0].shape   # (224, 224, 3)
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

ENV = "EDGESLIM_CACHE"
VERSION = 1  # bump when the stored layout or the decoding changes


def cache_dir() -> Path:
    """The folder decoded caches live in (``$EDGESLIM_CACHE`` or ``~/.cache/edgeslim/data``).

    Example::

        cache_dir()   # PosixPath('/home/me/.cache/edgeslim/data')
    """
    env = os.environ.get(ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgeslim" / "data"


@dataclass
class DecodedCache:
    """A complete cache file: ``count`` images of ``size``² RGB, opened lazily per process
    (a DataLoader worker maps the file itself instead of receiving a pickled copy)."""

    path: Path
    count: int
    size: int
    _array: Optional[np.ndarray] = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.memmap(self.path, dtype=np.uint8, mode="r",
                                    shape=(self.count, self.size, self.size, 3))
        return self._array

    def __getstate__(self) -> dict:
        return {"path": self.path, "count": self.count, "size": self.size, "_array": None}

    @classmethod
    def open(cls, key: str, *, count: int, size: int) -> Optional["DecodedCache"]:
        """The cache named ``key`` when it is complete and has this shape, else None."""
        base = cache_dir() / key
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            complete = (meta.get("version") == VERSION and meta.get("count") == count
                        and meta.get("size") == size
                        and base.with_suffix(".u8").stat().st_size == count * size * size * 3)
        except (OSError, ValueError):
            return None
        return cls(base.with_suffix(".u8"), count, size) if complete else None

    @classmethod
    def build(cls, key: str, files: Sequence[Path], *, size: int, root: Path,
              decode: Callable[[Path, int], np.ndarray]) -> "DecodedCache":
        """Decode ``files`` (``decode(path, size)`` -> uint8 ``[size, size, 3]``) on a few
        threads (Pillow releases the GIL while decoding) into a new cache named ``key``.

        Written to temporary names and renamed, the array before the metadata, so a crash
        or a concurrent build never leaves a cache that looks complete and is not.
        Raises OSError when the cache folder is not writable, and what ``decode`` raises.
        """
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        base, tag = folder / key, f".tmp-{os.getpid()}"
        tmp_array = base.with_suffix(".u8" + tag)
        count = len(files)
        try:
            array = np.memmap(tmp_array, dtype=np.uint8, mode="w+", shape=(count, size, size, 3))

            def fill(i: int, out: np.ndarray = array) -> None:
                out[i] = decode(files[i], size)

            with ThreadPoolExecutor(max_workers=min(8, len(os.sched_getaffinity(0)))) as pool:
                list(pool.map(fill, range(count)))  # list(): re-raises the first decode error
            array.flush()
            del array, fill  # unmap before the rename
            os.replace(tmp_array, base.with_suffix(".u8"))
            meta = {"version": VERSION, "count": count, "size": size,
                    "root": str(root), "files": [Path(f).relative_to(root).as_posix() for f in files]}
            tmp_meta = base.with_suffix(".json" + tag)
            tmp_meta.write_text(json.dumps(meta))
            os.replace(tmp_meta, base.with_suffix(".json"))
        finally:
            tmp_array.unlink(missing_ok=True)
        return cls(base.with_suffix(".u8"), count, size)
