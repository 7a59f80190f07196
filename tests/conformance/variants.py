"""Servers that differ from this project's in one way a real E2B-compatible server may: as an
ASGI middleware (a :data:`Wrap <.conftest.Wrap>`) around its E2B app.

Most are valid and the suite once failed them (hunt GF): a plain E2B server without the
OpenKruise extensions, a ``v``-prefixed ``envdVersion``, only one generation of create and
connect routes, short list pages, a plain-text proxy 502, the envd token only on create, error
codes that are not the HTTP status. The others get a list filter wrong and the suite once
passed them. :func:`serve <.conftest.serve>` builds one with ``wrap=``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from pytest_kruise_agents.e2b.rewriting import Answer, call, json_answer, replay, reply, with_query
from pytest_kruise_agents.e2b.traffic import sandbox_target

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

NOT_FOUND: Final = json.dumps({"code": 404, "message": "Not Found"}).encode()


def _api_path(scope: Scope) -> list[str] | None:
    """The control-plane path's parts (``/kruise/api`` kept); ``None`` for sandbox traffic."""
    if scope["type"] != "http" or sandbox_target(scope["headers"]) is not None:
        return None
    return [p for p in str(scope["path"]).split("/") if p]


def _not_found(app: ASGIApp, unknown: Callable[[Scope, list[str]], bool]) -> ASGIApp:
    """``app`` answering 404 to the API requests ``unknown`` picks, as to a route it lacks."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope)
        if parts is not None and unknown(scope, parts):
            await reply(send, Answer(404, [(b"content-type", b"application/json")], NOT_FOUND))
            return
        await app(scope, receive, send)

    return middleware


def _rewrite_json(app: ASGIApp, edit: Callable[[Scope, int, Any], Any]) -> ASGIApp:
    """``app`` with every JSON answer of the control plane passed through ``edit(scope,
    status, body)`` (``None``: unchanged)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if _api_path(scope) is None:
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        body = answer.json()
        edited = edit(scope, answer.status, body) if body is not None else None
        await reply(send, answer if edited is None else json_answer(answer, answer.status, edited))

    return middleware


def no_kruise(app: ASGIApp) -> ASGIApp:
    """No OpenKruise extensions: ``/kruise/api`` is unknown. Valid for ``core`` and ``kruise``
    (skipped); not for ``lifecycle``, as this project's server answers a pause of a paused
    sandbox 204 as the sandbox-manager does (Kruise §6.5), which E2B's own answers 409."""
    return _not_found(app, lambda scope, parts: parts[:2] == ["kruise", "api"])


def pause_paused_409(app: ASGIApp) -> ASGIApp:
    """A pause of a sandbox ``GET`` shows paused answers 409, as E2B's server does (the
    SDK's ``pause()`` then returns False), where this project's answers 204 (Kruise §6.5)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope)
        if (
            parts is None
            or scope["method"] != "POST"
            or len(parts) != 3
            or parts[0] != "sandboxes"
            or parts[2] != "pause"
        ):
            await app(scope, receive, send)
            return
        path = f"/sandboxes/{parts[1]}"
        get = {
            **scope,
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
        }
        described = await call(app, get, replay(b"", receive))
        found = described.json() if described.status == 200 else None
        if isinstance(found, dict) and found.get("state") == "paused":
            body = {"code": 409, "message": f"Sandbox {parts[1]} is already paused"}
            headers = [(b"content-type", b"application/json")]
            await reply(send, Answer(409, headers, json.dumps(body).encode()))
            return
        await app(scope, receive, send)

    return middleware


def newest_first(app: ASGIApp) -> ASGIApp:
    """A list without ``order`` lists newest first (E2B's default; this project's server
    sorts oldest first, as the sandbox-manager does)."""

    def default_desc(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return pairs if any(k == "order" for k, _ in pairs) else [*pairs, ("order", "desc")]

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if _api_path(scope) == ["v2", "sandboxes"] and scope["method"] == "GET":
            scope = with_query(scope, default_desc)
        await app(scope, receive, send)

    return middleware


def plain_e2b(app: ASGIApp) -> ASGIApp:
    """Valid: a plain E2B server (no OpenKruise extensions) listing newest first by default and
    answering 409 to a pause of a paused sandbox."""
    return no_kruise(newest_first(pause_paused_409(app)))


def envd_v_prefix(app: ASGIApp) -> ASGIApp:
    """Valid: ``envdVersion`` written ``v0.2.10``, as a Go server may write a version (PEP 440
    takes it; the SDK's ``packaging.version.Version`` reads it as 0.2.10)."""

    def edit(scope: Scope, status: int, body: Any) -> Any:
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and isinstance(item.get("envdVersion"), str):
                item["envdVersion"] = "v" + item["envdVersion"]
        return body

    return _rewrite_json(app, edit)


def _create_or_connect(scope: Scope, parts: list[str], v2: bool) -> bool:
    """Whether the request is a create or connect of the ``v2`` (else v1) routes."""
    if scope["method"] != "POST":
        return False
    if v2:
        return parts == ["v2", "sandboxes"] or (
            len(parts) == 4 and parts[:2] == ["v2", "sandboxes"] and parts[3] == "connect"
        )
    return parts == ["sandboxes"] or (
        len(parts) == 3 and parts[0] == "sandboxes" and parts[2] == "connect"
    )


def v2_only(app: ASGIApp) -> ASGIApp:
    """Valid for e2b >= 2.51: ``POST /sandboxes`` and ``POST /sandboxes/{id}/connect`` unknown."""
    return _not_found(app, lambda scope, parts: _create_or_connect(scope, parts, v2=False))


def v1_only(app: ASGIApp) -> ASGIApp:
    """Valid for e2b <= 2.50, and what the sandbox-manager serves (Kruise §6.2): ``POST
    /v2/sandboxes`` and ``POST /v2/sandboxes/{id}/connect`` unknown."""
    return _not_found(app, lambda scope, parts: _create_or_connect(scope, parts, v2=True))


def short_pages(app: ASGIApp) -> ASGIApp:
    """Valid: a list page holds one item fewer than ``limit`` (at least one) and still carries
    ``X-Next-Token``: ``limit`` is a maximum."""

    def shorter(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            (k, str(max(1, int(v) - 1)) if k == "limit" and v.isdigit() else v) for k, v in pairs
        ]

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if _api_path(scope) == ["v2", "sandboxes"] and scope["method"] == "GET":
            scope = with_query(scope, shorter)
        await app(scope, receive, send)

    return middleware


def text_502(app: ASGIApp) -> ASGIApp:
    """Valid: the sandbox proxy's 502 is ``text/plain``: the SDK reads the text as the message."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        target = sandbox_target(scope["headers"]) if scope["type"] == "http" else None
        if target is None or scope["path"] != "/health":
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        if answer.status == 502:
            found = answer.json()
            text = found.get("message", "") if isinstance(found, dict) else answer.body.decode()
            answer = Answer(502, [(b"content-type", b"text/plain; charset=utf-8")], text.encode())
        await reply(send, answer)

    return middleware


def token_on_create_only(app: ASGIApp) -> ASGIApp:
    """Valid: ``GET /sandboxes/{id}`` leaves out ``envdAccessToken`` (optional in
    ``SandboxDetail``); create and connect answers carry it."""

    def edit(scope: Scope, status: int, body: Any) -> Any:
        if scope["method"] == "GET" and isinstance(body, dict):
            body.pop("envdAccessToken", None)
            return body
        return None

    return _rewrite_json(app, edit)


def error_code_zero(app: ASGIApp) -> ASGIApp:
    """Valid: every error body's ``code`` is 0, as the sandbox-manager sends one (Kruise §6.3);
    the SDK reads the HTTP status, never ``code``."""

    def edit(scope: Scope, status: int, body: Any) -> Any:
        if status >= 400 and isinstance(body, dict) and "code" in body:
            return {**body, "code": 0}
        return None

    return _rewrite_json(app, edit)


def list_lax(app: ASGIApp) -> ASGIApp:
    """Wrong: the list ignores ``startedAfter`` and ``template``, and a comma-joined ``state``
    (what ``SandboxQuery(state=[running, paused])`` sends) lists nothing."""

    def lax(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, v) for k, v in pairs if k not in ("startedAfter", "template")]

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if _api_path(scope) != ["v2", "sandboxes"] or scope["method"] != "GET":
            await app(scope, receive, send)
            return
        scope = with_query(scope, lax)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        if any(k == "state" and "," in v for k, v in query):
            await reply(send, Answer(200, [(b"content-type", b"application/json")], b"[]"))
            return
        await app(scope, receive, send)

    return middleware
