"""Whether a request's client is gone, asked of its socket before the event loop has read its end."""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import time
from collections.abc import Callable

import pytest

from pytest_kruise_agents.e2b.peer import CLIENT_GONE, client_gone, peer_closed

pytestmark = pytest.mark.skipif(
    not hasattr(select, "POLLRDHUP"), reason="the platform cannot tell without reading"
)


def _within(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether ``check()`` holds within ``seconds``, asked without a turn of any event loop."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)  # the segment crosses the loopback
    return True


def _with_connection(test: Callable[[asyncio.BaseTransport, socket.socket], None]) -> None:
    """Run ``test(server_side_transport, client_socket)`` on a loopback connection.

    ``test`` is plain code: the loop does not turn while it runs, so it never
    reads what the client sends, as a loop busy with other requests.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

        class Accepting(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set_result(transport)

        server = await loop.create_server(Accepting, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        try:
            test(await made, client)
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_a_client_still_connected_is_not_gone_even_with_bytes_unread() -> None:
    def test(transport: asyncio.BaseTransport, client: socket.socket) -> None:
        assert peer_closed(transport) is False
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")  # a pipelined request, unread
        time.sleep(0.05)
        assert peer_closed(transport) is False

    _with_connection(test)


def test_a_client_that_closed_is_gone_before_the_loop_reads_its_end() -> None:
    def test(transport: asyncio.BaseTransport, client: socket.socket) -> None:
        client.sendall(b"POST / HTTP/1.1\r\n\r\n")  # its request, then it leaves
        client.shutdown(socket.SHUT_WR)
        assert _within(lambda: peer_closed(transport))
        assert not transport.is_closing()  # the loop has not seen it

    _with_connection(test)


def test_a_client_that_reset_the_connection_is_gone() -> None:
    def test(transport: asyncio.BaseTransport, client: socket.socket) -> None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # an RST, not a FIN
        assert _within(lambda: peer_closed(transport))

    _with_connection(test)


def test_a_closing_transport_is_gone() -> None:
    def test(transport: asyncio.BaseTransport, client: socket.socket) -> None:
        transport.close()
        assert peer_closed(transport) is True

    _with_connection(test)


def test_a_scope_without_the_probe_cannot_tell() -> None:
    assert client_gone({"type": "http"}) is None
    assert client_gone({"type": "http", "extensions": {}}) is None
    assert client_gone({"type": "http", "extensions": {CLIENT_GONE: lambda: True}}) is True
    assert client_gone({"type": "http", "extensions": {CLIENT_GONE: lambda: False}}) is False
