"""What the three controllers share: workers over a work queue, stalls, error back-off.

A controller subclasses :class:`Reconciler`, implements ``_reconcile(key)``
(a SimPy sub-process returning the delay before the key should be seen again,
or ``None``), and calls :meth:`Reconciler.start_workers`.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable
from typing import Any, ClassVar, Generic, TypeVar

import simpy

from simulator.apiserver import ApiError
from simulator.context import SimContext
from simulator.faults import StallGate
from simulator.workqueue import WorkQueue

__all__ = ["BACKOFF_BASE_S", "BACKOFF_MAX_S", "Reconciler"]

BACKOFF_BASE_S = 0.005
"""client-go's per-item exponential back-off starts at 5 ms and doubles."""
BACKOFF_MAX_S = 30.0
"""Cap of the per-item back-off (client-go caps at 1000 s; shorter keeps runs lively)."""

K = TypeVar("K", bound=Hashable)
Op = Generator[simpy.Event, Any, Any]


class Reconciler(Generic[K]):
    """Workers that take keys from a :class:`WorkQueue` and reconcile them one at a time each."""

    stall_name: ClassVar[str]
    """The name a ``controller_stall`` fault selects (``selector: {controller: <name>}``)."""

    reset_backoff_on_success: ClassVar[bool] = True
    """Whether a reconcile that returns normally forgets the key's back-off (``Forget``)."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.queue = WorkQueue(ctx.env, self.stall_name)
        self._failures: dict[K, int] = {}
        self._stall_gate = StallGate(ctx.faults, ctx.env)

    def start_workers(self, count: int) -> None:
        """Run up to ``count`` workers, each started when a key first finds no idle one.

        Upstream starts them all at once; started on demand they behave the
        same (see :mod:`simulator.workqueue`) and a fresh cluster does not pay
        for 1,000 idle processes.
        """
        env = self.ctx.env
        self.queue.start_workers_on_demand(count, lambda first: env.process(self._worker(first)))

    def _reconcile(self, key: K) -> Op:
        """Bring ``key`` towards its desired state; return a requeue delay or ``None``."""
        raise NotImplementedError

    def _worker(self, first: simpy.Event | None = None) -> Op:
        ctx = self.ctx
        env = ctx.env
        while True:
            if first is not None:
                key = yield first
                first = None
            else:
                key = yield self.queue.get()
            if ctx.faults.injected:  # (a stall is a fault: without faults, no sub-process to run)
                yield from self._honour_stall()
            delay: float | None
            try:
                cpu = ctx.draw["controller.reconcile"]()
                if cpu > 0:
                    yield env.timeout(cpu)
                delay = yield from self._reconcile(key)
                if self.reset_backoff_on_success and self._failures:
                    self._failures.pop(key, None)
            except ApiError as err:
                delay = self._error_delay(key, err)
                ctx.record(
                    f"{self.stall_name}.reconcile_error", f"{_fmt(key)} {err.code} {err.reason}"
                )
            # The requeue first, then Done, as controller-runtime's reconcileHandler and
            # the Done it defers: an immediate requeue of a key a watch event added during
            # the reconcile is one more reconcile, not two (Done hands the key on once).
            if delay is not None:
                self.queue.add_after(key, delay)
            self.queue.done(key)

    def _honour_stall(self) -> Op:
        # Until the stall's window closes or it is cleared, whichever is first.
        yield from self._stall_gate.wait(self.stall_name)

    def _error_delay(self, key: K, err: ApiError) -> float | None:
        """Every error backs the key off, a 409 too.

        controller-runtime puts an error return (and ``Requeue: true``) through
        the queue's per-item rate limiter (``AddRateLimited``), whatever the
        error: only ``RequeueAfter`` bypasses it. A conflict retried at once
        would rewrite for as long as the conflicts last.
        """
        return self._backoff(key)

    def _backoff(self, key: K) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # The exponent stops growing long after the cap is reached: 2**1024 is no float,
        # and a key failing every 30 s reaches 1,024 failures in 8.5 hours.
        return float(min(BACKOFF_BASE_S * (2 ** min(n, 62)), BACKOFF_MAX_S))


def _fmt(key: Any) -> str:
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[0]}/{key[1]}"
    return str(key)
