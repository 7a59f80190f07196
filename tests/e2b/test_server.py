"""Specification of the uvicorn set-up every server of the package shares (``e2b/server.py``)."""

from __future__ import annotations

import socket
import time

import e2b.api

from pytest_kruise_agents.e2b.server import KEEP_ALIVE_S, ServerThread

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
