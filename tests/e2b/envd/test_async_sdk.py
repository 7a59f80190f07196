"""Specification: the async SDK (``AsyncSandbox``) works against envd too, including the ``WatchDir`` stream."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from e2b import CommandExitException, TimeoutException
from e2b.sandbox.filesystem.filesystem import WriteEntry
from e2b.sandbox.filesystem.watch_handle import FilesystemEvent

from tests.e2b.envd.conftest import Envd


@pytest.mark.asyncio
async def test_async_commands_and_files(envd: Envd) -> None:
    sbx = envd.async_sandbox()
    await sbx.files.write("/home/user/a.txt", "async")
    assert await sbx.files.read("a.txt") == "async"
    result = await sbx.commands.run("cat a.txt; echo; echo err >&2")
    assert (result.stdout, result.stderr) == ("async\n", "err\n")
    handle = await sbx.commands.run("sleep 30", background=True)
    assert [p.pid for p in await sbx.commands.list()] == [handle.pid]
    assert await handle.kill()
    with pytest.raises(CommandExitException):
        await handle.wait()


@pytest.mark.asyncio
async def test_watch_dir_streams_events_until_stopped(envd: Envd) -> None:
    sbx = envd.async_sandbox()
    await sbx.files.make_dir("/home/user/w")
    seen: list[FilesystemEvent] = []
    arrived = asyncio.Event()

    def on_event(event: FilesystemEvent) -> None:
        seen.append(event)
        if any(e.name == "sub/deep.txt" for e in seen):
            arrived.set()

    handle = await sbx.files.watch_dir("/home/user/w", on_event, recursive=True)
    await sbx.files.write("/home/user/w/first.txt", "1")
    await sbx.files.write("/home/user/w/sub/deep.txt", "2")
    await asyncio.wait_for(arrived.wait(), 10)
    await handle.stop()  # type: ignore[no-untyped-call]
    names = [(e.name, e.type.value) for e in seen]
    assert ("first.txt", "create") in names
    assert ("sub", "create") in names
    assert ("sub/deep.txt", "create") in names


@pytest.mark.asyncio
async def test_connect_ends_at_its_timeout_and_the_command_runs_on(envd: Envd) -> None:
    """``commands.connect(pid, timeout=)`` sends ``Connect-Timeout-Ms``; envd ends the stream with
    ``deadline_exceeded`` then (the SDK's ``TimeoutException``), and the command keeps running."""
    sbx = envd.async_sandbox()
    started = await sbx.commands.run("sleep 30", background=True)
    attached = await sbx.commands.connect(started.pid, timeout=0.5)
    begin = time.monotonic()

    with pytest.raises(TimeoutException):
        await attached.wait()

    assert time.monotonic() - begin < 5
    assert [p.pid for p in await sbx.commands.list()] == [started.pid]
    assert await sbx.commands.kill(started.pid)


@pytest.mark.xfail(
    sys.version_info >= (3, 12),
    reason=(
        "the SDK's bug on Python >= 3.12: e2b's first_event runs connectrpc's first stream "
        "step in asyncio.wait_for, which since 3.12 runs it in the caller's task, so the "
        "stream's asyncio.timeout(timeout) cancels whatever the caller awaits at the deadline"
    ),
    raises=asyncio.CancelledError,
    strict=True,
)
@pytest.mark.asyncio
async def test_watch_dir_ends_at_its_timeout(envd: Envd) -> None:
    """``files.watch_dir(timeout=)`` ends with ``deadline_exceeded``, reported to ``on_exit``.

    On Python 3.12 and later the SDK cancels the calling task instead, at the deadline
    (docs/server.md, "The async SDK on Python 3.12 and later", in its envd section): the real envd
    would be hit the same way, as the client's timer starts before the server's.
    """
    sbx = envd.async_sandbox()
    await sbx.files.make_dir("/home/user/quiet")
    ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    begin = time.monotonic()

    await sbx.files.watch_dir(
        "/home/user/quiet",
        lambda _event: None,
        timeout=0.5,
        on_exit=lambda error: ended.set_result(error),
    )

    error = await asyncio.wait_for(ended, 5)
    assert isinstance(error, TimeoutException)
    assert time.monotonic() - begin < 5


@pytest.mark.asyncio
@pytest.mark.parametrize("recursive", [False, True])
async def test_a_change_inside_a_subdirectory_is_no_event_of_the_subdirectory(
    envd: Envd, recursive: bool
) -> None:
    """inotify reports no ``WRITE sub`` when an entry inside ``sub`` changes (the fake once did,
    as ``sub``'s mtime moved); a recursive watch reports the entry itself."""
    sbx = envd.async_sandbox()
    await sbx.files.make_dir("/home/user/w/sub")
    seen: list[tuple[str, str]] = []
    done = asyncio.Event()

    def on_event(event: FilesystemEvent) -> None:
        seen.append((event.type.value, event.name))
        if event.name == "last.txt":
            done.set()

    async def reported(event: tuple[str, str]) -> None:
        for _ in range(1000):  # 10 s
            if event in seen:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{event} was not reported: {seen}")

    handle = await sbx.files.watch_dir("/home/user/w", on_event, recursive=recursive, timeout=0)
    # Each step past a poll (0.1 s), so that every change is seen on its own: waited for
    # where it is reported (a loaded machine may take longer than 0.3 s to poll). A plain
    # watch reports nothing of sub/inner.txt: there, a missed poll only proves less.
    await sbx.files.write("/home/user/w/sub/inner.txt", "x")
    if recursive:
        await reported(("create", "sub/inner.txt"))
    else:
        await asyncio.sleep(0.3)
    await sbx.files.remove("/home/user/w/sub/inner.txt")
    if recursive:
        await reported(("remove", "sub/inner.txt"))
    else:
        await asyncio.sleep(0.3)
    await sbx.commands.run("chmod 700 w/sub")  # the subdirectory itself changes: reported
    await reported(("chmod", "sub"))
    await sbx.files.write("/home/user/w/last.txt", "x")
    await asyncio.wait_for(done.wait(), 10)
    await handle.stop()  # type: ignore[no-untyped-call]

    inner = [("create", "sub/inner.txt"), ("remove", "sub/inner.txt")] if recursive else []
    assert seen == [*inner, ("chmod", "sub"), ("create", "last.txt")]


@pytest.mark.asyncio
async def test_async_write_files_keeps_non_ascii_paths(envd: Envd) -> None:
    sbx = envd.async_sandbox()
    paths = ["/tmp/ä1", "/tmp/ä2"]
    written = await sbx.files.write_files([WriteEntry(path=p, data=p) for p in paths])
    assert [w.path for w in written] == paths
    assert [await sbx.files.read(p) for p in paths] == paths
