"""The request being served: which sandbox workspace, which user, and client disconnects.

The Connect handlers are shared singletons that only see the RPC message and
a ``RequestContext``; the envd app sets a :class:`RequestState` in a
contextvar around each call so they know their sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = ["KEEPALIVE_HEADER", "RequestState", "bound", "current", "keepalive_interval"]

KEEPALIVE_HEADER = "keepalive-ping-interval"
"""Sent by the SDK on streams: seconds between the keepalive events it expects."""


class RequestState:
    """What one envd request runs against: its workspace, its user, its connection."""

    __slots__ = ("_callbacks", "disconnected", "user", "workspace")

    def __init__(self, workspace: SandboxWorkspace, user: str = "user") -> None:
        self.workspace = workspace
        self.user = user
        self.disconnected = False
        self._callbacks: list[Callable[[], None]] = []

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once when the client goes away; returns an unregister function."""
        if self.disconnected:
            callback()
            return lambda: None
        self._callbacks.append(callback)

        def unregister() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unregister

    def mark_disconnected(self) -> None:
        """The ASGI server reported ``http.disconnect``: wake every listener."""
        if self.disconnected:
            return
        self.disconnected = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


_current: ContextVar[RequestState] = ContextVar("kruise_envd_request")


def current() -> RequestState:
    """The state of the request being served (set by the envd app)."""
    state = _current.get(None)
    if state is None:
        # Only reachable if a handler is called outside make_envd_app's wrapper.
        raise ConnectError(Code.INTERNAL, "no sandbox workspace bound to this request")
    return state


@contextmanager
def bound(state: RequestState) -> Iterator[RequestState]:
    """Bind ``state`` to the running request for the duration of the block."""
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


def keepalive_interval(ctx: RequestContext[Any, Any]) -> float | None:
    """Seconds between keepalive events a stream owes the client (``None``: none asked)."""
    raw = ctx.request_headers.get(KEEPALIVE_HEADER)
    try:
        seconds = float(raw) if raw else 0.0
    except ValueError:
        return None
    return max(seconds, 0.1) if seconds > 0 else None
