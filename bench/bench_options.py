"""Argument types shared by the benchmark scripts: numbers checked where they are parsed.

A count of zero or less would measure nothing (or fail deep inside a run, or
report a goal met on no data), so each script refuses it at once: argparse
names the option in the error (``argument --runs: must be a positive integer,
got '0'``) and the script exits 2 before anything runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["at_least", "positive_int"]


def at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """An argparse ``type=`` for integers of at least ``minimum``; ``why`` says what the bound is."""
    wanted = "a positive integer" if minimum == 1 else f"an integer of at least {minimum:,}"
    if why:
        wanted += f" ({why})"

    def parse(text: str) -> int:
        try:
            value = int(text)  # "1000", " 1000 " and "1_000" alike
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


positive_int = at_least(1)
"""An integer of at least 1 (argparse ``type=``); anything else is refused with why."""
