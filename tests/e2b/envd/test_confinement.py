"""Specification: the file API stays in the sandbox while a command changes the tree under it.

envd checks a path, then uses it. Commands run on the host, so one may swap a
directory or a file on the path for a symlink leading out between the two: while an
upload's body is still arriving, right after a download's or a listing's check, between
two polls of a watch. None of these may then read, list, write, make, move or remove
anything outside the sandbox: the request is refused (``invalid_argument``, HTTP 400)
or, for a watch, ends, and nothing outside changes.

``after_check`` plays the command: it runs a swap right after the server's check of
a path, the moment a real race would need.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from e2b import InvalidArgumentException, NotFoundException, RateLimitException, Sandbox
from e2b.sandbox.filesystem.watch_handle import FilesystemEvent

from pytest_kruise_agents.e2b.envd import confined
from pytest_kruise_agents.e2b.envd.watchers import MAX_WATCH_STREAMS, MAX_WATCHERS
from pytest_kruise_agents.e2b.workspace import PathEscapeError, SandboxWorkspace
from tests.e2b.envd.conftest import Envd

AfterCheck = Callable[..., None]


def unchanged(outside: Path) -> bool:
    return (
        sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
        and (outside / "secret.txt").read_text() == "secret"
    )


@pytest.fixture
def after_check(monkeypatch: pytest.MonkeyPatch) -> AfterCheck:
    """``after_check(path, swap, skip=0)``: call ``swap()`` right after the server's
    ``skip + 1``-th check (``SandboxWorkspace.resolve``) of sandbox ``path``."""
    pending: dict[str, list[object]] = {}
    real = SandboxWorkspace.resolve

    def resolve(
        self: SandboxWorkspace, path: str, *, user: str = "user", follow_symlinks: bool = True
    ) -> Path:
        found = real(self, path, user=user, follow_symlinks=follow_symlinks)
        waiting = pending.get(path)
        if waiting is not None:
            if waiting[0] == 0:
                del pending[path]
                swap = waiting[1]
                assert callable(swap)
                swap()
            else:
                waiting[0] = int(str(waiting[0])) - 1
        return found

    monkeypatch.setattr(SandboxWorkspace, "resolve", resolve)

    def arm(path: str, swap: Callable[[], None], skip: int = 0) -> None:
        pending[path] = [skip, swap]

    return arm


def link_out(entry: Path, target: Path) -> Callable[[], None]:
    """The swap: ``entry`` (a file, a directory tree, or nothing) becomes a symlink to ``target``."""

    def swap() -> None:
        if entry.is_dir() and not entry.is_symlink():
            for child in sorted(entry.rglob("*"), reverse=True):
                child.rmdir() if child.is_dir() else child.unlink()
            entry.rmdir()
        else:
            entry.unlink(missing_ok=True)
        entry.symlink_to(target)

    return swap


# ----------------------------------------------------------------------------- uploads


def slow_upload(envd: Envd, path: str, while_streaming: Callable[[], None]) -> httpx.Response:
    """An octet-stream upload to ``path`` that calls ``while_streaming()`` mid-body."""
    first_sent = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"PWNED by "
        first_sent.set()
        time.sleep(0.3)  # the server has checked the target by now
        while_streaming()
        yield b"a late symlink\n"

    with envd.http() as http:
        return http.post(
            "/files",
            params={"path": path},
            content=body(),
            headers={"Content-Type": "application/octet-stream"},
        )


def test_an_upload_whose_target_became_a_link_out_meanwhile_writes_nothing(
    envd: Envd, outside: Path
) -> None:
    """The target is checked again when the body ends, not only when it starts."""
    envd.workspace().ensure()
    home = envd.workspace().home
    r = slow_upload(envd, "/home/user/new.txt", link_out(home / "new.txt", outside / "secret.txt"))
    assert r.status_code == 400, r.text
    assert "outside the sandbox" in r.json()["message"]
    assert unchanged(outside)


def test_an_upload_whose_parent_became_a_link_out_meanwhile_writes_nothing(
    envd: Envd, outside: Path
) -> None:
    envd.workspace().ensure()
    home = envd.workspace().home
    (home / "sub").mkdir()
    r = slow_upload(envd, "/home/user/sub/new.txt", link_out(home / "sub", outside))
    assert r.status_code == 400, r.text
    assert unchanged(outside)


@pytest.mark.parametrize("existing", [True, False], ids=["overwrite", "new-file"])
def test_an_upload_is_put_in_place_without_following_a_link_made_after_its_last_check(
    envd: Envd, outside: Path, after_check: AfterCheck, existing: bool
) -> None:
    """Placed relative to its parent's descriptor, reached from the sandbox root with
    O_NOFOLLOW: a parent swapped for a link after the final check is refused, not followed."""
    sbx = envd.sandbox()
    sbx.files.make_dir("/home/user/sub")
    if existing:
        sbx.files.write("/home/user/sub/secret.txt", "mine")
    home = envd.workspace().home
    # The first check is at the body's start, the second (skipped to) just before placing.
    after_check("/home/user/sub/secret.txt", link_out(home / "sub", outside), skip=1)
    with envd.http() as http:
        r = http.post(
            "/files", params={"path": "/home/user/sub/secret.txt"}, files={"file": b"pwned"}
        )
    assert r.status_code == 400, r.text
    assert "changed while in use" in r.json()["message"]
    assert unchanged(outside)


# ----------------------------------------------------------------------------- reads and calls


def test_a_download_never_serves_a_file_swapped_for_a_link_after_its_check(
    envd: Envd, outside: Path, after_check: AfterCheck
) -> None:
    """Opened once (O_NOFOLLOW), stat-ed and sent from that descriptor."""
    sbx = envd.sandbox()
    sbx.files.write("f", "decoy")
    after_check("/home/user/f", link_out(envd.workspace().home / "f", outside / "secret.txt"))
    with envd.http() as http:
        r = http.get("/files", params={"path": "/home/user/f"})
    assert r.status_code == 400, r.text
    assert "secret" not in r.text


def test_a_download_sends_the_file_it_checked(envd: Envd) -> None:
    """Sent from the descriptor it checked, whole or by ranges, as before."""
    sbx = envd.sandbox()
    sbx.files.write("big.bin", b"x" * 300_000)
    assert sbx.files.read("big.bin", format="bytes") == b"x" * 300_000
    with envd.http() as http:
        ranged = http.get("/files", params={"path": "big.bin"}, headers={"Range": "bytes=2-5"})
    assert (ranged.status_code, ranged.content) == (206, b"xxxx")


@pytest.mark.parametrize(
    ("operation", "checked"),
    [
        (lambda sbx: sbx.files.list("/home/user/d"), "/home/user/d"),
        (lambda sbx: sbx.files.make_dir("/home/user/d/made"), "/home/user/d/made"),
        (lambda sbx: sbx.files.get_info("/home/user/d/secret.txt"), "/home/user/d/secret.txt"),
        (lambda sbx: sbx.files.remove("/home/user/d/secret.txt"), "/home/user/d/secret.txt"),
        (
            lambda sbx: sbx.files.rename("/home/user/d/secret.txt", "/home/user/stolen"),
            "/home/user/d/secret.txt",
        ),
        (
            lambda sbx: sbx.files.rename("/home/user/mine.txt", "/home/user/d/planted"),
            "/home/user/d/planted",
        ),
    ],
    ids=["list", "make_dir", "get_info", "remove", "rename-from", "rename-to"],
)
def test_a_directory_swapped_for_a_link_after_the_check_is_not_followed(
    envd: Envd,
    outside: Path,
    after_check: AfterCheck,
    operation: Callable[[Sandbox], object],
    checked: str,
) -> None:
    sbx = envd.sandbox()
    sbx.files.write("/home/user/d/secret.txt", "the sandbox's own")
    sbx.files.write("/home/user/mine.txt", "mine")
    after_check(checked, link_out(envd.workspace().home / "d", outside))
    with pytest.raises(InvalidArgumentException, match="changed while in use"):
        operation(sbx)
    assert unchanged(outside)
    assert not (envd.workspace().home / "stolen").exists()


@pytest.mark.parametrize(
    "operation",
    [
        lambda sbx: sbx.files.read("/home/user/s/loop1"),
        lambda sbx: sbx.files.read("/home/user/s/loop1/x"),
        lambda sbx: sbx.files.write("/home/user/s/loop1/x", "x"),
        lambda sbx: sbx.files.list("/home/user/s/loop1/x"),
    ],
    ids=["read", "read-under", "write-under", "list-under"],
)
def test_a_loop_of_links_reads_as_one_not_as_a_change(
    envd: Envd, operation: Callable[[Sandbox], object]
) -> None:
    """A loop left as it was is ELOOP, as envd's ``open`` reports it, not "changed while in use"."""
    links = envd.workspace().home / "s"
    links.mkdir(parents=True)
    (links / "loop2").symlink_to("loop1")
    (links / "loop1").symlink_to("loop2")
    with pytest.raises(InvalidArgumentException, match="too many levels of symbolic links"):
        operation(envd.sandbox())


def test_open_dir_refuses_a_link_that_appeared_on_a_checked_path(envd: Envd, outside: Path) -> None:
    ws = envd.workspace()
    checked = ws.resolve("/home/user/d/deeper")
    (ws.home / "d").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="changed while in use"):
        confined.open_dir(ws, checked, "/home/user/d/deeper", create=True)
    assert unchanged(outside)


def test_open_dir_refuses_a_directory_outside_the_workspace(envd: Envd, outside: Path) -> None:
    """Whatever a caller resolved, ``open_dir`` reaches nothing outside the sandbox."""
    with pytest.raises(PathEscapeError, match="outside the sandbox"):
        confined.open_dir(envd.workspace(), outside, "/somewhere", create=True)
    assert unchanged(outside)


# ----------------------------------------------------------------------------- watches


def test_a_watcher_whose_directory_became_a_link_out_reports_nothing_of_it_and_ends(
    envd: Envd, outside: Path
) -> None:
    sbx = envd.sandbox()
    sbx.files.write("/home/user/w/mine.txt", "x")
    watcher = sbx.files.watch_dir("/home/user/w", include_entry=True)
    link_out(envd.workspace().home / "w", outside)()
    events = watcher.get_new_events()
    assert [(e.name, e.type.value) for e in events] == [("mine.txt", "remove")]
    with pytest.raises(NotFoundException, match="removed or replaced"):
        watcher.get_new_events()


@pytest.mark.asyncio
async def test_a_watch_stream_whose_directory_went_away_ends_with_an_error(
    envd: Envd, outside: Path
) -> None:
    sbx = envd.async_sandbox()
    await sbx.files.write("/home/user/w/mine.txt", "x")
    seen: list[FilesystemEvent] = []
    ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    await sbx.files.watch_dir(
        "/home/user/w", seen.append, on_exit=lambda error: ended.set_result(error)
    )
    link_out(envd.workspace().home / "w", outside)()
    error = await asyncio.wait_for(ended, 10)
    assert error is not None and "removed or replaced" in str(error)
    assert [(e.name, e.type.value) for e in seen] == [("mine.txt", "remove")]


@pytest.mark.asyncio
async def test_a_sandbox_has_a_bounded_number_of_watch_streams(envd: Envd) -> None:
    """Each stream rescans its tree every poll: beyond the cap another is refused; a closed
    one frees its place; another sandbox has its own."""
    sbx = envd.async_sandbox()
    await sbx.files.make_dir("/home/user/w")
    handles = [
        await sbx.files.watch_dir("/home/user/w", lambda _e: None) for _ in range(MAX_WATCH_STREAMS)
    ]
    with pytest.raises(Exception, match=f"too many directory watches.*at most {MAX_WATCH_STREAMS}"):
        await sbx.files.watch_dir("/home/user/w", lambda _e: None)
    other = envd.async_sandbox("sbx-other")
    await other.files.make_dir("/home/user/w")
    await (await other.files.watch_dir("/home/user/w", lambda _e: None)).stop()  # type: ignore[no-untyped-call]
    await handles.pop().stop()  # type: ignore[no-untyped-call]
    for _ in range(50):  # the server hears the close a moment later
        try:
            handles.append(await sbx.files.watch_dir("/home/user/w", lambda _e: None))
            break
        except Exception:
            await asyncio.sleep(0.05)
    assert len(handles) == MAX_WATCH_STREAMS
    for handle in handles:
        await handle.stop()  # type: ignore[no-untyped-call]


def test_a_sandbox_has_a_bounded_number_of_polling_watchers(envd: Envd) -> None:
    """docs/fidelity.md: the sync SDK's ``files.watch_dir`` (``CreateWatcher``) makes at most
    256 watchers in a sandbox; the next is refused with ``resource_exhausted`` (the SDK's
    ``RateLimitException``), a stopped one frees its place, another sandbox has its own."""
    sbx = envd.sandbox()
    sbx.files.make_dir("/home/user/w")
    handles = [sbx.files.watch_dir("/home/user/w") for _ in range(MAX_WATCHERS)]
    with pytest.raises(RateLimitException, match=f"too many watchers \\(at most {MAX_WATCHERS}\\)"):
        sbx.files.watch_dir("/home/user/w")
    other = envd.sandbox("sbx-other")
    other.files.make_dir("/home/user/w")
    other.files.watch_dir("/home/user/w").stop()
    handles.pop().stop()
    handles.append(sbx.files.watch_dir("/home/user/w"))
    assert len(handles) == MAX_WATCHERS == 256
    for handle in handles:
        handle.stop()


def test_watch_scans_run_in_their_own_threads(envd: Envd, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the event loop's default pool, where every other file call waits."""
    from pytest_kruise_agents.e2b.envd import watchers

    threads: list[str] = []
    real = watchers.snapshot

    def snapshot(
        base: int, recursive: bool, unreadable: set[str] | None = None
    ) -> watchers.Snapshot:
        threads.append(threading.current_thread().name)
        return real(base, recursive, unreadable)

    monkeypatch.setattr(watchers, "snapshot", snapshot)
    sbx = envd.sandbox()
    sbx.files.make_dir("/home/user/w")
    watcher = sbx.files.watch_dir("/home/user/w")
    watcher.get_new_events()
    watcher.stop()
    assert threads and all(name.startswith("envd-watch") for name in threads)


def test_a_directory_removed_and_made_again_is_not_the_watched_one(envd: Envd) -> None:
    """``rm -rf w && mkdir w`` may reuse the inode number: the watch holds the directory open,
    so the new one cannot pass for it; the watch ends as for any removal."""
    sbx = envd.sandbox()
    sbx.files.write("/home/user/w/one", "1")
    watched = envd.workspace().home / "w"
    watcher = sbx.files.watch_dir("/home/user/w")
    # The server runs in this process: the watch holds the directory open (an inode number
    # in use is never given to a new directory), whether or not this run would reuse it.
    assert str(watched) in open_directories()
    # Relative to the command's working directory, the sandbox's home (commands see host paths).
    sbx.commands.run("rm -rf w && mkdir w && echo 2 > w/two")
    events = watcher.get_new_events()
    assert [(e.name, e.type.value) for e in events] == [("one", "remove")]
    with pytest.raises(NotFoundException, match="removed or replaced"):
        watcher.get_new_events()
    assert not any(path.startswith(str(watched)) for path in open_directories())


def test_a_stopped_watch_lets_its_directory_go(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.make_dir("/home/user/w")
    watcher = sbx.files.watch_dir("/home/user/w")
    assert str(envd.workspace().home / "w") in open_directories()
    watcher.stop()
    assert str(envd.workspace().home / "w") not in open_directories()


def open_directories() -> list[str]:
    """What this process's file descriptors point at."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return out


@pytest.mark.asyncio
async def test_the_rest_after_a_scan_delays_the_next_scan_not_its_answer(
    envd: Envd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan of t seconds answers at once; the sandbox's next scan starts 3 t after it."""
    from pytest_kruise_agents.e2b.envd import watchers

    sbx = envd.async_sandbox()
    await sbx.files.make_dir("/home/user/w")
    slots = envd.workspace().attachment(watchers.WatchSlots)

    def slow() -> float:
        time.sleep(0.2)
        return time.monotonic()

    first_done = await slots.scan(slow)
    answered = time.monotonic()
    second_began = await slots.scan(lambda: time.monotonic())
    # The rest (0.6 s) did not hold the answer: held, it would come at least 0.6 s after the
    # scan ended (a sleep is never shorter). The whole rest is the margin for a busy machine.
    assert answered - first_done < 0.2 * 3
    assert second_began - first_done >= 0.2 * 3 - 0.05  # it held the next scan
