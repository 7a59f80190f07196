"""Sharing of equal immutable parts between stored objects.

Objects in the simulated store are never changed in place, so two sandboxes
whose ``Ready`` conditions are equal may hold the same :class:`Condition`.
A pool of 100,000 sandboxes carries about half a million conditions with a
few hundred distinct values; sharing them is what keeps such a pool within a
reasonable memory budget.
"""

from __future__ import annotations

from typing import Any, Final

from pytest_kruise_agents.api.meta import Condition

__all__ = ["ConditionInterner"]

_MAX_ENTRIES: Final = 8192
"""The table is cleared when it grows past this: interning only saves memory."""


class ConditionInterner:
    """Give back an equal, already seen condition instead of a new one (a callable)."""

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table: dict[tuple[Any, ...], Condition] = {}

    def __call__(self, cond: Condition) -> Condition:
        """``cond``, or an equal condition seen before."""
        key = (
            cond.type,
            cond.status,
            cond.reason,
            cond.message,
            cond.last_transition_time,
            cond.observed_generation,
        )
        seen = self._table.get(key)
        if seen is not None:
            return seen
        if len(self._table) >= _MAX_ENTRIES:
            self._table.clear()
        self._table[key] = cond
        return cond

    def __len__(self) -> int:
        return len(self._table)
