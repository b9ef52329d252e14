"""Training augmentation on batched tensors: random-resized-crop and horizontal flip.

The ImageNet training recipe, done per batch on the device the batch is on (one
``grid_sample`` call for the whole batch) instead of per image in PIL, so it costs the
loader nothing. Crops are taken from the decoded ``input_size`` image (the centre crop an
image folder stores), then resized back to ``input_size``.

Example::

    g = torch.Generator().manual_seed(0)
    x = random_resized_crop_flip(torch.randn(8, 3, 64, 64), g)   # same shape and dtype
    resolve_augment("imagefolder:flowers", "auto"), resolve_augment("digits", "auto")  # True, False
"""

from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F

from edgeslim.errors import DataError

SCALE = (0.08, 1.0)  # share of the image's area a crop covers (torchvision's default)
RATIO = (3 / 4, 4 / 3)  # crop aspect ratios, sampled log-uniformly
FLIP = 0.5  # probability of a horizontal flip
ATTEMPTS = 10  # crops drawn per image until one fits; none fitting keeps the whole image


def resolve_augment(name: str, setting: Union[bool, str]) -> bool:
    """Whether training batches of data ``name`` are augmented for the recipe's ``data.augment``.

    ``auto`` is on for image folders only: a flipped digit is another digit, and synthetic
    noise gains nothing.

    Example::

        resolve_augment("digits", "auto"), resolve_augment("digits", True)   # False, True
    """
    if setting == "auto":
        return str(name).strip().startswith("imagefolder")
    if isinstance(setting, bool):
        return setting
    raise DataError(f"data.augment must be true, false or auto, got {setting!r}")


def describe_augmentation(enabled: bool) -> dict:
    """What augmentation does, as recorded in a bundle and a training history.

    Example::

        describe_augmentation(False)   # {'enabled': False}
    """
    if not enabled:
        return {"enabled": False}
    return {"enabled": True,
            "random_resized_crop": {"scale": list(SCALE), "ratio": [round(r, 4) for r in RATIO]},
            "horizontal_flip": FLIP, "applied": "per training batch, on its device"}


def random_resized_crop_flip(x: torch.Tensor, generator: torch.Generator, *,
                             scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO,
                             flip: float = FLIP) -> torch.Tensor:
    """Each image of ``x`` ``[N, C, H, W]`` cropped at a random share ``scale`` of its area
    and aspect ``ratio``, resized back to ``H x W`` (bilinear) and flipped horizontally with
    probability ``flip``.

    The random draws come from ``generator`` (on its own device), so the same generator
    state gives the same batch on any device. Shape and dtype are kept.

    Example::

        out = random_resized_crop_flip(x, torch.Generator().manual_seed(1))
    """
    if x.dim() != 4:
        raise DataError(f"augmentation expects a batch [N, C, H, W], got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    draw = lambda *shape: torch.rand(*shape, generator=generator, device=generator.device)  # noqa: E731
    area = (scale[0] + (scale[1] - scale[0]) * draw(n, ATTEMPTS)) * (h * w)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * draw(n, ATTEMPTS))
    offsets, flips = draw(n, 2), draw(n) < flip
    crop_w, crop_h = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
    fits = (crop_w >= 1) & (crop_h >= 1) & (crop_w <= w) & (crop_h <= h)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first attempt that fits
    any_fit = fits.any(1)
    crop_w = torch.where(any_fit, crop_w.gather(1, first)[:, 0], torch.full_like(area[:, 0], w))
    crop_h = torch.where(any_fit, crop_h.gather(1, first)[:, 0], torch.full_like(area[:, 0], h))
    left = torch.floor(offsets[:, 0] * (w - crop_w + 1)).clamp(max=w - crop_w)
    top = torch.floor(offsets[:, 1] * (h - crop_h + 1)).clamp(max=h - crop_h)
    # affine_grid's coordinates run from -1 to 1 across the image's outer edges
    # (align_corners=False): a crop is a scale (its size) and a shift (its centre).
    theta = torch.zeros(n, 2, 3, device=area.device)
    theta[:, 0, 0] = torch.where(flips, -crop_w / w, crop_w / w)
    theta[:, 0, 2] = (2 * left + crop_w) / w - 1
    theta[:, 1, 1] = crop_h / h
    theta[:, 1, 2] = (2 * top + crop_h) / h - 1
    dtype = x.dtype if x.is_floating_point() else torch.float32
    grid = F.affine_grid(theta.to(x.device, dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(x.dtype)
