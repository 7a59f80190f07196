"""Finding a stopped sandbox's leftover processes: the marker every one of them carries.

Each process a sandbox starts, a command (envd) or a code interpreter
kernel, gets ``KRUISE_SANDBOX_ROOT=<its workspace root>`` in its environment.
A daemon it leaves behind (``nohup cmd &``, ``setsid cmd``, a
``subprocess.Popen(start_new_session=True)`` from a kernel) escapes the
process group a stop kills, but not the environment it inherited: a stop
scans ``/proc`` for the marker and kills what it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["MARKER_VAR", "kill_marked", "kill_sandbox_daemons", "marker_of"]

MARKER_VAR = "KRUISE_SANDBOX_ROOT"
"""Env var every process of a sandbox carries (its workspace root): how a stop
finds the daemons its commands and kernels left behind, even those that changed session."""


def marker_of(root: Path) -> bytes:
    """The ``VAR=value`` entry of the environment of the processes of the sandbox at ``root``."""
    return f"{MARKER_VAR}={root}".encode()


async def kill_sandbox_daemons(root: Path) -> int:
    """:func:`kill_marked` for the sandbox at ``root``, in a worker thread (it sleeps between scans)."""
    return await asyncio.to_thread(kill_marked, marker_of(root))


def kill_marked(marker: bytes, *, passes: int = 10, pause: float = 0.02) -> int:
    """SIGKILL every process whose initial environment holds ``marker`` (``VAR=value``).

    Reads ``/proc/<pid>/environ`` (Linux; only the server user's processes
    are readable); returns how many processes were signalled. A process in
    the middle of an exec (``nohup cmd &`` execs twice) reads as having no
    environment for that moment, so the scan runs again after ``pause``
    seconds, and again while a scan still finds one (at most ``passes``).
    """
    killed: set[int] = set()
    for scan in range(passes):
        before = len(killed)
        _kill_marked_once(marker, killed)
        if scan and len(killed) == before:
            break
        time.sleep(pause)
    return len(killed)


def _kill_marked_once(marker: bytes, killed: set[int]) -> None:
    """One scan of ``/proc``; adds the PIDs it signals to ``killed`` and skips those already in it."""
    me = os.getpid()
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return
    for name in entries:
        pid = int(name)
        if pid == me or pid in killed:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue
        if marker in variables:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
