"""An API request slowed by ``api_latency`` faults, which a fault's end lets go early.

A request waits its ordinary round trip plus the latency draw of every
``api_latency`` fault that fired for it. When one of those faults ends
(cleared, or its window over) mid-wait, its draw stops counting, as removing
a Toxiproxy latency toxic lets the data it holds through: the request goes on
then, or when it would have finished without that fault (its ordinary round
trip plus the draws of the faults still in force) if that is later.

The wait is a gate the request's process yields, opened by a timer. The gate
opens *urgently* (before the other events due at that moment), which resumes
the process exactly where a plain timeout of the same length would have: a
request whose faults outlast it runs, and logs, as with a plain timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import simpy

from simulator.faults import Fault

__all__ = ["HeldRequest"]


class _Gate(simpy.Event):
    """An event that :meth:`open` triggers ahead of the others due at the same moment."""

    def open(self) -> None:
        """Succeed now, processed before the ordinary events due now (as SimPy's own
        ``Initialize`` is): the waiting process resumes next, as a timer's would."""
        self._ok = True
        self._value = None
        self.env.schedule(self, simpy.events.URGENT)


class HeldRequest:
    """One request's wait: ``base`` seconds (throttling and the verb's latency) plus ``draws``.

    Yield :attr:`gate`; :meth:`release` drops the draws of the faults that
    have ended and moves the end of the wait earlier.
    """

    __slots__ = ("base", "draws", "due", "env", "gate", "start", "version")

    def __init__(
        self,
        env: simpy.Environment,
        base: float,
        draws: Sequence[tuple[Fault, float]],
        delay: float,
    ) -> None:
        self.env = env
        self.start = env.now
        self.base = base
        """How long the request takes without any fault."""
        self.draws = list(draws)
        """The draws of the faults still holding it, with their faults."""
        self.due = self.start + delay
        """When the wait ends."""
        self.gate = _Gate(env)
        self.version = 0
        self._arm(delay)

    def _arm(self, delay: float) -> None:
        timer = self.env.timeout(delay)
        timer.callbacks.append(partial(self._fire, self.version))

    def _fire(self, version: int, _event: simpy.Event) -> None:
        if version == self.version and not self.gate.triggered:
            self.gate.open()

    def release(self, ended: Callable[[Fault], bool]) -> None:
        """Drop the draws of the ``ended`` faults; end the wait now, or when it would end
        without them if that is later."""
        if not any(ended(f) for f, _ in self.draws) or self.gate.triggered:
            return
        self.draws = [(f, d) for f, d in self.draws if not ended(f)]
        own = self.base
        for _, draw in self.draws:
            own += draw
        now = self.env.now
        due = max(self.start + own, now)
        if due < self.due:
            self.due = due
            self.version += 1
            self._arm(due - now)
