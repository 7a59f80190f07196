"""Specification of DrainBeforeErrorMiddleware: an error answer waits for the request body, over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from e2b import Sandbox, SandboxException

from pytest_kruise_agents.e2b.drain import DrainBeforeErrorMiddleware
from pytest_kruise_agents.e2b.server import ServerThread

from .conftest import Served, answer, answer_without_reading

QUIET = 0.3  # long enough for an answer sent at once to be on the socket


@pytest.fixture(scope="module")
def url() -> Iterator[tuple[str, int]]:
    with ServerThread(DrainBeforeErrorMiddleware(answer_without_reading, max_bytes=1000)) as s:
        yield s.host, s.port


@pytest.fixture
def conn(url: tuple[str, int]) -> Iterator[socket.socket]:
    with socket.create_connection(url, timeout=5) as sock:
        yield sock


def post(path: str, length: int, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", f"Content-Length: {length}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("path", "status"), [("/refuse", b"401 Unauthorized"), ("/bad", b"400 Bad Request")]
)
def test_an_error_goes_out_only_once_the_body_is_in(
    conn: socket.socket, path: str, status: bytes
) -> None:
    conn.sendall(post(path, 10) + b"12345")
    assert answer(conn, within=QUIET) == b""
    conn.sendall(b"67890")
    assert answer(conn) == b"HTTP/1.1 " + status
    # The body was read to its end, so the connection is still good for the next request.
    conn.sendall(post("/ok", 0))
    assert answer(conn) == b"HTTP/1.1 200 OK"


def test_a_success_is_never_held(conn: socket.socket) -> None:
    conn.sendall(post("/ok", 10) + b"12345")
    assert answer(conn) == b"HTTP/1.1 200 OK"


def test_a_request_without_a_body_is_answered_at_once(conn: socket.socket) -> None:
    conn.sendall(b"GET /refuse HTTP/1.1\r\nHost: t\r\n\r\n")
    assert answer(conn) == b"HTTP/1.1 401 Unauthorized"


def test_past_max_bytes_the_error_goes_out_anyway(conn: socket.socket) -> None:
    conn.sendall(post("/refuse", 100_000) + b"x" * 999)
    assert answer(conn, within=QUIET) == b""
    conn.sendall(b"x" * 2000)
    assert answer(conn) == b"HTTP/1.1 401 Unauthorized"


@pytest.mark.parametrize("expect", ["100-continue", "100-Continue"])
def test_a_client_waiting_for_100_continue_is_answered_at_once(
    conn: socket.socket, expect: str
) -> None:
    # It sends no body after a final status: waiting for one would hang both sides.
    # The expectation is case-insensitive (RFC 9110 10.1.1).
    conn.sendall(post("/refuse", 10, f"Expect: {expect}"))
    assert answer(conn) == b"HTTP/1.1 401 Unauthorized"


def test_writes_to_a_gone_sandbox_always_reach_the_sdk_as_its_error(echo_server: Served) -> None:
    # The router answers 502 from the headers; before the middleware the SDK lost
    # about one answer in 200 this way to an httpx.ReadError.
    sbx = Sandbox.create(template="base", **echo_server.sdk())
    sbx.kill()
    for _ in range(200):
        with pytest.raises(SandboxException, match="not found"):
            sbx.files.write("f.txt", "x")


def test_a_client_leaving_during_the_wait_costs_the_server_nothing(url: tuple[str, int]) -> None:
    with socket.create_connection(url, timeout=5) as gone:
        gone.sendall(post("/refuse", 10) + b"12345")
        assert answer(gone, within=QUIET) == b""
    with socket.create_connection(url, timeout=5) as sock:
        sock.sendall(post("/refuse", 2) + b"ok")
        assert answer(sock) == b"HTTP/1.1 401 Unauthorized"
