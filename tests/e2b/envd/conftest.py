"""A real uvicorn serving the fake envd, and real SDK objects pointed at it.

The harness plays the router's part: it finds the sandbox by the SDK's
``E2b-Sandbox-Id`` header, gets its workspace from a :class:`Workspaces` in
``tmp_path`` and calls the envd app with ``scope["state"]["kruise_workspace"]``.
The SDK side is the real ``e2b.Sandbox`` wired exactly as ``Sandbox.create``
wires it after the API call (``E2B_SANDBOX_URL``-style single URL, sandbox
headers, access token), so ``sbx.commands`` and ``sbx.files`` are the SDK's
own code paths.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from e2b import AsyncSandbox, ConnectionConfig, Sandbox
from packaging.version import Version

from pytest_kruise_agents.backends.base import Route
from pytest_kruise_agents.e2b.envd import make_envd_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.workspace import SandboxWorkspace, Workspaces

T = TypeVar("T")

ENVD_VERSION = "0.6.13"
MAX_UPLOAD = 1024 * 1024


def route(sandbox_id: str, *, token: str = "", env_vars: dict[str, str] | None = None) -> Route:
    """A running sandbox's route as the backend would give it."""
    return Route(
        sandbox_id=sandbox_id,
        namespace="default",
        name=sandbox_id,
        state="running",
        access_token=token,
        env_vars=env_vars or {},
        owner="test-key",
    )


class Harness:
    """ASGI app: the router's job (header -> workspace) in front of the envd app.

    One server serves a whole test session; each test swaps in its own
    ``workspaces`` and ``routes`` (the envd app itself keeps no sandbox state).
    """

    def __init__(self, workspaces: Workspaces) -> None:
        self.workspaces = workspaces
        self.routes: dict[str, Route] = {}
        self.envd = make_envd_app(workspaces, max_upload_bytes=MAX_UPLOAD)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.loop = asyncio.get_running_loop()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await self.workspaces.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = dict(scope["headers"])
        sandbox_id = headers.get(b"e2b-sandbox-id", b"sbx-default").decode()
        known = self.routes.get(sandbox_id) or route(sandbox_id)
        child = dict(scope)
        child["state"] = {"kruise_workspace": self.workspaces.get(known)}
        await self.envd(child, receive, send)


@dataclass
class Envd:
    """The running fake envd and helpers to reach it as the SDK does."""

    url: str
    workspaces: Workspaces
    harness: Harness
    routes: dict[str, Route] = field(default_factory=dict)

    def add(
        self, sandbox_id: str, *, token: str = "", env_vars: dict[str, str] | None = None
    ) -> None:
        """Declare a sandbox (its token and env vars) before first use."""
        self.routes[sandbox_id] = route(sandbox_id, token=token, env_vars=env_vars)

    def workspace(self, sandbox_id: str = "sbx-default") -> SandboxWorkspace:
        """The sandbox's workspace (made on first call, like the router does)."""
        return self.workspaces.get(self.routes.get(sandbox_id) or route(sandbox_id))

    def _opts(self, sandbox_id: str, token: str | None) -> dict[str, Any]:
        headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983"}
        if token:
            headers["X-Access-Token"] = token
        config = ConnectionConfig(
            api_key="e2b_unused",
            sandbox_url=self.url,
            debug=False,
            request_timeout=15,
            extra_sandbox_headers=headers,
        )
        return {
            "sandbox_id": sandbox_id,
            "sandbox_domain": None,
            "envd_version": Version(ENVD_VERSION),
            "envd_access_token": token,
            "traffic_access_token": None,
            "connection_config": config,
        }

    def sandbox(self, sandbox_id: str = "sbx-default", *, token: str | None = None) -> Sandbox:
        """A real SDK ``Sandbox`` for ``sandbox_id``, as ``Sandbox.create`` builds it."""
        return Sandbox(**self._opts(sandbox_id, token))

    def async_sandbox(
        self, sandbox_id: str = "sbx-default", *, token: str | None = None
    ) -> AsyncSandbox:
        """A real SDK ``AsyncSandbox`` for ``sandbox_id``, as ``AsyncSandbox.create`` builds it."""
        return AsyncSandbox(**self._opts(sandbox_id, token))

    def http(self, sandbox_id: str = "sbx-default", token: str | None = None) -> httpx.Client:
        """A plain HTTP client carrying the sandbox headers."""
        headers = {"E2b-Sandbox-Id": sandbox_id}
        if token:
            headers["X-Access-Token"] = token
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's event loop (where the processes live)."""
        assert self.harness.loop is not None
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coro, self.harness.loop
        )
        return future.result(timeout)


@pytest.fixture(scope="session")
def envd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Harness]]:
    """One uvicorn on 127.0.0.1 serving the harness for the whole session."""
    harness = Harness(Workspaces(tmp_path_factory.mktemp("idle")))
    with ServerThread(harness) as server:
        yield server.url, harness


@pytest.fixture
def small_messages(envd: Envd) -> Iterator[int]:
    """The envd of ``envd`` reads RPC messages of at most the returned size (restored after)."""
    limit = 4096
    harness = envd.harness
    normal, harness.envd = (
        harness.envd,
        make_envd_app(envd.workspaces, max_upload_bytes=MAX_UPLOAD, max_message_bytes=limit),
    )
    try:
        yield limit
    finally:
        harness.envd = normal


@pytest.fixture
def envd(envd_server: tuple[str, Harness], tmp_path: Path) -> Iterator[Envd]:
    """The fake envd with fresh workspaces in ``tmp_path/sandboxes`` (stopped after the test)."""
    url, harness = envd_server
    workspaces = Workspaces(tmp_path / "sandboxes")
    harness.workspaces, harness.routes = workspaces, {}
    served = Envd(url, workspaces, harness, harness.routes)
    try:
        yield served
    finally:
        served.run(workspaces.close())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspaces, with a file nobody may read or change."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("secret")
    return directory
