"""How CPython's cyclic garbage collector runs while the simulation runs.

A big simulation keeps a large heap of long-lived objects (a pool of 100,000
sandboxes is about 3 million objects the collector tracks) and makes many
objects per claim that live for a while and then die: pending writes, timers,
watch deliveries, superseded versions of stored objects. With CPython's
default thresholds (700, 10, 10) a collection of the youngest generation comes
every few claims, so those objects are promoted to the oldest generation, and
full collections follow, each a walk of the whole heap: the cost per claim
grows with the pool (measured with ``gc.callbacks``, 4,000 claims: collections
took 51 us per claim at pool 100 and 214 at pool 10,000, most of the
difference between the two). The model's objects are trees, freed by
reference counting the moment they are dropped; cycles are rare.

So while the simulation runs, the youngest generation's threshold is raised
to :data:`YOUNG_THRESHOLD` (mypy does the same for its own large heap); short
lives then end before any collection sees them. The previous thresholds come
back when the last running simulation in the process returns, so code around
a simulation is collected as usual.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "simulation_gc"]

YOUNG_THRESHOLD: Final = 50_000
"""Net allocations of tracked objects between collections of the youngest generation."""

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] = (0, 0, 0)


@contextmanager
def simulation_gc() -> Iterator[None]:
    """Run the body with the simulation's collector thresholds (re-entrant, thread-safe).

    Only the first threshold changes, and only upwards: a process that set a
    higher one itself, or disabled collection, keeps its choice.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            young, *older = _saved
            if 0 < young < YOUNG_THRESHOLD:
                gc.set_threshold(YOUNG_THRESHOLD, *older)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
