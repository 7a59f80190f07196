"""A server that does not answer: the suite names the request it waited for, and its cleanup
waits a bounded time and says what it could not clean."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from pytest_kruise_agents.conformance.expect import CheckFailed
from pytest_kruise_agents.conformance.plugin import sweep
from pytest_kruise_agents.conformance.sandboxes import Sandboxes, cleanup_wait
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


def _api(
    url: str, *, request_timeout: float | None = None, cleanup_timeout: float | None = None
) -> Api:
    """An Api on the server at ``url`` with the timeouts given (the others the Target's)."""
    target = Target(api_url=url, api_key=USER_KEY, sandbox_url=url)
    if request_timeout is not None:
        target = replace(target, request_timeout=request_timeout)
    if cleanup_timeout is not None:
        target = replace(target, cleanup_timeout=cleanup_timeout)
    return Api(target)


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


def _deletes(scope: Scope) -> bool:
    return bool(scope["method"] == "DELETE")


def test_a_cleanup_whose_deletes_get_no_answer_is_bounded_and_fails_naming_them() -> None:
    """The kills of a check's sandboxes go out at once, each waiting at most the cleanup
    timeout; the cleanup then fails (the check is not a pass) naming what may be left. Once
    the server has left a DELETE unanswered, later cleanups wait a sixth of it (at least a
    second)."""
    with _server_leaving_unanswered(_deletes) as url:
        api = _api(url, cleanup_timeout=3.0)
        made = Sandboxes(api.target, api)
        ids = [made.create_raw()["sandboxID"] for _ in range(3)]
        started = time.monotonic()
        with pytest.raises(CheckFailed) as caught:
            made.cleanup()
        took = time.monotonic() - started
        assert 3.0 <= took < 5.0, took
        assert str(caught.value) == (
            f"DELETE /sandboxes/{ids[0]} and 2 more: expected an answer within 3 s, but saw "
            f"none; 3 sandboxes may be left on the server: {', '.join(ids)}"
        )
        assert made.ids == [] and api.unanswered == ids
        later = made.create_raw()["sandboxID"]
        started = time.monotonic()
        with pytest.raises(CheckFailed, match=f"^DELETE /sandboxes/{later}: .* within 1 s"):
            made.cleanup()
        assert time.monotonic() - started < 2.5


def test_the_final_sweep_is_bounded_and_names_what_it_could_not_kill() -> None:
    with _server_leaving_unanswered(_deletes) as url:
        api = _api(url, cleanup_timeout=1.0)
        made = Sandboxes(api.target, api)
        ids = sorted(made.create_raw()["sandboxID"] for _ in range(2))
        started = time.monotonic()
        left = sweep(api)
        assert time.monotonic() - started < 3.0
    assert sorted(left) == ids


def test_a_cleanup_waits_as_long_as_the_sdk_and_less_only_after_an_unanswered_delete() -> None:
    """By default a cleanup DELETE waits the request timeout (60 s, what the SDK waits): a kill
    that is slow but answered is no failure (a 10 s bound failed a passed check whose DELETE took
    11.5 s, and then cut every later cleanup to 1 s). Only a DELETE left unanswered for the whole
    bound makes later cleanups wait less: 10 s of the 60, never below a second."""
    api = _api("http://127.0.0.1:9")
    assert api.target.cleanup_timeout == api.target.request_timeout == 60.0
    assert cleanup_wait(api) == 60.0
    api.unanswered.append("default--gone")
    assert cleanup_wait(api) == 10.0
    short = _api("http://127.0.0.1:9", cleanup_timeout=3.0)
    short.unanswered.append("default--gone")
    assert cleanup_wait(short) == 1.0
    shorter = _api("http://127.0.0.1:9", cleanup_timeout=0.5)
    shorter.unanswered.append("default--gone")
    assert cleanup_wait(shorter) == 0.5  # the least a DELETE waits is never past the bound


def test_an_sdk_call_waits_the_request_timeout_not_the_sdks_own() -> None:
    """``--request-timeout`` bounds the SDK's calls as much as the suite's own requests: a
    create the server leaves unanswered fails the check after it, not after the SDK's 60 s."""

    def creates(scope: Scope) -> bool:
        return bool(scope["method"] == "POST" and scope["path"].endswith("/sandboxes"))

    with _server_leaving_unanswered(creates) as url:
        api = _api(url, request_timeout=1.0)
        made = Sandboxes(api.target, api)
        started = time.monotonic()
        with pytest.raises(CheckFailed, match=r"^create a sandbox .*: expected success, but saw "):
            made.create()
        assert time.monotonic() - started < 10.0


def test_a_sandbox_tracked_twice_is_killed_once_and_named_once() -> None:
    with _server_leaving_unanswered(_deletes) as url:
        api = _api(url, cleanup_timeout=1.0)
        made = Sandboxes(api.target, api)
        sid = made.create_raw()["sandboxID"]
        made.track(sid)
        with pytest.raises(CheckFailed) as caught:
            made.cleanup()
    assert str(caught.value) == (
        f"DELETE /sandboxes/{sid}: expected an answer within 1 s, but saw none; 1 sandbox may "
        f"be left on the server: {sid}"
    )
    assert api.unanswered == [sid]


def test_a_request_with_its_own_timeout_names_that_timeout() -> None:
    with _server_leaving_unanswered(_deletes) as url:
        api = _api(url, request_timeout=30.0)
        with pytest.raises(CheckFailed) as caught:
            api.kill("default--base-x", timeout=0.5)
    assert str(caught.value) == (
        "DELETE /sandboxes/default--base-x: expected an answer within 0.5 s, but saw none "
        "(ReadTimeout)"
    )


def test_a_sweep_whose_list_gets_no_answer_names_what_the_cleanups_could_not_kill() -> None:
    """The list waits as a cleanup DELETE does (a second here, after one went unanswered),
    not the request timeout; the sandboxes whose cleanup DELETE got no answer are named."""

    def deletes_and_lists(scope: Scope) -> bool:
        lists = scope["method"] == "GET" and scope["path"] == "/v2/sandboxes"
        return bool(scope["method"] == "DELETE" or lists)

    with _server_leaving_unanswered(deletes_and_lists) as url:
        api = _api(url, request_timeout=30.0, cleanup_timeout=3.0)
        made = Sandboxes(api.target, api)
        sid = made.create_raw()["sandboxID"]
        with pytest.raises(CheckFailed):
            made.cleanup()
        started = time.monotonic()
        left = sweep(api)
        assert time.monotonic() - started < 2.5
    assert left == [sid]
