"""What every stage receives besides its inputs and config: the run context.

Stages never print. They report progress through ``ctx.reporter`` (the CLI renders it
with rich progress bars; tests and library users get a silent one) and log through
``ctx.log``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Protocol


class Reporter(Protocol):
    def task(self, description: str, total: int | None = None) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A unit of long work; the yielded callable advances it by n steps."""

    def log(self, message: str) -> None: ...


class NullReporter:
    """Reports nothing: for tests and library use."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None

    def log(self, message: str) -> None:
        logging.getLogger("edgeslim").info(message)


@dataclass
class Context:
    run_dir: Path
    reporter: Reporter = field(default_factory=NullReporter)
    # Per-run state shared by the stages of one run (the loaded dataset, keyed by its slice).
    cache: dict[Any, Any] = field(default_factory=dict)
    # Where the stage being run keeps its per-epoch training state
    # (edgeslim.finetune.resume.EpochCheckpoints): set by the runner for each stage call,
    # outside the stage's temporary folder so that a killed run resumes inside the stage.
    # None: nothing is kept (library use).
    resume_dir: Optional[Path] = None

    def log(self, message: str) -> None:
        self.reporter.log(message)
