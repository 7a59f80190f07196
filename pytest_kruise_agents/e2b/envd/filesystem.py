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
import errno
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
from pytest_kruise_agents.e2b.envd.confined import DIR_FLAGS, at, open_dir, pinned
from pytest_kruise_agents.e2b.envd.entries import entry_info
from pytest_kruise_agents.e2b.envd.errors import fs_error, guard_stream, guard_unary
from pytest_kruise_agents.e2b.envd.streams import OpenStreams, check_running
from pytest_kruise_agents.e2b.envd.watchers import Watcher, WatcherTable, WatchSlots
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
    ws: SandboxWorkspace, directory: int, depth: int, *, shown: str
) -> list[filesystem_pb.EntryInfo]:
    """Entries under ``directory`` (an open descriptor) down to ``depth`` levels, sorted.

    Symlinks are not descended into: each subdirectory is opened from its
    parent's descriptor with ``O_NOFOLLOW``, so one swapped for a link while
    listing is skipped, never followed out of the sandbox. Paths lie under
    ``shown``, the directory's path as the caller named it, as envd's walk
    rebases them.
    """
    found: list[filesystem_pb.EntryInfo] = []

    def walk(current: int, named: str, level: int) -> None:
        with os.scandir(current) as it:
            items = sorted(it, key=lambda item: item.name)
        for item in items:
            item_named = f"{named.rstrip('/')}/{item.name}"
            try:
                st = item.stat(follow_symlinks=False)
                found.append(entry_info(ws, at(current, item.name), st, shown=item_named))
            except OSError:
                continue  # vanished while listing
            if level < depth and stat.S_ISDIR(st.st_mode):
                try:
                    child = os.open(item.name, DIR_FLAGS, dir_fd=current)
                except OSError:
                    continue  # gone, or no longer a directory
                try:
                    walk(child, item_named, level + 1)
                finally:
                    os.close(child)

    walk(directory, shown, 1)
    return found


def _open_directory(ws: SandboxWorkspace, directory: Path, path: str) -> int:
    """A descriptor of the directory at sandbox ``path`` (resolved as ``directory``).

    ``not_found`` if missing, ``invalid_argument`` if it is not a directory
    or a symlink replaced part of it since it was resolved.
    """
    try:
        return open_dir(ws, directory, path)
    except NotADirectoryError:
        raise ConnectError(Code.INVALID_ARGUMENT, f"path is not a directory: {path}") from None
    except OSError as exc:
        raise fs_error(exc, path) from exc


def _make_dir_at(parent: int, name: str, path: str) -> None:
    """``mkdir name`` in directory ``parent``; ``already_exists`` if a directory is there."""
    try:
        os.mkdir(name, dir_fd=parent)
    except FileExistsError:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise ConnectError(Code.ALREADY_EXISTS, f"directory already exists: {path}") from None
        raise ConnectError(
            Code.INVALID_ARGUMENT, f"path exists but is not a directory: {path}"
        ) from None


def _refuse_directory_target(
    parent: int, name: str, source: os.stat_result, *, same_name: bool
) -> None:
    """Raise ``EEXIST`` if ``name`` in ``parent`` is a directory, as Go's ``os.Rename`` does.

    Go lets the move through only when the directory is the source itself
    named otherwise (``same_name`` false, the same inode): a case-only rename
    there, a path through a symlinked parent here.
    """
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    if same_name or (st.st_dev, st.st_ino) != (source.st_dev, source.st_ino):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))


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
        if watcher.ended:
            # Its directory went away (or was replaced): nothing left to watch.
            raise watcher.gone_error()
        quiet = 0.0 if events else quiet + WATCH_POLL_INTERVAL_S
        if keepalive is not None and quiet >= keepalive:
            quiet = 0.0
            yield _watch_event(
                Oneof[Literal["keepalive"], WatchDirResponse.KeepAlive](
                    "keepalive", WatchDirResponse.KeepAlive()
                )
            )


async def _new_watcher(request: WatchDirRequest | CreateWatcherRequest) -> Watcher:
    """A primed watcher of the request's directory (``not_found``/``invalid_argument`` if none)."""
    ws, directory = _resolve(request.path)
    watcher = Watcher(
        ws,
        directory,
        recursive=request.recursive,
        include_entry=request.include_entry,
        shown=_expanded(request.path),
    )
    try:
        await watcher.prime()
    except NotADirectoryError:
        raise ConnectError(
            Code.INVALID_ARGUMENT, f"path is not a directory: {request.path}"
        ) from None
    except OSError as exc:
        raise fs_error(exc, request.path) from exc
    return watcher


class FilesystemService(Filesystem):
    """``filesystem.Filesystem``: stat, list, make, move, remove and watch sandbox paths."""

    @guard_unary
    async def stat(
        self, request: StatRequest, ctx: RequestContext[StatRequest, StatResponse], /
    ) -> StatResponse:
        """The entry at a path (a symlink itself, not its target)."""
        ws, target = _resolve(request.path, follow_symlinks=False)
        try:
            with pinned(ws, target, request.path) as entry:
                return StatResponse(entry=entry_info(ws, entry, shown=_expanded(request.path)))
        except OSError as exc:
            raise fs_error(exc, request.path) from exc

    @guard_unary
    async def list_dir(
        self, request: ListDirRequest, ctx: RequestContext[ListDirRequest, ListDirResponse], /
    ) -> ListDirResponse:
        """The entries of a directory, ``depth`` levels deep (0 means 1)."""
        ws, directory = _resolve(request.path)
        depth = min(max(request.depth, 1), _MAX_DEPTH)
        # Listed through the descriptor checked here, never by name again.
        fd = _open_directory(ws, directory, request.path)
        try:
            entries = await asyncio.to_thread(
                list_entries, ws, fd, depth, shown=_expanded(request.path)
            )
        except OSError as exc:
            raise fs_error(exc, request.path) from exc
        finally:
            os.close(fd)
        return ListDirResponse(entries=entries)

    @guard_unary
    async def make_dir(
        self, request: MakeDirRequest, ctx: RequestContext[MakeDirRequest, MakeDirResponse], /
    ) -> MakeDirResponse:
        """Create a directory and its parents; ``already_exists`` if it is there."""
        ws, target = _resolve(request.path)
        if target == ws.root:
            raise ConnectError(Code.ALREADY_EXISTS, f"directory already exists: {request.path}")
        try:
            # Made relative to its parent's descriptor, the parents made the same
            # way: a link that replaced one since the check is refused, not followed.
            parent = open_dir(ws, target.parent, request.path, create=True)
        except OSError as exc:
            raise fs_error(exc, request.path) from exc
        try:
            _make_dir_at(parent, target.name, request.path)
            return MakeDirResponse(
                entry=entry_info(ws, at(parent, target.name), shown=_expanded(request.path))
            )
        except OSError as exc:
            raise fs_error(exc, request.path) from exc
        finally:
            os.close(parent)

    @guard_unary
    async def move(
        self, request: MoveRequest, ctx: RequestContext[MoveRequest, MoveResponse], /
    ) -> MoveResponse:
        """Rename a file or directory (creating the destination's parents), as Go's ``os.Rename``.

        A file there is replaced; a directory there, empty or not (the source
        itself included), refuses the move with ``EEXIST`` (``already_exists``):
        Go's ``os.Rename`` checks the destination before ``rename(2)``, which
        would replace an empty directory. Only the same directory named by
        another path (through a symlinked parent) moves onto itself.
        """
        ws, source = _resolve(request.source, follow_symlinks=False)
        _, destination = _resolve(request.destination, follow_symlinks=False)
        if source == ws.root or destination == ws.root:
            raise ConnectError(Code.PERMISSION_DENIED, "the sandbox root cannot be moved")
        # Renamed between the two parents' descriptors (:mod:`.confined`).
        with contextlib.ExitStack() as fds:
            try:
                src = open_dir(ws, source.parent, request.source)
                fds.callback(os.close, src)
                source_st = os.stat(source.name, dir_fd=src, follow_symlinks=False)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise ConnectError(
                        Code.NOT_FOUND, f"no such file or directory: {request.source}"
                    ) from exc
                raise fs_error(exc, request.source) from exc
            try:
                dst = open_dir(ws, destination.parent, request.destination, create=True)
                fds.callback(os.close, dst)
                _refuse_directory_target(
                    dst,
                    destination.name,
                    source_st,
                    same_name=_expanded(request.source) == _expanded(request.destination),
                )
                os.rename(source.name, destination.name, src_dir_fd=src, dst_dir_fd=dst)
                entry = entry_info(
                    ws, at(dst, destination.name), shown=_expanded(request.destination)
                )
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
            # Removed relative to its parent's descriptor (:mod:`.confined`).
            parent = open_dir(ws, target.parent, request.path)
            try:
                st = os.stat(target.name, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    await asyncio.to_thread(shutil.rmtree, target.name, dir_fd=parent)
                else:
                    os.unlink(target.name, dir_fd=parent)
            finally:
                os.close(parent)
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
        # Counted first: beyond the sandbox's cap nothing else is done.
        closed = state.workspace.attachment(WatchSlots).open_stream()
        # Joined first: a stop from now on ends the stream (and one before refuses it).
        wake = asyncio.Event()
        leave = state.workspace.attachment(OpenStreams).join(wake.set)
        unregister = state.on_disconnect(wake.set)
        watcher: Watcher | None = None
        try:
            watcher = await _new_watcher(request)
            check_running(watcher.ws)
            yield _watch_event(
                Oneof[Literal["start"], WatchDirResponse.StartEvent](
                    "start", WatchDirResponse.StartEvent()
                )
            )
            async with contextlib.aclosing(_watch_events(watcher, state, wake, ctx)) as events:
                async for event in events:
                    yield event
        finally:
            if watcher is not None:
                watcher.close()
            unregister()
            leave()
            closed()

    @guard_unary
    async def create_watcher(
        self,
        request: CreateWatcherRequest,
        ctx: RequestContext[CreateWatcherRequest, CreateWatcherResponse],
        /,
    ) -> CreateWatcherResponse:
        """Start a polling watcher on a directory; returns its id."""
        table = context.current().workspace.attachment(WatcherTable)
        watcher = await _new_watcher(request)
        return CreateWatcherResponse(watcher_id=table.add(watcher))

    @guard_unary
    async def get_watcher_events(
        self,
        request: GetWatcherEventsRequest,
        ctx: RequestContext[GetWatcherEventsRequest, GetWatcherEventsResponse],
        /,
    ) -> GetWatcherEventsResponse:
        """The changes since the watcher's previous poll.

        Once a poll found the directory gone (and reported its entries removed),
        the watcher has ended: every later call answers why (``not_found``), and
        ``RemoveWatcher`` of it still succeeds.
        """
        table = context.current().workspace.attachment(WatcherTable)
        watcher = table.get(request.watcher_id)
        if watcher.ended:
            raise table.end(request.watcher_id)
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
