"""A controller work queue with client-go semantics, on SimPy.

Keys are de-duplicated while waiting, and a key is never handed to two
workers at once: a key added while it is being processed is queued again when
the worker calls :meth:`WorkQueue.done`.

Workers may be started on demand (:meth:`WorkQueue.start_workers_on_demand`):
an idle worker and one not started yet are indistinguishable (workers keep no
state between keys), so starting one only when a key finds no idle worker
hands out the same keys at the same moments, in the same event order, as
starting them all up front; it spares a fresh cluster hundreds of processes
that never run.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any, cast

import simpy

__all__ = ["WorkQueue"]

_MIN_COMPACT = 16
"""Dead delayed adds tolerated before the heap is first rebuilt without them."""


class WorkQueue:
    """De-duplicating FIFO of keys with delayed adds (``workqueue.RateLimitingInterface``)."""

    def __init__(self, env: simpy.Environment, name: str) -> None:
        self.env = env
        self.name = name
        self._queue: deque[Any] = deque()
        self._dirty: set[Any] = set()
        self._processing: set[Any] = set()
        self._waiters: deque[simpy.Event] = deque()
        self._timers: dict[Any, float] = {}
        """Each key's pending ready time (its delayed add)."""
        self._delayed: list[tuple[float, int, Any]] = []
        """The pending delayed adds in ready-time order; forgotten or superseded ones linger
        until popped or until :meth:`_compact` drops them."""
        self._dead = 0
        """Entries of ``_delayed`` that are no key's pending add (``len(_delayed) - len(_timers)``)."""
        self._compact_at = _MIN_COMPACT
        """``_dead`` above which the heap is rebuilt: at least the live entries of the last
        rebuild, so a rebuild costs O(1) amortised per dead entry."""
        self._order = count()
        self._armed: list[float] = []
        """Times at which a wake-up is scheduled, earliest first."""
        self._start_worker: Callable[[simpy.Event | None], Any] | None = None
        self._unstarted = 0

    def __len__(self) -> int:
        return len(self._queue)

    def start_workers_on_demand(
        self, count: int, start: Callable[[simpy.Event | None], Any]
    ) -> None:
        """Let up to ``count`` more workers start when needed (see the module docstring).

        ``start(ev)`` must launch a worker whose first key is the value of
        ``ev``; ``start(None)`` one that begins with :meth:`get`. Keys already
        queued get their workers now, as they would from workers started up
        front (those take the queued keys when they first run).
        """
        self._start_worker = start
        backlog = min(count, len(self._queue))
        for _ in range(backlog):
            start(None)
        self._unstarted += count - backlog

    def _hand_over(self, key: Any) -> bool:
        """Give ``key`` to an idle worker, or to a new one; ``False`` if every worker is busy.

        The caller takes ``key`` out of the waiting keys if it was one.
        """
        if self._waiters:
            waiter = self._waiters.popleft()
        elif self._unstarted and self._start_worker is not None:
            self._unstarted -= 1
            waiter = self.env.event()
            self._start_worker(waiter)
        else:
            return False
        self._processing.add(key)
        waiter.succeed(key)
        return True

    def add(self, key: Any) -> None:
        """Queue ``key`` unless it is already waiting."""
        if key in self._dirty:
            return
        if key in self._processing:
            self._dirty.add(key)  # handed over again when its worker is done
            return
        # Handed over at once if a worker is idle, without ever waiting.
        if not self._hand_over(key):
            self._dirty.add(key)
            self._queue.append(key)

    def add_after(self, key: Any, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds of virtual time.

        As client-go's delaying queue: one pending ready time per key, and a
        key already waiting keeps the earlier of its two ready times, so
        several reconciles asking for the same requeue cause one reconcile.
        Also as client-go, the waiting adds are a heap with one timer for the
        earliest, not a timer each: a pool's sandboxes each wait for their
        shutdown time, and a timer per requeue would keep every deleted
        sandbox's timer in the simulation's event queue until it fired.
        """
        if delay <= 0:
            self.add(key)
            return
        at = self.env.now + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending <= at:
                return
            self._dead += 1  # the key's later entry is superseded
        self._timers[key] = at
        heapq.heappush(self._delayed, (at, next(self._order), key))
        if self._dead > self._compact_at:
            self._compact()
        self._arm(at)

    def _arm(self, at: float) -> None:
        """Make sure a wake-up happens at ``at`` or earlier."""
        armed = self._armed
        if armed and armed[0] <= at:
            return
        heapq.heappush(armed, at)
        # The wake-up carries ``at``: from a later ``now``, ``now + (at - now)``
        # may round to just below ``at``, and what is due is judged by ``at``.
        wake = self.env.timeout(max(0.0, at - self.env.now), value=at)
        wake.callbacks.append(self._wake)

    def _wake(self, ev: simpy.Event) -> None:
        due = max(self.env.now, cast(float, ev.value))
        armed = self._armed
        while armed and armed[0] <= due:
            heapq.heappop(armed)
        delayed = self._delayed
        timers = self._timers
        while delayed and delayed[0][0] <= due:
            at, _, key = heapq.heappop(delayed)
            if timers.get(key) == at:  # else superseded by an earlier time, or forgotten
                del timers[key]
                self.add(key)
            else:
                self._dead -= 1
        if delayed:
            self._arm(delayed[0][0])

    def forget(self, key: Any) -> None:
        """Drop the pending delayed add of ``key``, if any."""
        if self._timers.pop(key, None) is not None:
            self._dead += 1
        if not self._timers:
            self._delayed.clear()  # nothing pending: the lingering entries all go
            self._dead = 0
        elif self._dead > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heap from the pending adds alone.

        Deleted sandboxes' adds would otherwise stay until their ready time (a paused one's
        is 100 years away). Pop order is unchanged: the kept entries keep their (time,
        order) keys, a total order.
        """
        timers = self._timers
        # Membership and subscript rather than .get: no call per entry on this hot path.
        kept = [e for e in self._delayed if e[2] in timers and timers[e[2]] == e[0]]
        heapq.heapify(kept)
        self._delayed = kept
        # A key forgotten and added again for the same time has two matching entries; the
        # later one is dead, as _wake will find.
        self._dead = len(kept) - len(timers)
        self._compact_at = max(_MIN_COMPACT, len(timers))

    def get(self) -> simpy.Event:
        """An event that fires with the next key; the caller must call :meth:`done`."""
        ev = self.env.event()
        if self._queue:
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            ev.succeed(key)
        else:
            self._waiters.append(ev)
        return ev

    def done(self, key: Any) -> None:
        """Mark ``key`` processed; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            if self._hand_over(key):
                self._dirty.discard(key)
            else:
                self._queue.append(key)
