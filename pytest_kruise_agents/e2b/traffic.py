"""Sandbox traffic on the API's own port: route a request to the envd or interpreter of its sandbox.

A request names its sandbox by headers (``E2b-Sandbox-Id`` and
``E2b-Sandbox-Port``, what ``E2B_SANDBOX_URL`` makes the SDK send) or by
host (``Host: <port>-<sandboxID>.<domain>``, reference §6.8); headers win,
except on a request carrying ``X-API-Key`` (an API call, see
:func:`sandbox_target`). A request with neither goes to the control plane,
but for a signed envd URL (``/files?...&signature=``, as the SDK builds it on
``E2B_SANDBOX_URL``), which answers 400 saying how to name the sandbox.

The router asks the backend for the sandbox's route (in a worker thread: it
takes the backend's lock). Unless the sandbox is ``running`` the answer is
the 502 the SDK reads as "sandbox not found" (``is_running()`` → ``False``),
even with a bad port header (400 for a running sandbox). Port 49983 is envd, 49999 the code interpreter; any other port answers 502
"port is not open". The sub-app gets a copy of the scope whose ``state``
holds the sandbox's workspace under :data:`WORKSPACE_KEY`.

The lookup may answer on a worker thread, after a stop of the sandbox that
the backend ordered later. The app tells the router of each stop
(:meth:`SandboxTrafficRouter.stopped`, on the loop, before the stop's cleanup
starts): a request whose lookup was in flight then answers the 502 of a
sandbox not running, as one sent after the stop, and takes no workspace
(which would be a fresh one for a killed sandbox, the next life of a paused
one). A stop after the request took its workspace stops that workspace.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from pytest_kruise_agents.backends.base import Route
from pytest_kruise_agents.e2b.errors import error_body, send_json
from pytest_kruise_agents.e2b.state import ServerState

__all__ = [
    "ENVD_PORT",
    "HOST_PATTERN",
    "JUPYTER_PORT",
    "NOT_FOUND_MESSAGE",
    "PORT_CLOSED_MESSAGE",
    "UNNAMED_SIGNED_URL_MESSAGE",
    "WORKSPACE_KEY",
    "LazyApp",
    "SandboxTrafficRouter",
    "WorkspacesLike",
    "parse_port",
    "sandbox_target",
]

ENVD_PORT: Final = 49983
JUPYTER_PORT: Final = 49999
WORKSPACE_KEY: Final = "kruise_workspace"
"""Key of the sandbox's workspace in the sub-app's ``scope["state"]``."""

NOT_FOUND_MESSAGE: Final = "The sandbox was not found"
PORT_CLOSED_MESSAGE: Final = "The sandbox is running but port is not open"

UNNAMED_SIGNED_URL_MESSAGE: Final = (
    "a signed /files URL must name its sandbox: send the headers E2b-Sandbox-Id and "
    f"E2b-Sandbox-Port: {ENVD_PORT}, or use the host {ENVD_PORT}-<sandboxID>.<domain> "
    "(the SDK builds these URLs on E2B_SANDBOX_URL, which names no sandbox)"
)
"""The 400 for a ``/files`` request carrying a ``signature`` and naming no sandbox."""

HOST_PATTERN: Final = re.compile(r"^([0-9]+)-([a-zA-Z0-9\-]+)\.")
"""``<port>-<sandboxID>.`` at the start of the host, as the sandbox-manager's proxy matches it."""

_ID_HEADER: Final = b"e2b-sandbox-id"
_PORT_HEADER: Final = b"e2b-sandbox-port"
_API_KEY_HEADER: Final = b"x-api-key"


class WorkspacesLike(Protocol):
    """What the router needs of :class:`pytest_kruise_agents.e2b.workspace.Workspaces`."""

    def get(self, route: Route) -> Any:
        """The sandbox's workspace, created on first use."""
        ...

    def stop(self, sandbox_id: str) -> Awaitable[None]:
        """Pause: stop processes, keep files."""
        ...

    def remove(self, sandbox_id: str) -> Awaitable[None]:
        """Gone: stop, then delete the files."""
        ...

    def close(self) -> Awaitable[None]:
        """Stop everything."""
        ...


def parse_port(text: str) -> int | None:
    """The sandbox port ``text`` names (ASCII digits, 1-65535), else ``None``.

    Not ``str.isdigit`` alone: it accepts superscripts and other Unicode
    digits (a header byte ``0xb2`` is ``²``) that ``int`` refuses. Leading
    zeros name the same port (``049983`` is 49983, as Go's ``strconv.Atoi``
    reads it under upstream's proxy); only the significant digits are
    bounded, so no ``int`` of thousands of digits is ever made.
    """
    if not (text and text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0")
    if len(significant) > 5:
        return None
    port = int(significant or "0")
    return port if 0 < port < 65536 else None


def sandbox_target(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """``(sandbox_id, port)`` a request is for, from its headers or its host; ``None`` if neither.

    ``port`` is the raw text (checked by the caller); a sandbox id header
    without a port header gives ``""``. A header given twice counts with its
    first value. A request carrying ``X-API-Key`` is
    an API call whatever its sandbox headers say: SDKs up to ~2.50 send
    ``E2b-Sandbox-Id`` on ``POST /sandboxes/{id}/connect`` too, and sandbox
    traffic never carries the API key.
    """
    sid: bytes | None = None
    port: bytes | None = None
    host: bytes | None = None
    api_call = False
    for name, value in headers:
        # A repeated header counts with its first value, as Go's Header.Get reads it
        # in upstream's proxy (and as X-API-Key is read).
        lname = name.lower()
        if lname == _ID_HEADER:
            sid = value if sid is None else sid
        elif lname == _PORT_HEADER:
            port = value if port is None else port
        elif lname == b"host":
            host = value if host is None else host
        elif lname == _API_KEY_HEADER:
            api_call = True
    if sid is not None and sid.strip() and not api_call:
        return sid.decode("latin-1").strip(), (port or b"").decode("latin-1").strip()
    if host:
        m = HOST_PATTERN.match(host.decode("latin-1"))
        if m:
            return m.group(2), m.group(1)
    return None


def _is_signed_files_url(scope: Scope) -> bool:
    """Whether the request is envd's ``/files`` with a ``signature`` query parameter."""
    if scope["path"] != "/files":
        return False
    query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return "signature" in query


class LazyApp:
    """An ASGI app built on its first request (the interpreter's imports are heavy)."""

    def __init__(self, factory: Callable[[], ASGIApp]) -> None:
        self._factory = factory
        self._app: ASGIApp | None = None

    @property
    def built(self) -> ASGIApp | None:
        """The app if it was built, else ``None`` (never builds it)."""
        return self._app

    @property
    def app(self) -> ASGIApp:
        """The app, built now if it was not yet."""
        if self._app is None:
            self._app = self._factory()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _Lookup:
    """A route lookup in flight; ``stale`` once its sandbox stopped meanwhile."""

    __slots__ = ("stale",)

    def __init__(self) -> None:
        self.stale = False


class SandboxTrafficRouter:
    """The ASGI app in front of everything: sandbox traffic to sub-apps, the rest to ``control``.

    ``apps`` maps a sandbox port to the ASGI app serving it (envd, interpreter);
    ``workspaces`` provides each sandbox's workspace; ``settle(sandbox_id)``,
    if given, is awaited before a running sandbox's request is passed on (the
    app waits there for a pause's cleanup of the workspace to end). The app
    calls :meth:`stopped` when a sandbox stops.
    """

    def __init__(
        self,
        control: ASGIApp,
        state: ServerState,
        workspaces: WorkspacesLike,
        apps: Mapping[int, ASGIApp],
        *,
        settle: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.control = control
        self.state = state
        self.workspaces = workspaces
        self.apps = dict(apps)
        self.settle = settle
        self._lookups: dict[str, list[_Lookup]] = {}
        """The lookups in flight of each sandbox (on the loop only)."""

    def stopped(self, sandbox_id: str) -> None:
        """``sandbox_id`` stopped (paused, killed, expired): its lookups in flight answered too early.

        Called on the loop, in the order the backend made the stops, before
        the stop's workspace cleanup starts. Each request whose route lookup is
        in flight then answers as one sent after the stop: the lookup may have
        seen the sandbox running before the stop, and taking the workspace once
        the cleanup ran would make a killed sandbox's again (or hand out a
        paused one's next life) with nothing left to stop it.
        """
        for lookup in self._lookups.get(sandbox_id, ()):
            lookup.stale = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.control(scope, receive, send)
            return
        target = sandbox_target(scope["headers"])
        if target is None:
            if scope["type"] == "http" and _is_signed_files_url(scope):
                await send_json(send, 400, error_body(400, UNNAMED_SIGNED_URL_MESSAGE))
                return
            await self.control(scope, receive, send)
            return
        sid, port_text = target
        lookup = _Lookup()
        self._lookups.setdefault(sid, []).append(lookup)
        try:
            workspace = await self._workspace_of(scope, send, sid, port_text, lookup)
        finally:
            lookups = self._lookups[sid]
            lookups.remove(lookup)
            if not lookups:
                del self._lookups[sid]
        if workspace is None:
            return  # refused
        app, ws = workspace
        child = dict(scope)
        child["state"] = {WORKSPACE_KEY: ws}
        await app(child, receive, send)

    async def _workspace_of(
        self, scope: Scope, send: Send, sid: str, port_text: str, lookup: _Lookup
    ) -> tuple[ASGIApp, Any] | None:
        """The app and workspace for a request to ``sid``; ``None`` once it is refused."""
        # The route first, as the proxy looks it up (reference §6.8): a sandbox
        # that is not running answers its 502 whatever the port header holds.
        route = await self.state.run("traffic", self.state.backend.route, sid)
        if route is None or route.state != "running":
            await self._refuse(scope, send, 502, NOT_FOUND_MESSAGE, sid)
            return None
        port = parse_port(port_text)
        if port is None:
            await self._refuse(
                scope,
                send,
                400,
                f"invalid sandbox port {port_text!r}: set the E2b-Sandbox-Port header",
                sid,
            )
            return None
        app = self.apps.get(port)
        if app is None:
            await self._refuse(scope, send, 502, PORT_CLOSED_MESSAGE, sid, port=port)
            return None
        if self.settle is not None:
            await self.settle(sid)
        if lookup.stale:
            # Stopped since the lookup, its cleanup maybe over: answered as after the stop.
            await self._refuse(scope, send, 502, NOT_FOUND_MESSAGE, sid)
            return None
        # No await since the check: a stop from here on stops this very workspace.
        return app, self.workspaces.get(route)

    async def _refuse(
        self, scope: Scope, send: Send, status: int, message: str, sid: str, **extra: Any
    ) -> None:
        if scope["type"] == "websocket":
            # Before accept, closing the handshake answers 403; nothing better exists.
            await send({"type": "websocket.close", "code": 1011, "reason": message[:120]})
            return
        if status == 502:
            # The infra proxy's body, which the SDK keys on ("was not found", "port is not open").
            body: dict[str, Any] = {"sandboxId": sid, "message": message, "code": 502, **extra}
        else:
            body = error_body(status, message, sandboxId=sid)
        await send_json(send, status, body)
