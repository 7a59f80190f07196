"""``kruise_e2b``'s machinery: one uvicorn per session, a fresh E2B app per test, leak reaping.

Starting uvicorn costs tens of milliseconds, a new E2B app under one (it is
built from the test's backend and settings), so the session (each xdist
worker) runs one :class:`SessionServer` on a free loopback port and each test
mounts its own app on it. Unmounting awaits the app's ``aclose()`` on the
server's event loop: every workspace cleanup has finished, and every
sandbox process has been stopped, before the next test's app can see a
sandbox id again (the same seed gives the next test's sandboxes the same ids).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pytest_kruise_agents.api.keys import ANN_LOCK, ANN_OWNER, LABEL_CLAIM_NAME
from pytest_kruise_agents.api.manifest import listing_order
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.backends.base import Caller
from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.claiming.errors import ClaimError, NotFoundError
from pytest_kruise_agents.claiming.recycle import recycle_pending
from pytest_kruise_agents.delivery.sim import is_run_name
from pytest_kruise_agents.e2b.app import E2BApp, create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.loopback import no_proxy_environ
from pytest_kruise_agents.plugin.interrupt import sigterm_as_interrupt

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = [
    "FactoryMade",
    "Holding",
    "KruiseE2B",
    "SessionServer",
    "claimed_sandboxes",
    "holding",
    "kill_sandbox",
    "sigterm_as_interrupt",
]

UNMOUNT_TIMEOUT_S: Final = 60.0
"""Longest wait for an app's cleanup (kernels and processes to stop) at a test's end."""

_IDLE_BODY: Final = json.dumps(
    {"code": 503, "message": "no test is using the kruise_e2b fixture right now"}
).encode()


class _Dispatch:
    """The ASGI app uvicorn serves all session: the current test's E2B app, else 503 JSON."""

    def __init__(self) -> None:
        self.app: E2BApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.app
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": _IDLE_BODY})
        else:
            await send({"type": "websocket.close", "code": 1013})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                app, self.app = self.app, None
                if app is not None:
                    await app.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class SessionServer:
    """uvicorn on ``127.0.0.1:<free port>`` in a thread, serving whichever app is mounted."""

    def __init__(self) -> None:
        self._dispatch = _Dispatch()
        self._thread = ServerThread(self._dispatch).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self._thread.url

    def mount(self, backend: SimBackend, settings: Settings) -> E2BApp:
        """Serve a new E2B app for ``backend`` until :meth:`unmount`."""
        if self._dispatch.app is not None:
            raise RuntimeError("an E2B app is already mounted (kruise_e2b is not reentrant)")
        app = create_app(backend, settings)
        self._dispatch.app = app
        return app

    def unmount(self) -> None:
        """Stop serving the mounted app and wait for its cleanup (workspaces, kernels, processes)."""
        app, self._dispatch.app = self._dispatch.app, None
        loop = self._dispatch.loop
        if app is None or loop is None or loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(app.aclose(), loop).result(timeout=UNMOUNT_TIMEOUT_S)

    def close(self) -> None:
        """Unmount and stop uvicorn."""
        self.unmount()
        self._thread.stop()


@dataclass(frozen=True, slots=True)
class Holding:
    """Who holds a claimed sandbox: one claim of it, not just its id.

    A recycled sandbox keeps its name, so its id, and its uid: its next claim
    is told apart by the lock that claim writes (new at every claim).
    """

    owner: str
    """The owner annotation: the API key's id, or a SandboxClaim's uid."""
    lock: str
    """The claim's lock annotation."""


def holding(backend: SimBackend, sandbox_id: str) -> Holding | None:
    """Who holds ``sandbox_id`` now, or ``None``: gone, unclaimed, or killed to be recycled.

    Read from the manager's newest copy (its own writes at once). From its
    owner's kill on, a sandbox being recycled is nobody's: it was not left
    behind, and it goes back to its pool by itself.
    """
    with backend.locked() as cluster:
        sbx = cluster.manager.lookup(sandbox_id)
        return _holding(sbx) if sbx is not None else None


def _holding(sbx: Sandbox) -> Holding | None:
    ann = sbx.metadata.annotations
    owner = ann.get(ANN_OWNER)
    if not owner or recycle_pending(sbx):
        return None
    return Holding(owner=owner, lock=ann.get(ANN_LOCK, ""))


def claimed_sandboxes(backend: SimBackend) -> dict[str, str]:
    """Every claimed sandbox not yet gone: id → ``running``, ``paused`` or ``creating``.

    Read from the objects and the manager's routes (which see its own writes at
    once), not from watch notifications, which arrive a propagation lag later.
    A sandbox its owner killed to be recycled is gone for this, though E2B
    shows it paused until it rejoins its pool.
    """
    return {sandbox_id: state for sandbox_id, state, _ in _claimed(backend)}


def _claimed(backend: SimBackend) -> list[tuple[str, str, Holding]]:
    """:func:`claimed_sandboxes` with who holds each, in the API server's order."""
    out: list[tuple[str, str, Holding]] = []
    with backend.locked() as cluster:
        # Read in place, not through ``backend.list``: every teardown asks, and
        # a copy of every sandbox costs more than the rest (only ids leave here).
        stored = sorted(cluster.world.api.peek_list("Sandbox"), key=listing_order)
        for obj in stored:
            sandbox_id = f"{obj.metadata.namespace}--{obj.metadata.name}"
            route = backend.route(sandbox_id)
            if route is None or route.state == "dead":
                continue
            held = holding(backend, sandbox_id)
            if held is not None:
                out.append((sandbox_id, route.state, held))
    return out


@dataclass
class FactoryMade:
    """What the plugin's own factories claimed in a test: not the test's leftovers.

    ``sandbox_claim`` and ``delivery_benchmark`` claim sandboxes for the test
    by SandboxClaims and do not kill them (a claim's sandboxes are the state
    it asked for). Nothing orders their teardown before ``kruise_e2b``'s, so
    the leak report leaves out what they made instead of waiting for them.
    """

    sandbox_ids: set[str] = field(default_factory=set)
    """Sandboxes made, by id."""
    claims: set[str] = field(default_factory=set)
    """SandboxClaims applied, by uid: their sandboxes, whenever and wherever claimed."""
    benchmarked: bool = False
    """A delivery benchmark ran on the test's cluster: the sandboxes of its runs, by their
    owner or claim name (so also those of a run interrupted before it could say which)."""

    def ids(self, backend: SimBackend) -> set[str]:
        """Ids of every sandbox the factories made, claimed by now."""
        found = set(self.sandbox_ids)
        if not self.claims and not self.benchmarked:
            return found
        with backend.locked() as cluster:
            # Read in place under the lock (see claimed_sandboxes): only ids leave here.
            # By the owner annotation (the claim's uid), not by the claim-name label in
            # the claim's namespace: under openkruise-v0.3.0 a claim takes sandboxes
            # from pools in other namespaces (bug #824).
            for obj in cluster.world.api.peek_list("Sandbox"):
                owner = obj.metadata.annotations.get(ANN_OWNER, "")
                if owner in self.claims or (self.benchmarked and self._run_made(obj)):
                    found.add(f"{obj.metadata.namespace}--{obj.metadata.name}")
        return found

    @staticmethod
    def _run_made(obj: Any) -> bool:
        """Claimed by a delivery benchmark's run: its owner's, or one of its SandboxClaims'."""
        owner = obj.metadata.annotations.get(ANN_OWNER, "")
        return is_run_name(owner) or is_run_name(obj.metadata.labels.get(LABEL_CLAIM_NAME, ""))


def kill_sandbox(backend: SimBackend, sandbox_id: str, held: Holding | None = None) -> bool:
    """Kill a claimed sandbox as its owner; whether it was still there to kill.

    With ``held``, only while that claim still holds it: recycled and claimed
    again (by another key, or by the same key's next create), the id names
    another holder's sandbox, which is not ours to kill. A sandbox being
    recycled is never killed again: its owner's kill did its work, and a
    second kill would delete it instead of letting it rejoin its pool. A kill
    that fails (a fault in force, say) raises its
    :class:`~pytest_kruise_agents.claiming.errors.ClaimError`.
    """
    now = holding(backend, sandbox_id)
    if now is None or (held is not None and now != held):
        return False
    route = backend.route(sandbox_id)
    if route is None or route.state == "dead":
        return False
    try:
        backend.kill(Caller(route.namespace, now.owner), sandbox_id)
    except NotFoundError:
        return False  # gone between the lookup and the kill
    return True


@dataclass
class KruiseE2B:
    """What ``kruise_e2b`` gives a test: the server, its keys, and the backend behind it.

    The environment (``E2B_API_URL``, ``E2B_SANDBOX_URL``, ``E2B_API_KEY``, and
    ``NO_PROXY``/``no_proxy`` with the loopback hosts) is already set for the
    test, so ``Sandbox.create()`` needs no arguments; :meth:`connection` gives
    the same settings as keyword arguments.
    """

    url: str
    """``http://127.0.0.1:<port>``: both the API and the sandbox traffic URL."""
    api_key: str
    """The key in ``E2B_API_KEY`` (team ``default`` unless the config file says otherwise)."""
    admin_key: str | None
    """A key for the admin API under ``/_kruise/`` (``None`` if the config lists no admin key)."""
    backend: SimBackend
    """The test's backend (its ``cluster`` is the ``kruise_cluster`` fixture's)."""

    @property
    def env(self) -> dict[str, str]:
        """The environment variables the fixture sets: the three ``E2B_*`` ones, and
        ``NO_PROXY`` and ``no_proxy`` as the environment has them with ``127.0.0.1``,
        ``localhost`` and ``::1`` appended (a proxy that ``HTTP_PROXY`` names cannot
        reach this host's loopback; see :mod:`pytest_kruise_agents.loopback`)."""
        return {
            "E2B_API_URL": self.url,
            "E2B_SANDBOX_URL": self.url,
            "E2B_API_KEY": self.api_key,
            **no_proxy_environ(),
        }

    def connection(self) -> dict[str, Any]:
        """``api_key``, ``api_url`` and ``sandbox_url`` for ``Sandbox.create(**...)``."""
        return {"api_key": self.api_key, "api_url": self.url, "sandbox_url": self.url}

    def sandboxes(self) -> dict[str, str]:
        """Claimed sandboxes not yet gone: id → ``running``, ``paused`` or ``creating``.

        Not those killed to be recycled (see :func:`claimed_sandboxes`).
        """
        return claimed_sandboxes(self.backend)

    def reap(self) -> list[tuple[str, str, str | None]]:
        """Kill every claimed sandbox not yet gone; return ``(id, state, error)`` of each one found.

        ``error`` is ``None`` for a sandbox killed, else why its kill failed
        (the others are still tried). One its owner killed to be recycled is
        not found: the kill was the test's own. Faults in force act on these
        kills as on any other: the ``kruise_e2b`` fixture clears them first.
        """
        found: list[tuple[str, str, str | None]] = []
        for sandbox_id, state, held in sorted(_claimed(self.backend), key=lambda c: c[0]):
            try:
                # As found: a sandbox recycled and claimed anew meanwhile is not the one found.
                if kill_sandbox(self.backend, sandbox_id, held):
                    found.append((sandbox_id, state, None))
            except ClaimError as exc:
                found.append((sandbox_id, state, f"kill failed: {exc.code} {exc.message}"))
        return found
