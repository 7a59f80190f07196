"""Finding a stopped sandbox's leftover processes: the marker every one of them carries.

Each process a sandbox starts, a command (envd) or a code interpreter
kernel, gets ``KRUISE_SANDBOX_ROOT=<its workspace root>`` in its environment.
A daemon it leaves behind (``nohup cmd &``, ``setsid cmd``, a
``subprocess.Popen(start_new_session=True)`` from a kernel) escapes the
process group a stop kills, but not the environment it inherited: a stop
scans ``/proc`` for the marker and kills what it finds. A daemon that also
runs without the marker (``setsid env -i cmd``, ``Popen(env={},
start_new_session=True)``) is not found: without root nothing else ties a
process to its sandbox (docs/server.md, *Sandbox traffic*).

A scan reads the environment of every process on the host, and waits a
moment to scan again: stops that ask at the same time (a server shutting
down stops every sandbox at once) share one sweep of ``/proc`` for all their
markers (:func:`kill_sandbox_daemons`), so a shutdown takes about as long
for 300 sandboxes as for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import weakref
from collections.abc import Collection
from pathlib import Path

__all__ = [
    "MARKER_VAR",
    "kill_marked",
    "kill_marked_many",
    "kill_sandbox_daemons",
    "marker_of",
    "signal_marked_group",
]

MARKER_VAR = "KRUISE_SANDBOX_ROOT"
"""Env var every process of a sandbox carries (its workspace root): how a stop
finds the daemons its commands and kernels left behind, even those that changed session
(not one that also dropped it from its environment)."""


def marker_of(root: Path) -> bytes:
    """The ``VAR=value`` entry of the environment of the processes of the sandbox at ``root``."""
    return f"{MARKER_VAR}={root}".encode()


async def kill_sandbox_daemons(root: Path) -> int:
    """:func:`kill_marked` for the sandbox at ``root``, in a worker thread; returns the count.

    Calls made while a sweep is pending join it: one sweep of ``/proc``
    (:func:`kill_marked_many`) serves every sandbox stopping at that moment.
    A call made while a sweep already runs waits for the next one, which
    sees the processes started since the running one began.
    """
    loop = asyncio.get_running_loop()
    sweeps = _SWEEPS.get(loop)
    if sweeps is None:
        sweeps = _SWEEPS[loop] = _Sweeps()
    return await sweeps.kill(marker_of(root))


class _Sweeps:
    """The sweeps of ``/proc`` of one event loop: the markers waiting for the next one.

    It holds no reference to its loop (only running tasks do), so a closed
    loop leaves :data:`_SWEEPS` with it.
    """

    def __init__(self) -> None:
        self._waiting: dict[bytes, asyncio.Future[int]] = {}
        self._task: asyncio.Task[None] | None = None

    async def kill(self, marker: bytes) -> int:
        loop = asyncio.get_running_loop()
        found = self._waiting.get(marker)
        if found is None:
            found = self._waiting[marker] = loop.create_future()
        if self._task is None:
            self._task = loop.create_task(self._run())
        # Shielded: a caller cancelled (its request gone) leaves the sweep to the others.
        return await asyncio.shield(found)

    async def _run(self) -> None:
        try:
            while self._waiting:
                # One turn of the loop: the stops begun in the same turn join this sweep.
                await asyncio.sleep(0)
                batch, self._waiting = self._waiting, {}
                try:
                    counts = await asyncio.to_thread(kill_marked_many, list(batch))
                except BaseException as exc:
                    for future in batch.values():
                        if future.done():
                            continue
                        if isinstance(exc, Exception):
                            future.set_exception(exc)
                        else:
                            future.cancel()
                    raise
                for marker, future in batch.items():
                    if not future.done():
                        future.set_result(counts[marker])
        finally:
            self._task = None


_SWEEPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeps] = weakref.WeakKeyDictionary()


def kill_marked(marker: bytes, *, passes: int = 10, pause: float = 0.02) -> int:
    """SIGKILL every process whose initial environment holds ``marker`` (``VAR=value``).

    :func:`kill_marked_many` for one marker; returns how many processes were signalled.
    """
    return kill_marked_many([marker], passes=passes, pause=pause)[marker]


def kill_marked_many(
    markers: Collection[bytes], *, passes: int = 10, pause: float = 0.02
) -> dict[bytes, int]:
    """SIGKILL every process whose initial environment holds one of ``markers``.

    Reads ``/proc/<pid>/environ`` once per scan for all the markers (Linux;
    only the server user's processes are readable); returns how many
    processes were signalled for each marker. A process in the middle of an
    exec (``nohup cmd &`` execs twice) reads as having no environment for
    that moment, so the scan runs again after ``pause`` seconds, and again
    while a scan still finds one (at most ``passes``).
    """
    wanted = frozenset(markers)
    killed: dict[int, bytes] = {}
    for scan in range(passes):
        before = len(killed)
        _kill_marked_once(wanted, killed)
        if scan and len(killed) == before:
            break
        time.sleep(pause)
    counts = dict.fromkeys(wanted, 0)
    for marker in killed.values():
        counts[marker] += 1
    return counts


def _kill_marked_once(markers: frozenset[bytes], killed: dict[int, bytes]) -> None:
    """One scan of ``/proc``; records each PID it signals (and its marker), skips those already in."""
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
        marker = next((v for v in variables if v in markers), None)
        if marker is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed[pid] = marker


def signal_marked_group(pgid: int, marker: bytes, signum: int) -> int:
    """Send ``signum`` to each process of group ``pgid`` whose initial environment holds ``marker``.

    For a group whose leader was reaped: once its last process ends, the group's number is
    free and the host hands it to the next new process, which may lead a group of its own
    (another sandbox's command or kernel). ``killpg`` would reach that group; this reaches
    only the processes the sandbox started. Returns how many were signalled.
    """
    signalled = 0
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return 0
    for name in entries:
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
                fields = stat.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if marker not in environ.read().split(b"\0"):
                    continue
        except (OSError, IndexError, ValueError):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            signalled += 1
    return signalled
