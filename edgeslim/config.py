"""The base of every configuration section: strict pydantic models.

Each package keeps the configuration it reads beside the code that reads it
(``models/config.py``, ``compress/config.py``, ...); :mod:`edgeslim.recipe` composes them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
