"""Specification: pausing a sandbox stops its processes and keeps its files; removing it deletes them."""

from __future__ import annotations

import logging

import httpx
import pytest
from e2b.exceptions import SandboxUnreachableException

from tests.e2b.conftest import eventually
from tests.e2b.envd.conftest import Envd
from tests.e2b.envd.test_commands import alive


def test_stop_kills_processes_ends_their_streams_and_keeps_files(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("kept.txt", "still here")
    attached = sbx.commands.run("sleep 300", background=True)
    detached = sbx.commands.run("sleep 300", background=True)
    detached.disconnect()
    stopped: list[str] = []

    async def hook(sandbox_id: str) -> None:
        stopped.append(sandbox_id)

    envd.workspaces.add_stop_hook(hook)
    envd.run(envd.workspaces.stop("sbx-default"))

    assert stopped == ["sbx-default"]
    assert not alive(attached.pid) and not alive(detached.pid)
    # The stream ends as the sandbox's connection does, not with the command's end;
    # this harness keeps routing the sandbox, so its health probe finds it up.
    with pytest.raises(SandboxUnreachableException, match="paused or killed"):
        attached.wait()
    # Resumed: the files are there and new commands run.
    assert sbx.files.read("kept.txt") == "still here"
    assert sbx.commands.list() == []
    assert sbx.commands.run("cat kept.txt").stdout == "still here"


def test_stop_cuts_a_download_in_progress(envd: Envd, caplog: pytest.LogCaptureFixture) -> None:
    """As E2B's teardown drops the connection: the rest of the file never comes.

    The stop comes while the client reads nothing (the server waits on a full
    socket), and is heard all the same.
    """
    sbx = envd.sandbox()
    size = 256 * 1024 * 1024  # far more than the socket buffers hold
    ws = envd.workspace()
    ws.ensure()
    with open(ws.home / "big.bin", "wb") as big:
        big.truncate(size)
    received = 0
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in sbx.files.read("big.bin", format="stream"):
            if not received:
                envd.run(envd.workspaces.stop("sbx-default"))
            received += len(chunk)
    assert received < size // 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a cut on purpose


def test_stop_also_kills_daemons_left_by_finished_commands(envd: Envd) -> None:
    sbx = envd.sandbox()
    nohup = int(sbx.commands.run("nohup sleep 300 > /dev/null 2>&1 & echo $!").stdout)
    setsid = int(sbx.commands.run("setsid sleep 300 > /dev/null 2>&1 & echo $!").stdout)
    other = envd.sandbox("sbx-other").commands.run("sleep 300", background=True)
    assert alive(nohup) and alive(setsid)
    envd.run(envd.workspaces.stop("sbx-default"))
    eventually(lambda: not alive(nohup) and not alive(setsid), "the daemons die with the sandbox")
    assert alive(other.pid)  # another sandbox's processes are untouched
    other.kill()


def test_remove_kills_processes_and_deletes_the_workspace(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("doomed.txt", "x")
    handle = sbx.commands.run("sleep 300", background=True)
    root = envd.workspace().root
    envd.run(envd.workspaces.remove("sbx-default"))
    assert not root.exists()
    assert "sbx-default" not in envd.workspaces
    eventually(lambda: not alive(handle.pid), "the process died with its sandbox")


def test_server_shutdown_closes_every_sandbox(envd: Envd) -> None:
    handle = envd.sandbox("sbx-a").commands.run("sleep 300", background=True)
    envd.run(envd.workspaces.close())
    assert not alive(handle.pid)
    assert envd.workspace("sbx-a").home.is_dir()


def test_an_env_var_cannot_hide_a_daemon_from_the_stop(envd: Envd) -> None:
    """The marker is set after the sandbox's and the request's env vars, which cannot replace it."""
    sbx = envd.sandbox()
    pid = int(
        sbx.commands.run(
            "setsid sleep 300 > /dev/null 2>&1 & echo $!",
            envs={"KRUISE_SANDBOX_ROOT": "/elsewhere"},
        ).stdout
    )
    assert alive(pid)
    envd.run(envd.workspaces.stop("sbx-default"))
    eventually(lambda: not alive(pid), "the daemon died with its sandbox")
