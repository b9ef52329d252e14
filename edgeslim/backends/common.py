"""What every backend shares: one line from a library's exception, and its chatter silenced.

Runtimes and converters raise multi-line messages (C++ frames, tracebacks of the traced
model, ANSI colours); edgeslim reports one line. They also print progress and warnings of
their own, which must not reach the user's terminal in the middle of a pipeline.

Example::

    with quiet("torch.onnx", warnings_too=True):
        torch.onnx.export(...)
    raise ExportError(f"cannot convert: {converter_error(err)}")
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from typing import Iterator

from edgeslim.errors import first_line

__all__ = ["first_line", "converter_error", "quiet"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OPERATOR = re.compile(r"(aten::[\w.]+|torch\.ops\.[\w.]+|[\w.]+\.default\b)")


def converter_error(err: BaseException) -> str:
    """One readable line from a model converter (torch.onnx, openvino.convert_model): the
    unsupported operator when the message names one, else its first line."""
    text = _ANSI.sub("", str(err))
    for line in text.splitlines():
        if "nsupported" in line or "no ONNX" in line or "not supported" in line:
            op = _OPERATOR.search(line) or _OPERATOR.search(text)
            return (f"unsupported operator {op.group(1)}" if op else line.strip())[:300]
    op = _OPERATOR.search(text)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    return (f"{first} (operator {op.group(1)})" if op else first)[:300]


@contextlib.contextmanager
def quiet(logger: str = "", *, stderr: bool = False, warnings_too: bool = False) -> Iterator[None]:
    """Raise ``logger`` (the root logger by default) to ERROR and swallow stdout (and
    ``stderr``, and Python warnings when asked) for the duration; levels are restored."""
    log = logging.getLogger(logger or None)
    level = log.level
    log.setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        if stderr:
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        if warnings_too:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
        try:
            yield
        finally:
            log.setLevel(level)
