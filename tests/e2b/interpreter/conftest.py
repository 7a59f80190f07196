"""A code interpreter served on 127.0.0.1 by uvicorn, and real E2B SDK sandboxes pointed at it.

The sandbox router and the backend are not part of these tests:
:class:`WorkspaceRouter`, a tiny ASGI layer, plays the router by putting the
workspace of the ``E2b-Sandbox-Id`` header into
``scope["state"]["kruise_workspace"]`` (and no workspace when the header is
missing), answers envd's ``/health`` (the SDK's ``is_running()``), and
answers 502 "not found" for a sandbox killed with
:meth:`Interpreter.kill_sandbox`. The SDK's ``Sandbox`` objects are built the way
``Sandbox.create`` builds them after the API answers, with ``sandbox_url``
set to the server, so ``run_code`` and the context calls run the SDK's own
code paths over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from e2b import ConnectionConfig
from e2b_code_interpreter import AsyncSandbox, Sandbox
from packaging.version import Version

from pytest_kruise_agents.backends.base import Route
from pytest_kruise_agents.e2b.interpreter import InterpreterApp, make_interpreter_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.workspace import SandboxWorkspace, Workspaces

JUPYTER_PORT = 49999
NOT_FOUND = "The sandbox was not found"


class WorkspaceRouter:
    """Plays the sandbox router: the workspace named by ``E2b-Sandbox-Id`` goes into the scope.

    Workspaces come from the real :class:`Workspaces` registry, made from a
    running :class:`Route` as the router makes them.
    """

    def __init__(self, app: InterpreterApp, workspaces: Workspaces) -> None:
        self.app = app
        self.workspaces = workspaces
        self.killed: set[str] = set()
        """Sandboxes answered 502 "not found", as the router answers for a killed one."""

    def add(
        self, sandbox_id: str, *, env_vars: dict[str, str] | None = None, access_token: str = ""
    ) -> SandboxWorkspace:
        route = Route(
            sandbox_id=sandbox_id,
            namespace="default",
            name=sandbox_id,
            state="running",
            access_token=access_token,
            env_vars=env_vars or {},
            owner="tests",
        )
        return self.workspaces.get(route)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            sandbox_id = headers.get(b"e2b-sandbox-id", b"").decode()
            if sandbox_id in self.killed:
                await _answer(
                    send, 502, {"sandboxId": sandbox_id, "message": NOT_FOUND, "code": 502}
                )
                return
            if headers.get(b"e2b-sandbox-port") == b"49983" and scope["path"] == "/health":
                await _answer(send, 204, None)  # envd's health: the SDK's is_running()
                return
            state: dict[str, Any] = {}
            if sandbox_id:
                state["kruise_workspace"] = self.add(sandbox_id)
            scope = {**scope, "state": state}
        await self.app(scope, receive, send)


async def _answer(send: Any, status: int, body: Any) -> None:
    payload = b"" if body is None else json.dumps(body).encode()
    headers = [(b"content-length", str(len(payload)).encode())]
    if body is not None:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@dataclass
class Interpreter:
    """A served interpreter app and the handles the tests use."""

    app: InterpreterApp
    router: WorkspaceRouter
    workspaces: Workspaces
    url: str

    def stop_sandbox(self, sandbox_id: str) -> None:
        """Pause's cleanup, ``Workspaces.stop``, run from this thread's own event loop."""
        asyncio.run(self.workspaces.stop(sandbox_id))

    def kill_sandbox(self, sandbox_id: str) -> None:
        """A kill: the sandbox answers 502 "not found" from now on, then its cleanup runs."""
        self.router.killed.add(sandbox_id)
        self.stop_sandbox(sandbox_id)

    def runs_waiting(self, sandbox_id: str) -> int:
        """Runs of ``sandbox_id`` waiting for a context behind the cell it runs.

        The waiters of the contexts' locks (asyncio has no public count of them), read
        from the test's thread: what a test waits for instead of sleeping "long enough"
        for a request to reach the server.
        """
        workspace = self.router.add(sandbox_id)
        contexts = self.app.contexts.list_contexts(workspace)
        return sum(len(context.lock._waiters or ()) for context in contexts)

    def headers(self, sandbox_id: str, **extra: str) -> dict[str, str]:
        """The headers the SDK sends to port 49999."""
        return {
            "Content-Type": "application/json",
            "E2b-Sandbox-Id": sandbox_id,
            "E2b-Sandbox-Port": str(JUPYTER_PORT),
            **extra,
        }

    def _opts(self, sandbox_id: str, access_token: str | None) -> dict[str, Any]:
        sandbox_headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983"}
        if access_token:
            sandbox_headers["X-Access-Token"] = access_token
        config = ConnectionConfig(
            api_key="e2b_unused",
            sandbox_url=self.url,
            extra_sandbox_headers=sandbox_headers,
        )
        return {
            "sandbox_id": sandbox_id,
            "sandbox_domain": None,
            "envd_version": Version("0.5.4"),
            "envd_access_token": access_token,
            "traffic_access_token": None,
            "connection_config": config,
        }

    def sandbox(self, sandbox_id: str, access_token: str | None = None) -> Sandbox:
        """The SDK's sync code-interpreter sandbox for ``sandbox_id``."""
        return Sandbox(**self._opts(sandbox_id, access_token))

    def async_sandbox(self, sandbox_id: str, access_token: str | None = None) -> AsyncSandbox:
        """The SDK's async code-interpreter sandbox for ``sandbox_id``."""
        return AsyncSandbox(**self._opts(sandbox_id, access_token))


@pytest.fixture(scope="module")
def interpreter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interpreter]:
    """One server per test module: kernels are slow to start, so tests share them."""
    workspaces = Workspaces(tmp_path_factory.mktemp("sandboxes"))
    app = make_interpreter_app(workspaces)
    router = WorkspaceRouter(app, workspaces)
    with ServerThread(router) as server:
        yield Interpreter(app, router, workspaces, server.url)
