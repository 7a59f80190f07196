"""SIGTERM ends a run as Ctrl-C does: in the process that serves, and from an xdist controller.

A CI timeout, ``docker stop`` or a Kubernetes pod's end sends SIGTERM, whose
default action ends the process at once: no teardown, so sandbox processes
(they run in sessions of their own) and workspaces outlive the run. As a
:class:`KeyboardInterrupt` pytest runs the teardowns that stop and remove them.

Without xdist, :func:`sigterm_as_interrupt` does it while the session's E2B
server runs. Under xdist that server runs in the workers, and a SIGTERM sent
to the pytest process alone (not its process group, as Ctrl-C is) reaches
only the controller: :class:`SigtermRelay` there passes it on to each worker
serving sandboxes (whose reports say so, with :data:`PID_ATTR`), then ends the
controller's loop as Ctrl-C does.

Only pytest and the standard library: this is loaded in every pytest run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Final

import pytest

__all__ = ["PID_ATTR", "SERVING_KEY", "SigtermRelay", "sigterm_as_interrupt"]

SERVING_KEY: pytest.StashKey[bool] = pytest.StashKey()
"""On the config: the session's E2B server is running in this process."""

PID_ATTR: Final = "kruise_agents_pid"
"""A report's attribute, set while its process serves sandboxes: that process's id."""


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
    """In an xdist controller: a SIGTERM goes on to the workers that serve, then interrupts.

    Installed at the first report from a serving worker (a suite that never
    serves keeps SIGTERM's default action), if SIGTERM still has its default
    action then; removed by :meth:`close`. A worker is forgotten when it goes
    down, so its process id is never signalled once it may be another's.
    """

    def __init__(self) -> None:
        self.workers: dict[str, int] = {}
        """Serving workers: xdist worker id → process id."""
        self._installed = False

    def _relay(self, signum: int, frame: FrameType | None) -> None:
        for pid in list(self.workers.values()):
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGTERM)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note a worker that serves sandboxes (its report says so); install the relay."""
        pid = getattr(report, PID_ATTR, None)
        worker = getattr(report, "worker_id", None)
        if not isinstance(pid, int) or not isinstance(worker, str) or pid == os.getpid():
            return
        self.workers[worker] = pid
        if not self._installed and _ours_to_set():
            signal.signal(signal.SIGTERM, self._relay)
            self._installed = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """Forget a worker that went down."""
        self.workers.pop(getattr(node.gateway, "id", ""), None)

    def close(self) -> None:
        """Restore SIGTERM's default action if the relay is still the handler."""
        if self._installed and signal.getsignal(signal.SIGTERM) == self._relay:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._installed = False
