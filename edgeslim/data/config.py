"""The ``data`` section: the dataset, batch size, splits, calibration samples, augmentation."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from edgeslim.config import StrictModel


class DataCfg(StrictModel):
    name: str = "digits"  # digits | synthetic | imagefolder:PATH | idx:DIR | fashion-mnist
    batch_size: int = Field(64, gt=0)
    calibration_samples: int = Field(256, gt=0)  # drawn from the training split only
    val_fraction: float = Field(0.2, gt=0, lt=1)
    limit_train: Optional[int] = Field(None, gt=0)  # first K training samples (quick runs)
    limit_val: Optional[int] = Field(None, gt=0)
    # random-resized-crop + horizontal flip of training batches; auto = on for image folders,
    # off for digits (a flipped digit is another digit), synthetic and other generated data
    augment: Union[bool, Literal["auto"]] = "auto"
