"""User-facing errors.

Every failure a user can cause (a bad recipe, a missing folder, a corrupt file) is raised
as an :class:`EdgeslimError`. The CLI prints its message as one line and exits with
``exit_code`` (2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first non-blank line of ``err``'s message (its type name if it has none): how a
    library's multi-line exception becomes part of one error line.

    Example::

        raise ExportError(f"cannot read {path}: {first_line(err)}") from None
    """
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


class EdgeslimError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    exit_code = 2

    def __init__(self, message: str):
        # One line, always: the CLI prints exactly this.
        super().__init__(" ".join(str(message).split()))


class RecipeError(EdgeslimError):
    """The recipe (YAML file, ``--set`` override or field value) is invalid."""


class ModelError(EdgeslimError):
    """The model cannot be built, loaded or pruned."""


class DataError(EdgeslimError):
    """The dataset is missing, empty or unreadable."""


class CompressionError(EdgeslimError):
    """A compression method cannot be applied to this model with these options."""


class ExportError(EdgeslimError):
    """A model could not be exported, or an artifact file is invalid."""


class ParityError(ExportError):
    """An artifact's outputs differ from its reference beyond tolerance."""


class QuantizeError(EdgeslimError):
    """Quantization failed or produced an artifact outside tolerance."""


class TargetError(EdgeslimError):
    """A target is unknown, unavailable or misconfigured."""


class RunDirError(EdgeslimError):
    """The run directory is locked, unwritable or inconsistent."""
