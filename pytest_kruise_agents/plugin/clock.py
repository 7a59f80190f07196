"""``kruise_clock``: the test cluster's time, read and moved from the test.

In virtual mode (the default) time moves only when asked: :meth:`KruiseClock.advance`
fires every timer due meanwhile (sandbox timeouts, auto-pause, TTLs), and
:meth:`KruiseClock.run_until` runs the model until a condition holds. In
realtime mode time follows the wall clock; ``advance`` is refused and
``run_until`` waits on the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends.sim import SimBackend
from simulator.cluster import check_predicate, check_seconds

__all__ = ["KruiseClock"]

POLL_S: Final = 0.005
"""How often ``run_until`` re-checks its condition in realtime mode (wall seconds)."""


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
        """
        # Checked here: in virtual mode the cluster sees only the wrapper below.
        check_predicate(predicate)
        check_seconds("timeout", timeout)
        if timeout == 0:
            return predicate()
        backend = self._backend
        if backend.clock_mode == "virtual":

            def released() -> bool:
                with backend.unlocked():
                    return predicate()

            # The cluster's own loop (its end of the clock, its collector), under
            # the model's lock but for the predicate.
            with backend.locked() as cluster:
                return cluster.run_until(released, timeout=timeout)
        deadline_wall = time.monotonic() + timeout / backend.speed
        while not predicate():
            if time.monotonic() >= deadline_wall:
                return False
            time.sleep(POLL_S)
        return True
