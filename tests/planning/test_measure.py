"""A pool's figures over the measured window (``simulator.planning.measure.pool_metrics``)."""

from __future__ import annotations

import pytest

from simulator.planning.measure import pool_metrics
from simulator.planning.metrics import Outcome
from simulator.planning.scenario import PoolSpec


def test_a_pools_cold_share_is_of_its_delivered_claims() -> None:
    """As the run's (docs/planning.md): failed or in-flight claims that went cold delivered
    nothing, and do not count; every warm claim took a slot, so the refill counts them all."""
    pool = PoolSpec(name="base", replicas=4)
    outcomes = [
        Outcome(workload=0, pool=pool.key, requested=1.0, delivered=1.2, warm=True),
        Outcome(workload=0, pool=pool.key, requested=2.0, delivered=5.0, warm=False),
        Outcome(workload=0, pool=pool.key, requested=3.0, failed=9.0, warm=False),
        Outcome(workload=0, pool=pool.key, requested=4.0, warm=False),  # still in flight
        Outcome(workload=0, pool=pool.key, requested=5.0, failed=6.0, warm=True),
    ]
    series = {
        "t": [0.0, 5.0],
        f"available:{pool.key}": [3.0, 3.0],
        f"creating:{pool.key}": [1.0, 1.0],
    }
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0, interval=5.0)
    assert (got["warm"], got["cold"], got["cold_share"]) == (1.0, 1.0, 0.5)
    # Little's law on the slots: (4 - 3) = (2 warm claims / 10 s) x refill.
    assert got["refill_s"] == pytest.approx(5.0)
