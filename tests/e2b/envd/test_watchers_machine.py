"""envd's directory watches, as a Hypothesis state machine checked against a model of the tree.

The rules make real SDK calls over HTTP on 127.0.0.1 against the fake envd, each
example in a sandbox of its own: they change a small tree under ``/home/user``
(the names ``a`` and ``b``, one to three levels deep) with ``files.write`` (a new
file, or an existing one written again, the same size or not; one without write
permission is replaced, docs/fidelity.md), ``files.make_dir``, ``files.rename``
(onto a missing path, onto a file, a directory with what is under it),
``files.remove``, and commands (``chmod``, ``touch``; ``rm -rf d && mkdir d``, a
directory replaced within one step); and they start watches of both forms,
polling watchers (``files.watch_dir`` of the sync SDK) and ``WatchDir`` streams
(``await files.watch_dir(path, on_event, on_exit=...)`` of the async SDK, in a
loop of the test's), recursive or not, with entries or not, on ``/home/user``
itself or on a directory of the tree, several at once, on nested directories
too; and stop them.

After every step each polling watcher is polled (``get_new_events()``) and its
events must be exactly what the model says changed since its previous poll,
with the coalescing docs/fidelity.md describes and no other:

- what is under the watch now and was not at the last poll: ``create``; what
  was and is not: ``remove`` (a rename is the two: ``remove`` of the old name,
  ``create`` of the new); a file or directory removed and made again under the
  same name in between, or replaced by a rename onto it, or by an entry of
  another type: ``remove`` then ``create``, unless the host gave the new one
  the old one's inode number (the test looks: ext4 reuses a freed inode at
  once), when only its own changes show (``write``, ``chmod``);
- a file written since the last poll (in place, its content changed or not, or
  touched): ``write``, certain when its bytes changed (on older kernels a write
  within the tick of the last one keeps the mtime: the same bytes again may go
  unseen); an entry whose mode changed: ``chmod``; both: both;
- a directory's own changes (an entry made in it, a ``touch``) are no event of it,
  nor are the watched directory's;
- a non-recursive watch sees the entries of its directory only, not what is
  in its subdirectories; a recursive one sees the whole subtree, with names
  relative to the watched directory (``a/b``);
- once the watched directory is not the one the watch started on (removed,
  renamed away, its parent renamed, replaced by another), the poll reports
  every entry of the last one removed, and every later one answers
  ``not_found``; nothing is reported of whatever took its place, and
  ``stop()`` still succeeds;
- with ``include_entry``, each event but ``remove`` carries the entry, its
  name, its path absolute under the watch's path and its type the entry's.

Nothing else: no event for a path outside the watch, none for what did not
change, none twice. Entries made and removed between two polls are never seen.

A stream polls on its own clock (every 0.1 s), so what one poll of it holds is
not the test's to know: after every step the test waits until each stream has
caught up (its events, replayed, give the model's entries, and every change the
model says a watcher would report shows among them) and checks every event on
the way: a ``create`` of an entry it did not know (whose parent it knew), a
``remove``, ``write`` or ``chmod`` of one it did, never one outside its scope;
once its directory went, it has reported all removed and ended with
``NotFoundException`` "removed or replaced" (``on_exit``); a stop ends it with
``on_exit(None)``. The wait has a bound (:data:`SETTLE_S`) only for a stuck stream.

``derandomize=True`` keeps it deterministic (7 to 11 s, most of it waiting for
the streams' polls). ``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise
the count while hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random and skips
shrinking (the hunt that wrote it ran 120 to 200 examples of 40 steps).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from e2b import AsyncSandbox, FileType, NotFoundException, Sandbox, SandboxException
from e2b.sandbox.filesystem.watch_handle import FilesystemEvent
from e2b.sandbox_async.filesystem.watch_handle import AsyncWatchHandle
from e2b.sandbox_sync.filesystem.watch_handle import WatchHandle
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.e2b.envd.conftest import Envd
from tests.machines import machine_settings

T = TypeVar("T")

Key = tuple[str, ...]
"""A path under ``/home/user`` as its components: ``()`` is ``/home/user`` itself."""

NAMES = ("a", "b")
PATHS: list[Key] = [rest for depth in (1, 2, 3) for rest in itertools.product(NAMES, repeat=depth)]
FILE_MODES = (0o644, 0o600, 0o640, 0o444)
DIR_MODES = (0o755, 0o700, 0o750)
"""Modes a ``chmod`` gives: the owner keeps reading (and entering) what it owns."""
MAX_WATCHERS = 4
MAX_STREAMS = 2
SETTLE_S = 20.0
"""How long a stream may take to catch up with a step: a bound for a stuck one, never reached."""
DATA = st.sampled_from([b"", b"x", b"y", b"hello"])
"""``x`` and ``y`` are the same size: only the time of the write tells them apart."""


def shown(key: Key) -> str:
    return "/".join(("/home/user", *key))


def relative(key: Key) -> str:
    """``key`` as a command in the home directory names it (commands see host paths)."""
    return "/".join(key) or "."


@dataclass
class Node:
    """An entry of the model: ``content`` is ``None`` for a directory."""

    oid: int
    """Which object it is: kept by a rename and a write in place, new when made again."""
    content: bytes | None
    mode: int
    writes: int = 0
    """How many times it was written (in place): a write of the same bytes is a write."""


@dataclass
class Seen:
    """An entry as a watch's last poll found it, and the host's inode number for it then."""

    oid: int
    is_dir: bool
    mode: int
    writes: int
    content: bytes | None
    ino: int


@dataclass(kw_only=True)
class Watched:
    """What a watch of either form looks at, and what it last reported."""

    base: Key
    oid: int
    """The watched directory: the watch ends once ``base`` is not this object."""
    recursive: bool
    include_entry: bool
    seen: dict[Key, Seen] = field(default_factory=dict)


@dataclass(kw_only=True)
class Watch(Watched):
    """A polling watcher (``sbx.files.watch_dir`` of the sync SDK)."""

    handle: WatchHandle
    ended: bool = False
    """Its last poll found the directory gone: every later one answers ``not_found``."""


@dataclass(kw_only=True)
class Stream(Watched):
    """A ``WatchDir`` stream (``await sbx.files.watch_dir(path, on_event)`` of the async SDK)."""

    handle: AsyncWatchHandle
    events: list[FilesystemEvent] = field(default_factory=list)
    """What ``on_event`` got, appended in the SDK's task."""
    exits: list[Exception | None] = field(default_factory=list)
    """What ``on_exit`` got."""
    consumed: int = 0
    names: set[Key] = field(default_factory=set)
    """The entries its events say are there (the ones it started with, plus CREATE, minus REMOVE)."""


class Changes(dict[Key, list[str]]):
    """The events a watch owes, by name in order; ``optional_write``: names a WRITE may lead.

    A file written again with the same bytes may keep its mtime (older kernels give a
    write the time of the last tick): a poll then cannot tell, and WRITE may be missing.
    Other bytes of the same size it tells by their digest (docs/fidelity.md).
    """

    def __init__(self) -> None:
        super().__init__()
        self.optional_write: set[Key] = set()


class WatchersMachine(RuleBasedStateMachine):
    """One example: a fresh sandbox's home, changed through the SDK, watched by polling watchers."""

    envd: ClassVar[Envd]
    loop: ClassVar[asyncio.AbstractEventLoop]
    """Where the async SDK's calls and its streams' tasks run (a thread of the test's)."""
    examples: ClassVar[Iterator[int]] = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        sandbox_id = f"sbx-watch-{next(self.examples)}"
        self.sbx: Sandbox = self.envd.sandbox(sandbox_id)
        self.asbx: AsyncSandbox = self.envd.async_sandbox(sandbox_id)
        self.sbx.files.make_dir("/home/user")  # makes the sandbox's tree (a no-op then)
        self.host: Path = self.envd.workspace(sandbox_id).home
        self.oids = itertools.count(1)
        self.tree: dict[Key, Node] = {(): Node(0, None, 0o755)}
        self.watches: list[Watch] = []
        self.streams: list[Stream] = []

    # -- the model ------------------------------------------------------------------------

    def look(self, key: Key) -> str:
        """``missing``, ``notdir`` (a file on the way), ``file`` or ``dir``."""
        for i in range(len(key)):
            node = self.tree.get(key[:i])
            if node is None:
                return "missing"
            if node.content is not None:
                return "notdir"
        node = self.tree.get(key)
        if node is None:
            return "missing"
        return "dir" if node.content is None else "file"

    def make_dirs(self, key: Key) -> bool:
        made = False
        for i in range(1, len(key) + 1):
            if key[:i] not in self.tree:
                self.tree[key[:i]] = Node(next(self.oids), None, 0o755)
                made = True
        return made

    def under(self, key: Key) -> list[Key]:
        """``key`` and everything below it."""
        return [k for k in self.tree if k[: len(key)] == key]

    def pick(self, data: st.DataObject, label: str, among: list[Key] = PATHS) -> Key:
        """A path of ``among``: a file, a directory or any, so that calls collide."""
        files = sorted(k for k in among if k in self.tree and self.tree[k].content is not None)
        dirs = sorted(k for k in among if k in self.tree and self.tree[k].content is None)
        groups = [group for group in (files, dirs) if group] + [among]
        return data.draw(st.sampled_from(groups).flatmap(st.sampled_from), label=label)

    def view(self, watch: Watched) -> dict[Key, Node]:
        """What the watch covers now."""
        return self.view_of(watch.base, watch.recursive)

    def view_of(self, base: Key, recursive: bool) -> dict[Key, Node]:
        """The entries of ``base`` (all below it, ``recursive``), named relative to it."""
        depth = len(base)
        return {
            k[depth:]: node
            for k, node in self.tree.items()
            if k[:depth] == base and len(k) > depth and (recursive or len(k) == depth + 1)
        }

    def remember(self, watch: Watched) -> None:
        """The watch's view now, with each entry's inode number on the host."""
        watch.seen = {
            name: Seen(
                node.oid,
                node.content is None,
                node.mode,
                node.writes,
                node.content,
                os.lstat(self.host.joinpath(*watch.base, *name)).st_ino,
            )
            for name, node in self.view(watch).items()
        }

    def expected(self, watch: Watched) -> Changes:
        """The events since the watch's last poll."""
        now = self.view(watch)
        events = Changes()
        for name in now.keys() | watch.seen.keys():
            before, after = watch.seen.get(name), now.get(name)
            if before is None:
                events[name] = ["create"]
                continue
            if after is None:
                events[name] = ["remove"]
                continue
            is_dir = after.content is None
            if is_dir != before.is_dir:
                events[name] = ["remove", "create"]
                continue
            ino = os.lstat(self.host.joinpath(*watch.base, *name)).st_ino
            if after.oid != before.oid and ino != before.ino:
                events[name] = ["remove", "create"]
                continue
            # The same object, or one the host gave the same inode number: its own changes.
            kinds = []
            if not is_dir and (after.oid != before.oid or after.writes != before.writes):
                if after.content != before.content:
                    kinds.append("write")
                else:
                    events.optional_write.add(name)
            if after.mode != before.mode:
                kinds.append("chmod")
            if kinds:
                events[name] = kinds
        return events

    # -- rules: changes -------------------------------------------------------------------

    @rule(draw=st.data(), data=DATA)
    def write(self, draw: st.DataObject, data: bytes) -> None:
        key = self.pick(draw, "key")
        found = self.look(key)
        if found in ("dir", "notdir"):
            with pytest.raises(SandboxException):
                self.sbx.files.write(shown(key), data)
            return
        self.sbx.files.write(shown(key), data)
        self.make_dirs(key[:-1])
        node = self.tree.get(key)
        if node is None:
            self.tree[key] = Node(next(self.oids), data, 0o644)
        elif node.mode & 0o200:  # written in place: the same inode, mode and object
            node.content = data
            node.writes += 1
        else:  # one the server may not write is replaced, its mode kept (docs/fidelity.md)
            self.tree[key] = Node(next(self.oids), data, node.mode)

    @rule(draw=st.data())
    def make_dir(self, draw: st.DataObject) -> None:
        key = self.pick(draw, "key")
        if self.look(key) in ("file", "notdir"):
            with pytest.raises(SandboxException):
                self.sbx.files.make_dir(shown(key))
            return
        assert self.sbx.files.make_dir(shown(key)) == self.make_dirs(key)

    def expect_rename(self, source: Key, destination: Key) -> bool:
        """The model's ``os.Rename`` after envd's ``EnsureDirs``: whether it is done."""
        src = self.look(source)
        if src in ("missing", "notdir"):
            return False
        if self.look(destination[:-1]) in ("file", "notdir"):
            return False
        dst = self.look(destination)
        if dst == "dir":
            return False  # Go refuses any directory there: EEXIST
        self.make_dirs(destination[:-1])
        if source == destination:
            return True
        if src == "dir" and (destination[: len(source)] == source or dst == "file"):
            return False  # EINVAL (into itself), ENOTDIR (onto a file)
        moved = {k: self.tree.pop(k) for k in self.under(source)}
        for k in self.under(destination):
            del self.tree[k]
        for k, node in moved.items():
            self.tree[destination + k[len(source) :]] = node
        return True

    @rule(draw=st.data())
    def rename(self, draw: st.DataObject) -> None:
        source = self.pick(draw, "source")
        destination = self.pick(draw, "destination")
        if self.expect_rename(source, destination):
            self.sbx.files.rename(shown(source), shown(destination))
        else:
            with pytest.raises(SandboxException):
                self.sbx.files.rename(shown(source), shown(destination))

    @rule(draw=st.data())
    def remove(self, draw: st.DataObject) -> None:
        key = self.pick(draw, "key")
        if self.look(key) == "notdir":
            with pytest.raises(SandboxException):
                self.sbx.files.remove(shown(key))
            return
        self.sbx.files.remove(shown(key))
        for k in self.under(key):
            del self.tree[k]

    @rule(draw=st.data())
    def chmod(self, draw: st.DataObject) -> None:
        """A file, a directory, a watched one or ``/home/user`` itself (no event of its own)."""
        existing = sorted(self.tree)
        key = draw.draw(st.sampled_from(existing), label="key")
        node = self.tree[key]
        mode = draw.draw(
            st.sampled_from(DIR_MODES if node.content is None else FILE_MODES), label="mode"
        )
        assert self.sbx.commands.run(f"chmod {mode:o} {relative(key)}").exit_code == 0
        node.mode = mode

    @rule(draw=st.data())
    def touch(self, draw: st.DataObject) -> None:
        """``touch``: a new empty file, or a file's or a directory's times changed, nothing else."""
        key = self.pick(draw, "key")
        found = self.look(key)
        made = self.look(key[:-1]) == "dir"
        ran = self.sbx.commands.run(f"touch {relative(key)} 2>/dev/null || true").exit_code
        assert ran == 0
        if found == "missing" and made:
            self.tree[key] = Node(next(self.oids), b"", 0o644)
        elif found == "file":
            self.tree[key].writes += 1  # a WRITE, as the same size may keep the mtime

    @precondition(lambda self: any(self.tree[k].content is None for k in PATHS if k in self.tree))
    @rule(draw=st.data())
    def replace_dir(self, draw: st.DataObject) -> None:
        """``rm -rf d && mkdir d``: another directory under the same name within one step."""
        dirs = sorted(k for k in PATHS if k in self.tree and self.tree[k].content is None)
        key = draw.draw(st.sampled_from(dirs), label="key")
        assert (
            self.sbx.commands.run(f"rm -rf {relative(key)} && mkdir {relative(key)}").exit_code == 0
        )
        for k in self.under(key):
            del self.tree[k]
        self.tree[key] = Node(next(self.oids), None, 0o755)

    # -- rules: watchers ------------------------------------------------------------------

    def watchable(self, draw: st.DataObject) -> Key:
        """``/home/user`` or a directory one or two levels under it."""
        dirs = [k for k in [(), *PATHS[:6]] if k in self.tree and self.tree[k].content is None]
        return draw.draw(st.sampled_from(dirs), label="base")

    @precondition(lambda self: len(self.watches) < MAX_WATCHERS)
    @rule(draw=st.data(), recursive=st.booleans(), include_entry=st.booleans())
    def watch(self, draw: st.DataObject, recursive: bool, include_entry: bool) -> None:
        base = self.watchable(draw)
        handle = self.sbx.files.watch_dir(
            shown(base), recursive=recursive, include_entry=include_entry
        )
        watch = Watch(
            handle=handle,
            base=base,
            oid=self.tree[base].oid,
            recursive=recursive,
            include_entry=include_entry,
        )
        self.remember(watch)
        self.watches.append(watch)

    @precondition(lambda self: self.watches)
    @rule(draw=st.data())
    def stop(self, draw: st.DataObject) -> None:
        watch = draw.draw(st.sampled_from(self.watches), label="watch")
        self.watches.remove(watch)
        watch.handle.stop()  # one whose directory went too
        with pytest.raises(SandboxException, match="already stopped"):
            watch.handle.get_new_events()

    @precondition(lambda self: len(self.streams) < MAX_STREAMS)
    @rule(draw=st.data(), recursive=st.booleans(), include_entry=st.booleans())
    def watch_stream(self, draw: st.DataObject, recursive: bool, include_entry: bool) -> None:
        base = self.watchable(draw)
        events: list[FilesystemEvent] = []
        exits: list[Exception | None] = []
        handle = self.run(
            self.asbx.files.watch_dir(
                shown(base),
                events.append,
                on_exit=exits.append,
                recursive=recursive,
                include_entry=include_entry,
                timeout=0,
            )
        )
        stream = Stream(
            handle=handle,
            base=base,
            oid=self.tree[base].oid,
            recursive=recursive,
            include_entry=include_entry,
            events=events,
            exits=exits,
            names=set(self.view_of(base, recursive)),
        )
        self.remember(stream)
        self.streams.append(stream)

    @precondition(lambda self: self.streams)
    @rule(draw=st.data())
    def stop_stream(self, draw: st.DataObject) -> None:
        stream = draw.draw(st.sampled_from(self.streams), label="stream")
        self.streams.remove(stream)
        self.run(stream.handle.stop())  # type: ignore[no-untyped-call]
        assert stream.exits == [None]  # a stop is a clean end

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` in the async SDK's loop (its streams' tasks run there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    # -- the check after every rule -------------------------------------------------------

    def check(self, watch: Watch, events: list[FilesystemEvent], want: Changes) -> None:
        got: dict[Key, list[str]] = {}
        for event in events:
            name = tuple(event.name.split("/"))
            got.setdefault(name, []).append(event.type.value)
            if not watch.include_entry or event.type.value == "remove":
                assert event.entry is None, event
                continue
            assert event.entry is not None, event
            node = self.tree[watch.base + name]
            kind = FileType.DIR if node.content is None else FileType.FILE
            entry = event.entry.name, event.entry.path, event.entry.type
            assert entry == (name[-1], shown(watch.base + name), kind), event
        for name in want.optional_write:
            if got.get(name, [None])[0] == "write":
                want[name] = ["write", *want.get(name, [])]
        assert got == dict(want), (shown(watch.base), watch.recursive, events)

    @invariant()
    def watchers_report_what_changed(self) -> None:
        for watch in list(self.watches):
            if watch.ended:  # every poll says so, until it is stopped
                with pytest.raises(NotFoundException, match="removed or replaced"):
                    watch.handle.get_new_events()
                continue
            events = watch.handle.get_new_events()
            base = self.tree.get(watch.base)
            if base is None or base.oid != watch.oid:
                # Gone: every entry of the last poll removed, nothing of what took its place.
                gone = Changes()
                gone.update({name: ["remove"] for name in watch.seen})
                self.check(watch, events, gone)
                watch.ended = True
                continue
            self.check(watch, events, self.expected(watch))
            self.remember(watch)

    def take(self, stream: Stream, window: dict[Key, list[str]]) -> None:
        """The stream's events not looked at yet: each must fit what it reported before."""
        while stream.consumed < len(stream.events):
            event = stream.events[stream.consumed]
            stream.consumed += 1
            name, kind = tuple(event.name.split("/")), event.type.value
            said = (shown(stream.base), stream.recursive, event, sorted(stream.names))
            assert all(part in NAMES for part in name), said
            assert stream.recursive or len(name) == 1, said  # nothing from a subdirectory
            if kind == "create":
                assert name not in stream.names, said
                assert len(name) == 1 or name[:-1] in stream.names, said
                stream.names.add(name)
            elif kind == "remove":
                assert name in stream.names, said
                stream.names.remove(name)
            else:
                assert kind in ("write", "chmod") and name in stream.names, said
            if not stream.include_entry or kind == "remove":
                assert event.entry is None, said
            elif event.entry is not None:  # None when it went again before the poll read it
                assert event.entry.path == shown(stream.base + name), said
            window.setdefault(name, []).append(kind)

    def owed(self, changes: Changes, window: dict[Key, list[str]]) -> list[Key]:
        """The names whose changes the stream's events since its last settling do not show.

        The stream polls on its own clock, so a change may be reported across two polls
        (a REMOVE, then the CREATE) or, caught halfway, more than once; an entry's own
        change is shown by its event or by the entry being reported removed and created.
        """
        missing = []
        for name, kinds in changes.items():
            reported = window.get(name, [])
            replaced = "remove" in reported and "create" in reported
            if not all(kind in reported or replaced for kind in kinds):
                missing.append(name)
        return missing

    @invariant()
    def streams_report_what_changed(self) -> None:
        """Each stream catches up with the model (waited for, however slow its polls), and
        every event it sent on the way fits: CREATE of an entry it did not know, REMOVE or
        a change of one it did, nothing outside its scope."""
        for stream in list(self.streams):
            base = self.tree.get(stream.base)
            gone = base is None or base.oid != stream.oid
            changes = Changes() if gone else self.expected(stream)
            target = set() if gone else set(self.view(stream))
            window: dict[Key, list[str]] = {}
            deadline = time.monotonic() + SETTLE_S
            while True:
                ended = bool(stream.exits)  # looked at first: its events came before it
                self.take(stream, window)
                if gone and ended:
                    assert stream.names == set(), (shown(stream.base), stream.events)
                    (error,) = stream.exits
                    assert isinstance(error, NotFoundException), error
                    assert "removed or replaced" in str(error), error
                    self.streams.remove(stream)
                    break
                assert not ended, (shown(stream.base), stream.exits)
                if not gone and stream.names == target and not self.owed(changes, window):
                    self.remember(stream)
                    break
                assert time.monotonic() < deadline, (
                    shown(stream.base),
                    stream.recursive,
                    sorted(stream.names),
                    sorted(target),
                    self.owed(changes, window),
                    window,
                )
                time.sleep(0.01)

    def teardown(self) -> None:
        for watch in self.watches:
            watch.handle.stop()
        for stream in self.streams:
            self.run(stream.handle.stop())  # type: ignore[no-untyped-call]


def test_watchers_report_what_the_model_says_changed(envd: Envd) -> None:
    """Every poll of every watcher is the model's change since the previous one, and every
    stream catches up with the model through events that fit it.

    Derandomized: the same examples every run.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="async-sdk", daemon=True)
    thread.start()
    WatchersMachine.envd, WatchersMachine.loop = envd, loop
    try:
        run_state_machine_as_test(
            WatchersMachine,
            settings=machine_settings(15, 25),
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
