"""Retry schedules of the claim path (§5.3, §9.1, §5.2 runtime init) and what may be retried.

A schedule yields the sleep before each retry, so a schedule of ``n`` sleeps
allows ``n + 1`` attempts. The shell sleeps (on its own clock) between
attempts and stops early on a terminal error or a passed deadline.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.rng import RandomSource

__all__ = [
    "CLAIM_RETRY",
    "INIT_ATTEMPT_TIMEOUT_S",
    "INIT_RUNTIME_RETRY",
    "LEGACY_CLAIM_TIMEOUT_S",
    "ExponentialBackoff",
    "FixedInterval",
    "RetrySchedule",
    "init_should_retry",
    "is_retriable",
    "jitter",
]


class RetrySchedule(Protocol):
    """A retry policy: the sleeps before each retry (``attempts = sleeps + 1``)."""

    def delays(self, rng: RandomSource) -> Iterator[float]:
        """Yield the sleep (seconds) before each retry, drawing jitter from ``rng``."""
        ...


def jitter(duration: float, max_factor: float, rng: RandomSource) -> float:
    """apimachinery ``wait.Jitter``: ``duration * (1 + U[0, max_factor])``."""
    if max_factor <= 0.0:
        return duration
    return duration + rng.random() * max_factor * duration


@dataclass(frozen=True)
class ExponentialBackoff:
    """apimachinery ``wait.Backoff`` as ``ExponentialBackoffWithContext`` runs it.

    ``steps`` is the number of attempts. Before each retry the current
    duration is slept (times ``U[1, 1+jitter]``), then multiplied by
    ``factor`` and capped at ``cap``. With the defaults (upstream HEAD's claim
    loop): 10 attempts, sleeps 1, 2, 4, 8, 16, 16, 16, 16, 16 s, each times ``U[1, 1.3]``.

    ``stop_at_cap=True`` applies apimachinery's documented ``Cap`` rule
    literally: the first time the duration would exceed the cap, the steps
    drop to zero and no further attempt is made (for the defaults: 5 attempts,
    sleeps 1, 2, 4, 8; apimachinery then sleeps a last 16 s before it returns
    ``ErrWaitTimeout``, which this schedule leaves out).
    """

    duration: float = 1.0
    factor: float = 2.0
    jitter: float = 0.3
    cap: float = 16.0
    steps: int = 10
    stop_at_cap: bool = False

    @property
    def attempts(self) -> int:
        """Most attempts this schedule allows (jitter does not change it)."""
        return sum(1 for _ in self._base_delays()) + 1 if self.steps > 0 else 0

    def _base_delays(self) -> Iterator[float]:
        duration = self.duration
        steps = self.steps
        while steps > 1:
            steps -= 1
            current = duration
            if self.factor != 0:
                duration = duration * self.factor
                if self.cap > 0 and duration > self.cap:
                    duration = self.cap
                    if self.stop_at_cap:
                        # apimachinery sleeps this duration and then ends
                        # the loop without another attempt; the schedule
                        # stops here so that attempts == sleeps + 1 holds.
                        return
            yield current

    def delays(self, rng: RandomSource) -> Iterator[float]:
        """Yield the jittered sleep before each retry."""
        for base in self._base_delays():
            yield jitter(base, self.jitter, rng)


@dataclass(frozen=True)
class FixedInterval:
    """A fixed sleep with jitter for ``steps`` attempts (``retry.OnError``, upstream v0.3.0).

    v0.3.0's claim loop slept 25 ms times ``U[1, 1.2]`` and allowed
    ``claimTimeout / 25 ms`` attempts (2400 for the 1-minute default).
    ``steps=None`` sets no limit: upstream's steps for a claim without a claim
    timeout (ClaimTimeout/25 ms of 100 years), which only the caller's context ends.
    """

    interval: float = 0.025
    jitter: float = 0.2
    steps: int | None = 1

    @classmethod
    def for_timeout(
        cls, timeout_s: float, *, interval: float = 0.025, jitter: float = 0.2
    ) -> FixedInterval:
        """The v0.3.0 schedule for a claim timeout: ``steps = timeout / interval`` (at least 1)."""
        return cls(
            interval=interval, jitter=jitter, steps=max(1, math.floor(timeout_s / interval + 1e-9))
        )

    @property
    def attempts(self) -> int | None:
        """Most attempts this schedule allows (``None``: no limit)."""
        return None if self.steps is None else max(self.steps, 0)

    def delays(self, rng: RandomSource) -> Iterator[float]:
        """Yield the jittered sleep before each of the ``steps - 1`` retries (for ever if ``None``)."""
        retries = itertools.count() if self.steps is None else range(self.steps - 1)
        for _ in retries:
            yield jitter(self.interval, self.jitter, rng)


CLAIM_RETRY: Final = ExponentialBackoff()
"""The sandbox-manager claim loop at upstream HEAD (PR #542)."""

LEGACY_CLAIM_TIMEOUT_S: Final = 60.0
"""v0.3.0's default claim timeout, which sized its fixed-interval retry."""

INIT_RUNTIME_RETRY: Final = ExponentialBackoff(
    duration=0.2, factor=2.0, jitter=0.0, cap=10.0, steps=5
)
"""Runtime ``/init`` retries: 5 attempts, sleeps 0.2, 0.4, 0.8, 1.6 s (capped at 10 s)."""

INIT_ATTEMPT_TIMEOUT_S: Final = 1.0
"""Timeout of one ``/init`` attempt."""


def is_retriable(err: BaseException) -> bool:
    """Whether the claim retry loop goes on after ``err``: only a retriable :class:`ClaimError`."""
    return isinstance(err, ClaimError) and err.retriable


def init_should_retry(status: int | None) -> bool:
    """Whether a failed ``/init`` attempt is retried: transport errors (``None``) and 5xx only."""
    return status is None or status >= 500
