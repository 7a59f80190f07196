"""``expect``: what a failed check says it expected and saw, and which error bodies pass."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pytest_kruise_agents.conformance.expect import (
    CheckFailed,
    excerpt,
    expect_error_body,
    expect_status,
    json_body,
    step,
)


def _answer(status: int, body: Any = None, *, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text)
    return httpx.Response(status, json=body)


def test_an_excerpt_is_the_status_and_the_first_300_characters_on_one_line() -> None:
    long = "x" * 299 + "yz"
    assert excerpt(_answer(502, text=long)) == f"HTTP 502 {'x' * 299}y..."
    assert excerpt(_answer(502, text="a\n  b\x1b")) == "HTTP 502 a b\\x1b"
    assert excerpt(_answer(204, text="")) == "HTTP 204"


def test_a_status_of_several_allowed_names_each_in_order() -> None:
    with pytest.raises(CheckFailed) as caught:
        expect_status(_answer(200, {}), (404, 400), "POST /v2/sandboxes")
    assert str(caught.value) == "POST /v2/sandboxes: expected HTTP 400 or 404, but saw HTTP 200 {}"
    expect_status(_answer(404, {}), (400, 404), "POST /v2/sandboxes")


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ([1], 'a JSON object {"code": <integer>, "message": "..."}'),
        ({"code": True, "message": "m"}, "(integer code)"),
        ({"code": "404", "message": "m"}, "(integer code)"),
        ({"code": 404}, "(string message)"),
        ({"code": 404, "message": None}, "(string message)"),
    ],
)
def test_an_error_body_needs_an_integer_code_and_a_string_message(body: Any, wanted: str) -> None:
    with pytest.raises(CheckFailed, match=f"^GET /sandboxes/x: expected .*{wanted}"):
        expect_error_body(_answer(404, body), "GET /sandboxes/x")


def test_an_error_body_with_any_integer_code_passes() -> None:
    """The sandbox-manager answers a 500 with code 0 (Kruise §6.3): the SDK never reads it."""
    body = {"code": 0, "message": "boom", "extra": 1}
    assert expect_error_body(_answer(500, body), "POST /v2/sandboxes") == body


def test_a_body_that_is_not_json_fails_naming_what_was_seen() -> None:
    with pytest.raises(CheckFailed) as caught:
        json_body(_answer(200, text="<html>"), "GET /v2/sandboxes")
    assert str(caught.value) == "GET /v2/sandboxes: expected a JSON body, but saw HTTP 200 <html>"
    with pytest.raises(CheckFailed, match="expected a JSON body"):
        json_body(httpx.Response(200, content=b"\xff\xfe{"), "GET /v2/sandboxes")


def test_a_step_names_an_unexpected_exception_and_keeps_a_check_failure_as_it_is() -> None:
    with pytest.raises(CheckFailed) as caught, step("create a sandbox"):
        raise RuntimeError("no\n  stock " + "z" * 400)
    assert str(caught.value).startswith(
        "create a sandbox: expected success, but saw RuntimeError: no stock zzz"
    )
    assert (
        str(caught.value).endswith("z...") and len(caught.value.seen) == len("RuntimeError: ") + 303
    )
    inner = CheckFailed("GET /sandboxes/x", "HTTP 200", "HTTP 404")
    with pytest.raises(CheckFailed) as kept, step("get it"):
        raise inner
    assert kept.value is inner
