"""Control-plane request bodies: a body over the limit answers 413 JSON; every body is JSON.

The body is read (up to the limit) before the app sees the request, then
replayed: control-plane bodies are small, and a request that is too large
is refused before anything changes. A declared ``Content-Length`` over the
limit is refused without reading.

The Go server decodes a body as JSON whatever its ``Content-Type`` says
(``curl -d`` sends ``application/x-www-form-urlencoded``), so a non-empty body
is presented to the app as ``application/json``; and it reads bytes that are
not UTF-8 as U+FFFD, so such a body is presented repaired, except on the
paths given as ``verbatim`` (the admin apply, whose YAML is read as kubectl
reads it: such bytes are refused, not stored altered).

A route of :class:`NestingBoundRoute` measures its JSON body before FastAPI
parses it: one nested deeper than Go's decoder reads is malformed JSON, as
upstream answers it, and one deeper than this server reads
(:data:`~pytest_kruise_agents.e2b.nesting.MAX_JSON_DEPTH`) a 400 naming
``body``. Parsed, it ended in a ``RecursionError`` (500) or FastAPI's
"There was an error parsing the body". A route that reads its body itself
(the admin apply) calls :func:`check_nesting` (and :func:`too_deep_error`
for a measure of its own) to answer the same.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pytest_kruise_agents.e2b.errors import NESTED_TOO_DEEPLY, error_body, request_id, send_json
from pytest_kruise_agents.e2b.nesting import GO_JSON_DEPTH, depth_over, too_deep_message

__all__ = [
    "BodyLimitMiddleware",
    "NestingBoundRoute",
    "check_nesting",
    "nesting_error",
    "too_deep_error",
    "too_large_message",
    "too_large_response",
]


def too_large_message(max_bytes: int) -> str:
    """The ``message`` of the 413 answered for a body over ``max_bytes``."""
    return f"request body is larger than the limit of {max_bytes} bytes"


def too_large_response(max_bytes: int) -> dict[str, Any]:
    """The 413 of the OpenAPI document, for the operations that take a body."""
    return {
        "description": f"Request body over {max_bytes} bytes ({too_large_message(max_bytes)!r})",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


class BodyLimitMiddleware:
    """ASGI middleware refusing HTTP request bodies longer than ``max_bytes`` (413).

    :param verbatim: paths whose bodies are passed on with their bytes as sent,
        invalid UTF-8 included, for the route to refuse.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, *, verbatim: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.verbatim = verbatim

    async def _refuse(self, scope: Scope, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = error_body(
            413, too_large_message(self.max_bytes), rid=request_id(headers), field="body"
        )
        await send_json(send, 413, body, headers=[(b"connection", b"close")])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            lname = name.lower()
            if lname == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(scope, send)
                    return
            elif lname == b"content-type":
                content_type = value if content_type is None else b""  # twice: rewrite
        chunks: list[bytes] = []
        size = 0
        disconnected = False
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and not body.isascii() and scope["path"] not in self.verbatim:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                # Go's encoding/json reads invalid UTF-8 as U+FFFD; the JSON
                # parser here would refuse the whole body without naming a field.
                body = body.decode("utf-8", errors="replace").encode("utf-8")
        if body and content_type != b"application/json":  # what the SDKs send: left as is
            scope = dict(scope)
            scope["headers"] = [
                (k, v) for k, v in scope["headers"] if k.lower() != b"content-type"
            ] + [(b"content-type", b"application/json")]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": body, "more_body": False}
            # After the body, a receive waits for the client to go away.
            return await receive()

        await self.app(scope, replay, send)


def nesting_error(body: bytes) -> dict[str, Any] | None:
    """The validation error of a JSON ``body`` nested too deeply, ``None`` for any other body.

    Past Go's :data:`~pytest_kruise_agents.e2b.nesting.GO_JSON_DEPTH`, malformed
    JSON (the route answers it as upstream answers a body its decoder fails
    on); past this server's limit only, :data:`~pytest_kruise_agents.e2b.errors.NESTED_TOO_DEEPLY`.
    """
    depth = depth_over(body)
    if depth is None:
        return None
    if depth > GO_JSON_DEPTH:
        detail = f"exceeded max depth ({GO_JSON_DEPTH} levels)"
        return {"type": "json_invalid", "loc": ("body",), "msg": detail, "ctx": {"error": detail}}
    return too_deep_error(depth)


def too_deep_error(depth: int) -> dict[str, Any]:
    """The validation error of a body ``depth`` levels deep, past this server's limit."""
    return {"type": NESTED_TOO_DEEPLY, "loc": ("body",), "msg": too_deep_message(depth)}


def check_nesting(body: bytes) -> None:
    """Raise the ``RequestValidationError`` of :func:`nesting_error` for a ``body`` nested too deeply."""
    error = nesting_error(body)
    if error is not None:
        raise RequestValidationError([error])


class NestingBoundRoute(APIRoute):
    """An ``APIRoute`` refusing a JSON body nested too deeply before FastAPI parses it.

    Only a route that declares a body: one that reads none answers as if
    there were none (upstream's handler never decodes it), and one that reads
    its body itself calls :func:`check_nesting`.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the depth check for a route that takes a body."""
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def bounded(request: Request) -> Response:
            # Read once: FastAPI's handler takes the same request and its cached body.
            check_nesting(await request.body())
            return await handler(request)

        return bounded
