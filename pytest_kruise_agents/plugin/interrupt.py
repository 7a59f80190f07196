"""SIGTERM ends a run as Ctrl-C does: in the process that serves, and from an xdist controller.

A CI timeout, ``docker stop`` or a Kubernetes pod's end sends SIGTERM, whose
default action ends the process at once: no teardown, so sandbox processes
(they run in sessions of their own) and workspaces outlive the run. As a
:class:`KeyboardInterrupt` pytest runs the teardowns that stop and remove them.

Without xdist, :func:`sigterm_as_interrupt` does it while the session's E2B
server runs. Under xdist that server runs in the workers, and a SIGTERM sent
to the pytest process alone (not its process group, as Ctrl-C is) reaches
only the controller: :class:`SigtermRelay` there passes it on to each worker
on this machine (known from the moment xdist starts it, so a worker still
setting up its first test is reached), then ends the controller's loop as
Ctrl-C does. A worker that serves turns it into :class:`KeyboardInterrupt`
and cleans up; one that does not has SIGTERM's default action and ends.

Only pytest and the standard library: this is loaded in every pytest run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

__all__ = ["SigtermRelay", "sigterm_as_interrupt"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # One more SIGTERM must not interrupt the teardowns this one starts: a signal to the
    # process group and an xdist controller's relay both reach a worker.
    signal.signal(signal.SIGTERM, _ignore)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGTERM once the teardowns run (a handler, not ``SIG_IGN``, which processes started
    meanwhile would inherit)."""


def _ours_to_set() -> bool:
    """Only the default action is replaced (a handler someone installed is theirs), and only
    from the main thread (the only one that may)."""
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`KeyboardInterrupt` in the main thread, as Ctrl-C does.

    Only the default action is replaced, only from the main thread, and the
    default is restored on the way out. A SIGTERM after the first is ignored
    until then, so that the teardowns it started finish.
    """
    if not _ours_to_set():
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) in (_interrupt, _ignore):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


class SigtermRelay:
    """In an xdist controller: a SIGTERM goes on to the workers, then interrupts.

    Installed when xdist configures the first worker, if SIGTERM still has its
    default action then (a handler someone installed is theirs); removed by
    :meth:`close`. Each worker's process id is learned when xdist configures
    it, before it runs anything, and only for a worker this machine started
    (``popen`` without ``via``: another machine's process ids are not ours). A
    worker is forgotten when it goes down, so its process id is never
    signalled once it may be another's. A SIGTERM after the first is ignored,
    so that the teardowns it started finish.
    """

    def __init__(self) -> None:
        self.workers: dict[str, int] = {}
        """Workers on this machine: xdist worker id → process id."""
        self._installed = False

    def _relay(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, _ignore)
        for pid in list(self.workers.values()):
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGTERM)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Note a worker xdist is starting on this machine; install the relay."""
        gateway = node.gateway
        spec = gateway.spec
        if not spec.popen or spec.via:
            return
        try:
            # What xdist itself reads (and caches) just before: the process's own answer.
            pid = gateway._rinfo().pid
        except Exception:  # an execnet without it: that worker is not relayed to
            return
        if not isinstance(pid, int) or pid == os.getpid():
            return
        self.workers[gateway.id] = pid
        if not self._installed and _ours_to_set():
            signal.signal(signal.SIGTERM, self._relay)
            self._installed = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """Forget a worker that went down."""
        self.workers.pop(getattr(node.gateway, "id", ""), None)

    def close(self) -> None:
        """Restore SIGTERM's default action if the relay (or its aftermath) is still the handler."""
        if self._installed and signal.getsignal(signal.SIGTERM) in (self._relay, _ignore):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._installed = False
