"""Closing the interpreter: every kernel process ends and its files are removed.

Each test serves its own app, because closing is what it checks.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pytest_kruise_agents.e2b.interpreter import InterpreterApp, make_interpreter_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.workspace import Workspaces
from tests.e2b.interpreter.conftest import Interpreter, WorkspaceRouter


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class _NoLifespan:
    """Serves ``app`` but keeps the lifespan from it, as a router that mounts it does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.app(scope, receive, send)


def _start_a_kernel(app: InterpreterApp, server: ServerThread, workspaces: Workspaces) -> int:
    interpreter = Interpreter(app, WorkspaceRouter(app, workspaces), workspaces, server.url)
    assert interpreter.sandbox("sbx-close").run_code("1 + 1").text == "2"
    [pid] = app.contexts.kernel_pids("sbx-close")
    return pid


def test_the_lifespan_shutdown_stops_every_kernel(tmp_path: Path) -> None:
    """Served on its own, the app stops its kernels and deletes their files when uvicorn stops."""
    workspaces = Workspaces(tmp_path)
    app = make_interpreter_app(workspaces)
    with ServerThread(WorkspaceRouter(app, workspaces)) as server:
        pid = _start_a_kernel(app, server, workspaces)
        kernel_root = app.contexts.kernel_root
        assert kernel_root is not None and any(kernel_root.iterdir())
    assert _gone(pid)
    assert not kernel_root.exists()


def test_closing_after_the_server_loop_ended_still_kills_kernels(tmp_path: Path) -> None:
    """If the loop that owned the kernels is gone, aclose kills the processes directly."""
    workspaces = Workspaces(tmp_path)
    app = make_interpreter_app(workspaces)
    with ServerThread(_NoLifespan(WorkspaceRouter(app, workspaces))) as server:
        pid = _start_a_kernel(app, server, workspaces)
        kernel_root = app.contexts.kernel_root
    assert not _gone(pid)  # nobody closed the app yet
    asyncio.run(app.aclose())
    assert _gone(pid)
    assert kernel_root is not None and not kernel_root.exists()


def test_closing_keeps_a_kernel_root_the_caller_gave(tmp_path: Path) -> None:
    """The kernels' own directories go; the directory the caller named stays, as it was given."""
    workspaces = Workspaces(tmp_path / "sandboxes")
    root = tmp_path / "kernels"
    app = make_interpreter_app(workspaces, kernel_root=root)
    with ServerThread(WorkspaceRouter(app, workspaces)) as server:
        pid = _start_a_kernel(app, server, workspaces)
        assert app.contexts.kernel_root == root and any(root.iterdir())
    assert _gone(pid)
    assert root.is_dir() and not any(p.name.startswith("k") for p in root.iterdir())
