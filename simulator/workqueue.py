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

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

__all__ = ["WorkQueue"]


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
        """Give ``key`` to an idle worker, or to a new one; ``False`` if every worker is busy."""
        if self._waiters:
            waiter = self._waiters.popleft()
        elif self._unstarted and self._start_worker is not None:
            self._unstarted -= 1
            waiter = self.env.event()
            self._start_worker(waiter)
        else:
            return False
        self._dirty.discard(key)
        self._processing.add(key)
        waiter.succeed(key)
        return True

    def add(self, key: Any) -> None:
        """Queue ``key`` unless it is already waiting."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        if not self._hand_over(key):
            self._queue.append(key)

    def add_after(self, key: Any, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds of virtual time.

        As client-go's delaying queue: one pending timer per key, and a key
        already waiting keeps the earlier of its two ready times, so several
        reconciles asking for the same requeue cause one reconcile.
        """
        if delay <= 0:
            self.add(key)
            return
        env = self.env
        at = env.now + delay
        pending = self._timers.get(key)
        if pending is not None and pending <= at:
            return
        self._timers[key] = at
        timer = env.timeout(delay)
        timer.callbacks.append(lambda _ev: self._fire(key, at))

    def _fire(self, key: Any, at: float) -> None:
        if self._timers.get(key) != at:
            return  # superseded by an earlier timer
        del self._timers[key]
        self.add(key)

    def forget(self, key: Any) -> None:
        """Drop the pending delayed add of ``key``, if any."""
        self._timers.pop(key, None)

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
        if key in self._dirty and not self._hand_over(key):
            self._queue.append(key)
