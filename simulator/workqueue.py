"""A controller work queue with client-go semantics, on SimPy.

Keys are de-duplicated while waiting, and a key is never handed to two
workers at once: a key added while it is being processed is queued again when
the worker calls :meth:`WorkQueue.done`.
"""

from __future__ import annotations

from collections import deque
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

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Any) -> None:
        """Queue ``key`` unless it is already waiting."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        if self._waiters:
            self._dirty.discard(key)
            self._processing.add(key)
            self._waiters.popleft().succeed(key)
        else:
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
        if key in self._dirty:
            if self._waiters:
                self._dirty.discard(key)
                self._processing.add(key)
                self._waiters.popleft().succeed(key)
            else:
                self._queue.append(key)
