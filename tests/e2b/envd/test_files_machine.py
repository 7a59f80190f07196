"""envd's file API, as a Hypothesis state machine checked against a model of the tree.

The rules make real SDK calls (``e2b.Sandbox.files``) over HTTP on 127.0.0.1
against the fake envd, each example in a sandbox of its own: ``write`` (text
and bytes; multipart, octet-stream and gzip), ``write_files``, ``make_dir``,
``rename``, ``remove``, ``read``, ``exists``, ``get_info`` and ``list``
(depth 1 and 2). Their paths come from a small alphabet (the names ``a`` and
``b``, one to three levels under ``/home/user`` and ``/tmp``), drawn as often
from what exists (files, directories, paths under a file) as from the rest,
so that they collide: a file where a later call needs a directory, a rename
onto what is there, a directory into itself. Each path is spelt one of the
ways envd expands alike (``~/a``, ``a``, ``/home/./user/a``, a trailing
slash...); every answer names it absolute and clean.

The model is a dict of paths to file contents (``None`` for a directory) and
predicts every answer from envd's Go semantics, with the project's documented
choices where it has made one (docs/server.md, docs/fidelity.md):

- a write makes the parents and replaces a file (``EnsureDirs``, ``O_TRUNC``);
  a write onto a directory, or under a file, is refused (400,
  ``InvalidArgumentException``); a ``write_files`` is all or nothing, the
  same path twice keeps the last, one file under another refuses the upload;
- ``make_dir`` is ``MkdirAll``: ``True`` when it made the directory, ``False``
  when one is there, ``InvalidArgumentException`` for a file there or on the way;
- ``rename`` is Go's ``os.Rename`` after envd's ``EnsureDirs`` of the
  destination's parent: it replaces a file, refuses any existing directory
  (``EEXIST``, ``already_exists``), a directory into itself (``EINVAL``) or
  onto a file (``ENOTDIR``), a missing source (``FileNotFoundException``);
  the destination's parents stay made when the rename itself is refused, as
  envd makes them first, but a missing source makes nothing;
- ``remove`` is ``os.RemoveAll``: a missing path is no error;
- a path with a file in the middle (``ENOTDIR``) answers
  ``InvalidArgumentException`` everywhere (docs/server.md), where envd answers
  ``internal``; reading a directory is ``InvalidArgumentException``.

After every step the recursive listing of both roots (names, types, paths and
file sizes, in envd's walk order) must equal the model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

from e2b import FileType, Sandbox
from e2b.exceptions import FileNotFoundException, InvalidArgumentException, SandboxException
from e2b.sandbox.filesystem.filesystem import EntryInfo, WriteEntry
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.e2b.envd.conftest import Envd
from tests.machines import machine_settings

Key = tuple[str, ...]
"""A sandbox path as its components: ``("home", "user", "a")`` is ``/home/user/a``."""

ROOTS: tuple[Key, ...] = (("home", "user"), ("tmp",))
NAMES = ("a", "b")
PATHS: list[Key] = [
    root + rest
    for root in ROOTS
    for depth in (1, 2, 3)
    for rest in itertools.product(NAMES, repeat=depth)
]
LIST_DEPTH = 64
"""How deep the invariant lists the roots: a move can nest a tree deeper than three levels."""

Entry = tuple[str, str, FileType | None, int | None]
"""An entry as the model knows it: name, path, type and a file's size."""

Look = Literal["missing", "notdir", "file", "dir"]
Outcome = tuple[str, Any]
"""``("ok", value)`` or the kind of error the SDK raised (``"not_found"``, ``"invalid"``,
``"already_exists"``...) with the exception."""

TEXT = st.sampled_from(["", "x", "hello\n", "ünï\n"])
DATA: st.SearchStrategy[str | bytes] = st.one_of(TEXT, st.binary(max_size=6))


def shown(key: Key) -> str:
    return "/" + "/".join(key)


def spellings(key: Key) -> list[str]:
    """Ways to name ``key`` that envd expands to the same path (``~``, relative, ``.``, ``..``, a
    trailing slash): every answer names it as :func:`shown` does."""
    plain = shown(key)
    said = [plain, plain + "/", f"/{key[0]}/./{'/'.join(key[1:])}", f"/{key[0]}/../{plain[1:]}"]
    if key[:2] == ("home", "user"):
        rest = "/".join(key[2:])
        said += [f"~/{rest}", rest, f"./{rest}/"]
    return said


def _is_text(content: bytes) -> bool:
    try:
        content.decode()
    except UnicodeDecodeError:
        return False
    return True


def outcome(call: Callable[[], Any]) -> Outcome:
    """Run an SDK call: its value, or the kind of error it raised."""
    try:
        return "ok", call()
    except FileNotFoundException as exc:
        return "not_found", exc
    except InvalidArgumentException as exc:
        return "invalid", exc
    except SandboxException as exc:
        assert type(exc) is SandboxException, repr(exc)
        code = str(exc).split(":", 1)[0].removeprefix("Code.").lower()
        return code, exc


class FilesMachine(RuleBasedStateMachine):
    """One example: a fresh sandbox's file tree, driven through ``sbx.files``."""

    envd: ClassVar[Envd]
    examples: ClassVar[Iterator[int]] = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.sbx: Sandbox = self.envd.sandbox(f"sbx-files-{next(self.examples)}")
        # The tree a new sandbox starts with (docs/server.md): /home/user, /root, /tmp.
        self.tree: dict[Key, bytes | None] = {
            (): None,
            ("home",): None,
            ("home", "user"): None,
            ("root",): None,
            ("tmp",): None,
        }

    # -- the model ------------------------------------------------------------------------

    def look(self, key: Key) -> Look:
        """What is at ``key``: ``notdir`` if a file stands on the way to it."""
        for i in range(1, len(key)):
            if key[:i] not in self.tree:
                return "missing"
            if self.tree[key[:i]] is not None:
                return "notdir"
        if key not in self.tree:
            return "missing"
        return "dir" if self.tree[key] is None else "file"

    def make_dirs(self, key: Key) -> None:
        for i in range(1, len(key) + 1):
            self.tree.setdefault(key[:i], None)

    def under(self, key: Key) -> list[Key]:
        """``key`` and everything below it."""
        return [k for k in self.tree if k[: len(key)] == key]

    def entries(self, key: Key, depth: int) -> list[Entry]:
        """What ``files.list(key, depth)`` answers, in envd's walk order (names sorted, preorder)."""
        found = sorted(
            k for k in self.tree if k[: len(key)] == key and 0 < len(k) - len(key) <= depth
        )
        return [self.entry(k) for k in found]

    def entry(self, key: Key) -> Entry:
        content = self.tree[key]
        if content is None:
            return key[-1], shown(key), FileType.DIR, None
        return key[-1], shown(key), FileType.FILE, len(content)

    @staticmethod
    def observed(info: EntryInfo) -> Entry:
        # A directory's size is the host file system's: not the model's to predict.
        return info.name, info.path, info.type, info.size if info.type == FileType.FILE else None

    def fails(self, got: Outcome, kind: str) -> None:
        assert got[0] == kind, f"expected {kind}, got {got[0]}: {got[1]!r}"

    def pick(self, data: st.DataObject, label: str, among: list[Key] = PATHS) -> Key:
        """A path of ``among``: a file, a directory, a path under a file or any, so calls collide."""
        files = sorted(k for k in among if self.tree.get(k, None) is not None)
        dirs = sorted(k for k in among if k in self.tree and self.tree[k] is None)
        below = [k for k in among if any(k[: len(f)] == f and k != f for f in files)]
        groups = [group for group in (files, dirs, below) if group] + [among]
        return data.draw(st.sampled_from(groups).flatmap(st.sampled_from), label=label)

    @staticmethod
    def say(data: st.DataObject, key: Key, label: str = "as") -> str:
        """``key`` spelt one of the ways envd takes it."""
        return data.draw(st.sampled_from(spellings(key)), label=label)

    # -- rules: writes --------------------------------------------------------------------

    def put(self, key: Key, data: str | bytes) -> bool:
        """One file written into the model: ``False`` where envd refuses it (nothing written)."""
        if self.look(key) in ("dir", "notdir"):
            return False
        self.make_dirs(key[:-1])
        self.tree[key] = data.encode() if isinstance(data, str) else data
        return True

    @rule(draw=st.data(), data=DATA, octet=st.booleans(), gzip=st.booleans())
    def write(self, draw: st.DataObject, data: str | bytes, octet: bool, gzip: bool) -> None:
        """Multipart, ``application/octet-stream`` or gzip (octet-stream): the same answers."""
        key = self.pick(draw, "key")
        said = self.say(draw, key)
        # gzip implies octet-stream (and may not be combined with use_octet_stream=False).
        stream = True if gzip else octet
        got = outcome(lambda: self.sbx.files.write(said, data, gzip=gzip, use_octet_stream=stream))
        if not self.put(key, data):
            self.fails(got, "invalid")
            return
        assert got[0] == "ok", got
        assert (got[1].name, got[1].path) == (key[-1], shown(key))

    @rule(draw=st.data(), count=st.sampled_from([2, 3]), octet=st.booleans())
    def write_files(self, draw: st.DataObject, count: int, octet: bool) -> None:
        """Several files: one multipart upload, or one octet-stream upload per file."""
        files = [
            (self.pick(draw, f"key{i}"), draw.draw(DATA, label=f"data{i}")) for i in range(count)
        ]
        entries = [WriteEntry(path=self.say(draw, key), data=data) for key, data in files]
        got = outcome(lambda: self.sbx.files.write_files(entries, use_octet_stream=octet))
        if octet:
            # Uploaded one by one: those before the first refused one are written.
            for key, data in files:
                if not self.put(key, data):
                    self.fails(got, "invalid")
                    return
        else:
            # Checked as a whole first (docs/server.md): one file where another needs a
            # directory, or a target that is a directory or lies under a file, writes nothing.
            targets: set[Key] = set()
            for key, _ in files:
                parents = {key[:i] for i in range(1, len(key))}
                below = any(key == t[: len(key)] and t != key for t in targets)
                if below or parents & targets or self.look(key) in ("dir", "notdir"):
                    self.fails(got, "invalid")
                    return
                targets.add(key)
            for key, data in files:
                assert self.put(key, data)
        assert got[0] == "ok", got
        assert [w.path for w in got[1]] == [shown(key) for key, _ in files]

    @rule(data=st.data())
    def make_dir(self, data: st.DataObject) -> None:
        key = self.pick(data, "key")
        said = self.say(data, key)
        got = outcome(lambda: self.sbx.files.make_dir(said))
        found = self.look(key)
        if found in ("file", "notdir"):
            self.fails(got, "invalid")
            return
        assert got == ("ok", found == "missing"), got
        self.make_dirs(key)

    def expect_rename(self, source: Key, destination: Key) -> str:
        """The model's ``os.Rename`` after envd's ``EnsureDirs``: the outcome's kind."""
        src = self.look(source)
        if src == "missing":
            return "not_found"  # checked first: nothing is made for a missing source
        if src == "notdir":
            return "invalid"
        parent = self.look(destination[:-1])
        if parent in ("file", "notdir"):
            return "invalid"
        dst = self.look(destination)
        if dst == "dir":
            return "already_exists"  # Go refuses any directory there, empty or not: EEXIST
        self.make_dirs(destination[:-1])  # envd's EnsureDirs, before the rename itself
        if source == destination:
            return "ok"
        if src == "dir" and destination[: len(source)] == source:
            return "invalid"  # EINVAL: a directory into itself
        if src == "dir" and dst == "file":
            return "invalid"  # ENOTDIR
        moved = {k: self.tree.pop(k) for k in self.under(source)}
        for k in self.under(destination):
            del self.tree[k]
        for k, content in moved.items():
            self.tree[destination + k[len(source) :]] = content
        return "ok"

    def check_rename(self, source: Key, destination: Key, spelt: tuple[str, str]) -> None:
        got = outcome(lambda: self.sbx.files.rename(*spelt))
        kind = self.expect_rename(source, destination)
        if kind != "ok":
            self.fails(got, kind)
            return
        assert got[0] == "ok", got
        assert self.observed(got[1]) == self.entry(destination), got[1]

    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        """Any source onto any destination: what exists, what does not, or inside the source."""
        source = self.pick(data, "source")
        inside = [k for k in PATHS if k[: len(source)] == source and k != source]
        destination = self.pick(
            data,
            "destination",
            among=PATHS if not inside or data.draw(st.booleans(), label="anywhere") else inside,
        )
        spelt = self.say(data, source, "source as"), self.say(data, destination, "destination as")
        self.check_rename(source, destination, spelt)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        key = self.pick(data, "key")
        said = self.say(data, key)
        got = outcome(lambda: self.sbx.files.remove(said))
        if self.look(key) == "notdir":
            self.fails(got, "invalid")
            return
        assert got == ("ok", None), got  # a missing path too: os.RemoveAll
        for k in self.under(key):
            del self.tree[k]

    # -- rules: reads ---------------------------------------------------------------------

    @rule(data=st.data(), text=st.booleans())
    def read(self, data: st.DataObject, text: bool) -> None:
        key = self.pick(data, "key")
        said = self.say(data, key)
        content = self.tree.get(key)
        if text and (content is None or _is_text(content)):
            got = outcome(lambda: self.sbx.files.read(said))
        else:
            got = outcome(lambda: bytes(self.sbx.files.read(said, format="bytes")))
        found = self.look(key)
        if found == "missing":
            self.fails(got, "not_found")
        elif found in ("dir", "notdir"):
            self.fails(got, "invalid")
        else:
            assert content is not None
            want: str | bytes = content.decode() if text and _is_text(content) else content
            assert got == ("ok", want), got

    @rule(data=st.data())
    def exists(self, data: st.DataObject) -> None:
        key = self.pick(data, "key")
        said = self.say(data, key)
        got = outcome(lambda: self.sbx.files.exists(said))
        found = self.look(key)
        if found == "notdir":
            self.fails(got, "invalid")
        else:
            assert got == ("ok", found != "missing"), got

    @rule(data=st.data())
    def get_info(self, data: st.DataObject) -> None:
        key = self.pick(data, "key")
        said = self.say(data, key)
        got = outcome(lambda: self.sbx.files.get_info(said))
        found = self.look(key)
        if found == "missing":
            self.fails(got, "not_found")
        elif found == "notdir":
            self.fails(got, "invalid")
        else:
            assert got[0] == "ok", got
            assert self.observed(got[1]) == self.entry(key), got[1]

    @rule(data=st.data(), depth=st.sampled_from([1, 2]))
    def list(self, data: st.DataObject, depth: int) -> None:
        key = self.pick(data, "key", among=[*ROOTS, *PATHS])
        said = self.say(data, key)
        got = outcome(lambda: self.sbx.files.list(said, depth=depth))
        found = self.look(key)
        if found == "missing":
            self.fails(got, "not_found")
        elif found in ("file", "notdir"):
            self.fails(got, "invalid")
        else:
            assert got[0] == "ok", got
            assert [self.observed(e) for e in got[1]] == self.entries(key, depth)

    # -- the check after every rule -------------------------------------------------------

    @invariant()
    def listing_is_the_model(self) -> None:
        for root in ROOTS:
            listed = [self.observed(e) for e in self.sbx.files.list(shown(root), depth=LIST_DEPTH)]
            assert listed == self.entries(root, LIST_DEPTH), root


def test_file_calls_agree_with_a_model_of_the_tree(envd: Envd) -> None:
    """Every answer of ``sbx.files`` is the model's, and so is the tree after each call.

    About 0.15 s an example on a quiet machine: 40 examples of 25 steps keep the
    test near 6 s. Derandomized: the same examples every run (the hunt that
    wrote it ran 200 examples of 30 steps under a dozen seeds).
    """
    FilesMachine.envd = envd
    run_state_machine_as_test(
        FilesMachine,
        settings=machine_settings(40, 25),
    )
