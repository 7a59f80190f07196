"""Named breakages: the server with one behaviour deliberately wrong, for testing the conformance suite.

``break_app(app, "kill-200", backend=..., settings=...)`` wraps the E2B app in
an ASGI middleware that gets exactly one behaviour wrong — a status code, a
dropped filter, an unenforced timeout, a missing token check — the way a
buggy server would. The conformance suite's self-tests run the suite against
each one and check that the check of that behaviour fails, with its
dependents, and nothing else. The middleware never changes the app: it
rewrites requests and answers on the way through, and may ask the backend
what a real server would know (a sandbox's access token, the time).

Not for production use: a broken server is the point.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pytest_kruise_agents.backends.base import Backend, Caller
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.e2b.rewriting import (
    call,
    json_answer,
    read_body,
    replay,
    reply,
    with_query,
)
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.e2b.traffic import ENVD_PORT, JUPYTER_PORT, sandbox_target

__all__ = ["BREAKAGES", "Breakage", "BreakingMiddleware", "break_app"]

_PREFIX: Final = "/kruise/api"
_NEVER_TIMEOUT: Final = "e2b.agents.kruise.io/never-timeout"
_HIDDEN_EXTRA_S: Final = 3600
"""How much longer than asked a sandbox lives under ``timeout-not-enforced``."""


@dataclass(frozen=True, slots=True)
class Breakage:
    """One deliberately wrong behaviour: its ``name`` and what goes wrong."""

    name: str
    description: str


BREAKAGES: Final[dict[str, Breakage]] = {
    b.name: b
    for b in (
        Breakage("auth-open", "a missing or unknown X-API-Key is accepted"),
        Breakage("error-body-shape", 'control-plane errors answer {"error": ...} without code'),
        Breakage("create-200", "create answers 200 instead of 201"),
        Breakage("unknown-template-500", "creating from an unknown template answers 500"),
        Breakage("default-timeout-3600", "a create without a timeout lives 3600 s, not 300 s"),
        Breakage("list-ignores-metadata", "the list ignores the metadata filter"),
        Breakage("list-ignores-order", "the list ignores order= (always its default order)"),
        Breakage("no-next-token", "the list never sends X-Next-Token"),
        Breakage("kill-200", "kill answers 200 instead of 204"),
        Breakage(
            "timeout-not-enforced",
            "POST /timeout reports the new endAt but the sandbox lives an hour longer",
        ),
        Breakage(
            "connect-shortens", "connect to a running sandbox sets its timeout, shortening it"
        ),
        Breakage("pause-twice-resumes", "pausing a paused sandbox answers 204 but resumes it"),
        Breakage("resume-200", "connect to a paused sandbox answers 200 instead of 201"),
        Breakage("auto-pause-kills", "autoPause is ignored: the timeout kills the sandbox"),
        Breakage("proxy-502-body", "the sandbox proxy's 502 body lacks 'was not found'"),
        Breakage("envd-no-token-check", "envd accepts requests without the access token"),
        Breakage("code-loses-state", "the code interpreter forgets variables between runs"),
        Breakage("label-ignored", "label:<key> metadata is dropped"),
        Breakage("never-timeout-ignored", "the never-timeout extension is ignored"),
    )
}
"""Every breakage by name."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _with_headers(scope: Scope, changes: Mapping[bytes, bytes | None]) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in changes]
    headers += [(k, v) for k, v in changes.items() if v is not None]
    return {**scope, "headers": headers}


def _format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class BreakingMiddleware:
    """The E2B app with the one behaviour of ``breakage`` wrong (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, breakage: str, *, backend: Backend, settings: Settings
    ) -> None:
        if breakage not in BREAKAGES:
            raise ValueError(
                f"breakage: unknown breakage {breakage!r}; choose from {', '.join(BREAKAGES)}"
            )
        self.app = app
        self.breakage = BREAKAGES[breakage]
        self.backend = backend
        self.settings = settings
        self._handler: Handler = getattr(self, "_" + breakage.replace("-", "_"))
        self._reported_end: dict[str, datetime] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._handler(scope, receive, send)

    # -- request classification ---------------------------------------------------------

    @staticmethod
    def _sandbox(scope: Scope) -> tuple[str, str] | None:
        return sandbox_target(scope["headers"])

    def _control(self, scope: Scope) -> tuple[str, list[str]] | None:
        """``(method, path parts)`` of a control-plane request (prefix stripped), else ``None``."""
        if self._sandbox(scope) is not None:
            return None
        path = str(scope["path"])
        if path.startswith(_PREFIX + "/"):
            path = path[len(_PREFIX) :]
        return str(scope["method"]), [p for p in path.split("/") if p]

    def _is(self, scope: Scope, method: str, *shapes: tuple[str, ...]) -> bool:
        found = self._control(scope)
        if found is None or found[0] != method:
            return False
        parts = found[1]
        for shape in shapes:
            if len(parts) == len(shape) and all(
                s == "*" or s == p for s, p in zip(shape, parts, strict=True)
            ):
                return True
        return False

    def _is_create(self, scope: Scope) -> bool:
        return self._is(scope, "POST", ("sandboxes",), ("v2", "sandboxes"))

    def _is_connect(self, scope: Scope) -> bool:
        return self._is(
            scope, "POST", ("sandboxes", "*", "connect"), ("v2", "sandboxes", "*", "connect")
        )

    def _is_list(self, scope: Scope) -> bool:
        return self._is(scope, "GET", ("v2", "sandboxes"))

    def _caller(self, scope: Scope) -> Caller | None:
        key = self.settings.key(_header(scope, b"x-api-key") or "")
        return Caller(namespace=key.namespace, user=key.id) if key is not None else None

    async def _edit_json_body(
        self, scope: Scope, receive: Receive, edit: Callable[[dict[str, Any]], None]
    ) -> tuple[Scope, Receive]:
        raw = await read_body(receive)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            edit(body)
            raw = json.dumps(body).encode()
            scope = _with_headers(scope, {b"content-length": str(len(raw)).encode()})
        return scope, replay(raw, receive)

    # -- the breakages --------------------------------------------------------------------

    async def _auth_open(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"x-api-key")
        valid = [k for k in self.settings.api_keys if not k.admin]
        if self._control(scope) and valid and self.settings.key(key or "") is None:
            scope = _with_headers(scope, {b"x-api-key": valid[0].key.encode()})
        await self.app(scope, receive, send)

    async def _error_body_shape(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._control(scope):
            await self.app(scope, receive, send)
            return
        answer = await call(self.app, scope, receive)
        body = answer.json()
        if answer.status >= 400 and isinstance(body, dict):
            answer = json_answer(answer, answer.status, {"error": str(body.get("message"))})
        await reply(send, answer)

    async def _create_200(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_create(scope):
            await self.app(scope, receive, send)
            return
        answer = await call(self.app, scope, receive)
        if answer.status == 201:
            answer.status = 200
        await reply(send, answer)

    async def _unknown_template_500(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = self._caller(scope)
        if not self._is_create(scope) or caller is None:
            await self.app(scope, receive, send)
            return
        raw = await read_body(receive)
        try:
            template = json.loads(raw).get("templateID")
        except (ValueError, AttributeError):
            template = None
        answer = await call(self.app, scope, replay(raw, receive))
        known = await anyio.to_thread.run_sync(self.backend.templates, caller)
        if answer.status in (400, 404) and template not in {t.template_id for t in known}:
            answer = json_answer(answer, 500, {"code": 500, "message": "internal error"})
        await reply(send, answer)

    async def _default_timeout_3600(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_create(scope):
            scope, receive = await self._edit_json_body(
                scope, receive, lambda body: body.setdefault("timeout", 3600)
            )
        await self.app(scope, receive, send)

    async def _list_ignores_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_list(scope):
            scope = with_query(scope, lambda pairs: [p for p in pairs if p[0] != "metadata"])
        await self.app(scope, receive, send)

    async def _list_ignores_order(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_list(scope):
            scope = with_query(scope, lambda pairs: [p for p in pairs if p[0] != "order"])
        await self.app(scope, receive, send)

    async def _no_next_token(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_list(scope):
            await self.app(scope, receive, send)
            return
        answer = await call(self.app, scope, receive)
        answer.headers = [(k, v) for k, v in answer.headers if k.lower() != b"x-next-token"]
        await reply(send, answer)

    async def _kill_200(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is(scope, "DELETE", ("sandboxes", "*")):
            await self.app(scope, receive, send)
            return
        answer = await call(self.app, scope, receive)
        if answer.status == 204:
            answer.status = 200
        await reply(send, answer)

    async def _timeout_not_enforced(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._control(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        method, parts = found
        if (
            method == "POST"
            and len(parts) == 3
            and parts[0] == "sandboxes"
            and parts[2] == "timeout"
        ):
            sid = parts[1]
            asked: list[int] = []

            def longer(body: dict[str, Any]) -> None:
                if isinstance(body.get("timeout"), int):
                    asked.append(body["timeout"])
                    body["timeout"] += _HIDDEN_EXTRA_S

            scope, receive = await self._edit_json_body(scope, receive, longer)
            answer = await call(self.app, scope, receive)
            if answer.status == 204 and asked:
                now = await anyio.to_thread.run_sync(self.backend.now)
                self._reported_end[sid] = now + timedelta(seconds=asked[0])
            await reply(send, answer)
            return
        if method == "GET" and (parts[:1] == ["sandboxes"] or parts[:2] == ["v2", "sandboxes"]):
            answer = await call(self.app, scope, receive)
            body = answer.json()
            items = body if isinstance(body, list) else [body]
            changed = False
            for item in items:
                if isinstance(item, dict) and item.get("sandboxID") in self._reported_end:
                    item["endAt"] = _format_time(self._reported_end[item["sandboxID"]])
                    changed = True
            if changed:
                answer = json_answer(answer, answer.status, body)
            await reply(send, answer)
            return
        await self.app(scope, receive, send)

    async def _connect_shortens(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = self._caller(scope)
        found = self._control(scope)
        if not self._is_connect(scope) or caller is None or found is None:
            await self.app(scope, receive, send)
            return
        raw = await read_body(receive)
        try:
            timeout = json.loads(raw).get("timeout")
        except (ValueError, AttributeError):
            timeout = None
        answer = await call(self.app, scope, replay(raw, receive))
        sid = found[1][-2]
        if answer.status == 200 and isinstance(timeout, int) and timeout > 0:
            # Best effort, like the bug it plays: a sandbox paused meanwhile keeps its timeout.
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.backend.set_timeout, caller, sid, timeout)
        await reply(send, answer)

    async def _pause_twice_resumes(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's own 204 for a paused sandbox (Kruise §6.5) is right; a pause that
        # toggles it back to running, as a buggy "pause" flipping spec.paused would, is not.
        caller = self._caller(scope)
        found = self._control(scope)
        is_pause = self._is(scope, "POST", ("sandboxes", "*", "pause"))
        if not is_pause or caller is None or found is None:
            await self.app(scope, receive, send)
            return
        sid = found[1][-2]
        try:
            view = await anyio.to_thread.run_sync(self.backend.describe, caller, sid)
        except ClaimError:
            view = None  # the server's own answer (404) follows
        answer = await call(self.app, scope, receive)
        if answer.status == 204 and view is not None and view.state == "paused":
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.backend.connect, caller, sid, None)
        await reply(send, answer)

    async def _resume_200(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_connect(scope):
            await self.app(scope, receive, send)
            return
        answer = await call(self.app, scope, receive)
        if answer.status == 201:
            answer.status = 200
        await reply(send, answer)

    async def _auto_pause_kills(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_create(scope):

            def no_pause(body: dict[str, Any]) -> None:
                if body.get("autoPause"):
                    body["autoPause"] = False

            scope, receive = await self._edit_json_body(scope, receive, no_pause)
        await self.app(scope, receive, send)

    async def _proxy_502_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._sandbox(scope) is None:
            await self.app(scope, receive, send)
            return
        sent_502 = False

        async def rewrite(message: Message) -> None:
            nonlocal sent_502
            if message["type"] == "http.response.start" and message["status"] == 502:
                sent_502 = True
                body = json.dumps({"code": 502, "message": "Bad gateway"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 502,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            if not sent_502:
                await send(message)

        await self.app(scope, receive, rewrite)

    async def _envd_no_token_check(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._sandbox(scope)
        if target is None or target[1] != str(ENVD_PORT):
            await self.app(scope, receive, send)
            return
        route = await anyio.to_thread.run_sync(self.backend.route, target[0])
        if route is not None and route.access_token:
            scope = _with_headers(scope, {b"x-access-token": route.access_token.encode()})
        await self.app(scope, receive, send)

    async def _code_loses_state(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._sandbox(scope)
        if (
            target is None
            or target[1] != str(JUPYTER_PORT)
            or scope["method"] != "POST"
            or scope["path"] != "/execute"
        ):
            await self.app(scope, receive, send)
            return

        def forget(body: dict[str, Any]) -> None:
            if body.get("language") in (None, "python") and isinstance(body.get("code"), str):
                body["code"] = "%reset -f\n" + body["code"]

        scope, receive = await self._edit_json_body(scope, receive, forget)
        await self.app(scope, receive, send)

    async def _label_ignored(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_create(scope):

            def drop(body: dict[str, Any]) -> None:
                meta = body.get("metadata")
                if isinstance(meta, dict):
                    body["metadata"] = {k: v for k, v in meta.items() if not k.startswith("label:")}

            scope, receive = await self._edit_json_body(scope, receive, drop)
        await self.app(scope, receive, send)

    async def _never_timeout_ignored(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_create(scope):

            def drop(body: dict[str, Any]) -> None:
                meta = body.get("metadata")
                if isinstance(meta, dict):
                    meta.pop(_NEVER_TIMEOUT, None)

            scope, receive = await self._edit_json_body(scope, receive, drop)
        await self.app(scope, receive, send)


def break_app(app: ASGIApp, breakage: str, *, backend: Backend, settings: Settings) -> ASGIApp:
    """``app`` with the behaviour named ``breakage`` wrong (``ValueError`` for an unknown name)."""
    return BreakingMiddleware(app, breakage, backend=backend, settings=settings)
