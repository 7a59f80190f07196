"""A server that does not answer: the suite names the request it waited for, and its cleanup
waits a bounded time and says what it could not clean."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from pytest_kruise_agents.conformance.expect import CheckFailed
from pytest_kruise_agents.conformance.target import ENVD_PORT, Api, Target

from .conftest import USER_KEY, serve

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

Picks = Callable[["Scope"], bool]


class _Unanswered:
    """Leaves the requests ``picks`` chooses unanswered until ``released`` is set (at the end
    of the test, so that the server stops at once)."""

    def __init__(self, app: ASGIApp, picks: Picks) -> None:
        self.app = app
        self.picks = picks
        self.released = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.picks(scope):
            while not self.released.is_set():
                await asyncio.sleep(0.05)
        await self.app(scope, receive, send)


@contextmanager
def _server_leaving_unanswered(picks: Picks) -> Iterator[str]:
    held: list[_Unanswered] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        held.append(_Unanswered(app, picks))
        return held[0]

    with serve(wrap=wrap) as url:
        try:
            yield url
        finally:
            held[0].released.set()


def _api(url: str, **given: float) -> Api:
    return Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url, **given))


def test_a_control_plane_request_without_an_answer_fails_naming_it() -> None:
    def lists(scope: Scope) -> bool:
        return bool(scope["method"] == "GET" and scope["path"] == "/v2/sandboxes")

    with _server_leaving_unanswered(lists) as url:
        api = _api(url, request_timeout=0.5)
        with pytest.raises(CheckFailed) as caught:
            api.list({"metadata": "conformance-run=x"})
    assert str(caught.value) == (
        "GET /v2/sandboxes: expected an answer within 0.5 s, but saw none (ReadTimeout)"
    )


def test_sandbox_traffic_without_an_answer_fails_naming_the_sandbox_and_port() -> None:
    def health(scope: Scope) -> bool:
        return bool(scope["path"] == "/health")

    with _server_leaving_unanswered(health) as url:
        api = _api(url, request_timeout=0.5)
        with pytest.raises(CheckFailed) as caught:
            api.sandbox("default--base-x", ENVD_PORT, "GET", "/health")
    assert str(caught.value) == (
        f"GET /health of sandbox default--base-x (port {ENVD_PORT}) at {url}: expected an "
        "answer within 0.5 s, but saw none (ReadTimeout)"
    )


def test_a_server_that_refuses_the_connection_is_named_too() -> None:
    api = _api("http://127.0.0.1:9")
    with pytest.raises(CheckFailed, match=r"^GET /v2/sandboxes: expected an answer, but saw "):
        api.list()
