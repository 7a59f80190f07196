"""Loopback traffic goes straight to the server: the loopback hosts in ``NO_PROXY``/``no_proxy``."""

from __future__ import annotations

import http.server
import os
import threading

import httpx
import pytest

from pytest_kruise_agents.loopback import direct_to_loopback, no_proxy_environ

LOOPBACK = "127.0.0.1,localhost,::1"


@pytest.mark.parametrize(
    ("environ", "value"),
    [
        ({}, LOOPBACK),
        ({"NO_PROXY": "corp.example"}, f"corp.example,{LOOPBACK}"),
        ({"no_proxy": ".corp.example, 10.0.0.0/8"}, f".corp.example,10.0.0.0/8,{LOOPBACK}"),
        # A client reads one or the other: neither may lose the hosts the other lists.
        (
            {"NO_PROXY": "a.example", "no_proxy": "b.example,a.example"},
            f"a.example,b.example,{LOOPBACK}",
        ),
        ({"NO_PROXY": "localhost,127.0.0.1"}, "localhost,127.0.0.1,::1"),
        ({"NO_PROXY": ""}, LOOPBACK),
    ],
)
def test_both_variables_list_every_host_they_listed_then_the_loopback_hosts(
    environ: dict[str, str], value: str
) -> None:
    assert no_proxy_environ(environ) == {"NO_PROXY": value, "no_proxy": value}


def test_adding_the_loopback_hosts_twice_changes_nothing() -> None:
    once = no_proxy_environ({"NO_PROXY": "corp.example"})
    assert no_proxy_environ(once) == once


def test_the_block_sets_both_variables_and_restores_them_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "corp.example")
    monkeypatch.delenv("no_proxy", raising=False)
    with direct_to_loopback():
        assert os.environ["NO_PROXY"] == os.environ["no_proxy"] == f"corp.example,{LOOPBACK}"
    assert os.environ["NO_PROXY"] == "corp.example"
    assert "no_proxy" not in os.environ


def test_within_the_block_httpx_reaches_loopback_past_a_proxy(dead_proxy: str) -> None:
    """httpx reads the variables when a client is made: outside the block its request goes
    to the proxy (refused), inside it goes to the server."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)
        with direct_to_loopback():
            assert httpx.get(url).status_code == 204
    finally:
        server.shutdown()
        server.server_close()
