"""One generic registry for models, methods, exporters, quantizers and targets.

A registry maps a short lowercase name to an object. Unknown names fail with the nearest
known names, so a typo in a recipe is answered with "did you mean ...".

Example::

    EXPORTERS = Registry("exporter")

    @EXPORTERS.register("onnx")
    class OnnxExporter: ...

    EXPORTERS.get("onx")  # EdgeslimError: unknown exporter 'onx'; did you mean 'onnx'?
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

from edgeslim.errors import EdgeslimError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=2, cutoff=0.5)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class Registry(Generic[T]):
    """Name -> object, with decorator registration, wildcard listing and did-you-mean."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""

        def add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise EdgeslimError(
                f"unknown {self.kind} '{name}'{suggest(name, tuple(self._items))} (known: {known})"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
