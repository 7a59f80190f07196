"""A pool's figures over the measured window (``simulator.planning.measure.pool_metrics``)."""

from __future__ import annotations

import pytest

from simulator.planning.analytic import refill_estimate
from simulator.planning.measure import claim_row, pool_metrics, time_average
from simulator.planning.metrics import Outcome, summarise_outcomes
from simulator.planning.overrides import apply_overrides
from simulator.planning.runner import run_once
from simulator.planning.scenario import PoolSpec, Scenario


def test_a_pools_cold_share_is_of_its_delivered_claims() -> None:
    """As the run's (docs/planning.md): failed or in-flight claims that went cold delivered
    nothing, and do not count; every claim that took a sandbox emptied a slot, delivered or
    not, so the refill counts them all."""
    pool = PoolSpec(name="base", replicas=4)
    outcomes = [
        Outcome(workload=0, pool=pool.key, requested=1.0, delivered=1.2, warm=True, taken=1.1),
        Outcome(workload=0, pool=pool.key, requested=2.0, delivered=5.0, warm=False),
        Outcome(workload=0, pool=pool.key, requested=3.0, failed=9.0, warm=False),
        Outcome(workload=0, pool=pool.key, requested=4.0, warm=False),  # still in flight
        # Took a sandbox, then failed (its /init): not delivered, so neither warm nor cold.
        Outcome(workload=0, pool=pool.key, requested=5.0, failed=6.0, taken=5.1),
    ]
    series = {
        "t": [0.0, 5.0],
        f"available:{pool.key}": [3.0, 3.0],
        f"creating:{pool.key}": [1.0, 1.0],
    }
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0)
    assert (got["warm"], got["cold"], got["cold_share"]) == (1.0, 1.0, 0.5)
    # Little's law on the slots: (4 - 3) = (2 sandboxes taken / 10 s) x refill.
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
        Outcome(
            workload=0,
            pool=pool.key,
            requested=1.0,
            delivered=2.0,
            warm=True,
            lock_s=0.5,
            taken=1.0,
        ),
        Outcome(
            workload=0,
            pool=pool.key,
            requested=3.0,
            delivered=4.0,
            warm=True,
            lock_s=1.5,
            taken=3.0,
        ),
    ]
    series = {"t": [0.0], f"available:{pool.key}": [3.0], f"creating:{pool.key}": [1.0]}
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0, seen_lag=0.25)
    # Little's law: (4 - 3) / (2 / 10 s) = 5 s, plus the mean lock 1 s and the lag.
    assert got["refill_s"] == pytest.approx(6.25)


def test_the_refill_counts_the_sandboxes_taken_in_the_window_by_when_they_were_taken() -> None:
    """Claims that wait for a refill take their sandbox long after their request.

    Four claims requested in a 10 s window: two take their sandbox in it, two
    only after it ends (they waited); one claim requested before the window
    takes its sandbox in it. Three sandboxes were taken in the window, so
    Little's law gives (4 - 3) / (3 / 10 s). Before, the four claims requested
    in the window counted, wherever their pick fell (and the one requested
    before it did not): the refill read 2.5 s.
    """
    pool = PoolSpec(name="base", replicas=4)

    def claim(requested: float, taken: float) -> Outcome:
        return Outcome(
            workload=0,
            pool=pool.key,
            requested=requested,
            delivered=taken + 0.5,
            warm=True,
            taken=taken,
        )

    in_window = [claim(1.0, 2.0), claim(3.0, 4.0), claim(8.0, 12.0), claim(9.0, 15.0)]
    earlier = claim(-2.0, 1.0)
    series = {"t": [0.0], f"available:{pool.key}": [3.0], f"creating:{pool.key}": [1.0]}
    got = pool_metrics(
        pool,
        pool.sandboxset(),
        series,
        in_window,
        lo=0.0,
        hi=10.0,
        run_outcomes=[earlier, *in_window],
    )
    assert got["refill_s"] == pytest.approx(10.0 / 3.0)
    assert got["warm"] == 4.0  # the claims of the window, as the cold share counts them


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_pool_claims_wait_for_measures_the_refill_its_steps_take(
    tiny: Scenario, replicas: int
) -> None:
    """Without create-on-no-stock most claims wait: the measured refill is still the profile's.

    Before, the claims were counted by request time: many of those requested
    in the window took their sandbox after it, and the refill read 0.79 s (1
    replica) and 1.08 s (2) against the 1.79 s the steps take.
    """
    scenario = apply_overrides(
        tiny,
        [
            ("pools.base.replicas", replicas),
            ("workloads[0].claim", {"create_on_no_stock": False}),
            ("duration", "60s"),
            ("replications", 1),
        ],
    )
    result = run_once(scenario)
    assert (result.metrics["waited_share"] or 0.0) > 0.5
    measured = result.pools["default/base"]["refill_s"]
    expected = refill_estimate(scenario.cluster.build_profile())
    assert measured == pytest.approx(expected, rel=0.1)


def test_claims_csv_names_every_undelivered_claims_reason_as_the_summary_counts_it() -> None:
    """A claim still in flight when the drain ended is ``unfinished`` in claims.csv too: the
    rows grouped by ``error`` add up to the summary's failures by reason. Before, its
    ``error`` was empty."""
    outcomes = [
        Outcome(workload=0, pool="p", requested=1.0, delivered=1.5, warm=True, attempts=1),
        Outcome(workload=0, pool="p", requested=2.0, attempts=3),
        Outcome(workload=0, pool="p", requested=3.0, failed=9.0, reason="RetryExhausted"),
        Outcome(workload=0, pool="p", requested=4.0, failed=9.0),
    ]
    errors = [claim_row(o, "w", 0.0)["error"] for o in outcomes]
    assert errors == [None, "unfinished", "RetryExhausted", "Unknown"]
    _, failures, _, _ = summarise_outcomes(outcomes, 10.0)
    assert failures == {"unfinished": 1, "RetryExhausted": 1, "Unknown": 1}
