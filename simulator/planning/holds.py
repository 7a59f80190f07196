"""Hold times: how long a claimed sandbox lives before its client kills it.

A hold is any latency distribution of :mod:`simulator.latency`
(``exp(10m)``, ``lognormal(median=2m, p99=30m)``, ``uniform(1m, 5m)``,
``empirical(30s, 2m, 10m)``, ``90s``) or ``forever``/``null``: the client
never kills the sandbox and it lives until its E2B timeout (or the run ends).
"""

from __future__ import annotations

import math
import random
from typing import Any

from pytest_kruise_agents.api.e2b import MAX_TIMEOUT_S, MIN_CREATE_TIMEOUT_S
from simulator.latency import Latency, parse_latency

__all__ = ["FOREVER", "Hold", "parse_hold", "sandbox_timeout"]

FOREVER = "forever"
"""The hold of a sandbox its client never kills."""


class Hold:
    """A hold-time distribution (or none: held until the sandbox times out)."""

    __slots__ = ("dist",)

    def __init__(self, dist: Latency | None) -> None:
        self.dist = dist

    def sample(self, rng: random.Random) -> float | None:
        """One hold in seconds, or ``None`` for a sandbox that is never killed."""
        return None if self.dist is None else self.dist.sample(rng)

    def mean(self) -> float | None:
        """The mean hold in seconds (``None`` when never killed)."""
        return None if self.dist is None else self.dist.mean()

    def __str__(self) -> str:
        return FOREVER if self.dist is None else str(self.dist)


def parse_hold(value: Any) -> Hold:
    """A :class:`Hold` from a latency spec, ``"forever"`` or ``None``; ValueError names the problem."""
    if value is None or (isinstance(value, str) and value.strip().lower() in (FOREVER, "none")):
        return Hold(None)
    return Hold(parse_latency(value))


def sandbox_timeout(hold: float | None, explicit: float | None) -> int | None:
    """The E2B ``timeout`` of a claim: the explicit one, or one that outlives the hold.

    A sandbox held for ``hold`` seconds is created with a timeout of the hold
    plus 30 s (at least 30 s, at most 30 days), so that the client's kill, not
    the timeout, ends it. ``None`` keeps the profile's default timeout. An
    explicit timeout is the scenario's, checked at load as the create checks it.
    """
    if explicit is not None:
        return int(explicit)
    if hold is None:
        return None
    return int(min(max(math.ceil(hold) + 30, MIN_CREATE_TIMEOUT_S), MAX_TIMEOUT_S))
