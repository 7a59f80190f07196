"""What a sandbox's pause, kill or recycling ends, through the real SDKs: streams, kernel daemons.

On E2B a pause or kill tears down the sandbox's connections: an open
``files.watch_dir`` stream ends with an error (``on_exit(error)``), and so does
a command's output stream (``commands.run``, ``wait()``, ``commands.connect``,
a PTY) and its input stream (``stream_input``), which the SDK's health probe words as the sandbox not running rather
than the command killed. Every process the sandbox started dies with it, the
code interpreter's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from e2b import AsyncSandbox, CommandExitException, Sandbox
from e2b.exceptions import NotFoundException, SandboxNotRunningException, TimeoutException
from e2b.sandbox.commands.command_handle import PtySize
from e2b.sandbox.filesystem.watch_handle import FilesystemEvent
from e2b.sandbox_async.commands.command_input_handle import AsyncCommandInputHandle
from e2b_code_interpreter import Sandbox as CodeSandbox

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.daemons import MARKER_VAR, marker_of
from simulator.cluster import Cluster

from ..pools import RECYCLING_POOL
from .conftest import ALICE, BOB, Served, eventually, serve
from .envd.test_commands import alive


class Watch:
    """What one ``watch_dir`` reported: its events, and how it ended."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def on_event(self, event: FilesystemEvent) -> None:
        self.events.append((event.type.value, event.name))

    def on_exit(self, error: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(error)


async def watch_home(sbx: AsyncSandbox) -> Watch:
    """Watch ``/home/user`` recursively, without a deadline."""
    seen = Watch()
    await sbx.files.watch_dir(
        "/home/user", seen.on_event, on_exit=seen.on_exit, recursive=True, timeout=0
    )
    return seen


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["kill", "pause"])
async def test_a_watch_ends_with_an_error_when_its_sandbox_stops(
    server: Served, action: str
) -> None:
    sbx = await AsyncSandbox.create(**server.sdk())
    await sbx.files.write("/home/user/a.txt", "a")
    seen = await watch_home(sbx)
    try:
        await asyncio.sleep(0.3)
        await (sbx.kill() if action == "kill" else sbx.pause())

        error = await asyncio.wait_for(seen.ended, 10)
    finally:
        if action == "pause":
            await AsyncSandbox.kill(sbx.sandbox_id, **server.sdk())

    assert isinstance(error, SandboxNotRunningException), repr(error)
    assert seen.events == []  # no REMOVE of the files a kill deletes


def recycling_backend() -> SimBackend:
    """One pool of one sandbox on a node that fits no second: a recycled sandbox is reused."""
    cluster = Cluster(seed=1, nodes=[{"name": "n1", "cpu": 8, "memory": "16Gi", "max_pods": 1}])
    cluster.apply(RECYCLING_POOL)
    cluster.wait_for_pool("reuse")
    return SimBackend(cluster)


@pytest.fixture
def recycling_server(tmp_path: Path) -> Iterator[Served]:
    """A server on :func:`recycling_backend` (virtual clock)."""
    thread, served = serve(tmp_path, backend=recycling_backend())
    try:
        yield served
    finally:
        thread.stop()
        served.backend.close()


@pytest.mark.asyncio
async def test_a_watch_does_not_follow_its_sandbox_to_the_next_user(
    recycling_server: Served,
) -> None:
    """Alice's watch ends at her kill; Bob, who gets the recycled sandbox, is not watched."""
    server = recycling_server
    alice = await AsyncSandbox.create(template="reuse", timeout=600, **server.sdk(ALICE))
    seen = await watch_home(alice)
    await alice.files.write("/home/user/alice.txt", "a")
    for _ in range(1000):  # reported before the kill, however slowly the watch polls
        if seen.events:
            break
        await asyncio.sleep(0.01)
    await alice.kill()
    error = await asyncio.wait_for(seen.ended, 10)
    server.advance(20)  # past the recycling

    bob = await AsyncSandbox.create(template="reuse", timeout=600, **server.sdk(BOB))
    try:
        assert bob.sandbox_id == alice.sandbox_id
        await bob.files.write("/home/user/bob-secret.txt", "b")
        await asyncio.sleep(0.5)
    finally:
        await bob.kill()

    assert isinstance(error, SandboxNotRunningException), repr(error)
    assert seen.events == [("create", "alice.txt")]


@pytest.mark.asyncio
async def test_a_recycling_kill_stops_the_sandbox_as_it_is_answered(
    recycling_server: Served,
) -> None:
    """On the virtual clock, with no time moved after the kill, as a deleting kill does.

    The kill only sets the recycle trigger; the Sandbox controller moves the
    sandbox to ``Recycling`` when time next moves. Until then it was routed
    as running: its commands, watches and traffic went on.
    """
    server = recycling_server
    sbx = await AsyncSandbox.create(template="reuse", timeout=600, **server.sdk(ALICE))
    command = await sbx.commands.run("sleep 300", background=True, timeout=0)
    seen = await watch_home(sbx)
    await sbx.kill()

    assert not await sbx.is_running()
    with pytest.raises(SandboxNotRunningException):
        await sbx.commands.run("true")
    with pytest.raises(SandboxNotRunningException):
        await asyncio.wait_for(command.wait(), 10)
    assert isinstance(await asyncio.wait_for(seen.ended, 10), SandboxNotRunningException)
    workspace = server.workspaces.peek(sbx.sandbox_id)
    assert workspace is not None and workspace.stopped
    assert not alive(command.pid)


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_a_daemon_started_by_run_code_dies_with_the_sandbox(server: Served, action: str) -> None:
    """The kernel's processes carry the sandbox's marker, as commands do, even in a new session."""
    sbx = CodeSandbox.create(**server.sdk())
    started = sbx.run_code(
        "import subprocess\n"
        "subprocess.Popen(['sleep', '300'], start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid"
    )
    pid = int(started.text or "0")
    try:
        assert alive(pid)
        if action == "kill":
            sbx.kill()
        else:
            sbx.pause()
        eventually(lambda: not alive(pid), "the kernel's daemon died with its sandbox")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if action == "pause":
            CodeSandbox.kill(sbx.sandbox_id, **server.sdk())


def test_polling_watchers_do_not_survive_a_pause(server: Served) -> None:
    """docs/fidelity.md: the sync SDK's watcher (``CreateWatcher``) is gone after a pause and
    resume (upstream's memory snapshot keeps it): its next poll and its ``stop()`` answer
    ``not_found``."""
    sbx = Sandbox.create(template="base", **server.sdk())
    watcher = sbx.files.watch_dir("/home/user")
    sbx.files.write("/home/user/a.txt", "x")
    assert [e.name for e in watcher.get_new_events()] == ["a.txt"]
    sbx.pause()
    Sandbox.connect(sbx.sandbox_id, **server.sdk())

    with pytest.raises(NotFoundException, match="watcher 'w1' not found"):
        watcher.get_new_events()
    with pytest.raises(NotFoundException, match="watcher 'w1' not found"):
        watcher.stop()
    sbx.kill()


def test_kernel_state_and_code_contexts_do_not_survive_a_pause(server: Served) -> None:
    """docs/fidelity.md: a pause stops the sandbox's kernels and keeps its files (upstream's
    memory snapshot keeps both): after the resume the default context starts afresh, the
    list of contexts is empty, and a context made before the pause answers 404."""
    sbx = CodeSandbox.create(**server.sdk())
    sbx.run_code("x = 41")
    ctx = sbx.create_code_context()
    sbx.run_code("y = 1", context=ctx)
    sbx.files.write("/home/user/kept.txt", "kept")
    assert sbx.pause() is True

    resumed = CodeSandbox.connect(sbx.sandbox_id, **server.sdk())

    assert resumed.files.read("/home/user/kept.txt") == "kept"
    assert resumed.list_code_contexts() == []
    execution = resumed.run_code("x")
    assert execution.error is not None and execution.error.name == "NameError"
    with pytest.raises(NotFoundException, match=f"Context {ctx.id} not found"):
        resumed.run_code("y", context=ctx)
    resumed.kill()


def test_a_run_codes_env_vars_cannot_hide_its_daemon_from_the_stop(server: Served) -> None:
    """``run_code(envs=...)`` naming the marker does not replace it: the daemon still dies.

    docs/fidelity.md: the marker is "set after the sandbox's and the request's env vars,
    which cannot replace it". Before, a run's env vars were set in the kernel over it.
    """
    sbx = CodeSandbox.create(**server.sdk())
    started = sbx.run_code(
        "import os, subprocess\n"
        f"print(os.environ[{MARKER_VAR!r}], end='')\n"
        "subprocess.Popen(['sleep', '300'], start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid",
        envs={MARKER_VAR: "/elsewhere"},
    )
    pid = int(started.text or "0")
    try:
        assert "".join(started.logs.stdout) != "/elsewhere"
        assert alive(pid)
        sbx.kill()
        eventually(lambda: not alive(pid), "the kernel's daemon died with its sandbox")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_run_code_cut_by_a_stop_raises_even_when_its_kernel_dies_first(
    server: Served, action: str
) -> None:
    """docs/server.md, Sandbox traffic: a ``run_code`` in progress when its sandbox stops has
    its connection cut (the SDK's "sandbox was killed" ``TimeoutException``), also when the
    stop's sweep of the command side, closed first (a command ran before the first
    ``run_code``), kills the kernel while the stop still waits for a command's output to end:
    no in-band ``DeadKernelError`` for a sandbox that is gone."""
    sbx = CodeSandbox.create(**server.sdk())
    # Its stdout stays open in a process the sweep cannot find (docs/server.md): the command
    # side's close waits for it (up to 5 s) after killing the kernel.
    sbx.commands.run("setsid env -i sleep 60 & echo $! > ~/pid.txt; sleep 100", background=True)
    pids: list[str] = []

    def written() -> bool:
        if sbx.files.exists("/home/user/pid.txt"):
            pids[:] = sbx.files.read("/home/user/pid.txt").split()
        return bool(pids)

    eventually(written, "the escaping sleep's PID written")
    running = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            executing = pool.submit(
                sbx.run_code,
                "print('go', flush=True); import time; time.sleep(20)",
                on_stdout=lambda _: running.set(),
            )
            assert running.wait(60)
            if action == "kill":
                sbx.kill()
            else:
                sbx.pause()
            with pytest.raises(TimeoutException, match="killed while the request was in progress"):
                executing.result(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pids[0]), signal.SIGKILL)
        if action == "pause":
            CodeSandbox.kill(sbx.sandbox_id, **server.sdk())


def _marked(root: Path) -> list[int]:
    """The live processes carrying the marker of the sandbox at ``root`` (its kernel, its commands)."""
    marker = marker_of(root)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry.name}/environ", "rb") as environ:
            if marker in environ.read().split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_a_stop_while_a_code_context_starts_its_kernel_says_the_sandbox_is_gone(
    server: Served, action: str
) -> None:
    """docs/server.md, Sandbox traffic: a ``create_code_context`` whose kernel is still starting
    when its sandbox stops answers 502 "The sandbox was not found" (the SDK's
    ``TimeoutException``), also when the stop's sweep of the sandbox's processes killed the
    starting kernel (a command had run in it), not 500 "the kernel did not start"."""
    sbx = CodeSandbox.create(**server.sdk())
    sbx.commands.run("true")  # its workspace exists: the stop sweeps it for processes
    workspace = server.workspaces.peek(sbx.sandbox_id)
    assert workspace is not None
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            creating = pool.submit(sbx.create_code_context)
            eventually(lambda: _marked(workspace.root) != [], "the kernel process runs")
            if action == "kill":
                sbx.kill()
            else:
                sbx.pause()
            with pytest.raises(TimeoutException, match="The sandbox was not found"):
                creating.result(timeout=60)
        assert _marked(workspace.root) == []
    finally:
        if action == "pause":
            CodeSandbox.kill(sbx.sandbox_id, **server.sdk())


STREAMS = ["run", "background", "connect", "pty"]


async def command_stream(sbx: AsyncSandbox, kind: str) -> asyncio.Future[Any]:
    """A ``sleep`` attached as ``kind`` (``commands.run``, ``handle.wait``, ``commands.connect``, PTY).

    Returns the future of the stream's end (what the SDK call returns or raises).
    """
    if kind == "run":
        task = asyncio.ensure_future(sbx.commands.run("sleep 300", timeout=0))
        while not await sbx.commands.list():
            await asyncio.sleep(0.02)
        return task
    if kind == "pty":
        handle = await sbx.pty.create(PtySize(rows=24, cols=80), on_data=lambda _: None, timeout=0)
        return asyncio.ensure_future(handle.wait())
    handle = await sbx.commands.run("sleep 300", background=True, timeout=0)
    if kind == "connect":
        await handle.disconnect()
        handle = await sbx.commands.connect(handle.pid, timeout=0)
    return asyncio.ensure_future(handle.wait())


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", STREAMS)
@pytest.mark.parametrize("action", ["kill", "pause"])
async def test_a_command_stream_ends_as_its_sandbox_stops(
    server: Served, action: str, kind: str
) -> None:
    """The sandbox's connection drops: the SDK reports it not running, not the command killed."""
    sbx = await AsyncSandbox.create(**server.sdk())
    ended = await command_stream(sbx, kind)
    try:
        await (sbx.kill() if action == "kill" else sbx.pause())
        with pytest.raises(SandboxNotRunningException):
            await asyncio.wait_for(ended, 10)
    finally:
        ended.cancel()
        if action == "pause":
            await AsyncSandbox.kill(sbx.sandbox_id, **server.sdk())


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", STREAMS)
async def test_a_command_killed_by_its_user_still_ends_with_its_exit(
    server: Served, kind: str
) -> None:
    """Only the sandbox's stop ends a stream early: ``commands.kill`` is the command's end."""
    sbx = await AsyncSandbox.create(**server.sdk())
    try:
        ended = await command_stream(sbx, kind)
        (process,) = await sbx.commands.list()
        assert await sbx.commands.kill(process.pid)
        with pytest.raises(CommandExitException) as info:
            await asyncio.wait_for(ended, 10)
        assert info.value.error == "signal: killed"
        assert await sbx.is_running()
    finally:
        await sbx.kill()


async def input_stream(sbx: AsyncSandbox, kind: str) -> AsyncCommandInputHandle:
    """A ``stream_input`` handle, without a deadline, to a ``cat`` (``stdin``) or a PTY shell."""
    if kind == "pty":
        pty = await sbx.pty.create(PtySize(rows=24, cols=80), on_data=lambda _: None, timeout=0)
        return sbx.pty.stream_input(pty.pid, timeout=0)
    handle = await sbx.commands.run("cat", background=True, stdin=True, timeout=0)
    return sbx.commands.stream_input(handle.pid, timeout=0)


async def refused_input(feed: AsyncCommandInputHandle, within: float = 10) -> Exception:
    """What ``feed.send`` raises once the stream ended on its own (fails if it never does)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            await feed.send("more\n")
        except Exception as exc:  # what it raises is the assertion
            return exc
        await asyncio.sleep(0.05)
    pytest.fail("the input stream stayed open after its sandbox stopped")


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["stdin", "pty"])
@pytest.mark.parametrize("action", ["kill", "pause"])
async def test_an_input_stream_ends_as_its_sandbox_stops(
    server: Served, action: str, kind: str
) -> None:
    """An open ``stream_input`` ends with the stop, without the client sending anything.

    Its next ``send`` and its ``close`` report the sandbox not running: not
    the input acknowledged, nor the stdin of the killed command closed.
    """
    sbx = await AsyncSandbox.create(**server.sdk())
    try:
        feed = await input_stream(sbx, kind)
        await feed.send("before\n")
        await asyncio.sleep(0.3)
        await (sbx.kill() if action == "kill" else sbx.pause())

        assert isinstance(await refused_input(feed), SandboxNotRunningException)
        with pytest.raises(SandboxNotRunningException):
            await asyncio.wait_for(feed.close(), 10)
    finally:
        if action == "pause":
            await AsyncSandbox.kill(sbx.sandbox_id, **server.sdk())


def stopped(server: Served, sandbox_id: str) -> bool:
    """Whether the sandbox's workspace stopped (a kill's removal forgets it)."""
    workspace = server.workspaces.peek(sandbox_id)
    return workspace is None or workspace.stopped


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_the_sync_sdks_input_stream_ends_as_its_sandbox_stops(server: Served, action: str) -> None:
    """The sync ``stream_input(pid, data)`` stopped mid-``data``: the sandbox not running.

    Not ``FAILED_PRECONDITION`` "stdin ... is closed" for the input that
    follows the stop (the stop killed the command reading it).
    """
    sbx = Sandbox.create(**server.sdk())

    def data() -> Iterator[str]:
        yield "before\n"
        if action == "kill":
            sbx.kill()
        else:
            sbx.pause()
        # What the stop answered is the connection's drop, here its cleanup's start.
        eventually(lambda: stopped(server, sbx.sandbox_id), "the sandbox's workspace stopped")
        yield "after\n"

    try:
        handle = sbx.commands.run("cat", background=True, stdin=True, timeout=0)
        with pytest.raises(SandboxNotRunningException):
            sbx.commands.stream_input(handle.pid, data(), timeout=0)
    finally:
        if action == "pause":
            Sandbox.kill(sbx.sandbox_id, **server.sdk())
