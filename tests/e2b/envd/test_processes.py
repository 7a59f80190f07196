"""kill_marked: how a stopped sandbox's leftover daemons are found and killed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from pytest_kruise_agents.e2b.daemons import kill_marked

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


def test_only_processes_whose_environment_holds_the_marker_are_killed(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    marked = start(spawned, "exec sleep 300", **{MARK: "a"})
    other_value = start(spawned, "exec sleep 300", **{MARK: "b"})
    unmarked = start(spawned, "exec sleep 300")
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
