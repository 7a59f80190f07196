"""Ctrl-C while the model runs: a :class:`KeyboardInterrupt` between two events, never inside one.

Python raises a SIGINT's ``KeyboardInterrupt`` at whatever bytecode the main
thread runs. Inside ``Environment.step`` that is inside a SimPy process
generator, which SimPy then fails with it (the process is gone, and the
cluster runs on without that controller or claim), or between two callbacks
of an event, whose remaining callbacks are dropped: the model is broken for
good, and nothing says so. A Jupyter user's interrupt, or a Ctrl-C at a
``python -i`` prompt, lands there most of the time.

So while the model runs, :func:`sigint_deferred` turns a SIGINT into a flag,
which the stepping loops (``Cluster.advance``, ``run_until``, ``run``,
``create_sandbox(es)``, the SimBackend's virtual-mode calls) look at between
two ``env.step()`` calls and raise :class:`KeyboardInterrupt` there. The model
is then whole: every event processed, or not started.

Only where it is ours to do: in the main thread (the only one Python delivers
signals to: a server's or the SimBackend's driver thread never sees one), and
only while SIGINT has Python's own handler, :func:`signal.default_int_handler`
(what a script, pytest and an ipykernel running a cell have). A handler
someone else installed (``kruise-agents simulate``'s clean stop, a program's
own) is left as it is. The previous handler comes back on the way out; a
SIGINT that came during the run's last event is raised then. A second SIGINT
while the first is still waiting to be raised raises at once (a way out of a
``run_until`` predicate that never returns), as Python would.
"""

from __future__ import annotations

import heapq
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import simpy

__all__ = ["sigint_deferred", "step_to"]

_NEVER: tuple[()] = ()
"""The flag of a run that defers nothing: empty, so never set."""


class _Deferral:
    """The SIGINT handler while the model runs: note the signal in :attr:`hits`."""

    def __init__(self) -> None:
        self.hits: list[int] = []
        """Non-empty once a SIGINT came: the stepping loop raises before its next step."""

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.hits:
            # The first is still unanswered: whatever runs is not stepping the model.
            raise KeyboardInterrupt
        self.hits.append(signum)


@contextmanager
def sigint_deferred() -> Iterator[list[int] | tuple[()]]:
    """While inside, a SIGINT sets the yielded flag instead of raising (main thread only).

    The caller checks the flag (``if hits: raise KeyboardInterrupt``) between
    two ``env.step()`` calls. Re-entrant: a run inside a run shares the outer
    one's flag. Outside the main thread, or when SIGINT's handler is not
    Python's default, the flag is one that is never set and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _NEVER
        return
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, _Deferral):
        yield current.hits
        return
    if current is not signal.default_int_handler:
        yield _NEVER
        return
    deferral = _Deferral()
    signal.signal(signal.SIGINT, deferral)
    try:
        yield deferral.hits
    finally:
        if signal.getsignal(signal.SIGINT) is deferral:
            signal.signal(signal.SIGINT, current)
    if deferral.hits:
        # It came during the last step: the run is complete, and the interrupt is the caller's.
        raise KeyboardInterrupt


def step_to(env: simpy.Environment, at: float, hits: Sequence[int]) -> None:
    """``env.run(until=at)``, raising :class:`KeyboardInterrupt` between two steps once ``hits``.

    The same events run in the same order as ``env.run(until=at)`` would: its
    stop event is made the same way (processed before the ordinary events
    scheduled at ``at``). Unlike ``env.run``, a run cut short (Ctrl-C, an error
    raised by a step) takes its stop event out of the queue: left there, it
    would end the next run at ``at`` with SimPy's ``StopSimulation``.
    """
    until = simpy.Event(env)
    until._ok = True
    until._value = None
    env.schedule(until, simpy.events.URGENT, at - env.now)
    step = env.step
    try:
        while until.callbacks is not None:  # not yet processed
            if hits:
                raise KeyboardInterrupt
            step()
    except BaseException:
        if until.callbacks is not None:
            queue = env._queue
            queue[:] = [entry for entry in queue if entry[3] is not until]
            heapq.heapify(queue)
        raise
