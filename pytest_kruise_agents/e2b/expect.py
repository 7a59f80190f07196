"""Authorize a request that waits for ``100 Continue`` before its body is asked for.

A client sending ``Expect: 100-continue`` holds its body back until the
server asks for it, which uvicorn does at the first ``receive()``. The
control plane reads the body before FastAPI routes the request
(:class:`~pytest_kruise_agents.e2b.limits.BodyLimitMiddleware`), and so
before the route's authorization: a wrong key was asked for its body (up to
the body limit), then refused. Upstream's auth middleware answers before any
handler reads the body, so Go's server never sends the ``100`` then.

:class:`AuthBeforeContinueMiddleware` runs the authorization first for such
a request and answers its error unread. Requests without ``Expect`` skip it:
their body comes anyway, and the route authorizes them as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from pytest_kruise_agents.e2b.drain import expects_continue
from pytest_kruise_agents.e2b.errors import ApiError, error_response

__all__ = ["AuthBeforeContinueMiddleware"]


class AuthBeforeContinueMiddleware:
    """ASGI middleware: a request with ``Expect: 100-continue`` is authorized before its body.

    ``authorize`` raises the :class:`~pytest_kruise_agents.e2b.errors.ApiError`
    the request's route answers first (401, 403, the 404 of a sandbox that is
    not the caller's), from the scope alone; it is answered as JSON.
    """

    def __init__(self, app: ASGIApp, authorize: Callable[[Scope], Awaitable[None]]) -> None:
        self.app = app
        self.authorize = authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and expects_continue(scope):
            try:
                await self.authorize(scope)
            except ApiError as err:
                response = error_response(
                    err.code,
                    err.message,
                    request=Request(scope),
                    headers=err.headers,
                    extra=err.extra,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
