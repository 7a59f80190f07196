"""Whether a request's client is still there, read from its socket at once.

uvicorn tells an app its client left (``http.disconnect``) only once its
event loop has read the connection's end, between two turns of the loop. A
server answering a burst of requests runs many handlers in one turn, so a
request whose client left while it waited is handled as if the client were
still there. Upstream's Go server reads the end of a connection in the
background and cancels the request's context at once (reference §6): the
servers of this package put :func:`client_gone`'s probe in each request's
scope (:data:`CLIENT_GONE`, under ``extensions``), which asks the socket
itself, without a turn of the loop.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["CLIENT_GONE", "client_gone", "peer_closed"]

CLIENT_GONE: Final = "kruise.client_gone"
"""The key, in a request scope's ``extensions``, of a probe ``() -> bool``: the client is gone."""

_POLLRDHUP: Final[int | None] = getattr(select, "POLLRDHUP", None)
"""Linux's "the peer closed its end" poll flag (``None`` where the platform has none)."""


def peer_closed(transport: asyncio.BaseTransport) -> bool:
    """Whether the client of ``transport`` has closed its end of the connection, or reset it.

    Asked of the socket now (one ``poll`` that waits for nothing and reads
    nothing): a closed end, a reset, or a transport already closing is gone; a
    client that sent more (a pipelined request) or nothing is still there, as
    is any client where the platform cannot tell without reading (no
    ``POLLRDHUP``: the loop's ``http.disconnect`` then says it).
    """
    if transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or _POLLRDHUP is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | _POLLRDHUP)
    try:
        events = poller.poll(0)
    except OSError:  # EINTR and the like: nothing is known
        return False
    closed = _POLLRDHUP | select.POLLHUP | select.POLLERR
    return any(revents & closed for _fd, revents in events)


def client_gone(scope: Mapping[str, Any]) -> bool | None:
    """Whether the client of the request ``scope`` is gone, ``None`` if the server cannot tell at once."""
    probe: Callable[[], bool] | None = scope.get("extensions", {}).get(CLIENT_GONE)
    return None if probe is None else probe()
