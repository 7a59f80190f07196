"""A request routed to a sandbox just before it stops reaches its handler after the stop's cleanup.

The router looks the sandbox up (running), hands the request its workspace,
and only then does the handler attach live state to it: a command, a watch
stream, a code context. A pause or kill whose cleanup runs in between must not
leave that state behind on the stopped sandbox (a command running on in a
paused sandbox, a kernel for a killed one), nor files, nor a killed sandbox's
directory: the request answers as one sent after the stop, the proxy's
"sandbox not found".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from e2b import AsyncSandbox, Sandbox
from e2b.exceptions import SandboxNotRunningException
from starlette.types import ASGIApp, Receive, Scope, Send

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.backends.base import Pending, Route
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.envd import make_envd_app
from pytest_kruise_agents.e2b.envd.processes import ProcessTable
from pytest_kruise_agents.e2b.envd.streams import OpenStreams
from pytest_kruise_agents.e2b.envd.watchers import WatcherTable
from pytest_kruise_agents.e2b.interpreter import InterpreterApp, make_interpreter_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.e2b.workspace import SandboxWorkspace, Workspaces

from .conftest import KEYS, Served, eventually

T = TypeVar("T")


class Gate:
    """A sandbox port's app whose first request for ``path`` waits, routed, until :meth:`open`."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path
        self.arrived = threading.Event()
        self.workspace: SandboxWorkspace | None = None
        """The workspace the router handed the held request."""
        self._opened: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and not self.arrived.is_set():
            self._opened = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self.workspace = scope["state"]["kruise_workspace"]
            self.arrived.set()
            await self._opened.wait()
        await self.app(scope, receive, send)

    def open(self) -> None:
        """Let the held request on, if one is held (from any thread)."""
        if self._loop is not None and self._opened is not None:
            self._loop.call_soon_threadsafe(self._opened.set)

    async def aclose(self) -> None:
        """Close the app behind the gate (the interpreter's kernels)."""
        aclose = getattr(self.app, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass
class Gated:
    """A server whose envd or interpreter sits behind a :class:`Gate`."""

    served: Served
    gate: Gate
    interpreter: InterpreterApp
    stopped: list[str]
    """Sandboxes whose stop's cleanup has run (a stop hook)."""


def gated_server(tmp_path: Path, port: int, path: str) -> tuple[ServerThread, Gated]:
    """A server on 127.0.0.1 holding the first request for ``path`` on sandbox port ``port``."""
    backend = SimBackend.default(seed=3, replicas=2)
    workspaces = Workspaces(tmp_path / "workspaces")
    envd: ASGIApp = make_envd_app(workspaces)
    interpreter = make_interpreter_app(workspaces)
    gate = Gate(envd if port == 49983 else interpreter, path)
    apps: dict[str, Any] = {"envd_app": envd, "interpreter_app": interpreter}
    apps["envd_app" if port == 49983 else "interpreter_app"] = gate
    app = create_app(backend, Settings(api_keys=KEYS), workspaces=workspaces, **apps)
    stopped: list[str] = []

    async def record(sandbox_id: str) -> None:
        stopped.append(sandbox_id)

    workspaces.add_stop_hook(record)  # after the interpreter's: its kernels are stopped by then
    thread = ServerThread(app).start()
    served = Served(url=thread.url, backend=backend, app=app, workspaces=workspaces)
    return thread, Gated(served, gate, interpreter, stopped)


CALLS = {
    "command": (49983, "/process.Process/Start"),
    "list": (49983, "/process.Process/List"),
    "write": (49983, "/files"),
    "read": (49983, "/files"),
    "init": (49983, "/init"),
    "watch": (49983, "/filesystem.Filesystem/WatchDir"),
    "watcher": (49983, "/filesystem.Filesystem/CreateWatcher"),
    "context": (49999, "/contexts"),
}


def held_call(sbx: Sandbox, call: str, server: Served) -> Any:
    """The request the gate holds: start a command, watch a directory, make a code context...

    The async SDK watches with a ``WatchDir`` stream, the sync SDK with a
    polling watcher (``CreateWatcher``). ``/init`` (sent by the control plane,
    not the SDK) and the interpreter's ``/contexts`` are raw requests.
    """
    if call == "command":
        return sbx.commands.run("sleep 300", background=True)
    if call == "list":
        return sbx.commands.list()
    if call == "write":
        return sbx.files.write("/home/user/late.txt", "too late")
    if call == "read":
        return sbx.files.read("/home/user/missing.txt")
    if call == "init":
        return _init(sbx.sandbox_id, server, {"envVars": {"LATE": "1"}})
    if call == "watch":
        return asyncio.run(_watch_dir(sbx.sandbox_id, server))
    if call == "watcher":
        return sbx.files.watch_dir("/home/user")
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49999"}
    return httpx.post(server.url + "/contexts", headers=headers, json={}, timeout=30)


def _init(sandbox_id: str, server: Served, body: dict[str, Any]) -> httpx.Response:
    """envd's ``POST /init``, with the sandbox's access token."""
    route = server.backend.route(sandbox_id)
    assert route is not None
    headers = {
        "E2b-Sandbox-Id": sandbox_id,
        "E2b-Sandbox-Port": "49983",
        "X-Access-Token": route.access_token,
    }
    return httpx.post(server.url + "/init", headers=headers, json=body, timeout=30)


async def _watch_dir(sandbox_id: str, server: Served) -> Any:
    sbx = await AsyncSandbox.connect(sandbox_id, **server.sdk())
    return await sbx.files.watch_dir("/home/user", lambda _: None, timeout=0)


@pytest.fixture(params=list(CALLS))
def gated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Gated]]:
    """The call ``request.param`` and a server that holds it between routing and its handler."""
    call = str(request.param)
    thread, gated = gated_server(tmp_path, *CALLS[call])
    try:
        yield call, gated
    finally:
        thread.stop()
        gated.served.backend.close()


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_a_request_routed_before_its_sandbox_stopped_attaches_nothing(
    gated: tuple[str, Gated], action: str
) -> None:
    call, server = gated
    sdk = server.served.sdk()
    sbx = Sandbox.create(**sdk)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(held_call, sbx, call, server.served)
        try:
            assert server.gate.arrived.wait(10), "the request never reached the gate"
            if action == "kill":
                sbx.kill()
            else:
                sbx.pause()
            eventually(lambda: sbx.sandbox_id in server.stopped, "the stop's cleanup ran")
            server.gate.open()

            if call in ("context", "init"):
                response = answer.result(30)
                assert response.status_code == 502, response.text
                assert "The sandbox was not found" in response.json()["message"]
            else:
                with pytest.raises(SandboxNotRunningException):
                    answer.result(30)
            # Before the paused sandbox's kill below, whose cleanup would drop them.
            workspace = server.gate.workspace
            assert workspace is not None and workspace.stopped
            assert not workspace.root.exists()  # never used: nothing made it, nor makes it again
            assert workspace.existing_attachment(ProcessTable) is None
            assert workspace.existing_attachment(OpenStreams) is None
            assert workspace.existing_attachment(WatcherTable) is None
            assert server.interpreter.contexts.list_contexts(workspace) == []
            assert server.interpreter.contexts.kernels_started == 0
        finally:
            server.gate.open()
            _stop_leftover(answer)
            if action == "pause":
                Sandbox.kill(sbx.sandbox_id, **sdk)


def _stop_leftover(answer: concurrent.futures.Future[Any]) -> None:
    """Kill a command the held request started after all (the bug this tests against)."""
    with contextlib.suppress(Exception):
        pid = getattr(answer.result(30), "pid", None)
        if isinstance(pid, int):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_an_upload_streaming_while_its_sandbox_stops_writes_nothing(
    tmp_path: Path, action: str
) -> None:
    thread, server = gated_server(tmp_path, 49983, "/files")
    sdk = server.served.sdk()
    sbx = Sandbox.create(**sdk)
    staging = server.served.workspaces.root / ".uploads"
    rest = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_upload, sbx.sandbox_id, server.served, rest)
        try:
            assert server.gate.arrived.wait(10), "the upload never reached the gate"
            server.gate.open()
            eventually(lambda: staging.is_dir() and any(staging.iterdir()), "the upload streams")
            workspace = server.gate.workspace
            assert workspace is not None
            if action == "kill":
                sbx.kill()
                eventually(lambda: not workspace.root.exists(), "the kill deleted the files")
            else:
                sbx.pause()
                eventually(lambda: sbx.sandbox_id in server.stopped, "the stop's cleanup ran")
            rest.set()

            response = answer.result(30)
            assert response.status_code == 502, response.text
            assert "The sandbox was not found" in response.json()["message"]
            assert not (workspace.home / "big.bin").exists()
            assert action == "pause" or not workspace.root.exists()
            assert not any(staging.iterdir())  # the staged bytes are dropped
        finally:
            rest.set()
            server.gate.open()
            if action == "pause":
                Sandbox.kill(sbx.sandbox_id, **sdk)
            thread.stop()
            server.served.backend.close()


def _upload(sandbox_id: str, server: Served, rest: threading.Event) -> httpx.Response:
    """Upload ``/home/user/big.bin``: half the body, then the rest once ``rest`` is set."""
    route = server.backend.route(sandbox_id)
    assert route is not None

    def body() -> Iterator[bytes]:
        yield b"x" * 65536
        rest.wait(30)
        yield b"y" * 65536

    headers = {
        "E2b-Sandbox-Id": sandbox_id,
        "E2b-Sandbox-Port": "49983",
        "X-Access-Token": route.access_token,
        "Content-Type": "application/octet-stream",
    }
    return httpx.post(
        server.url + "/files",
        params={"path": "/home/user/big.bin"},
        headers=headers,
        content=body(),
        timeout=30,
    )


def test_a_filesystem_call_routed_before_a_pause_changes_nothing(tmp_path: Path) -> None:
    """A used sandbox (its files kept through the pause): a ``MakeDir`` held past the pause
    answers as for a sandbox not running and makes nothing."""
    thread, server = gated_server(tmp_path, 49983, "/filesystem.Filesystem/MakeDir")
    sdk = server.served.sdk()
    try:
        sbx = Sandbox.create(**sdk)
        sbx.commands.run("true")  # the workspace is made: its files outlive the pause
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(sbx.files.make_dir, "/home/user/late")
            try:
                assert server.gate.arrived.wait(10), "the request never reached the gate"
                sbx.pause()
                eventually(lambda: sbx.sandbox_id in server.stopped, "the stop's cleanup ran")
                server.gate.open()
                with pytest.raises(SandboxNotRunningException):
                    answer.result(30)
                workspace = server.gate.workspace
                assert workspace is not None and workspace.root.exists()
                assert not (workspace.home / "late").exists()
            finally:
                server.gate.open()
        Sandbox.kill(sbx.sandbox_id, **sdk)
    finally:
        thread.stop()
        server.served.backend.close()


class HeldLookup(SimBackend):
    """The simulated backend, but one route lookup, once answered, waits until :attr:`released`.

    The router looks its sandbox up (in a worker thread when the backend is
    busy, as this one always is for the held lookup) and only then, back on
    the loop, takes the sandbox's workspace: the held answer keeps a request
    between the two, as a slow thread hop or a busy loop does under load.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.armed: str | None = None
        self.arrived = threading.Event()
        """The held lookup has answered (and waits)."""
        self.released = threading.Event()

    def hold_next(self, sandbox_id: str) -> None:
        """Hold the next lookup of ``sandbox_id`` (the next request sent to it)."""
        self.armed = sandbox_id

    def attempt(self, call: Callable[[], T], *, cancelled: bool = False) -> T | Pending[T]:
        if isinstance(call, partial) and call.func == self.route and call.args == (self.armed,):
            return Pending(call)  # as when the lock is busy: looked up in a worker thread
        return super().attempt(call, cancelled=cancelled)

    def route(self, sandbox_id: str) -> Route | None:
        answer = super().route(sandbox_id)
        if sandbox_id == self.armed:
            self.armed = None
            self.arrived.set()
            self.released.wait(30)
        return answer


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_a_request_looked_up_before_its_sandbox_stopped_starts_nothing_after_the_cleanup(
    tmp_path: Path, action: str
) -> None:
    """The lookup said running; the stop and its whole cleanup ran before the workspace was taken.

    The request answers as one sent after the stop (the proxy's 502, the SDK's
    ``SandboxNotRunningException``): no workspace is made again for a killed
    sandbox, nor a next life handed out for a paused one, so no command runs
    in it and no directory outlives the kill.
    """
    backend = HeldLookup.default(seed=3, replicas=2)
    workspaces = Workspaces(tmp_path / "workspaces")
    app = create_app(backend, Settings(api_keys=KEYS), workspaces=workspaces)
    stopped: list[str] = []

    async def record(sandbox_id: str) -> None:
        stopped.append(sandbox_id)

    workspaces.add_stop_hook(record)
    thread = ServerThread(app).start()
    served = Served(url=thread.url, backend=backend, app=app, workspaces=workspaces)
    sdk = served.sdk()
    try:
        sbx = Sandbox.create(**sdk)
        sbx.commands.run("true")  # used: its directory exists and its stop runs the hooks
        first = workspaces.peek(sbx.sandbox_id)
        assert first is not None and first.root.exists()
        backend.hold_next(sbx.sandbox_id)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(sbx.commands.run, "sleep 300", background=True)
            try:
                assert backend.arrived.wait(10), "the command's lookup never answered"
                if action == "kill":
                    sbx.kill()
                    eventually(lambda: not first.root.exists(), "the kill deleted the files")
                else:
                    sbx.pause()
                eventually(lambda: sbx.sandbox_id in stopped, "the stop's cleanup ran")
                backend.released.set()

                with pytest.raises(SandboxNotRunningException):
                    answer.result(30)
                if action == "kill":
                    assert sbx.sandbox_id not in workspaces
                    assert not first.root.exists()
                else:
                    assert workspaces.peek(sbx.sandbox_id) is first  # no next life handed out
                    assert first.stopped and first.existing_attachment(ProcessTable) is None
            finally:
                backend.released.set()
                _stop_leftover(answer)
        if action == "pause":
            # Nothing of the refusal outlives it: the sandbox's next life is served, afresh.
            resumed = Sandbox.connect(sbx.sandbox_id, **sdk)
            assert resumed.commands.run("echo back").stdout == "back\n"
            nxt = workspaces.peek(sbx.sandbox_id)
            assert nxt is not None and nxt is not first and not nxt.stopped
            Sandbox.kill(sbx.sandbox_id, **sdk)
    finally:
        thread.stop()
        backend.close()
