"""Tests for edgeslim.data: digits, synthetic and imagefolder bundles."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from edgeslim.data import DataBundle, load_data
from edgeslim.errors import DataError

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


@pytest.fixture(scope="module")
def digits32() -> DataBundle:
    return load_data("digits", input_size=32, num_classes=10, seed=0)


def make_folder(root, colours=COLOURS, per_class=6):
    """Write per_class small PNGs per class, shaded so images within a class differ."""
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shade = tuple(min(255, c + 10 * i) for c in rgb)
            Image.new("RGB", (20 + i, 16), shade).save(root / name / f"img{i}.png")
    return root


# --- digits -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_digits_shapes_and_dtypes(size):
    bundle = load_data("digits", input_size=size, num_classes=10, limit_train=8, limit_val=4)
    x, y = bundle.train[0]
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert y.shape == () and y.dtype == torch.int64
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])  # grey replicated to RGB
    xb, yb = next(iter(bundle.train_loader(4)))
    assert xb.shape == (4, 3, size, size) and yb.dtype == torch.int64
    xs, ys = bundle.val_arrays()
    assert xs.shape == (4, 3, size, size) and xs.dtype == np.float32 and ys.dtype == np.int64
    assert bundle.calibration(5).shape == (5, 3, size, size)


def test_digits_split_sizes_and_stratification(digits32):
    assert (len(digits32.train), len(digits32.val)) == (1437, 360)
    assert digits32.labelled and digits32.num_classes == 10 and digits32.input_size == 32
    train_counts = np.bincount(digits32.train.labels.numpy(), minlength=10)
    val_counts = np.bincount(digits32.val.labels.numpy(), minlength=10)
    fractions = val_counts / (train_counts + val_counts)
    assert np.all(np.abs(fractions - 0.2) < 0.02)


def test_digits_normalization(digits32):
    xs = np.stack([digits32.train[i][0].numpy() for i in range(len(digits32.train))])
    assert abs(xs.mean()) < 0.05 and abs(xs.std() - 1.0) < 0.05


def test_digits_determinism(digits32):
    same = load_data("digits", input_size=32, num_classes=10, seed=0)
    other = load_data("digits", input_size=32, num_classes=10, seed=1)
    assert torch.equal(same.val.images, digits32.val.images)
    assert not torch.equal(other.val.images, digits32.val.images)
    np.testing.assert_array_equal(digits32.calibration(16, seed=3), same.calibration(16, seed=3))
    assert not np.array_equal(digits32.calibration(16, seed=3), digits32.calibration(16, seed=4))


def test_train_loader_is_seeded(digits32):
    first = lambda seed: next(iter(digits32.train_loader(16, seed=seed)))[1]  # noqa: E731
    assert torch.equal(first(5), first(5)) and not torch.equal(first(5), first(6))
    ordered = next(iter(digits32.train_loader(16, shuffle=False)))[1]
    assert torch.equal(ordered, digits32.train.labels[:16])


def test_calibration_comes_from_train_only(digits32):
    calib = digits32.calibration(200, seed=0).reshape(200, -1)
    val, _ = digits32.val_arrays()
    val = val.reshape(len(val), -1)
    train = np.stack([digits32.train[i][0].numpy().ravel() for i in range(len(digits32.train))])
    assert not (calib[:, None, :] == val[None, :, :]).all(-1).any()
    assert (calib[:, None, :] == train[None, :, :]).all(-1).any(1).all()


def test_calibration_too_large(digits32):
    with pytest.raises(DataError, match=r"only 1437 training samples, 5000 were asked") as e:
        digits32.calibration(5000)
    # the default 256 is more than a small image folder holds: the error says what fits
    assert "--set data.calibration_samples=1437 uses them all" in str(e.value)


def test_val_arrays_in_order_with_limit(digits32):
    xs, ys = digits32.val_arrays(limit=10)
    assert xs.shape[0] == 10
    np.testing.assert_array_equal(ys, digits32.val.labels[:10].numpy())
    np.testing.assert_array_equal(xs[3], digits32.val[3][0].numpy())


def test_digits_wrong_num_classes():
    with pytest.raises(DataError, match="digits has 10 classes but model.num_classes is 5"):
        load_data("digits", input_size=32, num_classes=5)


def test_unknown_name_suggests():
    with pytest.raises(DataError, match="did you mean 'digits'"):
        load_data("digit", input_size=32, num_classes=10)
    with pytest.raises(DataError, match="needs a folder path"):
        load_data("imagefolder", input_size=32, num_classes=10)


# --- synthetic --------------------------------------------------------------------------


def test_synthetic():
    bundle = load_data("synthetic", input_size=32, num_classes=7, seed=0)
    assert not bundle.labelled and bundle.num_classes == 7
    assert (len(bundle.train), len(bundle.val)) == (256, 64)
    x, y = bundle.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and int(y) == 0
    xs, ys = bundle.val_arrays()
    assert xs.shape == (64, 3, 32, 32) and ys is None
    again = load_data("synthetic", input_size=32, num_classes=7, seed=0)
    other = load_data("synthetic", input_size=32, num_classes=7, seed=1)
    np.testing.assert_array_equal(bundle.calibration(8), again.calibration(8))
    assert not np.array_equal(bundle.train[0][0].numpy(), other.train[0][0].numpy())
    assert not np.array_equal(bundle.train[0][0].numpy(), bundle.val[0][0].numpy())
    small = load_data("synthetic", input_size=16, num_classes=2, limit_train=10, limit_val=3)
    assert (len(small.train), len(small.val)) == (10, 3)


# --- imagefolder ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_imagefolder_loads(tmp_path, size):
    root = make_folder(tmp_path / "colours")
    bundle = load_data(f"imagefolder:{root}", input_size=size, num_classes=3, seed=0)
    assert bundle.num_classes == 3 and bundle.labelled
    assert bundle.class_names == ("blue", "green", "red")
    assert len(bundle.train) + len(bundle.val) == 18
    assert len(bundle.val) == 3  # round(6 * 0.2) = 1 per class
    for x, y in list(bundle.train) + list(bundle.val):
        assert x.shape == (3, size, size) and x.dtype == torch.float32 and y.dtype == torch.int64
        # The dominant channel of the colour names the class: blue=2, green=1, red=0.
        assert int(x.mean((1, 2)).argmax()) == {0: 2, 1: 1, 2: 0}[int(y)]
    _, ys = bundle.val_arrays()
    assert sorted(ys.tolist()) == [0, 1, 2]
    assert bundle.calibration(4).shape == (4, 3, size, size)


def test_imagefolder_split_is_seeded(tmp_path):
    root = make_folder(tmp_path / "colours", per_class=10)
    names = lambda seed: [p.name + str(l) for p, l in  # noqa: E731
                          load_data(f"imagefolder:{root}", input_size=8, num_classes=3, seed=seed).val.samples]
    assert names(0) == names(0) and names(0) != names(1)


def test_imagefolder_uppercase_suffix_and_ignored_files(tmp_path):
    root = make_folder(tmp_path / "c", per_class=2)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "c" / "red" / "EXTRA.PNG")
    (tmp_path / "c" / "red" / "notes.txt").write_text("not an image")
    bundle = load_data(f"imagefolder:{root}", input_size=8, num_classes=3)
    assert len(bundle.train) + len(bundle.val) == 7


def test_imagefolder_missing(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=re.escape(f"data folder not found: {missing}")):
        load_data(f"imagefolder:{missing}", input_size=32, num_classes=3)


def test_imagefolder_not_a_directory(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(DataError, match=re.escape(f"not a directory: {file}")):
        load_data(f"imagefolder:{file}", input_size=32, num_classes=3)


def test_imagefolder_no_class_folders(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path} has no class sub-folders")):
        load_data(f"imagefolder:{tmp_path}", input_size=32, num_classes=3)


def test_imagefolder_empty_class(tmp_path):
    root = make_folder(tmp_path / "c")
    (root / "yellow").mkdir()
    with pytest.raises(DataError, match=re.escape(f"class folder 'yellow' in {root} has no images")):
        load_data(f"imagefolder:{root}", input_size=32, num_classes=4)


def test_imagefolder_corrupt_image(tmp_path):
    root = make_folder(tmp_path / "c")
    bad = root / "green" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(DataError, match="broken.png") as info:
        load_data(f"imagefolder:{root}", input_size=32, num_classes=3)
    assert "\n" not in str(info.value)


def test_imagefolder_every_corrupt_image_is_named_in_one_error(tmp_path):
    root = make_folder(tmp_path / "c")
    for rel in ["blue/a.png", "green/b.jpg", "red/c.png"]:
        (root / rel).write_bytes(b"not an image at all")
    with pytest.raises(DataError) as info:
        load_data(f"imagefolder:{root}", input_size=32, num_classes=3)
    msg = str(info.value)
    assert msg.startswith(f"cannot read 3 images in {root}: ")
    assert all(name in msg for name in ["blue/a.png", "green/b.jpg", "red/c.png"])
    assert "\n" not in msg


def test_imagefolder_many_corrupt_images_are_counted_past_ten(tmp_path):
    root = make_folder(tmp_path / "c")
    for i in range(13):
        (root / "red" / f"bad{i:02d}.png").write_bytes(b"broken")
    with pytest.raises(DataError) as info:
        load_data(f"imagefolder:{root}", input_size=32, num_classes=3)
    msg = str(info.value)
    assert msg.startswith(f"cannot read 13 images in {root}: ")
    assert "bad09.png" in msg and "bad10.png" not in msg and msg.endswith("; and 3 more")


def test_imagefolder_single_class(tmp_path):
    root = make_folder(tmp_path / "c", colours={"red": (255, 0, 0)})
    with pytest.raises(DataError, match=r"only 1 class \('red'\)"):
        load_data(f"imagefolder:{root}", input_size=32, num_classes=1)


def test_imagefolder_num_classes_mismatch(tmp_path):
    root = make_folder(tmp_path / "c")
    with pytest.raises(DataError, match="has 3 classes but model.num_classes is 10"):
        load_data(f"imagefolder:{root}", input_size=32, num_classes=10)
