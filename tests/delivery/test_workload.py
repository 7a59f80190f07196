"""Workloads: what a burst and a rate ask for, and the one clear error for bad input."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from pytest_kruise_agents.delivery import Burst, Rate
from pytest_kruise_agents.delivery.workload import MAX_CLAIMS


def test_a_burst_arrives_at_once() -> None:
    assert Burst(4).arrivals() == [0.0] * 4
    assert Burst(4).name == "burst-4-e2b"
    assert Burst(2, path="sandboxclaim").name == "burst-2-sandboxclaim"


def test_a_uniform_rate_spreads_arrivals_over_the_duration() -> None:
    assert Rate(2, 3).arrivals() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert Rate(0.5, 1).arrivals() == [0.0]  # at least one
    assert Rate(2, 3).name == "rate-2x3s-e2b"


def test_a_uniform_rate_arrives_within_its_duration_whatever_the_rounding() -> None:
    """``100 * 1.1`` is ``110.00000000000001`` in floats: 110 arrivals, not one more at 1.1 s."""
    arrivals = Rate(100, 1.1).arrivals()
    assert len(arrivals) == 110 and arrivals[-1] == pytest.approx(1.09)
    assert Rate(1e-10, 1).arrivals() == [0.0]  # a rate far below one per duration: still one


def test_poisson_arrivals_use_the_given_generator() -> None:
    rate = Rate(10, 5, arrivals_mode="poisson")
    first = rate.arrivals(random.Random(1))
    assert first == rate.arrivals(random.Random(1))
    assert first != rate.arrivals(random.Random(2))
    assert all(0 < t < 5 for t in first)
    assert 25 < len(first) < 75
    with pytest.raises(ValueError, match="poisson arrivals need a random generator"):
        rate.arrivals()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # Those with "type: ignore" pass a wrongly typed value on purpose: refused at run time.
        (lambda: Burst(0), "count: must be an integer >= 1, got 0"),
        (lambda: Burst(True), "count: must be an integer >= 1, got True"),
        (lambda: Burst(1, template=""), "template: must not be empty"),
        (lambda: Burst(2, template=5), "template: must be a string, got 5"),  # type: ignore[arg-type]
        (lambda: Rate(1, 1, template=None), "template: must be a string, got None"),  # type: ignore[arg-type]
        (lambda: Burst(1, namespace=None), "namespace: must be a string, got None"),  # type: ignore[arg-type]
        # A namespace is a DNS-1123 label: one the API server would refuse is refused here,
        # before a run draws its arrivals or moves the clock (and is named as the workload's).
        (
            lambda: Burst(1, namespace="Bad_NS"),
            "namespace: invalid value 'Bad_NS': a lowercase RFC 1123 label must consist of",
        ),
        (
            lambda: Rate(2, 3, namespace="Bad_NS", path="sandboxclaim", arrivals_mode="poisson"),
            "namespace: invalid value 'Bad_NS'",
        ),
        (lambda: Burst(1, namespace="n" * 64), "namespace: invalid value 'nnnn"),
        (lambda: Rate(1, 1, namespace="a.b"), "namespace: invalid value 'a.b'"),
        (lambda: Burst(1, path="grpc"), "path: must be 'e2b' or 'sandboxclaim', got 'grpc'"),  # type: ignore[arg-type]
        (lambda: Rate(0, 1), "per_second: must be a positive finite number, got 0"),
        (lambda: Rate(True, 1), "per_second: must be a number, got True"),
        (lambda: Rate(1, "5"), "duration: must be a number, got '5'"),  # type: ignore[arg-type]
        (lambda: Rate(1, float("inf")), "duration: must be a positive finite number, got inf"),
        (
            lambda: Rate(1, 1, arrivals_mode="burst"),  # type: ignore[arg-type]
            "arrivals_mode: must be 'uniform' or 'poisson'",
        ),
    ],
)
def test_bad_workloads_name_the_field(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Burst(MAX_CLAIMS + 1), "count: must be at most 10,000,000 claims, got 10000001"),
        (lambda: Burst(10**12), "count: must be at most 10,000,000 claims, got 1000000000000"),
        (
            lambda: Rate(1e12, 1),
            "per_second: 1e+12/s for 1 s is about 1e+12 claims, more than the 10,000,000",
        ),
        (
            lambda: Rate(1e300, 1e300),
            "per_second: 1e+300/s for 1e+300 s is about inf claims, more than the 10,000,000",
        ),
        (
            lambda: Rate(1e9, 1, arrivals_mode="poisson"),
            "per_second: 1e+09/s for 1 s is about 1e+09 claims",
        ),
        (lambda: Rate(1, 1e8), "per_second: 1/s for 1e+08 s is about 1e+08 claims"),
    ],
)
def test_a_workload_larger_than_a_run_can_take_is_refused_when_made(
    make: Callable[[], object], message: str
) -> None:
    """Not a ``MemoryError`` or ``OverflowError`` when its arrivals are drawn, nor gigabytes
    taken on a shared machine first: at most :data:`MAX_CLAIMS` claims, the capacity planner's
    limit per workload."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        make()


def test_a_workload_of_exactly_the_most_claims_is_accepted() -> None:
    assert Burst(MAX_CLAIMS).count == MAX_CLAIMS
    assert Rate(MAX_CLAIMS / 100, 100).per_second == 100_000
