"""kill_marked: how a stopped sandbox's leftover daemons are found and killed (pytest_kruise_agents.e2b.daemons)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
import weakref
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from pytest_kruise_agents.e2b import daemons
from pytest_kruise_agents.e2b.daemons import kill_marked, kill_marked_many, kill_sandbox_daemons

MARK = "KRUISE_TEST_MARK"


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is left is killed and reaped after it."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def start(procs: list[subprocess.Popen[bytes]], script: str, **env: str) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(MARK)}
    proc = subprocess.Popen(["sh", "-c", script], env={**clean, **env})
    procs.append(proc)
    return proc


def exec_done(proc: subprocess.Popen[bytes], within: float = 10.0) -> None:
    """Wait until ``proc``'s shell has exec'd its ``sleep``."""
    deadline = time.monotonic() + within
    while Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
        assert time.monotonic() < deadline, f"{proc.args!r} did not exec sleep"
        time.sleep(0.005)


def test_only_processes_whose_environment_holds_the_marker_are_killed(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    marked = start(spawned, "exec sleep 300", **{MARK: "a"})
    other_value = start(spawned, "exec sleep 300", **{MARK: "b"})
    unmarked = start(spawned, "exec sleep 300")
    # Each exec'd first: a process still forking shows its parent's environment, and
    # passes 0 s apart could all read it before the marker arrives.
    for proc in (marked, other_value, unmarked):
        exec_done(proc)
    assert kill_marked(f"{MARK}=a".encode(), pause=0.0) == 1
    assert marked.wait(timeout=10) == -9
    assert other_value.poll() is None and unmarked.poll() is None


def test_a_process_that_gets_the_marker_after_the_first_scan_is_killed_too(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    # As a daemon caught between two execs (nohup cmd &) shows no environment
    # for a moment: here the marker arrives with an exec 50 ms after the start.
    late = start(spawned, f"sleep 0.05; exec env {MARK}=a sleep 300")
    assert kill_marked(f"{MARK}=a".encode(), pause=1.0) == 1
    assert late.wait(timeout=10) == -9


def test_one_scan_kills_the_processes_of_every_marker(
    spawned: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many sandboxes stopping together cost the scans of one: /proc is read once per
    pass for all their markers, not once per sandbox."""
    scans = 0
    real = daemons._kill_marked_once

    def counted(markers: frozenset[bytes], killed: dict[int, bytes]) -> None:
        nonlocal scans
        scans += 1
        real(markers, killed)

    monkeypatch.setattr(daemons, "_kill_marked_once", counted)
    marked = {
        value: [start(spawned, "exec sleep 300", **{MARK: value}) for _ in range(2)]
        for value in ("a", "b", "c", "d", "e")
    }
    spared = start(spawned, "exec sleep 300", **{MARK: "z"})
    markers = [f"{MARK}={value}".encode() for value in marked]
    # Each has become ``sleep``: one caught in its exec shows no environment for a moment
    # and is found by a later scan (a third, on a busy machine), which is not what is counted.
    for proc in [spared, *(p for procs in marked.values() for p in procs)]:
        exec_done(proc)

    counts = kill_marked_many(markers, pause=0.0)

    assert counts == dict.fromkeys(markers, 2)
    assert all(proc.wait(timeout=10) == -9 for procs in marked.values() for proc in procs)
    assert spared.poll() is None
    assert scans == 2  # the first, and the one that finds nothing new


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[bytes]]:
    """The markers of each sweep of ``/proc`` the test's stops make (passes 0 s apart)."""
    made: list[frozenset[bytes]] = []
    real = daemons.kill_marked_many

    def counted(markers: Collection[bytes], **kwargs: float) -> dict[bytes, int]:
        made.append(frozenset(markers))
        return real(markers, pause=0.0)

    monkeypatch.setattr(daemons, "kill_marked_many", counted)
    return made


@pytest.mark.asyncio
async def test_sandboxes_stopping_together_share_one_sweep(
    spawned: list[subprocess.Popen[bytes]], sweeps: list[frozenset[bytes]], tmp_path: Path
) -> None:
    roots = [tmp_path / f"sbx-{n}" for n in range(30)]
    procs = [start(spawned, "exec sleep 300", **{daemons.MARKER_VAR: str(root)}) for root in roots]
    for proc in procs:
        exec_done(proc)  # the sweep's passes are 0 s apart: no time for a late exec

    counts = await asyncio.gather(*(kill_sandbox_daemons(root) for root in roots))

    assert counts == [1] * len(roots)
    assert all(proc.wait(timeout=10) == -9 for proc in procs)
    assert len(sweeps) == 1 and len(sweeps[0]) == len(roots)


@pytest.mark.asyncio
async def test_a_stop_cancelled_while_it_waits_leaves_the_sweep_to_the_others(
    spawned: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A caller gone (its request cancelled) must not cancel the sweep another stop of the
    same sandbox waits on: that one still gets its count, and the daemon still dies."""
    root = tmp_path / "sbx"
    proc = start(spawned, "exec sleep 300", **{daemons.MARKER_VAR: str(root)})
    exec_done(proc)
    first = asyncio.ensure_future(kill_sandbox_daemons(root))
    second = asyncio.ensure_future(kill_sandbox_daemons(root))
    await asyncio.sleep(0)  # both wait on the pending sweep
    first.cancel()
    assert await second == 1
    assert proc.wait(timeout=10) == -9
    assert first.cancelled()


@pytest.mark.asyncio
async def test_a_stop_that_asks_a_turn_after_the_first_joins_its_sweep(
    sweeps: list[frozenset[bytes]], tmp_path: Path
) -> None:
    """A server's stops reach the sweep a loop turn or so apart (each awaits its sandbox's
    attachments first): the sweep waits one turn, so they still share one scan."""

    async def later(root: Path) -> int:
        await asyncio.sleep(0)
        return await kill_sandbox_daemons(root)

    await asyncio.gather(kill_sandbox_daemons(tmp_path / "a"), later(tmp_path / "b"))
    assert len(sweeps) == 1 and len(sweeps[0]) == 2


def test_a_process_holding_the_marker_never_kills_itself(tmp_path: Path) -> None:
    """A server started from inside a sandbox's command carries that sandbox's marker: its
    own sweep for that sandbox kills the others, never the server."""
    root = tmp_path / "sbx"
    env = {k: v for k, v in os.environ.items() if not k.startswith(MARK)}
    env[daemons.MARKER_VAR] = str(root)
    script = (
        "from pathlib import Path; import sys\n"
        "from pytest_kruise_agents.e2b.daemons import kill_marked, marker_of\n"
        "print(kill_marked(marker_of(Path(sys.argv[1])), pause=0.0))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], env=env, capture_output=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, b"0"), done.stderr[-2000:]


def test_the_sweeps_of_a_closed_event_loop_go_with_it(tmp_path: Path) -> None:
    """Each event loop that stops a sandbox (a test's, a fixture's) is freed once closed."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    for _ in range(3):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(daemons.kill_sandbox_daemons(tmp_path))
        # As asyncio.run closes a loop: joined, the sweep's worker thread has let go of
        # its finished work item (whose callbacks hold the loop) before the collection.
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        loops.append(weakref.ref(loop))
        del loop
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]
