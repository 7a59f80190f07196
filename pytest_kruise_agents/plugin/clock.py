"""``kruise_clock``: the test cluster's time, read and moved from the test.

In virtual mode (the default) time moves only when asked: :meth:`KruiseClock.advance`
fires every timer due meanwhile (sandbox timeouts, auto-pause, TTLs), and
:meth:`KruiseClock.run_until` runs the model until a condition holds. In
realtime mode time follows the wall clock; ``advance`` is refused and
``run_until`` waits while the clock's driver runs the model, until ``timeout``
virtual seconds have passed on the model's clock (which falls behind the wall
clock when the model has more to run than the wall clock allows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends.sim import SimBackend, past_clock_end
from simulator.cluster import check_predicate, check_seconds

__all__ = ["POLL_S", "STALL_S", "KruiseClock", "Waited"]

POLL_S: Final = 0.005
"""How often ``run_until`` re-checks its condition in realtime mode (wall seconds)."""
STALL_S: Final = 30.0
"""Realtime mode: the wall seconds ``run_until`` lets the model's clock stand still before
it gives up (a clock driver that died would leave it waiting for ever)."""


@dataclass(frozen=True, slots=True)
class Waited:
    """How a :meth:`KruiseClock.wait` ended."""

    held: bool
    """Whether the predicate held."""
    seconds: float
    """Virtual seconds the model ran meanwhile."""
    stalled_s: float | None = None
    """Realtime mode: the wall seconds the model's clock stood still, when that ended the
    wait before ``timeout`` virtual seconds had passed (``None`` otherwise)."""

    def stall(self) -> str | None:
        """Why the wait stopped before its timeout, if the model's clock stood still."""
        if self.stalled_s is None:
            return None
        return f"the model's clock stood still for {self.stalled_s:.1f} wall seconds"

    def after(self) -> str:
        """The wait's duration as an error message ends with it: ``after 60s``, and why it
        stopped early if the model's clock stood still."""
        stall = self.stall()
        return f"after {self.seconds:g}s" + (f" ({stall})" if stall else "")


class KruiseClock:
    """The clock of one test's cluster (see the module docstring)."""

    def __init__(self, backend: SimBackend) -> None:
        self._backend = backend

    @property
    def mode(self) -> str:
        """``virtual`` or ``realtime``."""
        return self._backend.clock_mode

    def now(self) -> float:
        """Seconds since the cluster started (virtual seconds)."""
        with self._backend.locked() as cluster:
            return cluster.now

    def now_dt(self) -> datetime:
        """The cluster's current time as a UTC datetime."""
        return self._backend.now()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``; timers due meanwhile fire."""
        if self._backend.clock_mode != "virtual":
            raise InvalidError(
                "seconds", "time follows the wall clock in realtime mode: it cannot be advanced"
            )
        check_seconds("seconds", seconds)
        self._backend.advance(seconds)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float = 3600.0) -> bool:
        """Run until ``predicate()`` holds or ``timeout`` (virtual) seconds pass; return whether it held.

        The predicate runs outside the model's lock, after every event: it may
        read the cluster, call the backend, or ask the E2B server over HTTP
        (``lambda: not sbx.is_running()``). ``timeout=0`` runs nothing, not even
        what is due now: it only checks ``predicate()`` (``advance(0)`` runs what is due).
        In realtime mode the timeout is counted on the model's clock too, not the
        wall clock's; it also ends (``False``) if that clock stands still for
        :data:`STALL_S` wall seconds.
        """
        return self.wait(predicate, timeout=timeout).held

    def wait(self, predicate: Callable[[], bool], *, timeout: float = 3600.0) -> Waited:
        """:meth:`run_until`, telling how long it waited: what a wait's error message says."""
        # Checked here: in virtual mode the cluster sees only the wrapper below.
        check_predicate(predicate)
        check_seconds("timeout", timeout)
        if timeout == 0:
            return Waited(predicate(), 0.0)
        backend = self._backend
        if backend.clock_mode == "virtual":

            def released() -> bool:
                with backend.unlocked():
                    return predicate()

            # The cluster's own loop (its end of the clock, its collector), under
            # the model's lock but for the predicate.
            with backend.locked() as cluster:
                start = cluster.now
                held = cluster.run_until(released, timeout=timeout)
                return Waited(held, cluster.now - start)
        return self._wait_realtime(predicate, float(timeout))

    def _wait_realtime(self, predicate: Callable[[], bool], timeout: float) -> Waited:
        """Poll ``predicate`` until it holds or ``timeout`` virtual seconds pass on the
        model's clock, which the driver moves meanwhile."""
        backend = self._backend
        with backend.locked() as cluster:
            start = cluster.now
            end = cluster.ctx.clock_end()
        deadline = start + timeout
        # Virtual, not wall, time: a model behind the wall clock (a burst, a busy machine)
        # has run less than timeout / speed wall seconds would say, and a pool it has not
        # had the time to fill is no timeout.
        last, moved = start, time.monotonic()
        while not predicate():
            with backend.locked() as cluster:
                now = cluster.now
            if now >= deadline:
                return Waited(predicate(), now - start)
            if now >= end:
                raise past_clock_end("timeout")  # the clock stops there, as the cluster's does
            wall = time.monotonic()
            if now > last:
                last, moved = now, wall
            elif wall - moved >= STALL_S:
                return Waited(False, now - start, stalled_s=wall - moved)
            time.sleep(POLL_S)
        with backend.locked() as cluster:
            return Waited(True, cluster.now - start)
