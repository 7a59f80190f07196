"""Failure messages that say what was expected and what was seen.

A check fails by raising :class:`CheckFailed`; :func:`step` names what the
check was doing, so an unexpected SDK exception reads as "create a sandbox
with the SDK: expected success, but saw SandboxException: 500: ...".
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import httpx

from pytest_kruise_agents.conformance.report import clean

__all__ = [
    "CheckFailed",
    "excerpt",
    "expect",
    "expect_error_body",
    "expect_status",
    "fail",
    "json_body",
    "step",
]

_EXCERPT = 300


class CheckFailed(AssertionError):
    """The server did not behave as the check expects.

    ``str()`` is ``"<what>: expected <expected>, but saw <seen>"``.
    """

    def __init__(self, what: str, expected: str, seen: str) -> None:
        self.what = what
        self.expected = expected
        self.seen = seen
        super().__init__(f"{what}: expected {expected}, but saw {seen}")


def fail(what: str, expected: str, seen: str) -> NoReturn:
    """Fail the check (see :class:`CheckFailed`)."""
    raise CheckFailed(what, expected, seen)


def expect(condition: bool, what: str, expected: str, seen: object) -> None:
    """Fail unless ``condition`` holds; ``seen`` is shown with ``repr`` unless it is a string."""
    if not condition:
        fail(what, expected, seen if isinstance(seen, str) else repr(seen))


def excerpt(resp: httpx.Response) -> str:
    """``HTTP <status> <first bytes of the body>`` for a failure message (control
    characters shown as ``\\xNN``)."""
    try:
        text = resp.text
    except Exception:  # a body that is not text still has a status
        text = f"<{len(resp.content)} bytes>"
    text = " ".join(clean(text).split())
    if len(text) > _EXCERPT:
        text = text[:_EXCERPT] + "..."
    return f"HTTP {resp.status_code} {text}".rstrip()


def _codes(expected: int | Collection[int]) -> tuple[int, ...]:
    return (expected,) if isinstance(expected, int) else tuple(sorted(expected))


def expect_status(resp: httpx.Response, expected: int | Collection[int], what: str) -> None:
    """Fail unless the response status is ``expected`` (one code or any of several)."""
    codes = _codes(expected)
    if resp.status_code not in codes:
        wanted = " or ".join(str(c) for c in codes)
        fail(what, f"HTTP {wanted}", excerpt(resp))


def json_body(resp: httpx.Response, what: str) -> Any:
    """The response body decoded as JSON (fail if it is not JSON)."""
    try:
        return resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        fail(what, "a JSON body", excerpt(resp))


def expect_error_body(resp: httpx.Response, what: str) -> dict[str, Any]:
    """Fail unless the body is the ``Error`` schema, ``{"code": <integer>, "message": <string>,
    ...}`` (the SDK's parser needs both). The code is usually the HTTP status (E2B's
    convention), but the schema only asks for an integer: the sandbox-manager sends a 500
    with ``code`` 0 (Kruise §6.3), and the SDK never reads it."""
    body = json_body(resp, what)
    shape = '{"code": <integer>, "message": "..."}'
    if not isinstance(body, dict):
        fail(what, f"a JSON object {shape}", excerpt(resp))
    code = body.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        fail(what, f"an error body {shape} (integer code)", excerpt(resp))
    if not isinstance(body.get("message"), str):
        fail(what, f"an error body {shape} (string message)", excerpt(resp))
    return body


@contextmanager
def step(what: str) -> Iterator[None]:
    """Name what the check does; turn an unexpected exception into a :class:`CheckFailed`."""
    try:
        yield
    except CheckFailed:
        raise
    except Exception as exc:
        text = " ".join(clean(str(exc)).split())
        if len(text) > _EXCERPT:
            text = text[:_EXCERPT] + "..."
        raise CheckFailed(what, "success", f"{type(exc).__name__}: {text}") from exc
