"""A client's token bucket as a stateful property (hypothesis), against ``x/time/rate``.

A ``RuleBasedStateMachine`` drives one :class:`~simulator.ratelimit.TokenBucket` on a
SimPy clock as the API server's clients (``Reserve`` then a sleep for the delay, as
client-go's ``flowcontrol`` token bucket calls ``Limiter.Wait``) and the manager's
create limiter (``Allow``) use it: several requests in one instant, time passing
in steps shorter and longer than a token's refill, a caller that waits out its
delay before the next request.

The model is ``golang.org/x/time/rate.Limiter`` as written, in exact arithmetic:
``advance`` refills ``(now - last) * limit`` tokens up to ``burst``;
``reserveN(now, 1, InfDuration)`` takes a token, possibly below zero, and its
delay is ``-tokens / limit``; ``AllowN(now, 1)`` is ``reserveN(now, 1, 0)``, which
changes nothing when it says no; a limit of ``Inf`` allows everything at once.
Rates, bursts and steps are dyadic fractions, so the float bucket must match the
exact model to the bit. (Upstream's clock counts whole nanoseconds, which these
steps are, and its delay truncates to one: docs/fidelity.md.)

``derandomize=True`` keeps the suite deterministic (about a second of one core).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while
hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random and reports each distinct
failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import simpy
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simulator.ratelimit import TokenBucket
from tests.machines import machine_settings

RATES = (0.25, 0.5, 1.0, 2.0, 8.0, 1024.0, math.inf)
BURSTS = (1, 2, 3, 100)
STEPS = (
    Fraction(1, 1024),
    Fraction(1, 8),
    Fraction(1, 4),
    Fraction(1, 2),
    Fraction(1),
    Fraction(7, 2),
    Fraction(100),
)


@dataclass
class Limiter:
    """``x/time/rate.Limiter`` in exact arithmetic."""

    limit: Fraction | None
    """Tokens per second; ``None``: ``Inf``."""
    burst: int
    tokens: Fraction
    last: Fraction = Fraction(0)

    def _advance(self, now: Fraction) -> Fraction:
        assert self.limit is not None
        last = min(self.last, now)
        return min(Fraction(self.burst), self.tokens + (now - last) * self.limit)

    def reserve(self, now: Fraction, max_wait: Fraction | None) -> Fraction | None:
        """``reserveN(now, 1, max_wait)``: the delay, or ``None`` when not ok (``max_wait``
        ``None``: ``InfDuration``)."""
        if self.limit is None:
            return Fraction(0)
        tokens = self._advance(now) - 1
        wait = -tokens / self.limit if tokens < 0 else Fraction(0)
        if max_wait is not None and wait > max_wait:
            return None
        self.last = now
        self.tokens = tokens
        return wait


class TokenBucketMachine(RuleBasedStateMachine):
    """Requests on a token bucket against ``x/time/rate``."""

    def __init__(self) -> None:
        super().__init__()
        self.env = simpy.Environment()
        self.now = Fraction(0)
        self.bucket: TokenBucket | None = None
        self.model: Limiter | None = None

    @initialize(rate=st.sampled_from(RATES), burst=st.sampled_from(BURSTS))
    def start(self, rate: float, burst: int) -> None:
        self.bucket = TokenBucket(lambda: float(self.env.now), rate, burst)
        limit = None if math.isinf(rate) else Fraction(rate)
        self.model = Limiter(limit, burst, Fraction(burst))

    def _pass(self, step: Fraction) -> None:
        self.now += step
        self.env.run(until=float(self.now))
        assert Fraction(self.env.now) == self.now  # dyadic: the float clock is exact

    @rule(count=st.integers(1, 4))
    def allow(self, count: int) -> None:
        """``Allow``: a token now, or no (the create limiter's check)."""
        assert self.bucket is not None and self.model is not None
        for _ in range(count):
            want = self.model.reserve(self.now, Fraction(0)) is not None
            assert self.bucket.allow() == want

    @rule(count=st.integers(1, 4), wait=st.booleans())
    def reserve(self, count: int, wait: bool) -> None:
        """``Reserve``: a token now or later, and the delay (an API request's throttle);
        with ``wait``, the caller sleeps each delay out before its next request."""
        assert self.bucket is not None and self.model is not None
        for _ in range(count):
            want = self.model.reserve(self.now, None)
            assert want is not None
            got = self.bucket.reserve()
            assert Fraction(got) == want, (got, want)
            if wait and want > 0:
                self._pass(want)

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: Fraction) -> None:
        self._pass(step)

    @invariant()
    def same_tokens(self) -> None:
        """The bucket holds what the limiter would have after refilling to now."""
        if self.bucket is None or self.model is None or self.model.limit is None:
            return
        # A refused ``Allow`` moves the bucket's last time (the limiter's stays): compare
        # the tokens at the bucket's.
        want = self.model._advance(Fraction(self.bucket._last))
        assert Fraction(self.bucket._tokens) == want


TokenBucketMachine.TestCase.settings = machine_settings(100, 30)
test_token_bucket_machine = TokenBucketMachine.TestCase
