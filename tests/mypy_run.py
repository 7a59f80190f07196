"""mypy run in this process, leaving the process as it found it.

:func:`mypy.api.run` sets ``MYPY_CONFIG_FILE_DIR`` in ``os.environ`` (to expand it
in config files) and raises the recursion limit to 2**14: left so, later tests in the
same process see the variable, and a file nested a few hundred levels deep no longer
ends in the ``RecursionError`` their checks expect.
"""

from __future__ import annotations

import os
import sys

import mypy.api

__all__ = ["run_mypy"]


def run_mypy(args: list[str]) -> tuple[str, str, int]:
    """``mypy.api.run(args)``, with the environment and the recursion limit put back."""
    saved = dict(os.environ)
    limit = sys.getrecursionlimit()
    try:
        return mypy.api.run(args)
    finally:
        sys.setrecursionlimit(limit)
        for name in os.environ.keys() - saved.keys():
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
