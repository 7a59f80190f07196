"""Specification of envd's polling watches when a scan fails for a reason other than the
directory going away: through the real SDK's ``sbx.files.watch_dir``.

Only a directory that is not there any more (or not the same one) is gone. The host
running out of descriptors or memory, or a permission taken away, makes a scan fail
without the directory having changed: such a poll reports nothing (not every entry
removed), the watch goes on, and only failures that persist end it, with their error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b import NotFoundException, SandboxException
from e2b.envd.filesystem import filesystem_connect, filesystem_pb
from e2b.sandbox.filesystem.watch_handle import FilesystemEvent

from pytest_kruise_agents.e2b.envd import watchers
from tests.e2b.envd.conftest import Envd

FailAt = Callable[[pytest.MonkeyPatch, int], None]


def fail_opening(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Reaching the watched directory fails with ``number``."""

    def open_dir(*args: object, **kwargs: object) -> int:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(watchers, "open_dir", open_dir)


def fail_listing(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Listing the watched directory (by descriptor) fails with ``number``."""
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if isinstance(path, int):
            raise OSError(number, os.strerror(number))
        return real(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)


def fail_duplicating(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """The scan's first descriptor cannot be had (``EMFILE`` at ``dup``)."""

    def dup(fd: int) -> int:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(os, "dup", dup)


@pytest.mark.parametrize("fail", [fail_opening, fail_listing, fail_duplicating])
@pytest.mark.parametrize("number", [errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EACCES])
def test_a_failed_scan_reports_nothing_and_the_watch_goes_on(
    envd: Envd, monkeypatch: pytest.MonkeyPatch, fail: FailAt, number: int
) -> None:
    """No REMOVE of entries that are still there, no end of the watch; once the host
    recovers, only what really changed is reported."""
    sbx = envd.sandbox()
    sbx.files.write("/home/user/w/keep.txt", "x")
    watcher = sbx.files.watch_dir("/home/user/w")
    with monkeypatch.context() as patch:
        fail(patch, number)
        assert watcher.get_new_events() == []
        assert watcher.get_new_events() == []
    sbx.files.write("/home/user/w/new.txt", "y")
    assert [(e.name, e.type.value) for e in watcher.get_new_events()] == [("new.txt", "create")]
    watcher.stop()


@pytest.mark.parametrize("number", [errno.EMFILE, errno.EACCES])
def test_a_subdirectory_that_fails_to_open_is_no_removal_in_a_recursive_watch(
    envd: Envd, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    """A subtree the scan could not enter (out of descriptors, or shut to the server by a
    chmod) is not reported removed: its files are still there."""
    sbx = envd.sandbox()
    sbx.files.write("/home/user/w/sub/deep.txt", "x")
    watcher = sbx.files.watch_dir("/home/user/w", recursive=True)
    real = os.open

    def open_(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if path == "sub":
            raise OSError(number, os.strerror(number))
        return real(path, flags, mode, dir_fd=dir_fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", open_)
        assert watcher.get_new_events() == []
    assert watcher.get_new_events() == []
    watcher.stop()


def test_failures_that_persist_end_the_watch_with_their_error(
    envd: Envd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``MAX_FAILED_SCANS`` failed scans in a row: ``internal`` naming the cause,
    not ``not_found`` (the directory is still there)."""
    monkeypatch.setattr(watchers, "MAX_FAILED_SCANS", 3)
    sbx = envd.sandbox()
    sbx.files.write("/home/user/w/keep.txt", "x")
    watcher = sbx.files.watch_dir("/home/user/w")
    fail_opening(monkeypatch, errno.EMFILE)
    for _ in range(3):
        assert watcher.get_new_events() == []
    with pytest.raises(SandboxException, match=r"INTERNAL.*too many open files.*3 times") as info:
        watcher.get_new_events()
    assert not isinstance(info.value, NotFoundException)


def test_a_scan_that_succeeds_resets_the_count(envd: Envd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchers, "MAX_FAILED_SCANS", 2)
    sbx = envd.sandbox()
    sbx.files.make_dir("/home/user/w")
    watcher = sbx.files.watch_dir("/home/user/w")
    for _ in range(3):
        with monkeypatch.context() as patch:
            fail_opening(patch, errno.EMFILE)
            assert watcher.get_new_events() == []
        assert watcher.get_new_events() == []
    watcher.stop()


@pytest.mark.asyncio
async def test_a_watch_stream_ends_with_the_error_of_scans_that_keep_failing(
    envd: Envd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watchers, "MAX_FAILED_SCANS", 3)
    sbx = envd.async_sandbox()
    await sbx.files.write("/home/user/w/keep.txt", "x")
    seen: list[FilesystemEvent] = []
    ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    await sbx.files.watch_dir(
        "/home/user/w", seen.append, on_exit=lambda error: ended.set_result(error)
    )
    fail_listing(monkeypatch, errno.EMFILE)
    error = await asyncio.wait_for(ended, 10)
    assert error is not None and "too many open files" in str(error)
    assert not isinstance(error, NotFoundException)
    assert seen == []


def test_a_recursive_scan_holds_one_descriptor_per_level_not_per_sibling(tmp_path: Path) -> None:
    """A node_modules of many packages scans within a small open-files limit: subdirectories
    are entered one at a time, depth first (opened all at once, 1,000 of them ran out)."""
    for i in range(300):
        (tmp_path / f"pkg-{i}" / "lib").mkdir(parents=True)
        (tmp_path / f"pkg-{i}" / "lib" / "index.js").write_text("x")
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 32, hard))
        found = watchers.snapshot(base, recursive=True)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        os.close(base)
    assert len(found) == 300 * 3
    assert "pkg-299/lib/index.js" in found


@contextlib.contextmanager
def unprivileged(tree: Path) -> Iterator[None]:
    """Mode bits bind this process meanwhile: when the tests run as root (which mode bits do
    not stop), it acts as ``nobody`` (effective ids; root again after), owner of ``tree``."""
    if os.geteuid() != 0:
        yield
        return
    for path in [tree, *tree.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_subdirectory_that_can_be_listed_but_not_searched_is_unreadable_not_empty(
    tmp_path: Path,
) -> None:
    """A ``chmod 600`` subdirectory (read, no execute): its names can be listed but not
    looked at. The scan reports it as shut to the server, as a ``chmod 000`` one, so that a
    recursive watch keeps its entries as last seen (envd, root, sees them all) and does not
    report them removed; the watched directory itself so makes the scan fail (tried again,
    counted), as when it cannot be opened."""
    watched = tmp_path / "w"
    (watched / "s").mkdir(parents=True)
    (watched / "s" / "f").write_text("x")
    (watched / "g").write_text("x")
    (watched / "s").chmod(0o600)
    base = os.open(watched, os.O_RDONLY | os.O_DIRECTORY)
    unreadable: set[str] = set()
    try:
        with unprivileged(watched):
            found = watchers.snapshot(base, True, unreadable)
            assert (sorted(found), unreadable) == (["g", "s"], {"s/"})
            os.chmod("s", 0o755, dir_fd=base)  # by descriptor: nobody cannot reach tmp_path
            os.fchmod(base, 0o600)
            with pytest.raises(PermissionError):
                watchers.snapshot(base, True, set())
    finally:
        os.close(base)


def test_a_scan_reads_the_content_of_racy_files_only(
    envd: Envd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The content of a file is read (for a rewrite that keeps its mtime, docs/fidelity.md)
    while its mtime is within ``RACY_NS`` of a scan (and at the scan after, to compare):
    not once it is older than that at two scans in a row, nor a file written long ago,
    however often it is polled."""
    read: list[str] = []
    real = watchers.Watcher._digest

    def digest(self: watchers.Watcher, fd: int, name: str, ino: int) -> bytes | None:
        read.append(name)
        return real(self, fd, name, ino)

    monkeypatch.setattr(watchers.Watcher, "_digest", digest)
    # A wide window, then a narrow one: the file 500 s old is racy, then not (no waiting).
    monkeypatch.setattr(watchers, "RACY_NS", 1000 * 10**9)
    sbx = envd.sandbox()
    home = envd.workspace().home
    now = time.time_ns()
    for name, mtime in [("old", now - 3600 * 10**9), ("recent", now - 500 * 10**9)]:
        sbx.files.write(f"/home/user/w/{name}", "x")
        os.utime(home / "w" / name, ns=(mtime, mtime))
    watcher = sbx.files.watch_dir("/home/user/w")  # reads recent: racy
    assert watcher.get_new_events() == []  # reads recent: racy
    monkeypatch.setattr(watchers, "RACY_NS", 10**9)  # older than that at this scan and the last
    for _ in range(3):
        assert watcher.get_new_events() == []
    watcher.stop()
    assert read == ["recent"] * 2


def test_a_quiet_watch_stream_carries_keepalives_at_the_requested_interval(envd: Envd) -> None:
    """Like a command's stream: ``keepalive`` events while nothing changes (the SDK's
    ``Keepalive-Ping-Interval``), until the stream's deadline."""
    rpc = filesystem_connect.FilesystemClientSync(envd.url)
    headers = {"E2b-Sandbox-Id": "sbx-default", "Keepalive-Ping-Interval": "0.1"}
    kinds: list[str] = []
    with pytest.raises(ConnectError) as info:
        for response in rpc.watch_dir(
            filesystem_pb.WatchDirRequest(path="/home/user"), headers=headers, timeout_ms=800
        ):
            assert response.event is not None
            kinds.append(response.event.field)
    assert info.value.code == Code.DEADLINE_EXCEEDED
    assert kinds[0] == "start"
    assert set(kinds[1:]) == {"keepalive"} and len(kinds) >= 3
