"""What the wire carries: required fields of the E2B models, timestamps, list pages.

The field lists are those the SDK's generated client requires (e2b-protocol
§2.4): a missing one makes the SDK raise ``KeyError``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import httpx
from packaging.version import InvalidVersion, Version

from pytest_kruise_agents.conformance.expect import expect, expect_status, fail, json_body
from pytest_kruise_agents.conformance.target import LIST_SETTLE_S, Api, Target
from pytest_kruise_agents.rfc3339 import parse_rfc3339

__all__ = [
    "LISTED_FIELDS",
    "LIST_SETTLE_S",
    "MIN_ENVD_VERSION",
    "SANDBOX_FIELDS",
    "detail",
    "end_at",
    "envd_version_ok",
    "expect_fields",
    "expect_unlisted",
    "list_all",
    "parse_time",
    "settled",
    "state_of",
]

T = TypeVar("T")

SANDBOX_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "templateID": str,
    "sandboxID": str,
    "clientID": str,
    "envdVersion": str,
}
"""Required fields of ``Sandbox`` (create and connect answers)."""

LISTED_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    **SANDBOX_FIELDS,
    "startedAt": str,
    "endAt": str,
    "cpuCount": int,
    "memoryMB": int,
    "diskSizeMB": int,
    "state": str,
}
"""Required fields of ``ListedSandbox`` and ``SandboxDetail``."""

_MAX_PAGES: Final = 200

_SETTLE_POLL_S: Final = 0.1


def settled(fetch: Callable[[], T], holds: Callable[[T], bool], *, within: float) -> T:
    """``fetch()``, again until ``holds`` its value or ``within`` wall seconds pass (the
    target's :attr:`~pytest_kruise_agents.conformance.target.Target.list_settle`, by
    default :data:`LIST_SETTLE_S`); the last value."""
    deadline = time.monotonic() + within
    value = fetch()
    while not holds(value) and time.monotonic() < deadline:
        time.sleep(_SETTLE_POLL_S)
        value = fetch()
    return value


def expect_fields(
    body: Any, fields: Mapping[str, type | tuple[type, ...]], what: str
) -> dict[str, Any]:
    """Fail unless ``body`` is an object with every field, of the right JSON type."""
    if not isinstance(body, dict):
        fail(what, "a JSON object", repr(body)[:300])
    for name, kind in fields.items():
        if name not in body:
            fail(what, f"the required field {name!r}", f"an object with {sorted(body)}")
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            fail(what, f"{name!r} of type {names}", f"{name}={value!r}")
    return body


def parse_time(value: Any, what: str) -> dt.datetime:
    """An RFC 3339 §5.6 ``date-time`` as an aware datetime (fail if it is not one).

    Exactly that grammar, not ISO 8601 at large: ``datetime.fromisoformat`` also
    takes basic (``20260102T030405Z``) and week (``2026-W01-5T...``) forms,
    which RFC 3339 parsers such as JavaScript's ``new Date()`` reject.
    """
    if not isinstance(value, str):
        fail(what, "an RFC 3339 timestamp", repr(value))
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        fail(what, "an RFC 3339 timestamp", f"{value!r} ({exc})")


MIN_ENVD_VERSION: Final = Version("0.1.0")
"""The oldest ``envdVersion`` the SDK takes: it kills a sandbox reporting an older one."""


def envd_version_ok(text: str) -> bool:
    """Whether the SDK takes ``envdVersion`` ``text``: a PEP 440 version (``v0.6.13`` and
    ``0.6.13rc1`` are, normalised as ``packaging`` does) not older than 0.1.0, compared as
    the SDK compares it (``packaging.version.Version``: ``0.1.0rc1`` is older)."""
    try:
        return Version(text) >= MIN_ENVD_VERSION
    except InvalidVersion:
        return False


def detail(api: Api, sandbox_id: str, what: str | None = None) -> dict[str, Any]:
    """``GET /sandboxes/{id}``: fail unless 200 with the required fields."""
    label = what or f"GET /sandboxes/{sandbox_id}"
    resp = api.get(sandbox_id)
    expect_status(resp, 200, label)
    return expect_fields(json_body(resp, label), LISTED_FIELDS, label)


def end_at(api: Api, sandbox_id: str) -> dt.datetime:
    """The sandbox's ``endAt``."""
    label = f"GET /sandboxes/{sandbox_id}"
    return parse_time(detail(api, sandbox_id, label)["endAt"], f"{label}: endAt")


def state_of(api: Api, sandbox_id: str) -> str | None:
    """``running``/``paused`` from GET, or ``None`` once it answers 404.

    A 200 without a ``state`` string fails the check naming the GET: read as ``None``, it
    would be reported as the sandbox gone (an HTTP 404) by the checks that wait on it.
    """
    resp = api.get(sandbox_id)
    if resp.status_code == 404:
        return None
    label = f"GET /sandboxes/{sandbox_id}"
    expect_status(resp, 200, label)
    body = json_body(resp, label)
    state = body.get("state") if isinstance(body, dict) else None
    expect(isinstance(state, str), label, "a 'state' string (running or paused)", state)
    return str(state)


def list_all(
    api: Api, params: Mapping[str, Any] | None = None, *, what: str | None = None
) -> list[dict[str, Any]]:
    """Every item of ``GET /v2/sandboxes`` with ``params``, following ``X-Next-Token``."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(_MAX_PAGES):
        query = dict(params or {})
        if token:
            query["nextToken"] = token
        label = what or f"GET /v2/sandboxes {query}"
        resp: httpx.Response = api.list(query)
        expect_status(resp, 200, label)
        page = json_body(resp, label)
        expect(isinstance(page, list), label, "a JSON array", repr(page)[:300])
        items.extend(page)
        token = resp.headers.get("x-next-token") or None
        if token is None:
            return items
    fail(what or "GET /v2/sandboxes", f"a last page within {_MAX_PAGES} pages", "more pages")


def expect_unlisted(api: Api, target: Target, sandbox_id: str, when: str, why: str) -> None:
    """Fail unless the run's own sandboxes (``metadata=<run filter>``, no ``state``: both)
    stop listing ``sandbox_id``, gone ``when`` because ``why``, within the target's
    :attr:`~pytest_kruise_agents.conformance.target.Target.list_settle`."""
    run = target.run_filter  # the run's own sandboxes: a team may hold thousands
    what = f"GET /v2/sandboxes?metadata={run} {when}"

    def shown(items: list[dict[str, Any]]) -> list[object]:
        return [i.get("state") for i in items if i.get("sandboxID") == sandbox_id]

    items = settled(
        lambda: list_all(api, {"metadata": run}, what=what),
        lambda items: not shown(items),
        within=target.list_settle,
    )
    states = shown(items)
    expect(
        not states,
        what,
        f"{sandbox_id} not listed ({why})",
        f"it listed (state {states[0]!r})" if states else "it not listed",
    )
