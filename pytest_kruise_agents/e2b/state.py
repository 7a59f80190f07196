"""What the routes of one app share: the backend, the settings, and worker threads for blocking calls.

Backend methods are synchronous and may block for a long time (a create in
virtual mode runs the simulation; in realtime mode it waits for the wall
clock), so a call that cannot be answered at once runs in a worker thread and
the event loop stays responsive. Control-plane calls and sandbox route
lookups are first offered to :meth:`~pytest_kruise_agents.backends.base.Backend.attempt`,
which answers quick ones on the loop without blocking it (a warm create in
virtual mode, a route lookup): the thread hop costs more than they do. Each
purpose has its own thread budget, so a burst of slow creates cannot starve
sandbox traffic or the admin API. A call that only waits for a realtime clock
(``Pending.when_ready``) takes no thread at all: the loop awaits its answer,
so creates waiting for cold sandboxes never hold the threads other clients'
timeout changes, kills and lookups need (upstream limits creates only by its
claim workers, create limiter and quotas, reference §7). A create whose
client goes away before it is answered is cancelled, as the sandbox-manager's
claim stops when its request's context is cancelled (:meth:`ServerState.run_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request
from starlette.types import Receive

from pytest_kruise_agents.backends.base import Backend, Pending
from pytest_kruise_agents.e2b.network import SandboxNetworks
from pytest_kruise_agents.e2b.peer import client_gone
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
    """The backend and settings of one app, its per-purpose thread limiters, and what the
    server remembers of claims itself (the ``network`` of each create)."""

    backend: Backend
    settings: Settings
    networks: SandboxNetworks = field(default_factory=SandboxNetworks)
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
            return await self._pending(purpose, outcome)
        return await self._in_thread(purpose, call)

    async def run_for(
        self, request: Request, purpose: Purpose, fn: Callable[..., T], *args: Any
    ) -> T:
        """:meth:`run` for ``request``'s client: the call is cancelled if the client goes away.

        While a call handed back as :class:`Pending` runs in a worker thread,
        the loop watches the connection; when the client disconnects (its
        request timeout, a closed connection) before the answer,
        ``Pending.cancel`` stops the call, as the sandbox-manager's handler
        stops when its request's context is cancelled. A client already gone
        when the call is reached (its request waited behind others on a busy
        loop; asked of its socket, :mod:`~pytest_kruise_agents.e2b.peer`, as
        the loop reads the connection's end only once it is free) has the
        call attempted cancelled from its start
        (``Backend.attempt(cancelled=True)``): a create fails ``context
        canceled`` with its record, as upstream's would, rather than claim a
        sandbox nobody will ever hear of. Calls of a purpose that is never
        attempted run as with :meth:`run`.
        """
        if purpose not in ATTEMPTED:
            return await self.run(purpose, fn, *args)
        call: Callable[[], T] = partial(fn, *args)
        gone = client_gone(request.scope)
        if gone is None:  # the server cannot tell at once: its receive channel says
            # Asked before the watcher starts: the two must not wait on ``receive`` at once.
            gone = await request.is_disconnected()
        outcome = self.backend.attempt(call, cancelled=gone)
        if not isinstance(outcome, Pending):
            return outcome
        if outcome.cancel is None:
            return await self._pending(purpose, outcome)
        if not gone and client_gone(request.scope):
            # It left while the attempt ran: stopped before a worker thread finishes it.
            outcome.cancel()
        watcher = asyncio.ensure_future(_cancel_on_disconnect(request.receive, outcome.cancel))
        try:
            return await self._pending(purpose, outcome)
        finally:
            watcher.cancel()

    async def _pending(self, purpose: Purpose, pending: Pending[T]) -> T:
        """The answer of ``pending``: awaited if the backend says when it is ready, else in a thread."""
        if pending.when_ready is None:
            return await self._in_thread(purpose, pending.finish)
        await _ready(pending.when_ready)
        return pending.finish()  # ready: it no longer waits

    async def _in_thread(self, purpose: Purpose, call: Callable[[], T]) -> T:
        limiter = self._limiters.get(purpose)
        if limiter is None:
            limiter = self._limiters[purpose] = anyio.CapacityLimiter(THREAD_BUDGETS[purpose])
        return await anyio.to_thread.run_sync(call, limiter=limiter)


async def _ready(when_ready: Callable[[Callable[[], None]], None]) -> None:
    """Until ``when_ready`` calls back (from any thread): a wait that holds no thread."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        # Called from the backend's clock thread: it must neither block nor raise.
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(_resolve, ready)

    when_ready(wake)
    await ready


def _resolve(ready: asyncio.Future[None]) -> None:
    if not ready.done():  # not cancelled meanwhile (the request's task was)
        ready.set_result(None)


async def _cancel_on_disconnect(receive: Receive, cancel: Callable[[], None]) -> None:
    """Call ``cancel()`` once ``receive`` says the client disconnected.

    Called after the request body has been read, so ``receive`` only answers
    when the connection closes (uvicorn then answers ``http.disconnect``).
    """
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel()


def state_of(request: Request) -> ServerState:
    """The shared state of the app serving ``request``."""
    state: ServerState = request.app.state.kruise
    return state
