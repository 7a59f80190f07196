"""The Connect service ``filesystem.Filesystem`` of the fake envd.

Every path goes through :meth:`SandboxWorkspace.resolve` (relative to the
request user's home; escapes answer ``invalid_argument`` and touch nothing);
entries report sandbox paths as the request named them
(:meth:`SandboxWorkspace.expand`: made absolute, symlinks not followed, as
envd answers). Missing paths answer ``not_found`` (but ``Remove``
of one succeeds, as envd's ``os.RemoveAll``), an existing directory on
``MakeDir`` ``already_exists``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Literal

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.filesystem import filesystem_pb
from e2b.envd.filesystem.filesystem_connect import Filesystem
from e2b.envd.filesystem.filesystem_pb import (
    CreateWatcherRequest,
    CreateWatcherResponse,
    GetWatcherEventsRequest,
    GetWatcherEventsResponse,
    ListDirRequest,
    ListDirResponse,
    MakeDirRequest,
    MakeDirResponse,
    MoveRequest,
    MoveResponse,
    RemoveRequest,
    RemoveResponse,
    RemoveWatcherRequest,
    RemoveWatcherResponse,
    StatRequest,
    StatResponse,
    WatchDirRequest,
    WatchDirResponse,
)
from protobuf import Oneof

from pytest_kruise_agents.e2b.envd import context
from pytest_kruise_agents.e2b.envd.entries import entry_info
from pytest_kruise_agents.e2b.envd.errors import fs_error, guard_stream, guard_unary
from pytest_kruise_agents.e2b.envd.streams import OpenStreams, check_running
from pytest_kruise_agents.e2b.envd.watchers import Watcher, WatcherTable
from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = ["WATCH_POLL_INTERVAL_S", "FilesystemService", "list_entries"]

WATCH_POLL_INTERVAL_S = 0.1
"""How often a ``WatchDir`` stream looks for changes."""

_MAX_DEPTH = 64


def _resolve(path: str, *, follow_symlinks: bool = True) -> tuple[SandboxWorkspace, Path]:
    state = context.current()
    # A request routed just before a pause or kill touches nothing of the stopped sandbox.
    state.workspace.require_running()
    return state.workspace, state.workspace.resolve(
        path, user=state.user, follow_symlinks=follow_symlinks
    )


def _expanded(path: str) -> str:
    """The request's ``path`` as envd names it in answers (absolute, symlinks not followed)."""
    state = context.current()
    return state.workspace.expand(path, user=state.user)


def list_entries(
    ws: SandboxWorkspace, directory: Path, depth: int, *, shown: str | None = None
) -> list[filesystem_pb.EntryInfo]:
    """Entries under ``directory`` down to ``depth`` levels, sorted, not descending into symlinks.

    Their paths lie under ``shown``, the directory's path as the caller named
    it (by default its own sandbox path), as envd's walk rebases them.
    """
    found: list[filesystem_pb.EntryInfo] = []

    def walk(current: Path, named: str, level: int) -> None:
        with os.scandir(current) as it:
            items = sorted(it, key=lambda item: item.name)
        for item in items:
            item_named = f"{named.rstrip('/')}/{item.name}"
            try:
                st = item.stat(follow_symlinks=False)
                found.append(entry_info(ws, Path(item.path), st, shown=item_named))
            except OSError:
                continue  # vanished while listing
            if level < depth and stat.S_ISDIR(st.st_mode):
                walk(Path(item.path), item_named, level + 1)

    walk(directory, shown if shown is not None else ws.sandbox_path(directory), 1)
    return found


def _directory(ws: SandboxWorkspace, directory: Path, path: str) -> None:
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise fs_error(exc, path) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ConnectError(Code.INVALID_ARGUMENT, f"path is not a directory: {path}")


def _watch_event(
    event: Oneof[Literal["start"], WatchDirResponse.StartEvent]
    | Oneof[Literal["filesystem"], filesystem_pb.FilesystemEvent]
    | Oneof[Literal["keepalive"], WatchDirResponse.KeepAlive],
) -> WatchDirResponse:
    return WatchDirResponse(event=event)


async def _watch_events(
    watcher: Watcher,
    state: context.RequestState,
    wake: asyncio.Event,
    ctx: RequestContext[WatchDirRequest, WatchDirResponse],
) -> AsyncGenerator[WatchDirResponse, None]:
    """Change events (and keepalives) every poll, until the client leaves or the sandbox stops."""
    keepalive = context.keepalive_interval(ctx)
    quiet = 0.0
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WATCH_POLL_INTERVAL_S):
                await wake.wait()
        if state.disconnected:
            return
        check_running(watcher.ws)
        events = await watcher.poll()
        # Checked again: a stop during the poll may have deleted the files it saw go.
        check_running(watcher.ws)
        for event in events:
            yield _watch_event(
                Oneof[Literal["filesystem"], filesystem_pb.FilesystemEvent]("filesystem", event)
            )
        quiet = 0.0 if events else quiet + WATCH_POLL_INTERVAL_S
        if keepalive is not None and quiet >= keepalive:
            quiet = 0.0
            yield _watch_event(
                Oneof[Literal["keepalive"], WatchDirResponse.KeepAlive](
                    "keepalive", WatchDirResponse.KeepAlive()
                )
            )


class FilesystemService(Filesystem):
    """``filesystem.Filesystem``: stat, list, make, move, remove and watch sandbox paths."""

    @guard_unary
    async def stat(
        self, request: StatRequest, ctx: RequestContext[StatRequest, StatResponse], /
    ) -> StatResponse:
        """The entry at a path (a symlink itself, not its target)."""
        ws, target = _resolve(request.path, follow_symlinks=False)
        try:
            return StatResponse(entry=entry_info(ws, target, shown=_expanded(request.path)))
        except OSError as exc:
            raise fs_error(exc, request.path) from exc

    @guard_unary
    async def list_dir(
        self, request: ListDirRequest, ctx: RequestContext[ListDirRequest, ListDirResponse], /
    ) -> ListDirResponse:
        """The entries of a directory, ``depth`` levels deep (0 means 1)."""
        ws, directory = _resolve(request.path)
        _directory(ws, directory, request.path)
        depth = min(max(request.depth, 1), _MAX_DEPTH)
        try:
            entries = await asyncio.to_thread(
                list_entries, ws, directory, depth, shown=_expanded(request.path)
            )
        except OSError as exc:
            raise fs_error(exc, request.path) from exc
        return ListDirResponse(entries=entries)

    @guard_unary
    async def make_dir(
        self, request: MakeDirRequest, ctx: RequestContext[MakeDirRequest, MakeDirResponse], /
    ) -> MakeDirResponse:
        """Create a directory and its parents; ``already_exists`` if it is there."""
        ws, target = _resolve(request.path)
        if target.is_dir():
            raise ConnectError(Code.ALREADY_EXISTS, f"directory already exists: {request.path}")
        if target.exists() or target.is_symlink():
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"path exists but is not a directory: {request.path}"
            )
        try:
            target.mkdir(parents=True)
            return MakeDirResponse(entry=entry_info(ws, target, shown=_expanded(request.path)))
        except OSError as exc:
            raise fs_error(exc, request.path) from exc

    @guard_unary
    async def move(
        self, request: MoveRequest, ctx: RequestContext[MoveRequest, MoveResponse], /
    ) -> MoveResponse:
        """Rename a file or directory (creating the destination's parents)."""
        ws, source = _resolve(request.source, follow_symlinks=False)
        _, destination = _resolve(request.destination, follow_symlinks=False)
        if source == ws.root or destination == ws.root:
            raise ConnectError(Code.PERMISSION_DENIED, "the sandbox root cannot be moved")
        if not source.exists() and not source.is_symlink():
            raise ConnectError(Code.NOT_FOUND, f"no such file or directory: {request.source}")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, destination)
            entry = entry_info(ws, destination, shown=_expanded(request.destination))
            return MoveResponse(entry=entry)
        except OSError as exc:
            raise fs_error(exc, request.destination) from exc

    @guard_unary
    async def remove(
        self, request: RemoveRequest, ctx: RequestContext[RemoveRequest, RemoveResponse], /
    ) -> RemoveResponse:
        """Remove a file, a symlink (not its target) or a directory tree; a missing path is no error.

        envd's Remove is Go's ``os.RemoveAll``, which answers nothing for a
        path that is not there (its parent missing included): E2B's SDK tests
        remove a non-existing file and expect no error.
        """
        ws, target = _resolve(request.path, follow_symlinks=False)
        if target == ws.root:
            raise ConnectError(Code.PERMISSION_DENIED, "the sandbox root cannot be removed")
        try:
            st = os.lstat(target)
            if stat.S_ISDIR(st.st_mode):
                await asyncio.to_thread(shutil.rmtree, target)
            else:
                target.unlink()
        except FileNotFoundError:
            pass  # gone already (or never there, or removed meanwhile): as RemoveAll
        except OSError as exc:
            raise fs_error(exc, request.path) from exc
        return RemoveResponse()

    @guard_stream
    async def watch_dir(
        self, request: WatchDirRequest, ctx: RequestContext[WatchDirRequest, WatchDirResponse], /
    ) -> AsyncIterator[WatchDirResponse]:
        """``start``, then change events under a directory until the client leaves.

        At the request's deadline (``Connect-Timeout-Ms``) the stream ends
        with ``deadline_exceeded``.
        """
        events = self._watch(request, ctx)
        async for response in context.until_deadline(events, ctx, "Filesystem.WatchDir"):
            yield response

    @staticmethod
    async def _watch(
        request: WatchDirRequest, ctx: RequestContext[WatchDirRequest, WatchDirResponse]
    ) -> AsyncGenerator[WatchDirResponse, None]:
        """The ``WatchDir`` stream itself, without a deadline.

        It ends when the client leaves, or with ``unavailable`` when the
        sandbox stops (:mod:`~pytest_kruise_agents.e2b.envd.streams`).
        """
        state = context.current()
        # Joined first: a stop from now on ends the stream (and one before refuses it).
        wake = asyncio.Event()
        leave = state.workspace.attachment(OpenStreams).join(wake.set)
        unregister = state.on_disconnect(wake.set)
        try:
            ws, directory = _resolve(request.path)
            _directory(ws, directory, request.path)
            watcher = Watcher(
                ws,
                directory,
                recursive=request.recursive,
                include_entry=request.include_entry,
                shown=_expanded(request.path),
            )
            await watcher.prime()
            check_running(ws)
            yield _watch_event(
                Oneof[Literal["start"], WatchDirResponse.StartEvent](
                    "start", WatchDirResponse.StartEvent()
                )
            )
            async with contextlib.aclosing(_watch_events(watcher, state, wake, ctx)) as events:
                async for event in events:
                    yield event
        finally:
            unregister()
            leave()

    @guard_unary
    async def create_watcher(
        self,
        request: CreateWatcherRequest,
        ctx: RequestContext[CreateWatcherRequest, CreateWatcherResponse],
        /,
    ) -> CreateWatcherResponse:
        """Start a polling watcher on a directory; returns its id."""
        table = context.current().workspace.attachment(WatcherTable)
        ws, directory = _resolve(request.path)
        _directory(ws, directory, request.path)
        watcher = Watcher(
            ws,
            directory,
            recursive=request.recursive,
            include_entry=request.include_entry,
            shown=_expanded(request.path),
        )
        await watcher.prime()
        return CreateWatcherResponse(watcher_id=table.add(watcher))

    @guard_unary
    async def get_watcher_events(
        self,
        request: GetWatcherEventsRequest,
        ctx: RequestContext[GetWatcherEventsRequest, GetWatcherEventsResponse],
        /,
    ) -> GetWatcherEventsResponse:
        """The changes since the watcher's previous poll."""
        ws = context.current().workspace
        watcher = ws.attachment(WatcherTable).get(request.watcher_id)
        return GetWatcherEventsResponse(events=await watcher.poll())

    @guard_unary
    async def remove_watcher(
        self,
        request: RemoveWatcherRequest,
        ctx: RequestContext[RemoveWatcherRequest, RemoveWatcherResponse],
        /,
    ) -> RemoveWatcherResponse:
        """Stop a watcher."""
        context.current().workspace.attachment(WatcherTable).remove(request.watcher_id)
        return RemoveWatcherResponse()
