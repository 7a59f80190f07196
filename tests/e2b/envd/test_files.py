"""Specification of envd's files: ``filesystem.Filesystem`` and ``/files``, through the real SDK's ``sbx.files``."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from e2b import FileNotFoundException, FileType, InvalidArgumentException, SandboxException
from e2b.sandbox.filesystem.filesystem import WriteEntry

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


def test_metadata_is_stored_and_read_back(envd: Envd) -> None:
    sbx = envd.sandbox()
    written = sbx.files.write("tagged.txt", "x", metadata={"owner": "alice"})
    assert written.metadata == {"owner": "alice"}
    assert sbx.files.get_info("tagged.txt").metadata == {"owner": "alice"}


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
    assert sbx.files.get_info("/").path == "/"
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info("nope.txt")


def test_symlinks_inside_the_sandbox_are_reported_as_such(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("target.txt", "t")
    (envd.workspace().home / "link").symlink_to("target.txt")
    info = sbx.files.get_info("link")
    assert (info.type, info.symlink_target, info.size) == (
        FileType.SYMLINK,
        "/home/user/target.txt",
        1,
    )
    assert sbx.files.read("link") == "t"


def test_make_dir_reports_whether_it_created_the_directory(envd: Envd) -> None:
    sbx = envd.sandbox()
    assert sbx.files.make_dir("/home/user/new/nested") is True
    assert sbx.files.make_dir("/home/user/new/nested") is False
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
    with pytest.raises(FileNotFoundException):
        sbx.files.remove("gone.txt")


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


def test_files_of_one_sandbox_are_invisible_to_another(envd: Envd) -> None:
    envd.sandbox("sbx-a").files.write("secret.txt", "a")
    with pytest.raises(FileNotFoundException):
        envd.sandbox("sbx-b").files.read("secret.txt")


# -- /files on the wire ----------------------------------------------------------------


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


def test_uploading_onto_a_directory_is_refused(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.make_dir("adir")
    with pytest.raises(InvalidArgumentException, match="directory"):
        sbx.files.write("adir", "x")
    sbx.files.write("afile", "x")
    with pytest.raises(InvalidArgumentException, match="not a directory"):
        sbx.files.write("afile/child", "x")


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
