"""What the routes of one app share: the backend, the settings, and worker threads for blocking calls.

Backend methods are synchronous and may block for a long time (a create in
virtual mode runs the simulation; in realtime mode it waits for the wall
clock), so a call that cannot be answered at once runs in a worker thread and
the event loop stays responsive. Control-plane calls and sandbox route
lookups are first offered to :meth:`~pytest_kruise_agents.backends.base.Backend.attempt`,
which answers quick ones on the loop without blocking it (a warm create in
virtual mode, a route lookup): the thread hop costs more than they do. Each
purpose has its own thread budget, so a burst of slow creates cannot starve
sandbox traffic or the admin API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

from pytest_kruise_agents.backends.base import Backend, Pending
from pytest_kruise_agents.e2b.settings import Settings

__all__ = ["ATTEMPTED", "THREAD_BUDGETS", "Purpose", "ServerState", "state_of"]

T = TypeVar("T")

Purpose = Literal["control", "admin", "traffic"]

THREAD_BUDGETS: Final[dict[Purpose, int]] = {"control": 128, "admin": 8, "traffic": 32}
"""Worker threads per purpose: control-plane calls, admin calls, sandbox route lookups."""

ATTEMPTED: Final[frozenset[Purpose]] = frozenset({"control", "traffic"})
"""Purposes whose calls are offered to ``Backend.attempt`` first.

Admin calls always take a thread: applying manifests or advancing the clock
may run the model for long, and they are not on any hot path.
"""


@dataclass
class ServerState:
    """The backend and settings of one app, and its per-purpose thread limiters."""

    backend: Backend
    settings: Settings
    _limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)

    def reset_limiters(self) -> None:
        """Forget the limiters (they belong to one event loop; a new loop makes new ones)."""
        self._limiters.clear()

    async def run(self, purpose: Purpose, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, a backend call: answered at once, or in a worker thread of ``purpose``."""
        call: Callable[[], T] = partial(fn, *args, **kwargs)
        if purpose in ATTEMPTED:
            outcome = self.backend.attempt(call)
            if not isinstance(outcome, Pending):
                return outcome
            call = outcome.finish
        limiter = self._limiters.get(purpose)
        if limiter is None:
            limiter = self._limiters[purpose] = anyio.CapacityLimiter(THREAD_BUDGETS[purpose])
        return await anyio.to_thread.run_sync(call, limiter=limiter)


def state_of(request: Request) -> ServerState:
    """The shared state of the app serving ``request``."""
    state: ServerState = request.app.state.kruise
    return state
