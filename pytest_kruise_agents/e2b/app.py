"""``create_app(backend, settings)``: the E2B-compatible server as one ASGI app.

Layers, outermost first (a request target in absolute form, ``GET
http://host/path``, is first read as ``GET /path`` to ``host``:
:mod:`~pytest_kruise_agents.e2b.targets`):

1. :class:`~pytest_kruise_agents.e2b.errors.GuardMiddleware` — nothing
   unexpected escapes as anything but a 500 JSON answer;
2. :class:`~pytest_kruise_agents.e2b.traffic.SandboxTrafficRouter` — sandbox
   traffic (by header or host) to envd (49983) or the code interpreter (49999);
3. :class:`~pytest_kruise_agents.e2b.limits.BodyLimitMiddleware` — 413 for
   oversized control-plane bodies;
4. the FastAPI control plane: the E2B routes natively and under
   ``/kruise/api`` (those not served answer 401, then 501:
   :mod:`~pytest_kruise_agents.e2b.unserved`), the admin API under
   ``/_kruise/``, ``/health``, ``/metrics`` (Prometheus) and ``/openapi.json``.

The app subscribes to the backend: a sandbox that pauses has its workspace
stopped (processes killed, files kept), a sandbox that is gone has it
removed. Those notifications arrive on the backend's threads and are handed
to the app's event loop, captured at lifespan startup; lifespan shutdown
closes every workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from pytest_kruise_agents.backends.base import Backend
from pytest_kruise_agents.e2b import admin, control, unserved
from pytest_kruise_agents.e2b.auth import admin_of, caller_of, security_schemes
from pytest_kruise_agents.e2b.cuts import TrackedSend, mark_cut
from pytest_kruise_agents.e2b.drain import DrainBeforeErrorMiddleware
from pytest_kruise_agents.e2b.errors import (
    GuardMiddleware,
    error_body,
    install_error_handlers,
    request_id,
    send_json,
)
from pytest_kruise_agents.e2b.expect import AuthBeforeContinueMiddleware
from pytest_kruise_agents.e2b.limits import BodyLimitMiddleware, too_large_response
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.e2b.state import ServerState
from pytest_kruise_agents.e2b.targets import origin_form
from pytest_kruise_agents.e2b.traffic import (
    ENVD_PORT,
    JUPYTER_PORT,
    LazyApp,
    SandboxTrafficRouter,
    WorkspacesLike,
)

__all__ = ["SHUTTING_DOWN", "E2BApp", "create_app"]

log = logging.getLogger("pytest_kruise_agents.e2b")

AppFactory = Callable[[Any], ASGIApp]
"""Builds a sandbox-port app from the workspaces (``make_envd_app``, ``make_interpreter_app``)."""


def _default_envd(workspaces: Any) -> ASGIApp:
    from pytest_kruise_agents.e2b.envd import make_envd_app

    app: ASGIApp = make_envd_app(workspaces)
    return app


def _default_interpreter(workspaces: Any) -> ASGIApp:
    from pytest_kruise_agents.e2b.interpreter import make_interpreter_app

    app: ASGIApp = make_interpreter_app(workspaces)
    return app


async def _health() -> str:
    """``OK`` while the server runs (the sandbox-manager's ``/health``)."""
    return "OK"


async def _metrics(request: Request) -> PlainTextResponse:
    """The cluster's Prometheus metrics, text exposition format (the sandbox-manager's
    ``/metrics`` on its port). No API key, as upstream: Prometheus scrapes without one."""
    state: ServerState = request.app.state.kruise
    text = await state.run("admin", state.backend.metrics_text)
    # text/plain with the format's version, as prometheus_client's own servers answer.
    return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)


class E2BApp:
    """The ASGI app :func:`create_app` returns (see the module docstring).

    Attributes: ``control`` (the FastAPI app), ``router`` (sandbox traffic),
    ``sandbox_apps`` (port → app), ``state`` (backend and settings), ``workspaces``.
    """

    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        *,
        workspaces: WorkspacesLike | None,
        envd_app: ASGIApp | None,
        interpreter_app: ASGIApp | None,
    ) -> None:
        self.state = ServerState(backend=backend, settings=settings)
        self._own_root: Path | None = None
        if workspaces is None:
            from pytest_kruise_agents.e2b.workspace import Workspaces

            root = settings.workspace_root
            if root is None:
                # Named now, created by the first sandbox that is used: an app that
                # never serves traffic leaves nothing behind.
                root = self._own_root = (
                    Path(tempfile.gettempdir()) / f"kruise-e2b-{uuid.uuid4().hex}"
                )
            workspaces = Workspaces(root)
        self.workspaces: WorkspacesLike = workspaces
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closing = False
        self._cleanups: dict[str, asyncio.Task[None]] = {}
        """The latest workspace cleanup of each sandbox, while it runs (it awaits the earlier ones)."""

        self.control = self._build_control()
        ws = workspaces
        apps: dict[int, ASGIApp] = {
            ENVD_PORT: _sub_app(envd_app, _default_envd, ws),
            JUPYTER_PORT: _sub_app(interpreter_app, _default_interpreter, ws),
        }
        self.sandbox_apps = apps
        self.router = SandboxTrafficRouter(
            AuthBeforeContinueMiddleware(
                BodyLimitMiddleware(
                    self.control,
                    settings.max_body_bytes,
                    # Manifests are YAML, read as kubectl reads them: bytes that are not
                    # UTF-8 are refused (400 body), not applied as U+FFFD.
                    verbatim=frozenset({admin.ADMIN_PREFIX + "/apply"}),
                ),
                self._authorize_unrouted,
            ),
            self.state,
            ws,
            apps,
            settle=self._settled,
        )
        self._entry = DrainBeforeErrorMiddleware(GuardMiddleware(self.router))
        backend.subscribe(self._on_sandbox_state)

    # -- the control plane ------------------------------------------------------------

    def _build_control(self) -> FastAPI:
        app = FastAPI(
            title="pytest-kruise-agents E2B control plane",
            version="1",
            description=(
                "The OpenKruise Agents sandbox-manager's E2B API over a fake cluster. Every route "
                "is also served under /kruise/api. Errors are JSON {code, message}."
            ),
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
            # A path with a trailing slash is an unknown route (JSON 404), not an empty
            # 307: no SDK sends one, and the SDK never follows redirects.
            redirect_slashes=False,
        )
        app.state.kruise = self.state
        app.state.settings = self.state.settings
        install_error_handlers(app, authorize=self._authorize)
        # Unserved E2B routes answer 401, then 501 (see unserved): the few whose path a
        # served route would take come first, the rest after, off the hot paths.
        prefix = control.CUSTOMIZED_PREFIX
        app.router.routes.extend(unserved.routes("", first=True))
        # The native routes themselves, not app.include_router(control.router): FastAPI
        # matches an included router's routes twice per request (to pick the router,
        # then the route), on the hottest paths.
        app.router.routes.extend(control.router.routes)
        app.router.routes.extend(unserved.routes(prefix, first=True))
        app.include_router(control.router, prefix=prefix, include_in_schema=False)
        app.router.routes.extend(unserved.routes("", first=False))
        app.router.routes.extend(unserved.routes(prefix, first=False))
        app.include_router(admin.router, include_in_schema=False)
        # Module-level handlers, never closures over this app: FastAPI caches what it
        # learns of each handler (keyed by the function, up to 4,096 of them), so a
        # closure made per app kept every app, its cluster included, for the process's
        # life (the plugin builds one per test).
        app.add_api_route(
            "/health", _health, name="health", response_class=PlainTextResponse, summary="Liveness"
        )
        app.add_api_route(
            "/metrics",
            _metrics,
            name="metrics",
            response_class=PlainTextResponse,
            summary="Prometheus metrics",
        )

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                generated = get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
                app.openapi_schema = _published(generated, self.state.settings.max_body_bytes)
            return app.openapi_schema

        app.openapi = openapi  # type: ignore[method-assign]
        return app

    _CONTROL_ROUTES: frozenset[str] = frozenset(
        r.name for r in control.router.routes if isinstance(r, APIRoute)
    )

    async def _authorize(self, request: Request) -> None:
        """Raise what upstream's auth middleware answers first (see ``install_error_handlers``).

        The route's 401/403, then, for a sandbox's route, the 404 of a sandbox
        that is not the caller's (:func:`~pytest_kruise_agents.e2b.control.require_route`).
        """
        key = request.headers.get("x-api-key")
        settings = self.state.settings
        if request.url.path.startswith(admin.ADMIN_PREFIX + "/"):
            admin_of(settings, key)
        elif getattr(request.scope.get("route"), "name", None) in self._CONTROL_ROUTES:
            caller = caller_of(settings, key)
            sandbox_id = request.path_params.get(control.SANDBOX_PARAM)
            if sandbox_id is not None:
                await control.require_route(request, caller, sandbox_id)

    async def _authorize_unrouted(self, scope: Scope) -> None:
        """:meth:`_authorize` for a request FastAPI has not routed yet (its body unread).

        Matched against the control plane's own routes (the customized prefix
        removed): they name the route :meth:`_authorize` asks for.
        """
        path: str = scope["path"]
        if path.startswith(control.CUSTOMIZED_PREFIX + "/"):
            path = path.removeprefix(control.CUSTOMIZED_PREFIX)
        routed: dict[str, Any] = {**scope, "app": self.control}
        for route in control.router.routes:
            match, child = route.matches({**scope, "path": path})
            if match is Match.FULL:
                routed.update(child, route=route)
                break
        await self._authorize(Request(routed))

    # -- lifespan and backend notifications ---------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        self._set_loop(asyncio.get_running_loop())
        self._closing = False
        self.state.reset_limiters()
        try:
            yield
        finally:
            await self.aclose()

    def _set_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None

    def _on_sandbox_state(self, sandbox_id: str, state: str | None) -> None:
        # Called under the backend's lock, on a backend thread or on the loop itself
        # (a call answered at once): only hand over to the loop.
        if state is None:
            self.state.networks.forget(sandbox_id)  # one dict operation: safe from any thread
        if state == "running" or self._closing:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        action = self.workspaces.stop if state == "paused" else self.workspaces.remove
        if threading.get_ident() == self._loop_thread:
            loop.call_soon(self._spawn, action, sandbox_id)  # no wake-up needed
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._spawn, action, sandbox_id)

    def _spawn(self, action: Callable[[str], Awaitable[None]], sandbox_id: str) -> None:
        # A request whose route lookup is in flight may have seen the sandbox
        # running: told now, in the backend's order, it takes no workspace.
        self.router.stopped(sandbox_id)
        # Registered at once, on the loop, before any later request is read: the
        # router holds the sandbox's traffic until the cleanup ends (_settled).
        previous = self._cleanups.get(sandbox_id)

        async def run() -> None:
            if previous is not None:
                # In order: a pause's stop, then a kill's removal (wait never raises).
                await asyncio.wait([previous])
            try:
                await action(sandbox_id)
            except Exception:
                log.exception("workspace cleanup of %s failed", sandbox_id)

        task = asyncio.get_running_loop().create_task(run())
        self._cleanups[sandbox_id] = task
        task.add_done_callback(partial(self._cleaned, sandbox_id))

    def _cleaned(self, sandbox_id: str, task: asyncio.Task[None]) -> None:
        if self._cleanups.get(sandbox_id) is task:
            del self._cleanups[sandbox_id]

    async def _settled(self, sandbox_id: str) -> None:
        """Return once no workspace cleanup of ``sandbox_id`` runs.

        A resumed sandbox's traffic waits here for its pause's cleanup, which
        would otherwise kill the commands it starts (they carry the same
        workspace marker as the ones the pause kills).
        """
        task = self._cleanups.get(sandbox_id)
        if task is not None:
            # asyncio.wait neither cancels the cleanup when the client gives up
            # nor raises if the cleanup was cancelled (at shutdown).
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """Finish pending workspace cleanups and close every workspace (lifespan shutdown)."""
        self._closing = True
        if self._cleanups:
            # The latest cleanup of each sandbox ends after the earlier ones.
            await asyncio.gather(*list(self._cleanups.values()), return_exceptions=True)
        try:
            await self.workspaces.close()
        except Exception:
            log.exception("closing the workspaces failed")
        for sub in self.sandbox_apps.values():
            # The interpreter owns kernels: close the sub-apps that were built.
            target = sub.built if isinstance(sub, LazyApp) else sub
            aclose = getattr(target, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("closing %r failed", target)
        if self._own_root is not None:
            await asyncio.to_thread(shutil.rmtree, self._own_root, True)
        self._set_loop(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._entry(scope, receive, send)
            return
        if self._loop is None:
            # Served without a lifespan (e.g. an in-process ASGI transport).
            self._set_loop(asyncio.get_running_loop())
        await _answered_if_cancelled(self._entry, origin_form(scope), receive, send)


SHUTTING_DOWN = "the server is shutting down"
"""The message of the 503 a request cut by the server's shutdown answers."""


async def _answered_if_cancelled(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """``app``; cancelled (the server stops), a 503 JSON answer if one can still be sent.

    uvicorn cancels the requests still open once its graceful shutdown has
    passed (``Cancel N running task(s)``). A cancellation raised on would be
    logged as "Exception in ASGI application", one traceback per request,
    and answered with a plain-text 500 the SDK cannot decode. Only a
    shutdown cancels a request's task: the server stops, nothing is lost by
    ending the request here. An answer already begun is cut (no error to log).
    """
    tracked = TrackedSend(send)
    try:
        await app(scope, receive, tracked)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # handled: the task ends normally
        if tracked.started:
            mark_cut()
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = error_body(503, SHUTTING_DOWN, rid=request_id(headers))
        # The SDK retries a 503 by default: this server will not be there to answer.
        await send_json(send, 503, body, [(b"should-retry", b"false")])


def _sub_app(given: ASGIApp | None, default: AppFactory, workspaces: Any) -> ASGIApp:
    # The defaults are imported and built on first use: the interpreter pulls in jupyter_client.
    if given is None:
        return LazyApp(lambda: default(workspaces))
    return given


def _without_422(schema: dict[str, Any]) -> dict[str, Any]:
    # Validation errors answer 400 with the Error body, never FastAPI's 422.
    # The routes check the API key themselves (see auth): declare its scheme here.
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(security_schemes())
    for path in schema.get("paths", {}).values():
        for op in path.values():
            if isinstance(op, dict):
                op.get("responses", {}).pop("422", None)
    schemas = schema.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return schema


def _published(schema: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The OpenAPI document as served: FastAPI's, with what it cannot say by itself."""
    published = _with_413(_without_422(schema), max_bytes)
    _whole_bounds(published)
    return published


def _with_413(schema: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    # BodyLimitMiddleware answers 413 for a body over the limit, before any route runs:
    # every operation that takes a body may answer it.
    for path in schema.get("paths", {}).values():
        for op in path.values():
            if isinstance(op, dict) and "requestBody" in op:
                op.setdefault("responses", {})["413"] = too_large_response(max_bytes)
    return schema


_BOUNDS: Final = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _whole_bounds(node: Any) -> None:
    # FastAPI reads the document through models whose bounds are floats: 30 comes out as
    # 30.0, and a client generating from it sends {"timeout": 30.0}, which the server (as
    # Go's decoder into an int) refuses. Whole bounds are written as integers again.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = int(value)
            else:
                _whole_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _whole_bounds(item)


def create_app(
    backend: Backend,
    settings: Settings | None = None,
    *,
    workspaces: WorkspacesLike | None = None,
    envd_app: ASGIApp | None = None,
    interpreter_app: ASGIApp | None = None,
) -> E2BApp:
    """The E2B-compatible ASGI app serving ``backend`` (see the module docstring).

    :param settings: API keys, domain, limits; ``Settings()`` if omitted.
    :param workspaces: the sandbox workspaces; a
        :class:`~pytest_kruise_agents.e2b.workspace.Workspaces` under
        ``settings.workspace_root`` (a temporary directory if unset) by default.
    :param envd_app: the app for port 49983; ``make_envd_app(workspaces)`` by default.
    :param interpreter_app: the app for port 49999; ``make_interpreter_app(workspaces)``
        by default (built on its first request).
    """
    return E2BApp(
        backend,
        settings if settings is not None else Settings(),
        workspaces=workspaces,
        envd_app=envd_app,
        interpreter_app=interpreter_app,
    )
