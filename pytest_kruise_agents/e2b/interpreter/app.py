"""The code-interpreter server of a sandbox (its port 49999): ``/execute`` and ``/contexts``.

The sandbox router calls this ASGI app with the sandbox's workspace in
``scope["state"]["kruise_workspace"]``; one app serves every sandbox and keeps
their contexts apart. Wire format: reference ``e2b-protocol.md`` §5 and the
``e2b_code_interpreter`` client.

=====================================  ==================================================
``POST /execute``                      200 NDJSON stream (cut without its last chunk
                                       if the sandbox stops meanwhile); 400 bad body,
                                       context and language both given, or unsupported
                                       language; 401 bad ``X-Access-Token``; 404
                                       unknown context
``POST /contexts``                     200 ``{"id", "language", "cwd"}`` (kernel started)
``GET /contexts``                      200 ``[{"id", "language", "cwd"}, ...]``
``DELETE /contexts/{id}``              200 ``null``; 404 unknown context
``POST /contexts/{id}/restart``        200 ``null`` (fresh kernel, state lost); 404
``GET /health``                        200 ``"OK"`` (no token; starts nothing)
=====================================  ==================================================

Every error is JSON ``{"code": int, "message": str}``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.e2b.cuts import TrackedSend
from pytest_kruise_agents.e2b.interpreter.contexts import ContextRegistry, normalize_language
from pytest_kruise_agents.e2b.interpreter.errors import InterpreterError, error_body
from pytest_kruise_agents.e2b.interpreter.execution import execute
from pytest_kruise_agents.e2b.interpreter.kernels import KernelStartError
from pytest_kruise_agents.e2b.interpreter.requests import (
    parse_context_request,
    parse_execute_request,
)
from pytest_kruise_agents.e2b.interpreter.stops import watch_stop
from pytest_kruise_agents.e2b.interpreter.streaming import CutStream, NdjsonStream
from pytest_kruise_agents.e2b.interpreter.workspace import InterpreterWorkspace, StopHookRegistry

__all__ = ["MAX_BODY_BYTES", "WORKSPACE_STATE_KEY", "InterpreterApp", "make_interpreter_app"]

log = logging.getLogger("pytest_kruise_agents.e2b.interpreter")

WORKSPACE_STATE_KEY: Final = "kruise_workspace"
"""Where the router puts the sandbox's workspace: ``scope["state"][WORKSPACE_STATE_KEY]``."""

MAX_BODY_BYTES: Final = 16 * 1024 * 1024
"""Largest request body accepted (413 beyond): code cells are text, not uploads."""


class InterpreterApp:
    """The ASGI app of the code interpreter, and the owner of every sandbox's kernels.

    ``workspaces``, if it has ``add_stop_hook`` (the
    :class:`~pytest_kruise_agents.e2b.workspace.Workspaces` registry), gets
    :meth:`shutdown_sandbox` as a stop hook, so pausing or removing a sandbox
    stops its kernels. Call :meth:`aclose` when done (the app's lifespan
    shutdown does it when the app is served on its own).
    """

    def __init__(
        self,
        workspaces: object | None = None,
        *,
        kernel_root: Path | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.contexts = ContextRegistry(kernel_root)
        self.max_body_bytes = max_body_bytes
        self._app = Starlette(
            routes=[
                Route("/execute", self._execute, methods=["POST"]),
                Route("/contexts", self._list_contexts, methods=["GET"]),
                Route("/contexts", self._create_context, methods=["POST"]),
                Route("/contexts/{context_id}", self._remove_context, methods=["DELETE"]),
                Route("/contexts/{context_id}/restart", self._restart_context, methods=["POST"]),
                Route("/health", _health, methods=["GET"]),
            ],
            exception_handlers={
                InterpreterError: _on_interpreter_error,
                HTTPException: _on_http_error,
                Exception: _on_unexpected_error,
            },
            lifespan=self._lifespan,
        )
        # A trailing slash is an unknown route (JSON 404), not an empty 307 redirect.
        self._app.router.redirect_slashes = False
        if isinstance(workspaces, StopHookRegistry):
            workspaces.add_stop_hook(self.shutdown_sandbox)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self._app(scope, receive, tracked)
        except Exception:
            # Starlette has answered 500 already (and re-raises for the log).
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not tracked.started:
                await _send_json(
                    send, 500, error_body(500, "internal error of the code interpreter")
                )

    async def shutdown_sandbox(self, sandbox_id: str) -> None:
        """Stop the sandbox's kernels and forget its contexts (a Workspaces stop hook)."""
        await self.contexts.shutdown_sandbox(sandbox_id)

    async def aclose(self) -> None:
        """Stop every kernel and remove the kernels' files."""
        await self.contexts.aclose()

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    # -- routes ------------------------------------------------------------------------------

    async def _execute(self, request: Request) -> Response:
        workspace = _workspace(request)
        _check_access_token(request, workspace)
        body = parse_execute_request(await self._body(request))
        if body.context_id:
            context = self.contexts.get(workspace, body.context_id)
        else:
            context = self.contexts.default_context(workspace, normalize_language(body.language))
        # Start (or join the start of) the kernel before answering 200, so
        # that a kernel that cannot start is a plain 500.
        try:
            await self.contexts.kernel(context)
        except (KernelStartError, InterpreterError) as exc:
            if workspace.stopped:
                # Stopped while the kernel started: the connection drops, as on E2B.
                return CutStream()
            if isinstance(exc, InterpreterError):
                raise
            raise InterpreterError(500, str(exc)) from exc
        return NdjsonStream(
            partial(execute, self.contexts, context, body.code, body.env_vars),
            watch_stop=partial(watch_stop, workspace),
            stopping=lambda: workspace.stopped,
        )

    async def _list_contexts(self, request: Request) -> Response:
        workspace = _workspace(request)
        return JSONResponse([c.to_json() for c in self.contexts.list_contexts(workspace)])

    async def _create_context(self, request: Request) -> Response:
        workspace = _workspace(request)
        body = parse_context_request(await self._body(request))
        language = normalize_language(body.language)
        try:
            context = await self.contexts.create(workspace, language=language, cwd=body.cwd)
        except KernelStartError as exc:
            raise InterpreterError(500, str(exc)) from exc
        return JSONResponse(context.to_json())

    async def _remove_context(self, request: Request) -> Response:
        workspace = _workspace(request)
        await self.contexts.remove(workspace, request.path_params["context_id"])
        return JSONResponse(None)

    async def _restart_context(self, request: Request) -> Response:
        workspace = _workspace(request)
        try:
            await self.contexts.restart(workspace, request.path_params["context_id"])
        except KernelStartError as exc:
            raise InterpreterError(500, str(exc)) from exc
        return JSONResponse(None)

    async def _body(self, request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise InterpreterError(413, f"body: larger than {self.max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect as exc:
            # Nobody will read the answer; say why in the access log all the same.
            raise InterpreterError(400, "body: the client went away while sending it") from exc
        return b"".join(chunks)


def make_interpreter_app(workspaces: object | None = None, **options: Any) -> InterpreterApp:
    """The code-interpreter ASGI app for the sandboxes of ``workspaces`` (see :class:`InterpreterApp`)."""
    return InterpreterApp(workspaces, **options)


def _workspace(request: Request) -> InterpreterWorkspace:
    state = request.scope.get("state")
    workspace = state.get(WORKSPACE_STATE_KEY) if isinstance(state, Mapping) else None
    if workspace is None:
        raise InterpreterError(
            500,
            "no sandbox workspace in the request: the code interpreter must be "
            "served behind the sandbox router",
        )
    return cast(InterpreterWorkspace, workspace)


async def _health(request: Request) -> Response:
    # Upstream's FastAPI route returns the string "OK", which FastAPI answers as JSON;
    # the template's start script polls it, and it checks no token.
    return JSONResponse("OK")


def _check_access_token(request: Request, workspace: InterpreterWorkspace) -> None:
    # The SDK sends the envd access token on /execute only (reference §1.3).
    expected = workspace.access_token
    if not expected:
        return
    given = request.headers.get("x-access-token", "")
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise InterpreterError(401, "X-Access-Token: missing or invalid access token")


async def _on_interpreter_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InterpreterError)
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.code)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse(
        error_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers
    )


async def _on_unexpected_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body(500, f"internal error of the code interpreter: {type(exc).__name__}: {exc}"),
        status_code=500,
    )


async def _send_json(send: Send, status: int, body: Any) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
