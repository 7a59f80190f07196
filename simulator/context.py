"""The shared state of one simulated cluster: clock, generator, profile, log, faults."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial

import simpy

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.timeouts import FOREVER, LATEST
from simulator.eventlog import EventLog
from simulator.faults import Fault, FaultInjector
from simulator.interning import ConditionInterner
from simulator.latency import Latency
from simulator.profile import Profile

__all__ = [
    "CLOCK_END",
    "DEFAULT_EPOCH",
    "SimContext",
    "check_epoch",
    "check_fault_window",
    "past_clock_end",
]

DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Virtual time 0 as a wall-clock date, so that timestamps in objects look real.

The virtual clock's fixed epoch: the same seed gives the same dates. A
realtime server starts at the wall clock's now instead (its clients compare
``endAt`` with their own clock).
"""

CLOCK_END = LATEST - FOREVER
"""The latest the clock may go (the year 9900): upstream's "forever" (100 years) before
the last date a timestamp can hold, so that every deadline the claim system writes
stays a date, and the model keeps room to run on."""


def past_clock_end(field: str = "clock") -> InvalidError:
    """The error of a call (or a run) that needs the clock past :data:`CLOCK_END`, where it stops."""
    return InvalidError(
        field,
        f"the call needs the clock past {format_time(CLOCK_END)}, where it stops: deadlines "
        f"up to 100 years (upstream's forever) later must stay dates, which end with the year "
        f"{datetime.max.year}",
    )


def check_epoch(epoch: object) -> datetime:
    """``epoch`` in UTC if it is an aware datetime before :data:`CLOCK_END`, else :class:`InvalidError`.

    Converted once, so that ``now_dt()``, every ``creationTimestamp`` and every
    other time of the model is UTC, as an API server answers metav1.Time.
    """
    if not isinstance(epoch, datetime):
        raise InvalidError("epoch", f"must be a datetime, got {epoch!r}")
    if epoch.tzinfo is None or epoch.utcoffset() is None:
        # Aware and naive datetimes do not compare: every timer would fail.
        raise InvalidError("epoch", f"must carry a time zone, got {epoch!r}")
    if epoch >= CLOCK_END:
        # The instant itself: an epoch later on 9900-01-24 than its midnight is taken.
        raise InvalidError(
            "epoch", f"must be before {format_time(CLOCK_END)} (CLOCK_END), got {epoch!r}"
        )
    try:
        return epoch.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:30: before the year 1 in UTC
        raise InvalidError(
            "epoch", f"must be from 0001-01-01T00:00:00Z, got {epoch.isoformat()}"
        ) from None


def check_fault_window(fault: Fault, *, now: float, end: float) -> None:
    """Raise :class:`InvalidError` if ``fault``'s window opens or closes past ``end``.

    ``end`` is :data:`CLOCK_END` in the virtual seconds of the clock the fault
    is injected on, and ``now`` that clock's time, where a fault without
    ``start`` starts. The clock stops at its end: a fault starting later could
    never act, and the timer of its start (an acting kind's) or of its end
    would keep the model from ever going idle, so that a request nothing can
    answer ran the clock on for its whole bound instead of being answered at
    once. Called at each injection, and where faults are read before their
    cluster is made (a scenario), so that a bad window is refused at once.
    """
    where = f"{format_time(CLOCK_END)}, where the clock stops"
    if fault.start is not None and fault.start > end:
        raise InvalidError(
            "start",
            f"must be at most {end:g} ({where}): a fault starting later could never "
            f"act, got {fault.start:g}",
        )
    start = fault.start if fault.start is not None else now
    if fault.duration is not None and start + fault.duration > end:
        raise InvalidError(
            "duration",
            f"must end the fault's window by {where} (at most {end - start:g} s after "
            f"its start); omit it for a fault in force until cleared, "
            f"got {fault.duration:g}",
        )


class SimContext:
    """What every component of the model shares.

    The SimPy environment is the only clock; ``rng`` is the only source of
    randomness; both are owned here so that a seed fixes the whole run.
    """

    def __init__(
        self,
        *,
        seed: int,
        profile: Profile,
        epoch: datetime = DEFAULT_EPOCH,
        log_enabled: bool = True,
        env: simpy.Environment | None = None,
    ) -> None:
        self.env = env if env is not None else simpy.Environment()
        self.seed = seed
        self.rng = random.Random(seed)
        self.profile = profile
        self.epoch = epoch
        self.log = EventLog(enabled=log_enabled)
        self.faults = FaultInjector(self.now, self.rng)
        self.faults.add_validator(self._check_fault_window)
        self._latencies = dict(profile.latencies)
        self.draw = _draws(profile.latencies, self.rng)
        """One draw of each named latency of the profile, as a function of no argument
        (read-only): ``ctx.draw[name]()`` is ``ctx.latency(name)`` at one call instead of
        two, for the draws made at every API request, watch event and reconcile."""
        self.intern_condition = ConditionInterner()
        """Shares equal conditions between stored objects (see :mod:`simulator.interning`)."""
        # now_dt() is asked many times per simulated instant: keep the last answer.
        self._dt_at = -1.0
        self._dt = epoch

    def now(self) -> float:
        """Virtual seconds since the start of the run."""
        return float(self.env.now)

    def now_dt(self) -> datetime:
        """Virtual now as an aware UTC datetime."""
        t = self.env.now
        if t != self._dt_at:
            self._dt = self.epoch + timedelta(seconds=float(t))
            self._dt_at = t
        return self._dt

    def clock_end(self) -> float:
        """:data:`CLOCK_END` in virtual seconds: the clock may not move past it."""
        return (CLOCK_END - self.epoch).total_seconds()

    def _check_fault_window(self, fault: Fault) -> None:
        """Refuse a fault whose window opens or closes past :data:`CLOCK_END` (see
        :func:`check_fault_window`)."""
        check_fault_window(fault, now=self.now(), end=self.clock_end())

    def to_seconds(self, dt: datetime) -> float:
        """A datetime to virtual seconds."""
        return (dt - self.epoch).total_seconds()

    def latency(self, name: str) -> float:
        """Draw the named latency of the profile (seconds)."""
        return self._latencies[name].sample(self.rng)

    def set_profile(self, profile: Profile) -> None:
        """Replace the profile (latency overrides take effect on the next draw)."""
        self.profile = profile
        self._latencies = dict(profile.latencies)
        self.draw = _draws(profile.latencies, self.rng)

    def record(self, kind: str, detail: str) -> None:
        """Log an event at virtual now."""
        log = self.log
        if log.enabled:  # a long run logs nothing: do not even read the clock
            log.add(float(self.env.now), kind, detail)


def _draws(latencies: Mapping[str, Latency], rng: random.Random) -> dict[str, Callable[[], float]]:
    """Each latency's ``sample`` bound to ``rng`` (see :attr:`SimContext.draw`)."""
    return {name: partial(latency.sample, rng) for name, latency in latencies.items()}
