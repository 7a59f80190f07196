"""Token buckets in virtual time, as ``golang.org/x/time/rate.Limiter``.

A bucket starts full with ``burst`` tokens and refills at ``rate`` per
second. An infinite rate is ``rate.Inf``: no limit at all, every request is
allowed at once, whatever the burst (``Limiter.Allow`` and ``Reserve`` answer
so before looking at the tokens).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from simulator.cluster import Cluster
from simulator.ratelimit import TokenBucket


def test_an_infinite_rate_allows_every_request_at_one_instant() -> None:
    bucket = TokenBucket(lambda: 0.0, rate=math.inf, burst=1)
    assert all(bucket.allow() for _ in range(1000))
    assert [bucket.reserve() for _ in range(1000)] == [0.0] * 1000


def test_a_finite_rate_grants_its_burst_then_makes_callers_wait() -> None:
    bucket = TokenBucket(lambda: 0.0, rate=2.0, burst=2)
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    assert bucket.reserve() == pytest.approx(0.5)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate and burst must be positive"):
        TokenBucket(lambda: 0.0, rate=rate, burst=1)


def test_create_qps_inf_means_no_limit_on_no_stock_creations() -> None:
    """``create_qps=inf`` is ``--max-create-qps`` unlimited: a burst of claims on an empty pool
    creates every sandbox it needs at once, none refused by the limiter."""
    cluster = Cluster(seed=0, create_qps=math.inf, create_burst=1)
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "base", "namespace": "default"},
            "spec": {
                "replicas": 0,
                "runtimes": [{"name": "agent-runtime"}],
                "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}},
            },
        }
    )
    cluster.advance(1)
    cluster.create_sandboxes(5, "base", timeout=300)
    failures: Counter[str] = Counter()
    for record in cluster.records:
        failures.update(record.pick_failures)
    assert failures["RateLimited"] == 0
