"""Compression methods, each registered by name in :data:`METHODS`.

Example::

    from edgeslim.compress import METHODS
    METHODS.names()          # ['l1', 'l2', ...]
    METHODS.get("l1").description
"""

from edgeslim.compress.base import METHODS, CompressJob, Method, register_method

# Importing a family module registers its methods.
from edgeslim.compress import norms  # noqa: E402,F401
from edgeslim.compress import slimming, hrank, taylor, random, latency  # noqa: E402,F401
from edgeslim.compress import distill_student  # noqa: E402,F401
from edgeslim.compress import unstructured, lottery, init_pruning, factorize  # noqa: E402,F401
from edgeslim.compress import none  # noqa: E402,F401

__all__ = ["METHODS", "CompressJob", "Method", "register_method"]
