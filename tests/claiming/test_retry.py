"""Specification of the retry schedules (§5.3, §9.1, §5.2 runtime init)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.claiming.errors import (
    BadRequestError,
    CSIMountError,
    InitRuntimeError,
    LockConflictError,
    NoAvailableError,
    RetryExhaustedError,
)
from pytest_kruise_agents.claiming.retry import (
    CLAIM_RETRY,
    INIT_ATTEMPT_TIMEOUT_S,
    INIT_RUNTIME_RETRY,
    LEGACY_CLAIM_TIMEOUT_S,
    ExponentialBackoff,
    FixedInterval,
    RetrySchedule,
    init_should_retry,
    is_retriable,
    jitter,
)

from .builders import ScriptedRng

HEAD_BASES = [1, 2, 4, 8, 16, 16, 16, 16, 16]


def test_schedules_satisfy_the_protocol() -> None:
    """Both schedule types are RetrySchedules."""
    schedules: list[RetrySchedule] = [ExponentialBackoff(), FixedInterval(steps=3)]
    assert all(hasattr(s, "delays") for s in schedules)


def test_head_claim_backoff_without_jitter_draws() -> None:
    """With zero jitter draws HEAD sleeps exactly 1, 2, 4, 8, 16, 16, 16, 16, 16."""
    assert list(CLAIM_RETRY.delays(ScriptedRng())) == HEAD_BASES
    assert CLAIM_RETRY.attempts == 10


def test_head_claim_backoff_at_full_jitter() -> None:
    """With the largest jitter draw each sleep is 1.3 times its base."""
    delays = list(ExponentialBackoff().delays(ScriptedRng(randoms=[1.0] * 9)))
    assert delays == pytest.approx([1.3 * b for b in HEAD_BASES])


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_head_backoff_yields_nine_sleeps_within_jitter(seed: int) -> None:
    """Whatever the draws, HEAD yields 9 sleeps, each within [base, 1.3 * base]."""
    delays = list(ExponentialBackoff().delays(random.Random(seed)))
    assert len(delays) == 9
    for d, base in zip(delays, HEAD_BASES, strict=True):
        assert base <= d <= 1.3 * base


def test_stop_at_cap_follows_apimachinery_literally() -> None:
    """With apimachinery's cap rule the loop stops once the cap is hit: 5 attempts."""
    backoff = ExponentialBackoff(stop_at_cap=True)
    assert list(backoff.delays(ScriptedRng())) == [1, 2, 4, 8]
    assert backoff.attempts == 5


def test_single_step_means_one_attempt_no_sleep() -> None:
    """steps=1 is one attempt without a retry; steps=0 allows none."""
    assert list(ExponentialBackoff(steps=1).delays(ScriptedRng())) == []
    assert ExponentialBackoff(steps=1).attempts == 1
    assert ExponentialBackoff(steps=0).attempts == 0


def test_jitter() -> None:
    """Jitter adds up to max_factor times the duration; none when max_factor <= 0."""
    assert jitter(2.0, 0.5, ScriptedRng(randoms=[0.5])) == 2.5
    assert jitter(2.0, 0.0, ScriptedRng(randoms=[0.9])) == 2.0


class _NoDraws:
    """A RandomSource that fails the test if anything is drawn from it."""

    def random(self) -> float:
        raise AssertionError("drew a random number")

    def randrange(self, stop: int, /) -> int:
        raise AssertionError("drew a random index")

    def uniform(self, a: float, b: float, /) -> float:
        raise AssertionError("drew a uniform number")


def test_a_schedule_without_jitter_draws_nothing() -> None:
    """No jitter, no draw: the runtime-init retries (jitter 0) leave the run's generator, and so
    every later draw of a seeded run, as they were."""
    assert jitter(2.0, 0.0, _NoDraws()) == 2.0
    assert list(INIT_RUNTIME_RETRY.delays(_NoDraws())) == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert list(FixedInterval(jitter=0.0, steps=3).delays(_NoDraws())) == [0.025, 0.025]


def test_legacy_fixed_interval_for_one_minute() -> None:
    """v0.3.0 retried every 25 ms for a minute: 2400 attempts, sleeps in [25, 30] ms."""
    assert LEGACY_CLAIM_TIMEOUT_S == 60.0
    schedule = FixedInterval.for_timeout(LEGACY_CLAIM_TIMEOUT_S)
    assert schedule.steps == 2400
    assert schedule.attempts == 2400
    delays = list(schedule.delays(random.Random(3)))
    assert len(delays) == 2399
    assert all(0.025 <= d <= 0.025 * 1.2 for d in delays)


@pytest.mark.parametrize(("timeout_s", "steps"), [(0.3, 12), (0.7, 28), (2.3, 92), (0.31, 12)])
def test_a_timeout_a_whole_number_of_intervals_long_gets_that_many_steps(
    timeout_s: float, steps: int
) -> None:
    """Steps are timeout / interval counted in decimal, not in binary floating point:
    0.3 s of 25 ms is 12 steps, though 0.3 / 0.025 is 11.999999999999998 in a float."""
    assert FixedInterval.for_timeout(timeout_s).steps == steps


def test_fixed_interval_for_tiny_timeout_still_tries_once() -> None:
    """A timeout shorter than the interval still allows one attempt."""
    assert FixedInterval.for_timeout(0.01).steps == 1


def test_a_fixed_interval_of_no_steps_allows_no_attempt() -> None:
    """Zero or negative steps allow no attempt (never a negative count) and sleep nothing."""
    for steps in (0, -3):
        schedule = FixedInterval(steps=steps)
        assert schedule.attempts == 0
        assert list(schedule.delays(random.Random(3))) == []


def test_a_fixed_interval_without_steps_retries_without_end() -> None:
    """``steps=None`` has no last attempt: upstream's 100-year ClaimTimeout sizes its steps,
    so only the caller's context ends the loop."""
    schedule = FixedInterval(steps=None)
    assert schedule.attempts is None
    delays = itertools.islice(schedule.delays(random.Random(3)), 100_000)
    assert all(0.025 <= d <= 0.025 * 1.2 for d in delays)
    assert sum(1 for _ in itertools.islice(schedule.delays(random.Random(3)), 100_000)) == 100_000


def test_init_runtime_retry() -> None:
    """Runtime init: 5 attempts of 1 s each with sleeps 0.2, 0.4, 0.8, 1.6."""
    assert list(INIT_RUNTIME_RETRY.delays(random.Random(0))) == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert INIT_RUNTIME_RETRY.attempts == 5
    assert INIT_ATTEMPT_TIMEOUT_S == 1.0
    sleeps: list[float] = list(INIT_RUNTIME_RETRY.delays(random.Random(0)))
    total = sum(sleeps) + 5 * INIT_ATTEMPT_TIMEOUT_S
    assert total <= 10.0


@pytest.mark.parametrize(
    ("status", "retry"), [(None, True), (500, True), (503, True), (401, False), (400, False)]
)
def test_init_should_retry(status: int | None, retry: bool) -> None:
    """A failed /init is retried on transport errors and 5xx only."""
    assert init_should_retry(status) is retry


@pytest.mark.parametrize(
    ("err", "retriable"),
    [
        (NoAvailableError(), True),
        (LockConflictError(), True),
        (InitRuntimeError(), True),
        (BadRequestError(), False),
        (CSIMountError(), False),
        (RetryExhaustedError(), False),
        (ValueError("x"), False),
    ],
)
def test_is_retriable(err: BaseException, retriable: bool) -> None:
    """Only retriable claim errors keep the retry loop going."""
    assert is_retriable(err) is retriable
