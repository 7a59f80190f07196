"""Directory watching by polling: snapshots of a directory and the events between two of them.

envd watches with inotify; this fake compares snapshots (name -> mtime,
size, mode, inode) instead, which needs no thread and no OS support but
coalesces what happens between two polls: a file created and removed in
between is never seen, a rename reads as REMOVE of the old name plus CREATE
of the new one, and an entry replaced under its name as REMOVE then CREATE.
A file whose mtime is within a clock tick of a scan has its content
remembered too (:data:`RACY_NS`), so that a rewrite keeping the mtime still
shows. ``GetWatcherEvents`` polls when it is called, so a change made
before the call is always reported.

Confinement: every poll reaches the watched directory again from the sandbox
root, never through a symlink, and scans it through that descriptor; once it
is not the directory the watch started on (removed, or replaced, by a link
leading out of the sandbox say), the watch reports its entries removed and
ends (:class:`Watcher`). Only a directory that is not there any more
(``ENOENT``, ``ENOTDIR``, a symlink or another directory in its place) is
gone: a scan failing otherwise (the host out of descriptors or memory,
``EMFILE``, ``ENOMEM``; a permission taken away) reports nothing, keeps the
last snapshot and is tried again at the next poll; only
:data:`MAX_FAILED_SCANS` failures in a row end the watch, with that error
(``internal`` for the host's shortages, ``permission_denied`` for ``EACCES``).
Cost: a sandbox has at most :data:`MAX_WATCH_STREAMS`
``WatchDir`` streams open, and its scans run one at a time in a small pool of
their own (:class:`WatchSlots`), so its watches cannot slow other sandboxes'
file calls down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import itertools
import os
import stat
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.filesystem import filesystem_pb

from pytest_kruise_agents.e2b.envd.confined import DIR_FLAGS, at, open_dir
from pytest_kruise_agents.e2b.envd.entries import entry_info
from pytest_kruise_agents.e2b.envd.errors import fs_error
from pytest_kruise_agents.e2b.workspace import PathEscapeError, SandboxWorkspace

__all__ = [
    "MAX_FAILED_SCANS",
    "MAX_WATCHERS",
    "MAX_WATCH_STREAMS",
    "WATCH_POLL_THREADS",
    "Snapshot",
    "WatchSlots",
    "Watcher",
    "WatcherTable",
    "diff",
    "snapshot",
]

T = TypeVar("T")

EventType = filesystem_pb.EventType

Snapshot = dict[str, tuple[int, int, int, int]]
"""Relative name -> (mtime_ns, size, mode, inode) of every entry under a watched directory.

A directory's mtime and size are left out (0): they change whenever an entry
inside it does, which inotify reports as no event on the directory itself
(only as the entry's own event, in a recursive watch). The inode number tells
an entry replaced under its name (removed and made again, or a rename onto
it) from the same one changed."""

MAX_WATCHERS = 256
"""Most polling watchers (``CreateWatcher``) one sandbox may have (``resource_exhausted`` beyond)."""

_MAX_ENDED = 4096
"""Ended watchers (their directory gone) whose end a sandbox remembers, for a later stop."""

MAX_WATCH_STREAMS = 16
"""Most ``WatchDir`` streams one sandbox may have open at once (``resource_exhausted`` beyond).

Each one rescans its tree every poll: unbounded, one sandbox's watches took
the server's time from every other sandbox."""

WATCH_POLL_THREADS = 2
"""Threads that scan watched directories, for all sandboxes together.

Their own pool, not the event loop's default one that every other file call
(``files.list``, uploads) waits in; and a sandbox scans one watch at a time
(:class:`WatchSlots`), so its watches take at most one of these threads."""

MAX_FAILED_SCANS = 20
"""Scans of one watch that may fail in a row (not for the directory being gone) before it ends.

A host out of descriptors or memory usually recovers within seconds (20
polls of a ``WatchDir`` stream are 2 s): until then the watch reports
nothing rather than what it could not see as removed."""

_poll_pool: concurrent.futures.ThreadPoolExecutor | None = None

# What an entry met during a scan may answer when it simply is not there any more
# (removed since it was listed, or swapped for a link, which O_NOFOLLOW refuses).
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})

# A subdirectory whose permissions shut the server out: left out of the
# snapshot, as before, every scan alike (so it makes no events of its own).
_UNREADABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM})

# Rest after a sandbox's scan, as a multiple of the scan's time (see WatchSlots.scan).
_SCAN_REST = 3.0

RACY_NS = 50_000_000
"""How close to a scan (ns) a file's mtime makes it *racy*: changed again, it may keep that mtime.

A kernel without multigrain timestamps (before 6.13) stamps a write with the time
of the last clock tick (up to 10 ms old), so a file written again with the same
size in the tick a scan saw it in looks unchanged: such a file's content is
remembered (its digest, :data:`MAX_DIGEST_BYTES` at most) and compared at the
next scan, as git does for its racily clean index entries."""

MAX_DIGEST_BYTES = 1 << 20
"""Largest racy file whose content a scan reads to tell a rewrite (a larger one is not read)."""


def _scan_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _poll_pool
    if _poll_pool is None:
        _poll_pool = concurrent.futures.ThreadPoolExecutor(
            WATCH_POLL_THREADS, thread_name_prefix="envd-watch"
        )
    return _poll_pool


class WatchedDirGone(Exception):
    """The watched directory is no longer the one the watch started on (removed or replaced)."""


def snapshot(base: int, recursive: bool, unreadable: set[str] | None = None) -> Snapshot:
    """The entries under directory descriptor ``base`` (never following a symlink).

    An entry or subdirectory that went away while the scan ran is left out;
    so is the inside of a subdirectory the server may not read or search
    (``chmod 000``, ``chmod 600``), whose name (with its ``/``) is added to
    ``unreadable``: the caller keeps what it knew under it. A watched
    directory the server may list but not search raises ``EACCES``, as one it
    may not open does. Any other failure (``EMFILE``, ``ENOMEM``...) raises its
    :class:`OSError`: a snapshot missing what could not be read would report
    it removed.
    """
    found: Snapshot = {}
    # Depth first, a subdirectory opened only when its turn comes: at most one
    # descriptor per level is open, however many siblings a level has (opening
    # every sibling first, a node_modules of 1,000 packages ran out of them).
    stack: list[tuple[int, Iterator[tuple[str, str]]]] = []
    root = os.dup(base)
    try:
        stack.append((root, iter(_scan_one(root, "", recursive, found, unreadable))))
    except BaseException:
        os.close(root)
        raise
    try:
        while stack:
            directory, subdirectories = stack[-1]
            step = next(subdirectories, None)
            if step is None:
                stack.pop()
                os.close(directory)
                continue
            entry, name = step
            # O_NOFOLLOW: one swapped for a link meanwhile is not entered.
            try:
                child = os.open(entry, DIR_FLAGS, dir_fd=directory)
            except OSError as exc:
                if _skipped(exc):
                    if unreadable is not None and exc.errno in _UNREADABLE_ERRNOS:
                        unreadable.add(name + "/")
                    continue
                raise
            try:
                children = _scan_one(child, name + "/", recursive, found, unreadable)
            except BaseException:
                os.close(child)
                raise
            stack.append((child, iter(children)))
    finally:
        for directory, _subdirectories in stack:  # a failed scan leaves no descriptor open
            os.close(directory)
    return found


def _scan_one(
    directory: int,
    prefix: str,
    recursive: bool,
    found: Snapshot,
    unreadable: set[str] | None = None,
) -> list[tuple[str, str]]:
    """Add the entries of ``directory`` to ``found``; return its subdirectories to enter
    (entry name, name under the watch) when ``recursive``."""
    try:
        with os.scandir(directory) as it:
            items = list(it)
    except OSError as exc:
        # A subdirectory removed meanwhile is left out; the watched directory itself
        # was checked just before, so its failure is the host's, never it gone.
        if prefix and _skipped(exc):
            if unreadable is not None and exc.errno in _UNREADABLE_ERRNOS:
                unreadable.add(prefix)
            return []
        raise
    subdirectories: list[tuple[str, str]] = []
    for item in items:
        try:
            st = item.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno in _UNREADABLE_ERRNOS:
                # Listed but not searchable (read without execute: chmod 600): as shut to
                # the server as one it may not open, not emptied. The watched directory
                # itself so: a failed scan, as when it cannot be opened.
                if not prefix:
                    raise
                if unreadable is not None:
                    unreadable.add(prefix)
                return []
            if _skipped(exc):
                continue
            raise
        name = prefix + item.name
        if not stat.S_ISDIR(st.st_mode):
            found[name] = (st.st_mtime_ns, st.st_size, st.st_mode, st.st_ino)
            continue
        found[name] = (0, 0, st.st_mode, st.st_ino)
        if recursive:
            subdirectories.append((item.name, name))
    return subdirectories


def _skipped(exc: OSError) -> bool:
    """Whether a scan leaves out the entry that failed with ``exc`` (gone, or shut to the server)."""
    return exc.errno in _GONE_ERRNOS or exc.errno in _UNREADABLE_ERRNOS


def diff(
    old: Snapshot, new: Snapshot, rewritten: frozenset[str] = frozenset()
) -> list[tuple[str, filesystem_pb.EventType]]:
    """The events that turn ``old`` into ``new``: CREATE, WRITE, CHMOD, REMOVE (sorted by name).

    An entry replaced under its name (another inode: removed and made again, a
    rename onto it, a file replaced by a directory) was removed and created
    again, whatever its new content and mode. The same entry both written and
    given another mode reads WRITE then CHMOD: one does not hide the other.
    A file of ``rewritten`` was written even if its mtime and size say not.
    """
    events: list[tuple[str, filesystem_pb.EventType]] = []
    for name in sorted(new.keys() | old.keys()):
        before, after = old.get(name), new.get(name)
        if before is None:
            events.append((name, EventType.CREATE))
        elif after is None:
            events.append((name, EventType.REMOVE))
        elif stat.S_IFMT(before[2]) != stat.S_IFMT(after[2]) or before[3] != after[3]:
            events += [(name, EventType.REMOVE), (name, EventType.CREATE)]
        else:
            if before[:2] != after[:2] or name in rewritten:
                events.append((name, EventType.WRITE))
            if before[2] != after[2]:
                events.append((name, EventType.CHMOD))
    return events


class WatchSlots:
    """What one sandbox's watches may take (a workspace attachment).

    At most :data:`MAX_WATCH_STREAMS` open ``WatchDir`` streams, and one scan
    at a time in the shared watch threads (:data:`WATCH_POLL_THREADS`).
    """

    def __init__(self, workspace: SandboxWorkspace) -> None:
        self.workspace = workspace
        self._loop = asyncio.get_running_loop()
        self._streams = 0
        self._scan = asyncio.Lock()
        self._rested_at = 0.0
        """When the rest after the last scan ends (``time.monotonic()``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this attachment was made on."""
        return self._loop

    def open_stream(self) -> Callable[[], None]:
        """Count one more open ``WatchDir`` stream; returns the call that counts it closed.

        ``resource_exhausted`` when the sandbox has :data:`MAX_WATCH_STREAMS` open.
        """
        if self._streams >= MAX_WATCH_STREAMS:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"too many directory watches open in this sandbox (at most {MAX_WATCH_STREAMS}): "
                "stop one first",
            )
        self._streams += 1
        closed = False

        def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                self._streams -= 1

        return close

    async def scan(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the watch threads, after this sandbox's previous scan and its rest ended.

        A scan taking ``t`` seconds is followed by a rest of ``3 t`` before the
        sandbox's next one: its watches use at most a quarter of one thread
        (and of the interpreter's lock, which a scan holds between system
        calls), however many trees it watches. Its own watches report later
        when it watches a lot; no other sandbox waits for them.
        """
        async with self._scan:
            # The rest delays the next scan, not this one's answer.
            rest = self._rested_at - time.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)
            began = time.monotonic()
            try:
                return await asyncio.get_running_loop().run_in_executor(_scan_pool(), fn)
            finally:
                ended = time.monotonic()
                self._rested_at = ended + (ended - began) * _SCAN_REST

    async def aclose(self) -> None:
        """Nothing to release: the streams end on their own when the sandbox stops."""


class Watcher:
    """One watched directory, its identity and its last snapshot.

    Every poll reaches the directory again from the sandbox root without
    following a symlink (:mod:`.confined`) and checks it is still the same
    directory (device and inode) as when the watch started. Once it is not
    (removed, or replaced by another directory or by a symlink, one leading out
    of the sandbox included), the poll reports its entries removed and the
    watch is :attr:`ended`: it never scans whatever took the directory's place.
    A scan failing for another reason (the host out of descriptors) reports
    nothing and is tried again at the next poll (:meth:`_failed`).
    The watch holds the directory open meanwhile, so that a directory removed
    and made again (``rm -rf w && mkdir w``) cannot reuse its inode number and
    pass for it; :meth:`close` (or the watcher's collection) lets it go.
    """

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
        self.ended = False
        self._identity: tuple[int, int] | None = None
        self._last: Snapshot = {}
        self._held: Callable[[], object] | None = None
        """Closes the descriptor that keeps the watched directory (and its inode) alive."""
        self._digests: dict[str, bytes] = {}
        """The content of the racy files of the last snapshot (see :data:`RACY_NS`)."""
        self._scanned_at = 0
        """When the last snapshot's scan started (``time.time_ns()``)."""
        self._failures = 0
        """Scans failed in a row, the directory not gone (see :meth:`_failed`)."""
        self._error: ConnectError | None = None
        """Why the watch ended, if not because its directory went away."""

    def close(self) -> None:
        """Let the watched directory go (the watch is over); idempotent."""
        if self._held is not None:
            self._held()

    async def prime(self) -> None:
        """Take the first snapshot (events are reported relative to it).

        Raises the :class:`OSError` (or :class:`PathEscapeError`) of a directory
        that cannot be reached.
        """
        slots = self.ws.attachment(WatchSlots)
        self._last = (await slots.scan(lambda: self._scan(prime=True)))[0]

    async def poll(self) -> list[filesystem_pb.FilesystemEvent]:
        """The events since the previous poll (the last ones, if the directory went away)."""
        if self.ended:
            return []
        slots = self.ws.attachment(WatchSlots)
        now, events = await slots.scan(lambda: self._scan(prime=False))
        self._last = now
        return events

    def _scan(self, *, prime: bool) -> tuple[Snapshot, list[filesystem_pb.FilesystemEvent]]:
        """A snapshot and the events since the last one, through a descriptor of the directory."""
        try:
            fd = open_dir(self.ws, self.directory, self.shown)
        except (FileNotFoundError, NotADirectoryError, PathEscapeError):
            if prime:
                raise
            return self._gone()
        except OSError as exc:
            if prime:
                raise
            return self._failed(exc)
        try:
            st = os.fstat(fd)
            if prime:
                self._identity = (st.st_dev, st.st_ino)
                # Closed at close(), or when the watcher is collected, whichever is first.
                self._held = weakref.finalize(self, os.close, os.dup(fd))
            elif self._identity != (st.st_dev, st.st_ino):
                return self._gone()
            unreadable: set[str] = set()
            started = time.time_ns()
            try:
                now = snapshot(fd, self.recursive, unreadable)
            except OSError as exc:
                if prime:
                    raise
                return self._failed(exc)
            self._failures = 0
            if unreadable:
                # A subdirectory shut to the server (chmod 000) still holds its files:
                # what was known under it stays, as envd reports only the CHMOD.
                for name, entry in self._last.items():
                    if name.startswith(tuple(unreadable)):
                        now.setdefault(name, entry)
            digests = self._racy_digests(fd, now, started)
            rewritten = frozenset(
                name
                for name, digest in digests.items()
                if self._digests.get(name, digest) != digest
            )
            self._digests, self._scanned_at = digests, started
            if prime:
                return now, []
            changes = diff(self._last, now, rewritten)
            events = [self._event(fd, name, kind) for name, kind in changes]
            return now, events
        finally:
            os.close(fd)

    def _racy_digests(self, fd: int, now: Snapshot, started: int) -> dict[str, bytes]:
        """The content digests of the files of ``now`` a same-tick rewrite could hide.

        A file whose mtime is within :data:`RACY_NS` of this scan's start, or
        that was so at the last scan and still has the mtime, size and inode it
        had (compared with what that scan read). Once a scan started a tick past
        a file's mtime, what it read is the file's content for that mtime: later
        scans need not read it.
        """
        digests: dict[str, bytes] = {}
        for name, (mtime, size, mode, ino) in now.items():
            if not stat.S_ISREG(mode) or size > MAX_DIGEST_BYTES:
                continue
            racy = mtime >= started - RACY_NS
            last = self._last.get(name)
            was_racy = (
                mtime >= self._scanned_at - RACY_NS
                and name in self._digests
                and last is not None
                and (last[0], last[1], last[3]) == (mtime, size, ino)  # its mode may change
            )
            if not racy and not was_racy:
                continue
            digest = self._digest(fd, name, ino)
            if digest is not None:
                digests[name] = digest
        return digests

    def _digest(self, fd: int, name: str, ino: int) -> bytes | None:
        """The digest of file ``name`` under directory ``fd``, if it is still inode ``ino``."""
        try:
            with _parent(fd, name) as (parent, last):
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                file = os.open(last, flags, dir_fd=parent)
                try:
                    st = os.fstat(file)
                    if not stat.S_ISREG(st.st_mode) or st.st_ino != ino:
                        return None
                    content = os.read(file, MAX_DIGEST_BYTES + 1)
                    while len(content) <= MAX_DIGEST_BYTES:
                        more = os.read(file, MAX_DIGEST_BYTES + 1 - len(content))
                        if not more:
                            break
                        content += more
                    if len(content) > MAX_DIGEST_BYTES:
                        return None
                    return hashlib.blake2b(content, digest_size=16).digest()
                finally:
                    os.close(file)
        except OSError:
            return None  # gone meanwhile, or shut to the server: no digest, no WRITE of it

    def _gone(self) -> tuple[Snapshot, list[filesystem_pb.FilesystemEvent]]:
        """The directory went away: its entries are removed, and the watch ends."""
        self.ended = True
        self.close()
        return {}, [self._event(None, name, kind) for name, kind in diff(self._last, {})]

    def _failed(self, exc: OSError) -> tuple[Snapshot, list[filesystem_pb.FilesystemEvent]]:
        """A scan failed, the directory not gone: no events, the last snapshot kept.

        The next poll tries again; after :data:`MAX_FAILED_SCANS` failures in a
        row the watch ends with the last one's error (:meth:`gone_error`).
        """
        self._failures += 1
        if self._failures >= MAX_FAILED_SCANS:
            self.ended = True
            self.close()
            error = fs_error(exc, self.shown)
            self._error = ConnectError(
                error.code,
                f"cannot scan the watched directory ({error.message}, "
                f"{self._failures} times in a row): the watch ended",
            )
        return self._last, []

    def _event(
        self, fd: int | None, name: str, kind: filesystem_pb.EventType
    ) -> filesystem_pb.FilesystemEvent:
        entry = None
        if fd is not None and self.include_entry and kind != EventType.REMOVE:
            entry = self._entry(fd, name)
        return filesystem_pb.FilesystemEvent(name=name, type=kind, entry=entry)

    def _entry(self, fd: int, name: str) -> filesystem_pb.EntryInfo | None:
        """The entry ``name`` (relative, ``a/b`` in a recursive watch) under directory ``fd``."""
        try:
            with _parent(fd, name) as (parent, last):
                return entry_info(self.ws, at(parent, last), shown=_join(self.shown, name))
        except OSError:
            return None  # gone meanwhile, or a directory on the way became a link

    def gone_error(self) -> ConnectError:
        """What ends the watch once :attr:`ended`: its directory gone, or scans failing on."""
        if self._error is not None:
            return self._error
        return ConnectError(
            Code.NOT_FOUND,
            f"the watched directory {self.shown} was removed or replaced: the watch ended",
        )


@contextlib.contextmanager
def _parent(fd: int, name: str) -> Iterator[tuple[int, str]]:
    """The directory holding ``name`` (relative, ``a/b``) under directory ``fd``, and its last part.

    Each directory on the way is opened without following a link; the
    descriptor yielded is closed on leaving.
    """
    *dirs, last = name.split("/")
    current = os.dup(fd)
    try:
        for part in dirs:
            child = os.open(part, DIR_FLAGS, dir_fd=current)
            os.close(current)
            current = child
        yield current, last
    finally:
        os.close(current)


def _join(base: str, name: str) -> str:
    """Sandbox path ``name`` under sandbox directory ``base``."""
    return f"{base.rstrip('/')}/{name}"


class WatcherTable:
    """The polling watchers (``CreateWatcher``) of one sandbox (a workspace attachment).

    A watcher whose directory went away ends (:meth:`end`): from then on every
    ``GetWatcherEvents`` of it answers why, and ``RemoveWatcher`` (the SDK's
    ``stop()``) still succeeds once, as for any watcher envd has. What an ended
    one keeps is its error, not its directory, and it does not count towards
    the sandbox's watchers; the last :data:`_MAX_ENDED` are remembered.
    """

    def __init__(self, workspace: SandboxWorkspace) -> None:
        self.workspace = workspace
        self._loop = asyncio.get_running_loop()
        self._watchers: dict[str, Watcher] = {}
        self._ended: dict[str, ConnectError] = {}
        self._ids = itertools.count(1)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this table was made on."""
        return self._loop

    def add(self, watcher: Watcher) -> str:
        """Register ``watcher``; returns its id."""
        if len(self._watchers) >= MAX_WATCHERS:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"too many watchers (at most {MAX_WATCHERS})"
            )
        watcher_id = f"w{next(self._ids)}"
        self._watchers[watcher_id] = watcher
        return watcher_id

    def get(self, watcher_id: str) -> Watcher:
        """The watcher ``watcher_id``; its error if it ended, ``not_found`` if unknown."""
        found = self._watchers.get(watcher_id)
        if found is None:
            ended = self._ended.get(watcher_id)
            if ended is not None:
                # A new error each time: one instance raised again and again would carry
                # every earlier raise's traceback along.
                raise ConnectError(ended.code, ended.message, ended.details)
            raise ConnectError(Code.NOT_FOUND, f"watcher {watcher_id!r} not found")
        return found

    def end(self, watcher_id: str) -> ConnectError:
        """Let the :attr:`~Watcher.ended` watcher ``watcher_id`` go, remembering why it ended."""
        watcher = self._watchers.pop(watcher_id)
        watcher.close()
        error = watcher.gone_error()
        self._ended[watcher_id] = error
        if len(self._ended) > _MAX_ENDED:
            del self._ended[next(iter(self._ended))]
        return ConnectError(error.code, error.message, error.details)

    def remove(self, watcher_id: str) -> None:
        """Forget watcher ``watcher_id`` (an ended one too); ``not_found`` if unknown."""
        watcher = self._watchers.pop(watcher_id, None)
        if watcher is None:
            if self._ended.pop(watcher_id, None) is not None:
                return
            raise ConnectError(Code.NOT_FOUND, f"watcher {watcher_id!r} not found")
        watcher.close()

    async def aclose(self) -> None:
        """Drop every watcher."""
        for watcher in self._watchers.values():
            watcher.close()
        self._watchers.clear()
        self._ended.clear()
