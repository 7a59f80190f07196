"""Every error the server answers is JSON: ``{"code": int, "message": str, "request_id": str}``.

This module turns whatever goes wrong into that body: coded
:class:`~pytest_kruise_agents.claiming.errors.ClaimError` from the backend,
:class:`ApiError` raised by the routes, FastAPI validation errors (400 naming
the field, or upstream's 500 where the Go server answers 500), unknown routes
(404), wrong methods (405, ``Allow`` listing every method of the path), bad
resources (400/404), writes the cluster refuses (403), and, via
:class:`GuardMiddleware`, any unexpected exception (500) — the server never
drops a request. :class:`WireJSONResponse` renders every JSON answer of the
control plane and the admin API, so no string can make an answer fail.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends.base import ResourceForbidden, ResourceNotFound
from pytest_kruise_agents.claiming.errors import ClaimError

__all__ = [
    "BODY_ERROR_POLICY",
    "NESTED_TOO_DEEPLY",
    "ApiError",
    "BodyErrorPolicy",
    "GuardMiddleware",
    "WireJSONResponse",
    "allowed_methods",
    "error_body",
    "error_response",
    "install_error_handlers",
    "request_id",
    "send_json",
    "validation_message",
]

log = logging.getLogger("pytest_kruise_agents.e2b")

BodyErrorPolicy = Literal["malformed-500", "all-500"]

BODY_ERROR_POLICY: Final[dict[str, BodyErrorPolicy]] = {
    # Go's handlers answer an ApiError with Code 0 (a JSON decode error) as 500.
    "create_sandbox_v1": "malformed-500",
    "create_sandbox_v2": "malformed-500",
    # /timeout answers 500 for every error but 404 "to follow the E2B spec";
    # /resume answers 500 for a body it cannot parse (reference §6.5).
    "set_timeout": "all-500",
    "resume_sandbox": "all-500",
}
"""Routes (by endpoint name) whose request-body errors upstream answers 500 instead of 400."""

NESTED_TOO_DEEPLY: Final = "json_nested_too_deeply"
"""The validation-error type of a JSON body past this server's depth limit, not Go's.

Always a 400, whatever the route's :data:`BODY_ERROR_POLICY`: upstream reads
such a body, so it is no body error of upstream's to copy.
"""

_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""The methods a 405's ``Allow`` may list, in the order it lists them."""

_REASONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class WireJSONResponse(JSONResponse):
    """Starlette's ``JSONResponse``, with lone surrogates answered as U+FFFD instead of failing.

    Request bodies have them replaced on the way in
    (:func:`~pytest_kruise_agents.api.e2b.replace_surrogates`); this is the
    net under any other path by which one could reach an answer (a message
    quoting input, a value stored by other means).
    """

    def render(self, content: Any) -> bytes:
        """UTF-8 JSON of ``content``; strings holding a lone surrogate are rendered repaired."""
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return super().render(replace_surrogates(content))


class ApiError(Exception):
    """An error a route answers directly: HTTP ``code``, ``message`` and extra body fields."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(message)


def request_id(headers: Mapping[str, str] | None) -> str:
    """The caller's ``X-Request-ID`` (echoed, as upstream does) or a fresh one."""
    if headers is not None:
        rid = headers.get("x-request-id")
        if rid:
            return rid[:128]
    return uuid.uuid4().hex


def error_body(code: int, message: str, *, rid: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON error object."""
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    body["request_id"] = rid or uuid.uuid4().hex
    return body


def error_response(
    code: int,
    message: str,
    *,
    request: Request | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A JSON error response for ``request``; ``extra`` adds fields to the body."""
    rid = request_id(request.headers if request is not None else None)
    return WireJSONResponse(
        error_body(code, message, rid=rid, **(extra or {})),
        status_code=code,
        headers=dict(headers or {}),
    )


async def send_json(
    send: Send, status: int, body: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer a raw ASGI request with a JSON body (for code below the framework)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _loc_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts[0]
        parts = parts[1:]
        if not parts:
            return where
    return ".".join(parts)


def validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """``(field, message)`` of the first validation error: ``"timeout: Input should be ..."``."""
    if not errors:
        return "", "invalid request"
    err = errors[0]
    if err.get("type") == "json_invalid":
        detail = (err.get("ctx") or {}).get("error", "invalid JSON")
        return "body", f"body: malformed JSON: {detail}"
    field = _loc_path(err.get("loc") or ())
    msg = str(err.get("msg") or "invalid value")
    return field, f"{field}: {msg}" if field else msg


def _is_malformed(errors: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the body as a whole is unusable: not JSON, absent, or not a JSON object.

    Go's decoder fails on all of these before looking at any field.
    """
    for err in errors:
        if err.get("type") == "json_invalid":
            return True
        if tuple(err.get("loc") or ()) == ("body",):
            return True
    return False


def _validation_handler(
    authorize: Callable[[Request], Awaitable[None]] | None,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if authorize is not None:
            # FastAPI reads the body before it runs the auth dependency; upstream's auth
            # middleware answers first, so an unauthenticated bad body is still a 401,
            # and a bad body for another key's sandbox a 404.
            try:
                await authorize(request)
            except ApiError as err:
                return error_response(err.code, err.message, request=request)
        errors = exc.errors()
        field, message = validation_message(errors)
        route = request.scope.get("route")
        policy = BODY_ERROR_POLICY.get(getattr(route, "name", ""))
        in_body = any(next(iter(e.get("loc") or ("",))) == "body" for e in errors)
        ours = any(e.get("type") == NESTED_TOO_DEEPLY for e in errors)
        code = 400
        if (
            in_body
            and not ours
            and (policy == "all-500" or (policy == "malformed-500" and _is_malformed(errors)))
        ):
            code = 500
        return error_response(code, message, request=request, extra={"field": field})

    return on_validation


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.code, exc.message, request=request, headers=exc.headers, extra=exc.extra
    )


async def _on_claim_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClaimError)
    extra = {"field": exc.field} if exc.field else None
    return error_response(exc.code, exc.message, request=request, extra=extra)


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidError)
    # Bad input is a 400; a write based on an old resourceVersion is a conflict.
    status = 409 if exc.code == 409 else 400
    return error_response(status, str(exc), request=request, extra={"field": exc.field})


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ResourceNotFound)
    return error_response(404, str(exc), request=request)


async def _on_forbidden(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ResourceForbidden)
    return error_response(403, str(exc), request=request)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware renders this, then re-raises for the
    # GuardMiddleware to log: the client still gets JSON.
    return error_response(
        500, f"internal server error: {type(exc).__name__}: {exc}", request=request
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else None
    message = detail or _REASONS.get(code, "error")
    headers = dict(exc.headers or {})
    if code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    elif code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
        # Starlette's Allow names only the methods of the first route whose path
        # matched; FastAPI has one route per method (GET and DELETE /sandboxes/{id}).
        headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
    return error_response(code, message, request=request, headers=headers)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods some route in ``routes`` answers for ``scope``'s path (RFC 9110 ``Allow``)."""
    allowed = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "headers": [],
        }
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def install_error_handlers(
    app: FastAPI, *, authorize: Callable[[Request], Awaitable[None]] | None = None
) -> None:
    """Register the JSON error handlers on ``app``.

    ``await authorize(request)`` raises :class:`ApiError` (401/403, or 404 for
    a sandbox that is not the caller's) when the caller may not use the
    route; it is checked before a validation error is answered.
    """
    app.add_exception_handler(RequestValidationError, _validation_handler(authorize))
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(ClaimError, _on_claim_error)
    app.add_exception_handler(InvalidError, _on_invalid)
    app.add_exception_handler(ResourceNotFound, _on_not_found)
    app.add_exception_handler(ResourceForbidden, _on_forbidden)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


class GuardMiddleware:
    """Outermost ASGI layer: an exception nobody handled answers 500 JSON and is logged.

    If the response had already started, the connection is simply ended: a
    half-sent response cannot be turned into an error any more. A client that
    disconnected before its body was read is logged at debug level only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except ClientDisconnect:
            # The client went away before its body was read (it gave up, or was stopped):
            # nobody is left to answer, and it is no error of the server's.
            log.debug("client went away on %s %s", scope.get("method"), scope.get("path"))
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            body = error_body(
                500, f"internal server error: {type(exc).__name__}: {exc}", rid=request_id(headers)
            )
            await send_json(send, 500, body)
