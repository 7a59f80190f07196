"""Token buckets in virtual time: client QPS/burst limits and the manager's create limiter."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket (``golang.org/x/time/rate.Limiter``) driven by a virtual clock.

    ``rate`` tokens per second refill up to ``burst``. :meth:`allow` is the
    non-blocking check (``Allow()``); :meth:`reserve` takes a token now or in
    the future and returns how long the caller must wait (``Reserve().Delay()``).
    An infinite ``rate`` is ``rate.Inf``: no limit, every request allowed at once.
    """

    def __init__(self, now: Callable[[], float], rate: float, burst: int) -> None:
        if not rate > 0 or burst <= 0:  # ``not >``: NaN is refused too
            raise ValueError("rate and burst must be positive")
        self._now = now
        self.rate = rate
        self.burst = burst
        self._unlimited = math.isinf(rate)
        self._tokens = float(burst)
        self._last = now()

    def _advance(self) -> float:
        t = self._now()
        if t > self._last:
            self._tokens = min(float(self.burst), self._tokens + (t - self._last) * self.rate)
            self._last = t
        return t

    def allow(self) -> bool:
        """Take a token if one is available now."""
        if self._unlimited:
            return True  # as ``Limiter`` answers for ``Inf`` before counting tokens
        self._advance()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def reserve(self) -> float:
        """Take a token, possibly borrowed from the future; return the wait in seconds."""
        if self._unlimited:
            return 0.0
        self._advance()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate
