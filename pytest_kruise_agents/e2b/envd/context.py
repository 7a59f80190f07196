"""The request being served: which sandbox workspace, which user, and client disconnects.

The Connect handlers are shared singletons that only see the RPC message and
a ``RequestContext``; the envd app sets a :class:`RequestState` in a
contextvar around each call so they know their sandbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = [
    "KEEPALIVE_HEADER",
    "RequestState",
    "bound",
    "current",
    "keepalive_interval",
    "message_limit",
    "until_deadline",
]

T = TypeVar("T")

KEEPALIVE_HEADER = "keepalive-ping-interval"
"""Sent by the SDK on streams: seconds between the keepalive events it expects."""


class RequestState:
    """What one envd request runs against: its workspace, its user, its connection."""

    __slots__ = ("_callbacks", "disconnected", "max_message_bytes", "user", "workspace")

    def __init__(
        self,
        workspace: SandboxWorkspace,
        user: str = "user",
        *,
        max_message_bytes: int | None = None,
    ) -> None:
        self.workspace = workspace
        self.user = user
        # The largest request message this call reads (inflated); None: the app's.
        self.max_message_bytes = max_message_bytes
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


def message_limit(default: int | None) -> int | None:
    """The largest request message the running call reads: its own bound, or ``default``."""
    state = _current.get(None)
    own = state.max_message_bytes if state is not None else None
    if own is None:
        return default
    return own if default is None else min(own, default)


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


async def until_deadline(
    stream: AsyncGenerator[T, None], ctx: RequestContext[Any, Any], what: str
) -> AsyncIterator[T]:
    """``stream``'s items until the request's ``Connect-Timeout-Ms`` runs out, then ``deadline_exceeded``.

    connect-go ends a stream whose handler's context expires so; the async
    SDK relies on it to bound ``commands.connect(timeout=)`` and
    ``files.watch_dir(timeout=)``. ``stream`` is closed either way (its
    cleanup runs); without the header it is passed on as it is.
    """
    remaining_ms = ctx.timeout_ms
    try:
        if remaining_ms is None:
            async for item in stream:
                yield item
            return
        when = asyncio.get_running_loop().time() + max(remaining_ms, 0.0) / 1000.0
        while True:
            limit = asyncio.timeout_at(when)
            try:
                async with limit:
                    item = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not limit.expired():
                    raise  # the stream's own error, not the deadline
                raise ConnectError(
                    Code.DEADLINE_EXCEEDED, f"{what}: the request's deadline was exceeded"
                ) from None
            yield item
    finally:
        await stream.aclose()
