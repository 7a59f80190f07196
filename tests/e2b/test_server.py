"""Specification of the uvicorn set-up every server of the package shares (``e2b/server.py``)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import e2b.api
import pytest
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.e2b.server import (
    KEEP_ALIVE_S,
    TCP_KEEPALIVE_PROBES,
    TCP_KEEPALIVE_S,
    ServerThread,
)

from .conftest import answer, answer_without_reading

UVICORN_DEFAULT_KEEP_ALIVE_S = 5


def test_an_idle_connection_outlives_uvicorns_default_keep_alive() -> None:
    # Closed after uvicorn's 5 s, a connection the client still pools makes its
    # next request fail whenever the two cross (3 in 10 at a 5 s gap).
    with (
        ServerThread(answer_without_reading) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        sock.settimeout(5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer(sock) == b"HTTP/1.1 200 OK"
        time.sleep(UVICORN_DEFAULT_KEEP_ALIVE_S + 0.5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer(sock) == b"HTTP/1.1 200 OK"


def test_the_client_keeps_idle_connections_shorter_than_the_server() -> None:
    # The side keeping idle connections shorter closes them: it must be the client.
    assert e2b.api.pool_idle_timeout < KEEP_ALIVE_S


IDLE_S = 1.0  # the idle timeout of the servers below (KEEP_ALIVE_S, shortened)
# Not shorter: under load a test thread can wait 0.3 s for the CPU between its connect and its
# first bytes, and the server rightly closes (seen once, at 0.3 s).


async def read_then_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole request body (``/slow``: late), then answers 200 (no lifespan)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(IDLE_S * 3)  # busy elsewhere: the body waits in the socket
    while (message := await receive())["type"] == "http.request" and message.get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def quick() -> Iterator[ServerThread]:
    """A server closing connections idle for :data:`IDLE_S`."""
    with ServerThread(read_then_answer, timeout_keep_alive=IDLE_S, lifespan="off") as server:
        yield server


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (it sends nothing)."""
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n", id="half-a-head"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nabc", id="half-a-body"
        ),
    ],
)
def test_a_connection_waiting_for_its_client_is_closed_after_the_idle_timeout(
    quick: ServerThread, sent: bytes
) -> None:
    """Not only after a response: a first request head that never comes (or never ends), and a
    body that stops, are closed as an idle connection is (uvicorn kept them open for ever)."""
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(sent)
        assert not closed_by_server(sock, within=IDLE_S / 2)
        assert closed_by_server(sock, within=5)


def test_a_head_sent_a_byte_at_a_time_gets_no_more_time(quick: ServerThread) -> None:
    head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"x" * 100
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # closed
            time.sleep(IDLE_S / 10)
        assert closed_by_server(sock, within=5)
    assert time.monotonic() - started < IDLE_S * 3


def test_a_body_that_keeps_coming_is_read_however_long_it_takes(quick: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n")
        for part in (b"ab", b"cd", b"ef"):
            time.sleep(IDLE_S * 2 / 3)
            sock.sendall(part)
        assert answer(sock) == b"HTTP/1.1 200 OK"


def test_a_body_the_app_is_slow_to_read_is_no_silent_client(quick: ServerThread) -> None:
    """Past uvicorn's buffer the server stops reading: the client's silence is then its own."""
    body = b"x" * 1024 * 1024
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        assert answer(sock) == b"HTTP/1.1 200 OK"


def test_a_streams_body_may_stay_silent(quick: ServerThread) -> None:
    """A Connect stream's body (a command's stdin) is the client's to send when it likes."""
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/connect+json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        assert not closed_by_server(sock, within=IDLE_S * 3)
        sock.sendall(b"0\r\n\r\n")
        assert answer(sock) == b"HTTP/1.1 200 OK"


def test_accepted_connections_probe_a_silent_client_as_go_does(quick: ServerThread) -> None:
    """TCP keep-alive: a client gone without a FIN (asleep, unplugged) is noticed in minutes."""
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer(sock) == b"HTTP/1.1 200 OK"
        # The server side of the connection: only the server's own state holds it.
        (protocol,) = quick._server.server_state.connections
        accepted = protocol.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == TCP_KEEPALIVE_S
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == TCP_KEEPALIVE_S
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == TCP_KEEPALIVE_PROBES


def test_a_body_turning_malformed_after_the_answer_only_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No second answer can follow a complete one: the connection is closed, and no
    "Fatal error: protocol.data_received() call failed" traceback is logged."""
    with (
        ServerThread(answer_without_reading) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        assert answer(sock) == b"HTTP/1.1 200 OK"
        sock.sendall(b"zz\r\nbad\r\n")
        assert closed_by_server(sock, within=5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_malformed_request_is_answered_400_in_plain_text_as_go_answers_it(
    quick: ServerThread,
) -> None:
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        sock.settimeout(5)
        head = sock.recv(1000).split(b"\r\n")
    assert head[0] == b"HTTP/1.1 400 Bad Request"
    assert b"content-type: text/plain; charset=utf-8" in head


@pytest.mark.parametrize("upgrade", [b"h2c", b"websocket"])
def test_an_upgrade_request_is_served_over_http_1_1_without_a_warning(
    quick: ServerThread, upgrade: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """``curl --http2`` asks every request to become h2c: the server does not upgrade, serves
    it, and logs no warning (uvicorn advised installing a WebSocket library, twice a request)."""
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: " + upgrade + b"\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        assert answer(sock) == b"HTTP/1.1 200 OK"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_request_head_unfinished_past_16_kib_is_answered_400_in_plain_text() -> None:
    """docs/fidelity.md (control plane): h11 holds at most 16 KiB of an unfinished request
    head; past that the request is answered ``400`` in plain text and the connection closed
    (Go's net/http, under upstream, takes heads up to 1 MiB). A head under the bound is
    served however it is cut."""
    with ServerThread(answer_without_reading) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * (17 * 1024))
            sock.settimeout(5)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
            assert b"content-type: text/plain" in head.lower()
            assert body == b"Invalid HTTP request received."
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * (12 * 1024) + b"\r\n\r\n"
            for start in range(0, len(request), 4096):
                sock.sendall(request[start : start + 4096])
                time.sleep(0.01)
            assert answer(sock) == b"HTTP/1.1 200 OK"
