"""Workloads: what a burst and a rate ask for, and the one clear error for bad input."""

from __future__ import annotations

import random

import pytest

from pytest_kruise_agents.delivery import Burst, Rate


def test_a_burst_arrives_at_once() -> None:
    assert Burst(4).arrivals() == [0.0] * 4
    assert Burst(4).name == "burst-4-e2b"
    assert Burst(2, path="sandboxclaim").name == "burst-2-sandboxclaim"


def test_a_uniform_rate_spreads_arrivals_over_the_duration() -> None:
    assert Rate(2, 3).arrivals() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert Rate(0.5, 1).arrivals() == [0.0]  # at least one
    assert Rate(2, 3).name == "rate-2x3s-e2b"


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
        (lambda: Burst(0), "count: must be an integer >= 1, got 0"),
        (lambda: Burst(True), "count: must be an integer >= 1, got True"),
        (lambda: Burst(1, template=""), "template: must not be empty"),
        (lambda: Burst(2, template=5), "template: must be a string, got 5"),
        (lambda: Rate(1, 1, template=None), "template: must be a string, got None"),
        (lambda: Burst(1, namespace=None), "namespace: must be a string, got None"),
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
        (lambda: Burst(1, path="grpc"), "path: must be 'e2b' or 'sandboxclaim', got 'grpc'"),
        (lambda: Rate(0, 1), "per_second: must be a positive finite number, got 0"),
        (lambda: Rate(1, float("inf")), "duration: must be a positive finite number, got inf"),
        (
            lambda: Rate(1, 1, arrivals_mode="burst"),
            "arrivals_mode: must be 'uniform' or 'poisson'",
        ),
    ],
)
def test_bad_workloads_name_the_field(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()  # type: ignore[operator]
