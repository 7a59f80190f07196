"""The shared state of one simulated cluster: clock, generator, profile, log, faults."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import simpy

from simulator.eventlog import EventLog
from simulator.faults import FaultInjector
from simulator.interning import ConditionInterner
from simulator.profile import Profile

__all__ = ["DEFAULT_EPOCH", "SimContext"]

DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Virtual time 0 as a wall-clock date, so that timestamps in objects look real."""


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
        self._latencies = dict(profile.latencies)
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

    def to_dt(self, t: float) -> datetime:
        """Virtual seconds to a datetime."""
        return self.epoch + timedelta(seconds=t)

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

    def record(self, kind: str, detail: str) -> None:
        """Log an event at virtual now."""
        self.log.add(float(self.env.now), kind, detail)
