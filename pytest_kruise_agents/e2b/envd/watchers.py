"""Directory watching by polling: snapshots of a directory and the events between two of them.

envd watches with inotify; this fake compares snapshots (name -> mtime,
size, mode) instead, which needs no thread and no OS support but coalesces
what happens between two polls: a file created and removed in between is
never seen, and a rename reads as REMOVE of the old name plus CREATE of the
new one. ``GetWatcherEvents`` polls when it is called, so a change made
before the call is always reported.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
from pathlib import Path

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.filesystem import filesystem_pb

from pytest_kruise_agents.e2b.envd.entries import entry_info
from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = ["Snapshot", "Watcher", "WatcherTable", "diff", "snapshot"]

EventType = filesystem_pb.EventType

Snapshot = dict[str, tuple[int, int, int]]
"""Relative name -> (mtime_ns, size, mode) of every entry under a watched directory.

A directory's mtime and size are left out (0): they change whenever an entry
inside it does, which inotify reports as no event on the directory itself
(only as the entry's own event, in a recursive watch)."""

_MAX_WATCHERS = 256


def snapshot(base: Path, recursive: bool) -> Snapshot:
    """The entries under ``base`` (not following symlinks); empty if ``base`` is gone."""
    found: Snapshot = {}
    pending: list[tuple[Path, str]] = [(base, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as it:
                for item in it:
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    name = prefix + item.name
                    if stat.S_ISDIR(st.st_mode):
                        found[name] = (0, 0, st.st_mode)
                        if recursive:
                            pending.append((Path(item.path), name + "/"))
                    else:
                        found[name] = (st.st_mtime_ns, st.st_size, st.st_mode)
        except OSError:
            continue
    return found


def diff(old: Snapshot, new: Snapshot) -> list[tuple[str, filesystem_pb.EventType]]:
    """The events that turn ``old`` into ``new``: CREATE, WRITE, CHMOD, REMOVE (sorted by name).

    An entry whose type changed (a file replaced by a directory) was removed
    and created again.
    """
    events: list[tuple[str, filesystem_pb.EventType]] = []
    for name in sorted(new.keys() | old.keys()):
        before, after = old.get(name), new.get(name)
        if before is None:
            events.append((name, EventType.CREATE))
        elif after is None:
            events.append((name, EventType.REMOVE))
        elif stat.S_IFMT(before[2]) != stat.S_IFMT(after[2]):
            events += [(name, EventType.REMOVE), (name, EventType.CREATE)]
        elif before[:2] != after[:2]:
            events.append((name, EventType.WRITE))
        elif before[2] != after[2]:
            events.append((name, EventType.CHMOD))
    return events


class Watcher:
    """One watched directory and its last snapshot."""

    def __init__(
        self,
        ws: SandboxWorkspace,
        directory: Path,
        *,
        recursive: bool,
        include_entry: bool,
        shown: str | None = None,
    ) -> None:
        self.ws = ws
        self.directory = directory
        # The directory's path as the watch named it: entries are reported under it.
        self.shown = shown if shown is not None else ws.sandbox_path(directory)
        self.recursive = recursive
        self.include_entry = include_entry
        self._last: Snapshot = {}

    async def prime(self) -> None:
        """Take the first snapshot (events are reported relative to it)."""
        self._last = await asyncio.to_thread(snapshot, self.directory, self.recursive)

    async def poll(self) -> list[filesystem_pb.FilesystemEvent]:
        """The events since the previous poll."""
        now = await asyncio.to_thread(snapshot, self.directory, self.recursive)
        changes = diff(self._last, now)
        self._last = now
        return [self._event(name, kind) for name, kind in changes]

    def _event(self, name: str, kind: filesystem_pb.EventType) -> filesystem_pb.FilesystemEvent:
        entry = None
        if self.include_entry and kind != EventType.REMOVE:
            try:
                entry = entry_info(self.ws, self.directory / name, shown=_join(self.shown, name))
            except OSError:
                entry = None
        return filesystem_pb.FilesystemEvent(name=name, type=kind, entry=entry)


def _join(base: str, name: str) -> str:
    """Sandbox path ``name`` under sandbox directory ``base``."""
    return f"{base.rstrip('/')}/{name}"


class WatcherTable:
    """The polling watchers (``CreateWatcher``) of one sandbox (a workspace attachment)."""

    def __init__(self, workspace: SandboxWorkspace) -> None:
        self.workspace = workspace
        self._loop = asyncio.get_running_loop()
        self._watchers: dict[str, Watcher] = {}
        self._ids = itertools.count(1)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this table was made on."""
        return self._loop

    def add(self, watcher: Watcher) -> str:
        """Register ``watcher``; returns its id."""
        if len(self._watchers) >= _MAX_WATCHERS:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"too many watchers (at most {_MAX_WATCHERS})"
            )
        watcher_id = f"w{next(self._ids)}"
        self._watchers[watcher_id] = watcher
        return watcher_id

    def get(self, watcher_id: str) -> Watcher:
        """The watcher ``watcher_id``; ``not_found`` otherwise."""
        found = self._watchers.get(watcher_id)
        if found is None:
            raise ConnectError(Code.NOT_FOUND, f"watcher {watcher_id!r} not found")
        return found

    def remove(self, watcher_id: str) -> None:
        """Forget watcher ``watcher_id``; ``not_found`` if unknown."""
        if self._watchers.pop(watcher_id, None) is None:
            raise ConnectError(Code.NOT_FOUND, f"watcher {watcher_id!r} not found")

    async def aclose(self) -> None:
        """Drop every watcher."""
        self._watchers.clear()
