"""``wire``: a timestamp the SDKs can parse, or a failed check naming the field; an
``envdVersion`` the SDK takes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from pytest_kruise_agents.conformance.expect import CheckFailed
from pytest_kruise_agents.conformance.target import Api, Target
from pytest_kruise_agents.conformance.wire import (
    envd_version_ok,
    expect_fields,
    list_all,
    parse_time,
    state_of,
)
from pytest_kruise_agents.e2b.rewriting import call, json_answer, reply

from .conftest import USER_KEY, serve

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


def test_an_rfc_3339_date_time_is_its_instant() -> None:
    assert parse_time("2026-01-02T03:04:05+01:00", "startedAt") == dt.datetime(
        2026, 1, 2, 2, 4, 5, tzinfo=dt.UTC
    )


@pytest.mark.parametrize("text", ["2026-01-02 03:04:05Z", "2026-02-30T03:04:05Z", ""])
def test_what_is_not_an_rfc_3339_date_time_fails_the_check(text: str) -> None:
    """The grammar is :func:`parse_rfc3339`'s (its tests list the cases); the failure names the field."""
    with pytest.raises(CheckFailed, match="startedAt: expected an RFC 3339 timestamp"):
        parse_time(text, "startedAt")


def test_a_value_that_is_no_string_fails_the_check() -> None:
    with pytest.raises(CheckFailed, match="but saw 1767323045"):
        parse_time(1767323045, "startedAt")


@pytest.mark.parametrize("version", ["0.1.0", "0.2.10", "0.6.13", "v0.6.13", "0.6.13rc1", "1.0"])
def test_an_envd_version_the_sdk_takes_is_accepted(version: str) -> None:
    """PEP 440, compared as the SDK's ``packaging.version.Version`` compares it."""
    assert envd_version_ok(version)


@pytest.mark.parametrize("version", ["0.0.9", "0.1.0rc1", "0.1.0.dev3", "latest", "", "0.6.x"])
def test_an_envd_version_older_than_0_1_0_or_no_version_is_refused(version: str) -> None:
    assert not envd_version_ok(version)


def test_a_boolean_is_no_integer_field() -> None:
    """JSON ``true`` is no ``cpuCount``: Python's bool is an int, the schema's boolean is not."""
    with pytest.raises(CheckFailed, match=r"^GET: expected 'cpuCount' of type int, but saw "):
        expect_fields({"cpuCount": True}, {"cpuCount": int}, "GET")
    assert expect_fields({"cpuCount": 2}, {"cpuCount": int}, "GET") == {"cpuCount": 2}


@contextmanager
def api_of(wrap: Callable[[ASGIApp], ASGIApp]) -> Iterator[Api]:
    """The raw API client of a check, on a served fake whose app ``wrap`` changes (v2 routes)."""
    with serve(wrap=wrap) as url:
        api = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        try:
            yield api
        finally:
            api.close()


def _empty_next_token(app: ASGIApp) -> ASGIApp:
    """Lists answer with an empty ``X-Next-Token`` header on their last page."""

    async def sent(scope: Scope, receive: Receive, send: Send) -> None:
        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/v2/sandboxes":
                message = {**message, "headers": [*message["headers"], (b"x-next-token", b"")]}
            await send(message)

        await app(scope, receive, with_header)

    return sent


def test_an_empty_next_token_ends_the_list_and_an_unknown_sandbox_has_no_state() -> None:
    with api_of(_empty_next_token) as api:
        sid = api.create().json()["sandboxID"]
        items = list_all(api, {"metadata": api.target.run_filter})
        assert [i["sandboxID"] for i in items] == [sid]
        assert state_of(api, sid) == "running"
        assert state_of(api, "default--base-none") is None


def _no_state(app: ASGIApp) -> ASGIApp:
    """A sandbox's GET answers 200 without its ``state``."""

    async def sent(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or "/sandboxes/" not in scope["path"]
        ):
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        body = answer.json()
        if answer.status == 200 and isinstance(body, dict):
            answer = json_answer(answer, 200, {k: v for k, v in body.items() if k != "state"})
        await reply(send, answer)

    return sent


def test_a_sandbox_answered_without_a_state_fails_the_check_rather_than_reading_as_gone() -> None:
    """Read as ``None`` it was reported as a 404 by the checks that wait for a state."""
    with api_of(_no_state) as api:
        sid = api.create().json()["sandboxID"]
        with pytest.raises(
            CheckFailed,
            match=rf"^GET /sandboxes/{sid}: expected a 'state' string \(running or paused\)",
        ):
            state_of(api, sid)
        assert state_of(api, "default--base-none") is None
