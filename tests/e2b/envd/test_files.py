"""Specification of envd's files: ``filesystem.Filesystem`` and ``/files``, through the real SDK's ``sbx.files``."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import (
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    NotEnoughSpaceException,
    NotFoundException,
    RateLimitException,
    SandboxException,
)
from e2b.sandbox.filesystem.filesystem import WriteEntry

from pytest_kruise_agents.e2b.envd import files
from pytest_kruise_agents.e2b.envd.entries import read_metadata, write_metadata
from pytest_kruise_agents.e2b.envd.errors import http_status_of
from tests.e2b.envd.conftest import MAX_UPLOAD, Envd


def test_write_then_read_text_and_bytes(envd: Envd) -> None:
    sbx = envd.sandbox()
    info = sbx.files.write("/home/user/notes.txt", "héllo\n")
    assert (info.name, info.type, info.path) == ("notes.txt", FileType.FILE, "/home/user/notes.txt")
    assert sbx.files.read("/home/user/notes.txt") == "héllo\n"
    assert sbx.files.read("notes.txt", format="bytes") == bytearray("héllo\n".encode())
    assert b"".join(sbx.files.read("notes.txt", format="stream")) == "héllo\n".encode()
    assert (envd.workspace().home / "notes.txt").read_text() == "héllo\n"


def test_write_creates_parents_and_overwrites(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("/home/user/a/b/c.txt", "one")
    sbx.files.write("/home/user/a/b/c.txt", b"two")
    assert sbx.files.read("a/b/c.txt") == "two"


def test_write_files_sends_several_parts_in_one_request(envd: Envd) -> None:
    sbx = envd.sandbox()
    written = sbx.files.write_files(
        [WriteEntry(path="/home/user/x.txt", data="x"), WriteEntry(path="/tmp/y.txt", data=b"y")]
    )
    assert [w.path for w in written] == ["/home/user/x.txt", "/tmp/y.txt"]
    assert (sbx.files.read("/home/user/x.txt"), sbx.files.read("/tmp/y.txt")) == ("x", "y")
    assert (envd.workspace().root / "tmp" / "y.txt").read_text() == "y"


@pytest.mark.parametrize("gzip_body", [False, True])
def test_octet_stream_uploads_with_and_without_gzip(envd: Envd, gzip_body: bool) -> None:
    sbx = envd.sandbox()
    data = bytes(range(256)) * 100
    sbx.files.write("blob.bin", io.BytesIO(data), gzip=gzip_body)
    assert bytes(sbx.files.read("blob.bin", format="bytes")) == data


def test_a_download_asking_for_gzip_gets_plain_bytes(envd: Envd) -> None:
    """docs/fidelity.md: ``GET /files`` ignores ``Accept-Encoding: gzip`` (the SDK's ``gzip=True``):
    the answer has no ``Content-Encoding`` and its body is the file's bytes, which the SDK's
    ``read(gzip=True)`` takes as they come."""
    sbx = envd.sandbox()
    data = b"plain " * 1000
    sbx.files.write("plain.txt", data)
    with envd.http() as http:
        r = http.get("/files", params={"path": "plain.txt"}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and "content-encoding" not in r.headers
    assert r.content == data
    assert bytes(sbx.files.read("plain.txt", format="bytes", gzip=True)) == data


def test_metadata_is_stored_and_read_back(envd: Envd) -> None:
    sbx = envd.sandbox()
    written = sbx.files.write("tagged.txt", "x", metadata={"owner": "alice"})
    assert written.metadata == {"owner": "alice"}
    assert sbx.files.get_info("tagged.txt").metadata == {"owner": "alice"}


def test_metadata_keys_come_back_lower_cased(envd: Envd) -> None:
    """docs/fidelity.md: the keys travel as ``X-Metadata-<key>`` headers, whose names HTTP/1.1
    lower-cases; the values keep their case."""
    sbx = envd.sandbox()
    written = sbx.files.write("cased.txt", "x", metadata={"MyKey": "MyValue"})
    assert written.metadata == {"mykey": "MyValue"}
    assert sbx.files.get_info("cased.txt").metadata == {"mykey": "MyValue"}


def test_metadata_values_may_hold_every_printable_ascii_character(envd: Envd) -> None:
    """Printable US-ASCII is 0x20-0x7e: the space and the tilde are in it."""
    value = "".join(chr(code) for code in range(0x20, 0x7F)).strip()
    value = f"a {value} z"
    sbx = envd.sandbox()
    assert sbx.files.write("all.txt", "x", metadata={"k": value}).metadata == {"k": value}
    assert sbx.files.get_info("all.txt").metadata == {"k": value}


def test_each_upload_replaces_the_metadata_and_none_clears_it(envd: Envd) -> None:
    """envd.yaml: keys absent from the new upload are removed, an upload without
    ``X-Metadata-*`` clears them all; the file keeps its inode all along."""
    sbx = envd.sandbox()
    sbx.files.write("m.txt", "1", metadata={"alpha": "a", "beta": "b"})
    inode = os.stat(envd.workspace().home / "m.txt").st_ino

    written = sbx.files.write("m.txt", "2", metadata={"gamma": "g"})
    assert written.metadata == {"gamma": "g"}
    assert sbx.files.get_info("m.txt").metadata == {"gamma": "g"}

    assert sbx.files.write("m.txt", "3").metadata is None
    assert sbx.files.get_info("m.txt").metadata is None
    assert os.stat(envd.workspace().home / "m.txt").st_ino == inode
    assert sbx.files.read("m.txt") == "3"


def test_every_file_of_an_upload_gets_its_metadata(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("b.txt", "old", metadata={"stale": "yes"})
    entries = [WriteEntry(path="a.txt", data="a"), WriteEntry(path="b.txt", data="b")]
    written = sbx.files.write_files(entries, metadata={"batch": "7"})
    assert [w.metadata for w in written] == [{"batch": "7"}] * 2
    assert [sbx.files.get_info(p).metadata for p in ("a.txt", "b.txt")] == [{"batch": "7"}] * 2


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({"k" * 247: "v"}, "longer than 246"),
        ({"a": "v" * 2100, "b": "w" * 2100}, "more than 4096"),
        # 4091 bytes of key and value, 4100 with the one ``user.e2b.`` prefix.
        ({"a": "v" * 4090}, "more than 4096"),
    ],
)
def test_metadata_over_envds_limits_refuses_the_whole_upload(
    envd: Envd, metadata: dict[str, str], says: str
) -> None:
    """Keys of at most 246 bytes, 4096 in all counting ``user.e2b.`` once per key: else 400."""
    sbx = envd.sandbox()
    sbx.files.write("kept.txt", "original", metadata={"v": "1"})
    entries = [WriteEntry(path="new.txt", data="x"), WriteEntry(path="kept.txt", data="changed")]
    with pytest.raises(InvalidArgumentException, match=says):
        sbx.files.write_files(entries, metadata=metadata)
    assert sbx.files.read("kept.txt") == "original"
    assert sbx.files.get_info("kept.txt").metadata == {"v": "1"}
    assert not sbx.files.exists("new.txt")


def test_metadata_at_envds_limits_is_taken(envd: Envd) -> None:
    sbx = envd.sandbox()
    key = "k" * 246
    sbx.files.write("long-key.txt", "x", metadata={key: "v"})
    assert sbx.files.get_info("long-key.txt").metadata == {key: "v"}
    # 4096 bytes in all: not refused (ext4 may still decline to store that much in
    # one inode; the answer then has no metadata, as where xattrs are unsupported).
    sbx.files.write("full.txt", "x", metadata={"a": "v" * (4096 - len("user.e2b.a"))})
    assert sbx.files.read("full.txt") == "x"


def _upload_with_headers(envd: Envd, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
    """``POST /files?path=m.txt`` with raw extra headers (what the SDKs would not send)."""
    with envd.http() as http:
        return http.post(
            "/files",
            params={"path": "m.txt"},
            content=b"x",
            headers=[(b"Content-Type", b"application/octet-stream"), *headers],
        )


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([(b"X-Metadata-tab", b"a\tb")], "value of 'tab' is not printable US-ASCII"),
        ([(b"X-Metadata-na", "café".encode())], "value of 'na' is not printable US-ASCII"),
        ([(b"X-Metadata-ok", b"1"), (b"X-Metadata-", b"v")], "metadata key is empty"),
    ],
)
def test_metadata_must_be_printable_ascii(
    envd: Envd, headers: list[tuple[bytes, bytes]], says: str
) -> None:
    """A non-ASCII value was stored as mojibake (each UTF-8 byte read as Latin-1)."""
    r = _upload_with_headers(envd, headers)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400
    assert says in r.json()["message"]
    assert not (envd.workspace().home / "m.txt").exists()


def test_a_repeated_metadata_header_keeps_its_first_value(envd: Envd) -> None:
    r = _upload_with_headers(envd, [(b"X-Metadata-dup", b"first"), (b"X-Metadata-Dup", b"second")])
    assert r.status_code == 200, r.text
    assert r.json()[0]["metadata"] == {"dup": "first"}
    assert envd.sandbox().files.get_info("m.txt").metadata == {"dup": "first"}


def test_metadata_refused_by_the_file_system_half_way_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a mix of old and new keys: the file is left without metadata, as the answer says."""
    path = tmp_path / "f.txt"
    path.write_text("x")
    assert write_metadata(path, {"old": "1"})
    real_setxattr = os.setxattr

    def setxattr(target: Path, name: str, value: bytes, **kwargs: bool) -> None:
        if name == "user.e2b.second":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_setxattr(target, name, value, **kwargs)

    monkeypatch.setattr(os, "setxattr", setxattr)
    assert write_metadata(path, {"first": "1", "second": "2"}) is False
    assert read_metadata(path) == {}


def test_an_overwrite_whose_metadata_the_file_system_refuses_answers_without_it(
    envd: Envd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer says what the file holds: its bytes were written, its metadata was not."""
    sbx = envd.sandbox()
    sbx.files.write("m.txt", "old", metadata={"v": "1"})

    def setxattr(target: Path, name: str, value: bytes, **kwargs: bool) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", setxattr)
    written = sbx.files.write("m.txt", "new", metadata={"v": "2"})
    assert written.metadata is None
    assert sbx.files.read("m.txt") == "new"
    assert sbx.files.get_info("m.txt").metadata is None


def test_list_shows_entries_with_sandbox_paths_to_the_requested_depth(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("/home/user/top.txt", "12345")
    sbx.files.write("/home/user/dir/inner.txt", "x")
    sbx.files.write("/home/user/dir/deeper/leaf.txt", "x")

    shallow = sbx.files.list("/home/user")
    assert [(e.name, e.type, e.path) for e in shallow] == [
        ("dir", FileType.DIR, "/home/user/dir"),
        ("top.txt", FileType.FILE, "/home/user/top.txt"),
    ]
    top = shallow[1]
    assert (top.size, top.permissions, top.owner) == (5, "-rw-r--r--", "user")
    deep = sbx.files.list("/home/user", depth=2)
    assert [e.path for e in deep] == [
        "/home/user/dir",
        "/home/user/dir/deeper",
        "/home/user/dir/inner.txt",
        "/home/user/top.txt",
    ]


def test_a_listing_goes_at_most_64_levels_deep(envd: Envd) -> None:
    """docs/fidelity.md: a deeper ``depth`` lists 64 levels (each level holds a descriptor)."""
    home = envd.workspace().home
    (home / "/".join(["d"] * 66)).mkdir(parents=True)
    entries = envd.sandbox().files.list("/home/user", depth=100)
    assert len(entries) == 64
    assert entries[-1].path == "/home/user/" + "/".join(["d"] * 64)


def test_exists_and_get_info(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("f.txt", "abc")
    assert sbx.files.exists("/home/user/f.txt")
    assert not sbx.files.exists("/home/user/nope.txt")
    info = sbx.files.get_info("f.txt")
    assert (info.name, info.type, info.size, info.path) == (
        "f.txt",
        FileType.FILE,
        3,
        "/home/user/f.txt",
    )
    root = sbx.files.get_info("/")
    assert (root.name, root.path, root.type) == ("/", "/", FileType.DIR)
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info("nope.txt")


def test_symlinks_inside_the_sandbox_are_reported_as_such(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("target.txt", "t")
    (envd.workspace().home / "target.txt").chmod(0o640)
    (envd.workspace().home / "link").symlink_to("target.txt")
    info = sbx.files.get_info("link")
    # Size and mode are the target's (as its type is), not the link's own 0o777.
    assert (info.type, info.symlink_target, info.size, info.mode) == (
        FileType.SYMLINK,
        "/home/user/target.txt",
        1,
        0o640,
    )
    assert sbx.files.read("link") == "t"


def test_entries_name_the_path_as_requested_not_through_symlinks(envd: Envd) -> None:
    """envd makes a path absolute (``~``, relative, ``..``) but follows no link in what it answers."""
    sbx = envd.sandbox()
    sbx.files.write("/home/user/real/inner.txt", "in")
    sbx.files.write("/home/user/real/sub/deep.txt", "d")
    home = envd.workspace().home
    (home / "link").symlink_to("real")
    (home / "filelink").symlink_to("real/inner.txt")

    assert [e.path for e in sbx.files.list("/home/user/link", depth=2)] == [
        "/home/user/link/inner.txt",
        "/home/user/link/sub",
        "/home/user/link/sub/deep.txt",
    ]
    assert [e.path for e in sbx.files.list("link/sub")] == ["/home/user/link/sub/deep.txt"]
    info = sbx.files.get_info("/home/user/link/inner.txt")
    assert (info.name, info.path) == ("inner.txt", "/home/user/link/inner.txt")
    assert sbx.files.get_info("~/real/../link/sub").path == "/home/user/link/sub"

    written = sbx.files.write("/home/user/filelink", "over")
    assert (written.name, written.path) == ("filelink", "/home/user/filelink")
    assert (home / "filelink").is_symlink()  # written through the link, as O_TRUNC does
    assert (home / "real" / "inner.txt").read_text() == "over"
    several = sbx.files.write_files(
        [WriteEntry(path="link/a.txt", data="a"), WriteEntry(path="link/b.txt", data="b")]
    )
    assert [w.path for w in several] == ["/home/user/link/a.txt", "/home/user/link/b.txt"]

    moved = sbx.files.rename("/home/user/link/a.txt", "link/moved.txt")
    assert (moved.name, moved.path) == ("moved.txt", "/home/user/link/moved.txt")
    assert sbx.files.make_dir("link/made") is True
    assert sbx.files.get_info("link/made").path == "/home/user/link/made"


def test_make_dir_reports_whether_it_created_the_directory(envd: Envd) -> None:
    sbx = envd.sandbox()
    assert sbx.files.make_dir("/home/user/new/nested") is True
    assert sbx.files.make_dir("/home/user/new/nested") is False
    assert sbx.files.make_dir("/") is False  # the sandbox's root is a directory that exists
    assert sbx.files.get_info("new/nested").type == FileType.DIR
    sbx.files.write("plain", "x")
    with pytest.raises(InvalidArgumentException):
        sbx.files.make_dir("plain")


def test_rename_moves_files_and_directories(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("old.txt", "x")
    moved = sbx.files.rename("/home/user/old.txt", "/home/user/moved/new.txt")
    assert (moved.name, moved.path) == ("new.txt", "/home/user/moved/new.txt")
    assert not sbx.files.exists("old.txt")
    assert sbx.files.read("moved/new.txt") == "x"
    sbx.files.rename("moved", "renamed")
    assert sbx.files.read("renamed/new.txt") == "x"
    with pytest.raises(FileNotFoundException):
        sbx.files.rename("old.txt", "again.txt")


def test_remove_deletes_files_and_trees(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("gone.txt", "x")
    sbx.files.write("tree/a/b.txt", "x")
    sbx.files.remove("gone.txt")
    sbx.files.remove("/home/user/tree")
    assert sbx.files.list("/home/user") == []


def test_removing_a_missing_path_is_no_error(envd: Envd) -> None:
    """envd's Remove is Go's ``os.RemoveAll``: nothing there is nothing to do (E2B's SDK tests)."""
    sbx = envd.sandbox()
    sbx.files.remove("never-existed.txt")
    sbx.files.remove("/home/user/no/such/parent/file.txt")
    assert sbx.files.list("/home/user") == []


def test_reading_missing_or_directory_paths_fails_cleanly(envd: Envd) -> None:
    sbx = envd.sandbox()
    with pytest.raises(FileNotFoundException):
        sbx.files.read("missing.txt")
    with pytest.raises(InvalidArgumentException, match="directory"):
        sbx.files.read("/home")


def test_listing_a_missing_directory_is_not_found_and_a_file_is_invalid(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("file.txt", "x")
    with pytest.raises(FileNotFoundException):
        sbx.files.list("/home/user/missing-dir")
    with pytest.raises(InvalidArgumentException):
        sbx.files.list("file.txt")


def test_a_path_under_a_file_is_an_invalid_argument_not_a_missing_file(envd: Envd) -> None:
    """``file.txt/x`` cannot exist: the caller named a file as a directory (``ENOTDIR``)."""
    sbx = envd.sandbox()
    sbx.files.write("file.txt", "x")
    with pytest.raises(
        InvalidArgumentException, match=re.escape("not a directory: /home/user/file.txt/x")
    ):
        sbx.files.get_info("/home/user/file.txt/x")
    with pytest.raises(InvalidArgumentException, match="not a directory"):
        sbx.files.make_dir("/home/user/file.txt/x")
    with pytest.raises(InvalidArgumentException, match="not a directory"):
        sbx.files.rename("/home/user/file.txt", "/home/user/file.txt/x")
    assert sbx.files.read("file.txt") == "x"


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        ("/home/user/a", "/home/user/b"),  # onto a non-empty directory
        ("/home/user/a", "/home/user/empty"),  # rename(2) would replace it
        ("/home/user/a", "/home/user/a"),  # a directory onto itself
        ("/home/user/top.txt", "/home/user/empty"),  # a file onto a directory
        ("/home/user/a/one.txt", "/home/user/a"),  # a file onto its own directory
    ],
)
def test_renaming_onto_a_directory_fails_and_moves_nothing(
    envd: Envd, source: str, destination: str
) -> None:
    """Go's ``os.Rename`` refuses any directory at the destination, empty or not: ``EEXIST``."""
    sbx = envd.sandbox()
    sbx.files.write("a/one.txt", "1")
    sbx.files.write("b/two.txt", "2")
    sbx.files.write("top.txt", "t")
    sbx.files.make_dir("empty")
    before = [(e.path, e.type) for e in sbx.files.list("/home/user", depth=3)]
    with pytest.raises(SandboxException, match=f"ALREADY_EXISTS: file exists: {destination}$"):
        sbx.files.rename(source, destination)
    assert [(e.path, e.type) for e in sbx.files.list("/home/user", depth=3)] == before
    assert sbx.files.read("a/one.txt") == "1"


def test_a_directory_renamed_to_its_own_path_through_a_symlink_stays(envd: Envd) -> None:
    """Go lets a rename onto a directory through when it is the source named otherwise."""
    sbx = envd.sandbox()
    sbx.files.write("real/d/x.txt", "x")
    (envd.workspace().home / "link").symlink_to("real")
    moved = sbx.files.rename("/home/user/link/d", "/home/user/real/d")
    assert (moved.path, moved.type) == ("/home/user/real/d", FileType.DIR)
    assert sbx.files.read("real/d/x.txt") == "x"


def test_a_refused_rename_leaves_the_destinations_parents_but_a_missing_source_makes_none(
    envd: Envd,
) -> None:
    """envd makes the destination's parents before ``os.Rename``; a missing source is checked first."""
    sbx = envd.sandbox()
    sbx.files.write("a/one.txt", "1")
    with pytest.raises(InvalidArgumentException, match="invalid argument"):
        sbx.files.rename("/home/user/a", "/home/user/a/x/y")  # a directory into itself: EINVAL
    assert [e.path for e in sbx.files.list("a")] == ["/home/user/a/one.txt", "/home/user/a/x"]
    with pytest.raises(FileNotFoundException):
        sbx.files.rename("/home/user/nope", "/home/user/new/dir/nope")
    assert not sbx.files.exists("/home/user/new")


def test_renaming_a_file_onto_a_file_replaces_it(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("from.txt", "new")
    sbx.files.write("to.txt", "old")
    assert sbx.files.rename("from.txt", "to.txt").path == "/home/user/to.txt"
    assert [e.name for e in sbx.files.list("/home/user")] == ["to.txt"]
    assert sbx.files.read("to.txt") == "new"


def test_files_written_by_commands_are_visible_and_vice_versa(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("in.txt", "from files")
    assert sbx.commands.run("cat in.txt; echo -n from-cmd > out.txt").stdout == "from files"
    assert sbx.files.read("/home/user/out.txt") == "from-cmd"


def test_watch_dir_reports_changes_by_polling(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("watched/keep.txt", "x")
    watcher = sbx.files.watch_dir("/home/user/watched", include_entry=True)
    sbx.files.write("watched/new.txt", "x")
    events = watcher.get_new_events()
    assert [(e.name, e.type.value) for e in events] == [("new.txt", "create")]
    assert events[0].entry is not None and events[0].entry.path == "/home/user/watched/new.txt"
    sbx.files.write("watched/keep.txt", "longer")
    sbx.files.remove("watched/new.txt")
    assert sorted((e.name, e.type.value) for e in watcher.get_new_events()) == [
        ("keep.txt", "write"),
        ("new.txt", "remove"),
    ]
    assert watcher.get_new_events() == []
    watcher.stop()
    with pytest.raises(SandboxException):
        watcher.get_new_events()


def test_a_file_whose_size_changed_under_the_same_mtime_was_written(envd: Envd) -> None:
    """Timestamps are coarse (a kernel tick): two writes in one tick leave the mtime as it
    was, and the size still tells the write."""
    sbx = envd.sandbox()
    sbx.files.write("watched/f.txt", "short")
    path = envd.workspace().home / "watched" / "f.txt"
    before = path.stat()
    watcher = sbx.files.watch_dir("/home/user/watched")
    path.write_text("much longer")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [("f.txt", "write")]
    watcher.stop()


def test_a_file_rewritten_with_the_same_size_and_mtime_was_written(envd: Envd) -> None:
    """A kernel without multigrain timestamps (before 6.13) stamps a write with the last
    clock tick: a file written again with the same size in the tick a poll saw it in keeps
    its mtime. A scan remembers the content of a file whose mtime is that close (here one
    the host gave a time ahead: as racy as can be) and reports the rewrite."""
    sbx = envd.sandbox()
    sbx.files.write("watched/f.txt", "one")
    path = envd.workspace().home / "watched" / "f.txt"
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ahead, ahead))
    watcher = sbx.files.watch_dir("/home/user/watched")
    assert watcher.get_new_events() == []
    path.write_text("two")
    os.utime(path, ns=(ahead, ahead))
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [("f.txt", "write")]
    assert watcher.get_new_events() == []  # remembered: no WRITE at every poll
    # The same bytes again under the same mtime: nothing a poll can tell (envd says WRITE).
    path.write_text("two")
    os.utime(path, ns=(ahead, ahead))
    assert watcher.get_new_events() == []
    watcher.stop()


def test_an_entry_that_changes_type_is_removed_and_created(envd: Envd) -> None:
    """docs/fidelity.md (watches): "an entry that changes type reads REMOVE then CREATE",
    not one WRITE: a file replaced by a directory, and back."""
    sbx = envd.sandbox()
    sbx.files.write("watched/x", "a file")
    watcher = sbx.files.watch_dir("/home/user/watched")
    with_entries = sbx.files.watch_dir("/home/user/watched", include_entry=True)
    sbx.commands.run("rm watched/x && mkdir watched/x")
    plain = watcher.get_new_events()
    assert [(e.name, e.type.value, e.entry) for e in plain] == [
        ("x", "remove", None),
        ("x", "create", None),  # no entry unless asked for
    ]
    # The removed file has no entry; the directory made in its place is the created one's.
    removed, created = with_entries.get_new_events()
    assert (removed.type.value, removed.entry) == ("remove", None)
    assert created.entry is not None
    assert (created.type.value, created.entry.type) == ("create", FileType.DIR)
    with_entries.stop()
    sbx.commands.run("rmdir watched/x && echo file > watched/x")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [
        ("x", "remove"),
        ("x", "create"),
    ]
    watcher.stop()


def test_an_entry_replaced_under_its_name_is_removed_and_created(envd: Envd) -> None:
    """docs/fidelity.md (watches): an entry replaced between two polls (removed and made
    again, or a rename onto it) reads REMOVE then CREATE, even a directory (whose own
    mtime a scan does not look at) and a file of the same size and mode. The old ones are
    moved out of the watch first, so the new ones cannot have their inode numbers."""
    sbx = envd.sandbox()
    sbx.files.write("watched/f", "x")
    sbx.files.make_dir("watched/d")
    watcher = sbx.files.watch_dir("/home/user/watched")
    sbx.commands.run("mv watched/f f.old && echo x > watched/f")
    sbx.commands.run("mv watched/d d.old && mkdir watched/d")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [
        ("d", "remove"),
        ("d", "create"),
        ("f", "remove"),
        ("f", "create"),
    ]
    sbx.files.write("watched/g", "yy")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [("g", "create")]
    # A rename onto a file: the source goes, the destination is another file now.
    sbx.files.rename("watched/g", "watched/f")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [
        ("f", "remove"),
        ("f", "create"),
        ("g", "remove"),
    ]
    watcher.stop()


def test_a_file_written_and_given_another_mode_between_two_polls_reads_both(
    envd: Envd,
) -> None:
    """WRITE then CHMOD: the write does not hide the mode change (envd sends both)."""
    sbx = envd.sandbox()
    sbx.files.write("watched/f", "x")
    watcher = sbx.files.watch_dir("/home/user/watched")
    sbx.files.write("watched/f", "longer")
    sbx.commands.run("chmod 600 watched/f")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [
        ("f", "write"),
        ("f", "chmod"),
    ]
    watcher.stop()


def test_a_watcher_whose_directory_went_keeps_saying_so_and_can_be_stopped(envd: Envd) -> None:
    """The poll after the one that reported the entries removed answers ``not_found``
    "removed or replaced", and so does every later one; ``stop()`` succeeds, as it does
    for any envd watcher, so that a ``finally: watcher.stop()`` does not fail the test."""
    sbx = envd.sandbox()
    sbx.files.write("watched/f", "x")
    watcher = sbx.files.watch_dir("/home/user/watched")
    sbx.files.remove("watched")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [("f", "remove")]
    for _ in range(2):
        with pytest.raises(NotFoundException, match="removed or replaced"):
            watcher.get_new_events()
    watcher.stop()
    with pytest.raises(SandboxException, match="already stopped"):
        watcher.get_new_events()


def test_files_of_one_sandbox_are_invisible_to_another(envd: Envd) -> None:
    envd.sandbox("sbx-a").files.write("secret.txt", "a")
    with pytest.raises(FileNotFoundException):
        envd.sandbox("sbx-b").files.read("secret.txt")


# -- /files on the wire ----------------------------------------------------------------


def test_a_head_of_a_file_answers_its_headers_without_its_bytes(envd: Envd) -> None:
    envd.sandbox().files.write("h.txt", "12345")
    with envd.http() as http:
        r = http.head("/files", params={"path": "/home/user/h.txt"})
    assert (r.status_code, r.headers["content-length"], r.content) == (200, "5", b"")
    assert r.headers["content-type"] == "application/octet-stream"


def test_download_of_a_missing_file_is_a_404_json_error(envd: Envd) -> None:
    with envd.http() as http:
        r = http.get("/files", params={"path": "/home/user/missing"})
    assert r.status_code == 404
    assert r.json() == {"code": 404, "message": "file not found: /home/user/missing"}


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        ({"content": b"x", "headers": {"Content-Type": "text/plain"}}, 400, "Content-Type"),
        ({"content": b"x", "headers": {"Content-Type": "application/octet-stream"}}, 400, "path"),
        ({"files": {"other": ("f", b"x")}}, 400, "no 'file' part"),
        ({"files": {"file": ("", b"x")}}, 400, "no filename"),
        (
            {
                "content": b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.txt"\r\n\r\nabc',
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
            "truncated",
        ),
    ],
)
def test_malformed_uploads_are_refused_and_write_nothing(
    envd: Envd, kwargs: dict[str, object], status: int, says: str
) -> None:
    with envd.http() as http:
        r = http.post("/files", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.json()["code"] == status
    assert says in r.json()["message"]
    ws = envd.workspace()
    staging = ws.root.parent / ".uploads"
    assert [p for p in ws.root.rglob("*") if p.is_file()] == []
    assert not staging.exists() or not any(staging.iterdir())


def test_a_bad_gzip_body_is_refused_and_writes_nothing(envd: Envd) -> None:
    good = gzip.compress(b"payload")
    with envd.http() as http:
        for body in (b"not gzip", good[:-6]):
            r = http.post(
                "/files",
                params={"path": "g.bin"},
                content=body,
                headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
            )
            assert r.status_code == 400, r.text
    assert not (envd.workspace().home / "g.bin").exists()


def test_uploads_over_the_limit_are_refused_and_write_nothing(envd: Envd) -> None:
    sbx = envd.sandbox()
    with pytest.raises(SandboxException, match="limit"):
        sbx.files.write("/home/user/big/file.bin", b"x" * (MAX_UPLOAD + 1))
    # A stream without Content-Length is cut off as it crosses the limit.
    chunks = (b"y" * 65536 for _ in range(MAX_UPLOAD // 65536 + 2))
    with pytest.raises(SandboxException, match="limit"):
        sbx.files.write("/home/user/big/stream.bin", chunks)
    # A gzip bomb is measured after inflation.
    bomb = gzip.compress(b"\0" * (MAX_UPLOAD * 4))
    with envd.http() as http:
        r = http.post(
            "/files",
            params={"path": "bomb.bin"},
            content=bomb,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
        )
    assert r.status_code == 413
    assert not (envd.workspace().home / "big").exists()
    assert not (envd.workspace().home / "bomb.bin").exists()


@pytest.mark.parametrize("octet_stream", [False, True], ids=["multipart", "octet-stream"])
def test_a_file_of_exactly_the_limit_is_taken_either_way(envd: Envd, octet_stream: bool) -> None:
    """The limit counts the file's bytes, not the multipart framing around them."""
    sbx = envd.sandbox()
    info = sbx.files.write("at-limit.bin", b"z" * MAX_UPLOAD, use_octet_stream=octet_stream)
    assert info.path == "/home/user/at-limit.bin"
    assert (envd.workspace().home / "at-limit.bin").stat().st_size == MAX_UPLOAD


def test_a_file_at_a_path_near_path_max_is_written_as_other_calls_reach_it(envd: Envd) -> None:
    """The sandbox path is under PATH_MAX though the host path (longer by the workspace root's)
    is not: the upload walks from the root as the other calls do."""
    sbx = envd.sandbox()
    folder = "/home/user/" + "/".join(["d" * 200] * 19)
    path = folder + "/" + "f" * (4052 - len(folder) - 1)
    assert len(path.encode()) == 4052
    sbx.files.make_dir(folder)
    info = sbx.files.write(path, "content\n")
    assert info.path == path
    assert sbx.files.read(path) == "content\n"


def test_uploading_onto_a_directory_is_refused(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.make_dir("adir")
    with pytest.raises(InvalidArgumentException, match="directory"):
        sbx.files.write("adir", "x")
    sbx.files.write("afile", "x")
    with pytest.raises(InvalidArgumentException, match="not a directory"):
        sbx.files.write("afile/child", "x")


@pytest.mark.parametrize(
    ("paths", "says"),
    [
        (["/home/user/a", "/home/user/a/b"], "a parent of /home/user/a/b is not a directory"),
        (["/home/user/c/d", "/home/user/c"], "path is a directory: /home/user/c"),
        (["/home/user/e/f", "e"], "path is a directory: e"),  # the same target spelt otherwise
    ],
)
def test_an_upload_whose_files_conflict_is_refused_and_changes_nothing(
    envd: Envd, paths: list[str], says: str
) -> None:
    """Put in place one by one, the files before the conflict were left written."""
    sbx = envd.sandbox()
    sbx.files.write("kept.txt", "original", metadata={"v": "1"})
    entries = [WriteEntry(path="/home/user/kept.txt", data="changed")]
    entries += [WriteEntry(path=p, data=p) for p in paths]
    with pytest.raises(InvalidArgumentException, match=says):
        sbx.files.write_files(entries, metadata={"v": "2"})
    assert [e.name for e in sbx.files.list("/home/user")] == ["kept.txt"]
    assert sbx.files.read("kept.txt") == "original"
    assert sbx.files.get_info("kept.txt").metadata == {"v": "1"}


def test_a_target_that_became_a_directory_meanwhile_changes_nothing(envd: Envd) -> None:
    """The targets are checked again just before anything moves: a command may make a
    directory at one while the body streams in (the other file was left written)."""
    sbx = envd.sandbox()
    sbx.files.write("kept.txt", "original")
    home = envd.workspace().home

    def body() -> Iterator[bytes]:
        for name, data in (("kept.txt", b"changed\r\n"), ("late", b"")):
            yield (
                f'--b\r\nContent-Disposition: form-data; name="file"; '
                f'filename="/home/user/{name}"\r\n\r\n'
            ).encode() + data
        time.sleep(0.2)  # the server has checked "late" against the disk by now
        (home / "late").mkdir()
        yield b"data\r\n--b--\r\n"

    with envd.http() as http:
        r = http.post(
            "/files", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
    assert r.status_code == 400, r.text
    assert "path is a directory: /home/user/late" in r.json()["message"]
    assert sbx.files.read("kept.txt") == "original"


def test_the_same_path_twice_in_one_upload_keeps_the_last(envd: Envd) -> None:
    """As envd writes the parts in order; the answer lists both."""
    sbx = envd.sandbox()
    written = sbx.files.write_files(
        [
            WriteEntry(path="twice.txt", data="first"),
            WriteEntry(path="/home/user/twice.txt", data="2"),
        ]
    )
    assert [w.path for w in written] == ["/home/user/twice.txt"] * 2
    assert sbx.files.read("twice.txt") == "2"


def test_the_upload_answer_lists_what_was_written(envd: Envd) -> None:
    with envd.http() as http:
        r = http.post(
            "/files", files=[("file", ("/home/user/one.txt", b"1")), ("file", ("two.txt", b"2"))]
        )
    assert r.status_code == 200
    assert r.json() == [
        {"name": "one.txt", "type": "file", "path": "/home/user/one.txt"},
        {"name": "two.txt", "type": "file", "path": "/home/user/two.txt"},
    ]
    assert json.loads(r.text) == r.json()


def test_a_signed_upload_url_writes_to_its_path_whatever_the_parts_filename(envd: Envd) -> None:
    """A form posted to ``sbx.upload_url(path)`` (``curl -F file=@local-name.txt URL``) names
    its part after the local file: envd writes to the URL's ``path``, the one signed.

    e2b-protocol.md §4.3: with a ``path`` query the upload goes there, only without one does
    envd use each part's filename; §4.5: the signed URL carries ``path`` and its signature.
    """
    envd.add("sbx-signed", token="envd-token-signed")
    sbx = envd.sandbox("sbx-signed", token="envd-token-signed")
    url = sbx.upload_url("/home/user/target.txt")
    assert "signature=" in url

    r = httpx.post(
        url,
        files={"file": ("local-name.txt", b"signed")},
        headers={"E2b-Sandbox-Id": "sbx-signed"},  # no X-Access-Token: the URL is signed
    )

    assert r.status_code == 200, r.text
    assert r.json() == [{"name": "target.txt", "type": "file", "path": "/home/user/target.txt"}]
    assert sbx.files.read("/home/user/target.txt") == "signed"
    assert not sbx.files.exists("/home/user/local-name.txt")


# -- names and modes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "paths",
    [
        ["/tmp/ü.txt", "/tmp/plain.txt"],  # Latin-1 range
        ["/tmp/ä.txt", "/tmp/ö.txt"],  # two names that once collided
        ["/tmp/日本.txt", "/home/user/emoji-🙂/x.txt"],  # outside Latin-1
    ],
)
def test_write_files_keeps_non_ascii_paths(envd: Envd, paths: list[str]) -> None:
    """Several entries go as multipart parts named by their filename, which httpx writes as UTF-8."""
    sbx = envd.sandbox()
    written = sbx.files.write_files([WriteEntry(path=p, data=p) for p in paths])
    assert [w.path for w in written] == paths
    assert [sbx.files.read(p) for p in paths] == paths
    root = envd.workspace().root
    assert [(root / p.lstrip("/")).read_text() for p in paths] == paths


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        # RFC 2231/5987: the extended parameter wins over the plain one, as in Go's mime.
        ("filename=\"fallback.txt\"; filename*=UTF-8''%E6%97%A5%20x.txt", "日 x.txt"),
        ("filename*0*=utf-8''a%C3%BC; filename*1=\"-b.txt\"", "aü-b.txt"),
        ("filename*=US-ASCII''plain%20name.txt", "plain name.txt"),
        # A backslash escapes a special character only (Go's MSIE rule keeps the other ones).
        ('filename="q\\"uote\\d.txt"', 'q"uote\\d.txt'),
        # The same parameter twice with one value is taken (Go allows the equal duplicate).
        ('filename="twice.txt"; filename="twice.txt"', "twice.txt"),
    ],
)
def test_multipart_filenames_are_read_as_gos_mime_reads_them(
    envd: Envd, disposition: str, name: str
) -> None:
    body = (
        f'--b\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n\r\n'
        "data\r\n--b--\r\n"
    ).encode()
    with envd.http() as http:
        r = http.post(
            "/files",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
    assert r.status_code == 200, r.text
    assert r.json() == [{"name": name, "type": "file", "path": f"/home/user/{name}"}]
    assert (envd.workspace().home / name).read_text() == "data"


@pytest.mark.parametrize(
    "disposition",
    [
        # Go's ``Part.FormName`` is empty unless the disposition is ``form-data``.
        'attachment; name="file"; filename="a.txt"',
        # Go's mime refuses a parameter given twice with two values ("duplicate parameter name").
        'form-data; name="file"; filename="a.txt"; filename="b.txt"',
    ],
)
def test_a_part_that_go_does_not_read_as_a_file_is_ignored(envd: Envd, disposition: str) -> None:
    body = (f"--b\r\nContent-Disposition: {disposition}\r\n\r\ndata\r\n--b--\r\n").encode()
    with envd.http() as http:
        r = http.post(
            "/files", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
    assert r.status_code == 400
    assert "no 'file' part" in r.json()["message"]
    assert not (envd.workspace().home / "a.txt").exists()
    assert not (envd.workspace().home / "b.txt").exists()


def test_overwriting_a_file_keeps_its_mode_and_inode(envd: Envd) -> None:
    """envd opens the path with O_TRUNC: an executable stays executable, hard links follow."""
    sbx = envd.sandbox()
    sbx.files.write("run.sh", "#!/bin/sh\necho v1\n")
    sbx.commands.run("chmod 750 run.sh && ln run.sh linked.sh")
    inode = sbx.commands.run("stat -c %i run.sh").stdout
    assert sbx.commands.run("./run.sh").stdout == "v1\n"

    sbx.files.write("run.sh", "#!/bin/sh\necho v2\n")

    assert sbx.files.get_info("run.sh").permissions == "-rwxr-x---"
    assert sbx.commands.run("stat -c %i run.sh").stdout == inode
    assert sbx.commands.run("./run.sh && ./linked.sh").stdout == "v2\nv2\n"


def test_a_new_file_gets_the_default_mode(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write_files([WriteEntry(path="a.txt", data="a"), WriteEntry(path="b.txt", data="b")])
    umask = os.umask(0)
    os.umask(umask)
    expected = stat.filemode(stat.S_IFREG | (0o666 & ~umask))
    assert [sbx.files.get_info(p).permissions for p in ("a.txt", "b.txt")] == [expected] * 2


def test_a_read_only_file_is_overwritten_and_stays_read_only(envd: Envd) -> None:
    """envd writes as root, whom a missing write bit does not stop."""
    sbx = envd.sandbox()
    sbx.files.write("locked.txt", "old")
    sbx.commands.run("chmod 444 locked.txt")
    sbx.files.write("locked.txt", "new")
    assert sbx.files.read("locked.txt") == "new"
    assert sbx.files.get_info("locked.txt").permissions == "-r--r--r--"


def test_a_refused_overwrite_leaves_the_file_as_it_was(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("kept.txt", "original")
    with pytest.raises(SandboxException, match="limit"):
        sbx.files.write("kept.txt", b"x" * (MAX_UPLOAD + 1))
    assert sbx.files.read("kept.txt") == "original"


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT])
def test_an_upload_to_a_full_disk_is_not_enough_space(
    envd: Envd, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    """A full disk or quota answers 507, the SDK's ``NotEnoughSpaceException``, not the
    caller's ``InvalidArgumentException``; nothing is written. (A disk cannot be filled
    here: the staging write fails as a full one does.)"""

    def disk_full(self: object, staged: object, data: bytes) -> None:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(files._Upload, "write", disk_full)
    sbx = envd.sandbox()
    with pytest.raises(NotEnoughSpaceException, match="cannot write the upload"):
        sbx.files.write("/home/user/big.bin", b"x" * 1000)
    assert not (envd.workspace().home / "big.bin").exists()


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_under_an_rpc_is_an_internal_error_not_a_rate_limit(
    envd: Envd, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    """An RPC has no 507: a full disk under ``make_dir`` answers ``internal`` (the SDK's
    ``SandboxException`` naming the cause), as envd answers an unexpected failure, not
    ``resource_exhausted``, which the SDK words as a rate limit to wait out."""

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(number, os.strerror(number))

    sbx = envd.sandbox()
    sbx.files.write("/home/user/there.txt", "x")  # the sandbox's directories made first
    monkeypatch.setattr(os, "mkdir", disk_full)
    with pytest.raises(SandboxException) as raised:
        sbx.files.make_dir("/home/user/new")
    assert not isinstance(raised.value, RateLimitException)
    # The SDK words an unmapped code as "<code>: <message>".
    assert str(raised.value) == f"Code.INTERNAL: {os.strerror(number).lower()}: /home/user/new"


@pytest.mark.parametrize("number", [errno.EMFILE, errno.ENFILE, errno.ENOMEM])
def test_a_host_out_of_resources_is_an_internal_error_for_uploads_and_downloads(
    envd: Envd, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    """The host running out of descriptors or memory answers 500 (``SandboxException``),
    not 400 (``InvalidArgumentException``): the caller did nothing wrong."""
    sbx = envd.sandbox()
    sbx.files.write("/home/user/there.txt", "x")

    def short_of_resources(*args: object, **kwargs: object) -> int:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(files._Upload, "write", short_of_resources)
    monkeypatch.setattr(files, "open_entry", short_of_resources)
    for call in (
        lambda: sbx.files.write("/home/user/new.txt", "y"),
        lambda: sbx.files.read("/home/user/there.txt"),
    ):
        with pytest.raises(SandboxException, match="500") as info:
            call()
        assert not isinstance(info.value, InvalidArgumentException)


@pytest.mark.parametrize(
    ("number", "status"),
    [
        (errno.ENOSPC, 507),
        (errno.EDQUOT, 507),
        (errno.EMFILE, 500),
        (errno.ENFILE, 500),
        (errno.ENOMEM, 500),
        (errno.EAGAIN, 500),
        (errno.ENOTDIR, 400),
        (errno.ENAMETOOLONG, 400),
        (errno.ELOOP, 400),
    ],
)
def test_http_status_of_file_errors(number: int, status: int) -> None:
    assert http_status_of(OSError(number, os.strerror(number))) == status
