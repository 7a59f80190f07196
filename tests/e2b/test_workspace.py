"""Specification of the per-sandbox workspaces: lazy, confined, stoppable, removable."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from pytest_kruise_agents.backends.base import Route
from pytest_kruise_agents.e2b.workspace import (
    PathEscapeError,
    SandboxStopped,
    SandboxWorkspace,
    Workspaces,
    shorten,
)


def route(sandbox_id: str = "default--sbx-1", **changes: object) -> Route:
    fields: dict[str, object] = {
        "sandbox_id": sandbox_id,
        "namespace": "default",
        "name": "sbx-1",
        "state": "running",
        "access_token": "",
        "env_vars": {},
        "owner": "key",
    }
    fields.update(changes)
    return Route(**fields)  # type: ignore[arg-type]


@pytest.fixture
def workspaces(tmp_path: Path) -> Workspaces:
    return Workspaces(tmp_path / "sandboxes")


@pytest.fixture
def ws(workspaces: Workspaces) -> SandboxWorkspace:
    return workspaces.get(route())


# -- lazy creation ---------------------------------------------------------------------


def test_get_builds_the_workspace_from_the_route_and_creates_nothing_on_disk(
    workspaces: Workspaces,
) -> None:
    ws = workspaces.get(route(access_token="tok", env_vars={"A": "1"}))
    assert ws.sandbox_id == "default--sbx-1"
    assert ws.root == workspaces.root / "default--sbx-1"
    assert ws.home == ws.root / "home" / "user"
    assert (ws.access_token, ws.env_vars) == ("tok", {"A": "1"})
    assert not workspaces.root.exists()
    assert not ws.materialized


def test_get_returns_the_same_workspace_and_keeps_what_init_changed(workspaces: Workspaces) -> None:
    ws = workspaces.get(route(access_token="tok"))
    ws.access_token = "changed-by-init"
    assert workspaces.get(route(access_token="tok")) is ws
    assert ws.access_token == "changed-by-init"
    assert "default--sbx-1" in workspaces
    assert len(workspaces) == 1


def test_first_resolve_creates_the_home_directories(ws: SandboxWorkspace) -> None:
    ws.resolve("x.txt")
    assert ws.home.is_dir()
    assert (ws.root / "root").is_dir()
    assert ws.materialized


def test_first_use_creates_tmp_as_any_linux_sandbox_has(ws: SandboxWorkspace) -> None:
    """``/tmp`` exists from the first use on, with the homes; never before."""
    assert not (ws.root / "tmp").exists()

    ws.ensure()

    assert (ws.root / "tmp").is_dir()
    assert ws.resolve("/tmp") == ws.root / "tmp"


@pytest.mark.parametrize("bad", ["", "..", ".hidden", "a/b", "x" * 256, "sp ace"])
def test_a_sandbox_id_that_is_not_a_safe_directory_name_is_refused(
    workspaces: Workspaces, bad: str
) -> None:
    with pytest.raises(ValueError, match="sandbox_id"):
        workspaces.get(route(bad))
    assert len(workspaces) == 0


def test_a_thousand_idle_sandboxes_make_nothing_until_used(workspaces: Workspaces) -> None:
    """An idle workspace is a small object: no directory, file or thread yet.

    (How many bytes that is is measured, not asserted: tests do not time or weigh.)
    """
    threads = threading.active_count()
    made = [workspaces.get(route(f"default--sbx-{i}", env_vars={"K": "v"})) for i in range(1000)]
    assert len(workspaces) == 1000
    assert not workspaces.root.exists()
    assert threading.active_count() == threads
    assert not any(ws.materialized for ws in made)
    made[0].ensure()
    assert made[0].home.is_dir() and not made[1].root.exists()


# -- path mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/home/user/x.txt", "home/user/x.txt"),
        ("x.txt", "home/user/x.txt"),
        ("sub/../x.txt", "home/user/x.txt"),
        ("~/x.txt", "home/user/x.txt"),
        ("~", "home/user"),
        ("", "home/user"),
        ("/", "."),
        ("/etc/passwd", "etc/passwd"),
        ("../../etc/passwd", "etc/passwd"),
        ("//tmp/./a//b", "tmp/a/b"),
    ],
)
def test_sandbox_paths_map_inside_the_root(ws: SandboxWorkspace, path: str, inside: str) -> None:
    assert ws.resolve(path) == (ws.root / inside if inside != "." else ws.root)


def test_relative_paths_of_root_are_relative_to_its_home(ws: SandboxWorkspace) -> None:
    assert ws.resolve("x", user="root") == ws.root / "root" / "x"


@pytest.mark.parametrize(
    "path", ["../../../etc/passwd", "/../etc/passwd", "/home/../../x", "a\x00b"]
)
def test_paths_climbing_above_the_root_or_malformed_are_refused(
    ws: SandboxWorkspace, path: str
) -> None:
    with pytest.raises(PathEscapeError) as info:
        ws.resolve(path)
    assert info.value.path == path


def test_a_path_of_path_max_bytes_or_more_is_refused_and_its_error_stays_short(
    ws: SandboxWorkspace,
) -> None:
    """4095 bytes of UTF-8 at most (Linux's PATH_MAX, 4096, counts the terminating NUL, so the
    kernel refuses a 4096-byte path), checked before anything else; the message repeats only
    the start of the path."""
    long = "/home/user/" + "é" * 2042 + "x"  # 4096 bytes in 2054 characters
    assert len(long.encode()) == 4096
    for path in (long, "x" * 4096, "x" * 10_000_000):
        with pytest.raises(PathEscapeError, match=r"longer than 4095 bytes \(PATH_MAX") as info:
            ws.resolve(path)
        assert len(str(info.value)) < 300
        with pytest.raises(PathEscapeError):
            ws.expand(path)
    assert ws.resolve(long[:-1]) == ws.home / ("é" * 2042)  # 4095 bytes: a path


def test_an_error_repeats_a_path_of_up_to_200_characters_whole() -> None:
    assert shorten("p" * 200) == "p" * 200
    assert shorten("p" * 201) == "p" * 200 + "... (1 more characters)"


def test_a_link_that_keeps_changing_while_it_is_resolved_is_refused(
    ws: SandboxWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """realpath fails (EINVAL) when a command swaps a link for a file as it reads the link:
    a race, answered as a refused path, not as a server error."""
    ws.ensure()

    def racing(path: object) -> str:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os.path, "realpath", racing)
    with pytest.raises(PathEscapeError, match="changed while in use"):
        ws.resolve("f")


def test_a_link_that_changes_once_while_it_is_resolved_is_read_again(
    ws: SandboxWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """realpath's EINVAL from a link swapped as it reads it is a race: read again, the path
    resolves (a command that replaced a link once must not make a call fail)."""
    ws.ensure()
    real = os.path.realpath
    failures = [OSError(22, "Invalid argument")]

    def racing_once(path: str) -> str:
        if failures:
            raise failures.pop()
        return real(path)

    monkeypatch.setattr(os.path, "realpath", racing_once)
    assert ws.resolve("f") == ws.home / "f"
    assert not failures


def test_symlinks_inside_the_root_are_followed(ws: SandboxWorkspace) -> None:
    ws.ensure()
    (ws.root / "data").mkdir()
    (ws.home / "data").symlink_to("../../data")
    (ws.home / "abs").symlink_to(ws.root / "data")
    assert ws.resolve("data/f") == ws.root / "data" / "f"
    assert ws.resolve("abs/f") == ws.root / "data" / "f"


def test_symlinks_leading_outside_are_refused(ws: SandboxWorkspace, tmp_path: Path) -> None:
    ws.ensure()
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.home / "etc").symlink_to("/etc")
    (ws.home / "out").symlink_to(outside)
    (ws.home / "rel").symlink_to("../../../../outside")
    for path in ("etc/passwd", "out", "out/f", "rel/f", "/home/user/etc"):
        with pytest.raises(PathEscapeError, match="outside the sandbox"):
            ws.resolve(path)


def test_a_final_symlink_is_kept_when_not_following(ws: SandboxWorkspace) -> None:
    ws.ensure()
    (ws.home / "etc").symlink_to("/etc")
    assert ws.resolve("etc", follow_symlinks=False) == ws.home / "etc"
    with pytest.raises(PathEscapeError):
        ws.resolve("etc/passwd", follow_symlinks=False)


def test_sandbox_path_is_the_inverse_of_resolve(ws: SandboxWorkspace) -> None:
    assert ws.sandbox_path(ws.resolve("a/b")) == "/home/user/a/b"
    assert ws.sandbox_path(ws.root) == "/"


@pytest.mark.parametrize(
    ("path", "user", "named"),
    [
        ("x.txt", "user", "/home/user/x.txt"),
        ("~/a/../b", "user", "/home/user/b"),
        ("", "root", "/root"),
        ("//tmp/./a//b", "user", "/tmp/a/b"),
        ("/", "user", "/"),
        ("link/inner.txt", "user", "/home/user/link/inner.txt"),
    ],
)
def test_expand_names_the_path_as_envd_answers_it_without_following_links(
    ws: SandboxWorkspace, path: str, user: str, named: str
) -> None:
    """Absolute, ``~`` and ``..`` applied, symlinks kept: what envd's answers report."""
    ws.ensure()
    (ws.home / "real").mkdir()
    (ws.home / "link").symlink_to("real")
    assert ws.expand(path, user=user) == named


def test_expand_refuses_what_resolve_refuses_and_touches_nothing(ws: SandboxWorkspace) -> None:
    for path in ("../../../x", "a\x00b"):
        with pytest.raises(PathEscapeError):
            ws.expand(path)
    assert ws.expand("x") == "/home/user/x"
    assert not ws.root.exists()


# -- stop, remove, close ---------------------------------------------------------------


class Recorder:
    """An attachment that records being closed, and on which loop."""

    made: list[Recorder] = []

    def __init__(self, workspace: SandboxWorkspace) -> None:
        self.workspace = workspace
        self._loop = asyncio.get_running_loop()
        self.closed_on: asyncio.AbstractEventLoop | None = None
        Recorder.made.append(self)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def aclose(self) -> None:
        self.closed_on = asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_stop_closes_attachments_runs_hooks_and_keeps_files(
    workspaces: Workspaces, ws: SandboxWorkspace
) -> None:
    stopped: list[str] = []

    async def failing(sandbox_id: str) -> None:
        raise RuntimeError("a broken hook must not stop the others")

    async def hook(sandbox_id: str) -> None:
        stopped.append(sandbox_id)

    workspaces.add_stop_hook(failing)
    workspaces.add_stop_hook(hook)
    ws.resolve("f").write_text("kept")
    recorder = ws.attachment(Recorder)
    assert ws.attachment(Recorder) is recorder

    await workspaces.stop(ws.sandbox_id)

    assert recorder.closed_on is asyncio.get_running_loop()
    assert stopped == [ws.sandbox_id]
    assert ws.existing_attachment(Recorder) is None
    assert (ws.home / "f").read_text() == "kept"
    assert workspaces.peek(ws.sandbox_id) is ws


@pytest.mark.asyncio
async def test_a_stopped_workspace_takes_no_attachment_and_its_next_life_is_a_new_one(
    workspaces: Workspaces,
) -> None:
    """A request routed before the stop must not leave live state on the stopped sandbox."""
    ws = workspaces.get(route(access_token="tok", env_vars={"A": "1"}))
    ws.resolve("f").write_text("kept")
    ws.env_vars["B"] = "2"  # as POST /init sets them
    await workspaces.stop(ws.sandbox_id)

    assert ws.stopped
    with pytest.raises(SandboxStopped, match="The sandbox was not found"):
        ws.attachment(Recorder)
    assert ws.existing_attachment(Recorder) is None

    resumed = workspaces.get(route())
    assert resumed is not ws and not resumed.stopped
    assert workspaces.get(route()) is resumed
    assert resumed.env_vars == {"A": "1", "B": "2"} and resumed.access_token == "tok"
    assert resumed.materialized and (resumed.home / "f").read_text() == "kept"
    assert resumed.attachment(Recorder).workspace is resumed


@pytest.mark.asyncio
async def test_a_stopped_workspace_never_used_makes_no_directory(
    workspaces: Workspaces, ws: SandboxWorkspace
) -> None:
    """A killed sandbox's directory is gone: a request routed before the kill must not remake it."""
    await workspaces.remove(ws.sandbox_id)

    with pytest.raises(SandboxStopped, match="The sandbox was not found"):
        ws.resolve("f")
    assert not ws.root.exists() and not ws.materialized


@pytest.mark.asyncio
async def test_stop_closes_an_attachment_on_the_loop_it_belongs_to(
    workspaces: Workspaces, ws: SandboxWorkspace
) -> None:
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        made = asyncio.run_coroutine_threadsafe(_attach(ws), other).result(10)
        await workspaces.stop(ws.sandbox_id)
        assert made.closed_on is other
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(10)
        other.close()


@pytest.mark.asyncio
async def test_stop_skips_an_attachment_whose_loop_no_longer_runs(
    workspaces: Workspaces, ws: SandboxWorkspace
) -> None:
    """A loop stopped but not closed (a server stopping) runs nothing any more: waiting on it
    would hang the stop forever, and its transports are dead anyway."""
    other = asyncio.new_event_loop()
    try:
        made = await asyncio.to_thread(other.run_until_complete, _attach(ws))
        await asyncio.wait_for(workspaces.stop(ws.sandbox_id), 5)
        assert made.closed_on is None and ws.stopped
    finally:
        other.close()


async def _attach(ws: SandboxWorkspace) -> Recorder:
    return ws.attachment(Recorder)


@pytest.mark.asyncio
async def test_stopping_an_unknown_sandbox_does_nothing(workspaces: Workspaces) -> None:
    called: list[str] = []

    async def hook(sandbox_id: str) -> None:
        called.append(sandbox_id)

    workspaces.add_stop_hook(hook)
    await workspaces.stop("default--never-used")
    assert called == []


@pytest.mark.asyncio
async def test_remove_stops_then_deletes_the_directory_and_forgets_the_sandbox(
    workspaces: Workspaces, ws: SandboxWorkspace
) -> None:
    ws.resolve("deep/f").parent.mkdir(parents=True)
    ws.resolve("deep/f").write_text("x")
    recorder = ws.attachment(Recorder)

    await workspaces.remove(ws.sandbox_id)

    assert recorder.closed_on is not None
    assert not ws.root.exists()
    assert ws.sandbox_id not in workspaces
    fresh = workspaces.get(route())
    assert fresh is not ws
    assert not fresh.resolve("deep/f").exists()


@pytest.mark.asyncio
async def test_remove_deletes_a_directory_left_by_an_earlier_server(
    workspaces: Workspaces,
) -> None:
    leftover = workspaces.root / "default--old"
    leftover.mkdir(parents=True)
    await workspaces.remove("default--old")
    assert not leftover.exists()
    assert workspaces.root.exists()


@pytest.mark.asyncio
async def test_removing_an_id_that_is_no_directory_name_of_ours_deletes_nothing(
    workspaces: Workspaces, tmp_path: Path
) -> None:
    """An id that names a path outside the root (``..``, ``../x``) is never a sandbox's:
    removing it must not delete what that path names beside or above the root."""
    workspaces.root.mkdir()
    beside = tmp_path / "escape"
    beside.mkdir()
    (beside / "f").write_text("kept")
    for sandbox_id in ("../escape", "..", "."):
        await workspaces.remove(sandbox_id)
    assert (beside / "f").read_text() == "kept"
    assert workspaces.root.is_dir()


@pytest.mark.asyncio
async def test_close_stops_every_sandbox(workspaces: Workspaces) -> None:
    first = workspaces.get(route("default--a")).attachment(Recorder)
    second = workspaces.get(route("default--b")).attachment(Recorder)
    await workspaces.close()
    assert first.closed_on is not None and second.closed_on is not None
    assert len(workspaces) == 2


@pytest.mark.asyncio
async def test_close_stops_the_sandboxes_at_once_not_one_after_the_other(
    workspaces: Workspaces,
) -> None:
    """A shutdown's time must not grow with the number of sandboxes: every stop is
    under way before any has ended (one by one, 300 sandboxes took 15 s)."""
    for n in range(20):
        workspaces.get(route(f"default--s{n}"))
    running = 0
    most = 0
    release = asyncio.Event()

    async def slow_stop(_sandbox_id: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if most == 20:
            release.set()
        await asyncio.wait_for(release.wait(), 1)
        running -= 1

    workspaces.add_stop_hook(slow_stop)
    await workspaces.close()
    assert most == 20


def test_the_root_is_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    workspaces = Workspaces(tmp_path / "link")
    assert workspaces.root == real
    assert workspaces.get(route()).resolve("x") == real / "default--sbx-1" / "home" / "user" / "x"
