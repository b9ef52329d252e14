"""Tests for ``idx:DIR`` (the MNIST file format) on tiny IDX files written here."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgeslim.data import fingerprint, load_data
from edgeslim.data import idx as idx_module
from edgeslim.errors import DataError


def write_idx(path, array: np.ndarray, *, gz: bool = False) -> None:
    magic = 0x803 if array.ndim == 3 else 0x801
    raw = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw += array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_idx(root, n_train=12, n_val=5, size=28, classes=3, gz=False):
    """Images whose brightness is their class: 0 -> dark, 1 -> mid, 2 -> bright."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        labels = np.arange(n) % classes
        images = np.repeat((labels * 100 + 20)[:, None, None], size * size, 1).reshape(n, size, size)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_t10k_is_the_val_split_and_items_are_normalized_three_channel(tmp_path, gz):
    root = make_idx(tmp_path / "mnist", gz=gz)
    b = load_data(f"idx:{root}", input_size=32, num_classes=3)
    assert (len(b.train), len(b.val)) == (12, 5)  # no random split: t10k is val, whole
    x, y = b.val[4]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and int(y) == 4 % 3
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    xs = np.stack([b.train[i][0].numpy() for i in range(len(b.train))])
    assert abs(xs.mean()) < 1e-5 and abs(xs.std() - 1) < 1e-3  # normalized by the train mean/std
    pre = b.preprocessing.as_dict()
    assert pre["input_shape"] == [1, 3, 32, 32] and pre["scale"] == 1 / 255
    # the recorded preprocessing reproduces an item from raw pixels
    raw = np.full((32, 32), (2 * 100 + 20), np.float32)
    assert np.allclose((raw * pre["scale"] - pre["mean"][0]) / pre["std"][0], b.train[2][0][0].numpy(), atol=1e-5)


def test_calibration_comes_from_the_training_split(tmp_path):
    root = make_idx(tmp_path / "m", n_train=10, n_val=3)
    b = load_data(f"idx:{root}", input_size=28, num_classes=3)
    assert b.calibration(10).shape == (10, 3, 28, 28)
    with pytest.raises(DataError, match="only 10 training samples"):
        b.calibration(11)


def test_limits_keep_the_first_samples(tmp_path):
    root = make_idx(tmp_path / "m")
    b = load_data(f"idx:{root}", input_size=16, num_classes=3, limit_train=4, limit_val=2)
    assert (len(b.train), len(b.val)) == (4, 2)
    assert [int(b.train[i][1]) for i in range(4)] == [0, 1, 2, 0]


def test_missing_file_is_named(tmp_path):
    root = make_idx(tmp_path / "m")
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        load_data(f"idx:{root}", input_size=28, num_classes=3)


def test_bad_magic_and_truncated_file_are_refused(tmp_path):
    root = make_idx(tmp_path / "m")
    (root / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)
    with pytest.raises(DataError, match="not an IDX file of uint8 with 3 dimension"):
        load_data(f"idx:{root}", input_size=28, num_classes=3)
    root = make_idx(tmp_path / "n")
    path = root / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated or padded"):
        load_data(f"idx:{root}", input_size=28, num_classes=3)


def test_label_count_mismatch_and_too_few_classes(tmp_path):
    root = make_idx(tmp_path / "m")
    write_idx(root / "train-labels-idx1-ubyte", np.zeros(11))
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        load_data(f"idx:{root}", input_size=28, num_classes=3)
    root = make_idx(tmp_path / "n", classes=3)
    with pytest.raises(DataError, match=r"labels up to 2, but model.num_classes is 2 \(--set model.num_classes=3\)"):
        load_data(f"idx:{root}", input_size=28, num_classes=2)


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    root = make_idx(tmp_path / "m")
    before = fingerprint(f"idx:{root}")
    assert before is not None and before == fingerprint(f"idx:{root}")
    write_idx(root / "t10k-labels-idx1-ubyte", np.array([2, 1, 0, 2, 1, 0]))
    assert fingerprint(f"idx:{root}") != before


def test_fashion_mnist_absent_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "FASHION_MNIST_DIR", tmp_path / "absent")
    import edgeslim.data as data
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_data("fashion-mnist", input_size=28, num_classes=10)


def test_fashion_mnist_names_its_classes(tmp_path, monkeypatch):
    root = make_idx(tmp_path / "fm", classes=10, n_train=20, n_val=10)
    import edgeslim.data as data
    monkeypatch.setattr(idx_module, "FASHION_MNIST_DIR", root)
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", root)
    b = load_data("fashion-mnist", input_size=28, num_classes=10)
    assert b.classes()[0] == "T-shirt/top" and b.classes()[9] == "Ankle boot"


def test_empty_idx_path_and_unknown_name():
    with pytest.raises(DataError, match="needs a folder of IDX files"):
        load_data("idx:", input_size=28, num_classes=3)
    with pytest.raises(DataError, match="did you mean 'fashion-mnist'"):
        load_data("fashion-mnsit", input_size=28, num_classes=3)


def test_run_on_idx_data_ends_with_measured_rows(tmp_path):
    """The pipeline end to end on an IDX folder: the val split is t10k, rows are measured."""
    root = make_idx(tmp_path / "m", n_train=24, n_val=9)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgeslim", "run", "--out", str(out),
           "--set", f"data.name=idx:{root}", "--set", "model.num_classes=3", "--set", "model.input_size=16",
           "--set", "baseline.epochs=1", "--set", "finetune.epochs=1", "--set", "data.calibration_samples=8",
           "--set", "quantize.precisions=[int8]", "--set", "profile.min_seconds=0.01"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((out / "results.json").read_text())
    assert rows and all(r["status"] == "ok" for r in rows)
    assert all(r["accuracy"] is not None for r in rows)
