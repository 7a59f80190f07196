"""Every number a profile takes is one the cluster serves: a claim, a pause and a resume go
through, or end in a typed error, never in an OverflowError from deep inside a claim."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster
from simulator.profile import Profile

POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: base, namespace: default}
spec:
  replicas: 1
  runtimes: [{name: agent-runtime}]
  template:
    metadata:
      annotations: {agents.kruise.io/cleanup-enabled: "true"}
    spec:
      containers: [{name: sandbox, image: registry.example.com/sandbox:v1}]
"""
"""One recycling sandbox: a kill returns it to its pool, so the recycle knobs are used too."""

NUMERIC_KNOBS = [
    name
    for name, field in Profile.model_fields.items()
    if field.annotation in (int, float, float | None)
]

EDGES = [0, 1, 2**31 - 1, 2**63 - 1, 2**63, 10**30, -1]
"""Counts at and past the ends of every count knob's range."""
SECONDS = [0.0, 5e-324, 0.5, 29.0, 59.9, 60.0, 2_592_000.0, 3_153_600_000.0, 9_223_372_036.0]
"""Durations and rates at and past the ends of every range, then the ones no range takes."""
NOT_FINITE = [1e300, float("inf"), float("-inf"), float("nan")]


def _edges(knob: str) -> list[object]:
    """The values at and past the ends of ``knob``'s range (whatever its range is)."""
    if Profile.model_fields[knob].annotation is int:
        return list(EDGES)
    return [*SECONDS, *NOT_FINITE, None]


def _claim_pause_resume_kill(cluster: Cluster) -> None:
    """Fill the pool, claim its sandbox, pause it, resume it (connect) and kill it."""
    cluster.apply(POOL)
    cluster.wait_for_pool("base")
    sid = cluster.sandbox_id(cluster.create_sandbox("base"))
    cluster.pause(sid)
    cluster.connect(sid)
    cluster.kill(sid)
    cluster.advance(30)


def knobs(knob: str, value: object) -> dict[str, Any]:
    """``{knob: value}`` as keyword arguments: a knob named at run time, with any value."""
    return {knob: value}


def _refused_or_served(knob: str, value: object) -> None:
    """``value`` is refused up front, naming ``knob``, or the claim path runs with it: what
    then fails, fails typed (a rate so low, or a timeout so short, that nothing gets through
    is the caller's choice, answered as the model answers it)."""
    try:
        cluster = Cluster(seed=3, nodes=1, **knobs(knob, value))
    except InvalidError as err:
        assert err.field == "knobs"
        assert err.reason.startswith(f"invalid value for profile knob {knob!r}: ")
        return
    with contextlib.suppress(InvalidError, ClaimError, TimeoutError):
        _claim_pause_resume_kill(cluster)


@pytest.mark.parametrize("knob", NUMERIC_KNOBS)
def test_a_knob_at_or_past_the_ends_of_its_range_is_refused_or_served(knob: str) -> None:
    """Zero, the largest Go int and past it, infinity, NaN, 1e300: refused naming the knob,
    or a claim, a pause and a resume go through (or fail typed)."""
    for value in _edges(knob):
        _refused_or_served(knob, value)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    knob=st.sampled_from(NUMERIC_KNOBS),
    number=st.one_of(st.floats(), st.integers(min_value=-(2**64), max_value=2**64)),
)
def test_any_value_a_profile_takes_lets_a_claim_pause_and_resume_through(
    knob: str, number: float
) -> None:
    """Whatever number a knob is given (a float for a count too), it is refused naming the
    knob, or served."""
    _refused_or_served(knob, number)


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("default_timeout_s", 2_592_000),
        ("min_resume_timeout_s", 2_592_000),
        ("e2b_default_claim_timeout_s", 9_223_372_036),
        ("e2b_default_wait_ready_timeout_s", 9_223_372_036),
        ("candidate_count", sys.maxsize),
        ("claim_workers", 2**63 - 1),
        ("manager_burst", 2**63 - 1),
        ("create_qps", float("inf")),
        ("pause_pod_grace_s", 50.0),
        ("pod_delete_grace_s", 3_153_600_000),
        ("recycle_grace_s", 3_153_600_000),
        ("recycle_timeout_s", 3_153_600_000),
        ("init_attempt_timeout_s", 3_153_600_000),
        ("expectation_timeout_s", 3_153_600_000),
    ],
)
def test_the_far_end_of_a_knob_range_is_served(knob: str, value: float) -> None:
    """At the top of its range a knob still lets a claim, a pause and a resume succeed."""
    _claim_pause_resume_kill(Cluster(seed=3, nodes=1, **knobs(knob, value)))
