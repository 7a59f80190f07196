"""A pool's figures over the measured window (``simulator.planning.measure.pool_metrics``)."""

from __future__ import annotations

import pytest

from simulator.planning.measure import pool_metrics, time_average
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
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0)
    assert (got["warm"], got["cold"], got["cold_share"]) == (1.0, 1.0, 0.5)
    # Little's law on the slots: (4 - 3) = (2 warm claims / 10 s) x refill.
    assert got["refill_s"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("lo", "hi", "times"),
    [
        (0.0, 600.0, [0.0, 45.0 * 1, 45.0 * 2]),  # 45 s does not divide 10 min
        (0.0, 600.0, [0.0, 420.0, 840.0]),  # a 7 min step, longer than half the window
        (60.0, 660.0, [0.0, 420.0, 840.0]),  # the warm-up ends inside a step
        (0.0, 100.0, [0.0, 30.0, 60.0, 90.0, 120.0]),
    ],
)
def test_idle_hours_cover_exactly_the_window(lo: float, hi: float, times: list[float]) -> None:
    """Two sandboxes idle all along: 2 x (hi - lo) sandbox-seconds, whatever the sampling step.

    Before, each sample in the window counted one whole step: +5%, +40%, -30%
    and +20% in these four cases.
    """
    if times[-1] < hi:
        times = [*times, *(times[-1] + 45.0 * k for k in range(1, 20))]
    pool = PoolSpec(name="idle", replicas=2, cpu="500m")
    series = {
        "t": times,
        f"available:{pool.key}": [2.0] * len(times),
        f"creating:{pool.key}": [0.0] * len(times),
    }
    got = pool_metrics(pool, pool.sandboxset(), series, [], lo=lo, hi=hi)
    assert got["idle_sandbox_hours"] == pytest.approx(2 * (hi - lo) / 3600)
    assert got["idle_cpu_core_hours"] == pytest.approx(0.5 * 2 * (hi - lo) / 3600)
    assert got["available_mean"] == pytest.approx(2.0)


def test_levels_are_weighted_by_the_time_they_hold() -> None:
    """A level held for 1 s of a 10 s window weighs a tenth, however the samples fall."""
    assert time_average([0.0, 9.0], [0.0, 10.0], 0.0, 10.0) == pytest.approx(1.0)
    assert time_average([0.0, 4.0, 8.0], [4.0, 0.0, 8.0], 2.0, 6.0) == pytest.approx(2.0)
    assert time_average([20.0], [1.0], 0.0, 10.0) is None


def test_the_measured_refill_adds_back_the_lock_and_the_lag_before_the_pool_sees_it() -> None:
    """The SandboxSet counts a claimed sandbox as available until its lock reaches its cache."""
    pool = PoolSpec(name="base", replicas=4)
    outcomes = [
        Outcome(workload=0, pool=pool.key, requested=1.0, delivered=2.0, warm=True, lock_s=0.5),
        Outcome(workload=0, pool=pool.key, requested=3.0, delivered=4.0, warm=True, lock_s=1.5),
    ]
    series = {"t": [0.0], f"available:{pool.key}": [3.0], f"creating:{pool.key}": [1.0]}
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0, seen_lag=0.25)
    # Little's law: (4 - 3) / (2 / 10 s) = 5 s, plus the mean lock 1 s and the lag.
    assert got["refill_s"] == pytest.approx(6.25)
