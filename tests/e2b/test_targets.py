"""Request targets in absolute form (``GET http://host/path``), which a server must accept.

RFC 9112 §3.2.2; Go's net/http, under upstream, routes them by their path and
takes their authority as the host. Sent with h11 on a socket: HTTP clients send
this form only to proxies.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import h11
import pytest
from e2b import Sandbox

from pytest_kruise_agents.e2b.targets import origin_form

from .conftest import ALICE, Served


def raw_get(server: Served, target: str, *headers: tuple[str, str]) -> tuple[int, Any]:
    """``GET target`` on a connection of its own: the status and the JSON (or text) body."""
    url = urlsplit(server.url)
    conn = h11.Connection(h11.CLIENT)
    sent = [("Host", "api.example.test"), *headers, ("Connection", "close")]
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(conn.send(h11.Request(method="GET", target=target, headers=sent)) or b"")
        sock.sendall(conn.send(h11.EndOfMessage()) or b"")
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def test_an_absolute_form_target_is_routed_by_its_path(echo_server: Served) -> None:
    assert raw_get(echo_server, "http://127.0.0.1/health") == (200, "OK")

    status, listed = raw_get(
        echo_server, "http://127.0.0.1:1/v2/sandboxes?limit=1", ("X-API-Key", ALICE)
    )

    assert status == 200, listed
    assert isinstance(listed, list)


def test_an_absolute_form_targets_authority_is_the_host_it_routes_by(echo_server: Served) -> None:
    """The ``Host`` header is ignored, as Go's ``Request.Host`` is the target's authority."""
    sid = Sandbox.create(template="base", **echo_server.sdk()).sandbox_id

    status, body = raw_get(echo_server, f"https://49999-{sid}.sandboxes.test/contexts?x=1")

    assert status == 200, body
    assert body["sandbox"] == sid
    assert body["path"] == "/contexts"


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "host"),
    [
        (b"http://h.test/a/b%20c", "/a/b c", b"/a/b%20c", b"h.test"),
        (b"https://u@h.test:8443/x", "/x", b"/x", b"h.test:8443"),  # no userinfo: Go's URL.Host
        (b"http://h.test", "/", b"/", b"h.test"),  # an empty path is "/"
        (b"HTTP://h.test/x", "/x", b"/x", b"h.test"),
    ],
)
def test_origin_form_is_the_path_the_absolute_form_names(
    target: bytes, path: str, raw_path: bytes, host: bytes
) -> None:
    """uvicorn split the query off already; the ``Host`` header is replaced by the authority."""
    scope = {
        "type": "http",
        "path": target.decode(),
        "raw_path": target,
        "query_string": b"q=1",
        "root_path": "",
        "headers": [(b"host", b"ignored"), (b"x-other", b"kept")],
    }

    rewritten = origin_form(scope)

    assert (rewritten["path"], rewritten["raw_path"]) == (path, raw_path)
    assert rewritten["query_string"] == b"q=1"
    assert rewritten["headers"] == [(b"x-other", b"kept"), (b"host", host)]
    assert scope["raw_path"] == target  # the given scope is not changed


def test_an_absolute_form_without_an_authority_keeps_the_host_header() -> None:
    scope = {
        "type": "http",
        "path": "http:///x",
        "raw_path": b"http:///x",
        "root_path": "",
        "headers": [(b"host", b"h.test")],
    }

    rewritten = origin_form(scope)

    assert (rewritten["path"], rewritten["headers"]) == ("/x", [(b"host", b"h.test")])


@pytest.mark.parametrize("target", [b"/v2/sandboxes", b"//v2/sandboxes", b"/http://h.test/x", b"*"])
def test_an_origin_form_target_is_left_as_it_is(target: bytes) -> None:
    scope = {"type": "http", "path": target.decode(), "raw_path": target, "headers": []}

    assert origin_form(scope) is scope
