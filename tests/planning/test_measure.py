"""A pool's figures over the measured window (``simulator.planning.measure.pool_metrics``)."""

from __future__ import annotations

import pytest

from simulator.planning.analytic import refill_estimate
from simulator.planning.measure import (
    binned_rates,
    claim_row,
    node_metrics,
    pool_metrics,
    time_average,
)
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


def test_the_runs_claim_figures_count_each_claim_once_by_its_outcome() -> None:
    """Of 5 claims over 10 s: 3 delivered (2 warm, 1 cold), 1 failed, 1 still in flight.

    The failed share counts every claim not delivered (failed and unfinished: 2 of 5), the
    cold share is of the delivered (1 of 3), the waited share counts the claims that took
    more than one attempt (2 of 5), a warm claim that retried for a refused creation token
    is a retry of that cause, and the throughput is the delivered claims per second.
    """
    outcomes = [
        Outcome(workload=0, pool="p", requested=1.0, delivered=1.5, warm=True, attempts=1),
        Outcome(
            workload=0,
            pool="p",
            requested=2.0,
            delivered=4.0,
            warm=True,
            attempts=2,
            create_refused=1,
            pick_failed=1,
        ),
        Outcome(workload=0, pool="p", requested=3.0, delivered=6.0, warm=False, attempts=1),
        Outcome(workload=0, pool="p", requested=4.0, failed=9.0, attempts=3, reason="Timeout"),
        Outcome(workload=0, pool="p", requested=5.0, attempts=1),  # still in flight
    ]
    m, failures, warm, cold = summarise_outcomes(outcomes, 10.0)
    assert (m["claims"], m["delivered"], m["failed"], m["unfinished"]) == (5.0, 3.0, 1.0, 1.0)
    assert m["failed_share"] == pytest.approx(2 / 5)
    assert m["cold_share"] == pytest.approx(1 / 3)
    assert m["waited_share"] == pytest.approx(2 / 5)
    assert m["attempts_mean"] == pytest.approx(8 / 5)
    assert m["throughput"] == pytest.approx(3 / 10)
    assert (m["warm_retried"], m["warm_retried_limited"], m["warm_retried_picks"]) == (1, 1, 0)
    assert m["create_limited"] == 1.0
    assert (warm, cold) == ([0.5, 2.0], [3.0])
    assert (m["warm_first_p99"], m["warm_p99"], m["latency_max"]) == (0.5, 2.0, 3.0)
    assert failures == {"Timeout": 1, "unfinished": 1}


def test_the_percentile_of_all_claims_takes_its_rank_exactly() -> None:
    """p99.9 of 41,000 claims is rank ceil(0.999 x 41,000) = 40,959, as for the delivered
    claims' percentile: in floats 99.9 x 41,000 / 100 is 40959.00000000001, one rank too high."""
    outcomes = [
        Outcome(workload=0, pool="p", requested=0.0, delivered=float(i), warm=True, attempts=1)
        for i in range(1, 41_001)
    ]
    m, _, _, _ = summarise_outcomes(outcomes, 10.0)
    assert m["latency_p999"] == m["latency_p999_all"] == 40_959.0


def test_a_pools_levels_read_only_the_samples_inside_the_window() -> None:
    """The window is ``[lo, hi)``: the sample taken as it ends (pool empty, 3 creating) is
    the first after it, and counts in neither the lowest level nor the most creating."""
    pool = PoolSpec(name="base", replicas=4)
    series = {
        "t": [0.0, 5.0, 10.0],
        f"available:{pool.key}": [4.0, 2.0, 0.0],
        f"creating:{pool.key}": [0.0, 2.0, 3.0],
    }
    got = pool_metrics(pool, pool.sandboxset(), series, [], lo=0.0, hi=10.0)
    assert (got["available_min"], got["creating_max"]) == (2.0, 2.0)
    assert got["available_mean"] == pytest.approx(3.0)


def test_the_refill_counts_the_sandboxes_failed_attempts_took_in_the_window() -> None:
    """A SandboxClaim wave that locked a sandbox and failed its ``/init`` emptied a slot too
    (``retaken``): counted when it took it in the window, as a delivered claim's pick is."""
    pool = PoolSpec(name="base", replicas=4)
    outcomes = [
        Outcome(
            workload=0,
            pool=pool.key,
            requested=1.0,
            delivered=3.0,
            warm=True,
            taken=2.0,
            lock_s=0.0,
            retaken=((1.0, 0.0), (12.0, 0.0)),  # the second after the window
        )
    ]
    series = {"t": [0.0], f"available:{pool.key}": [3.0], f"creating:{pool.key}": [1.0]}
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0)
    # Little's law: (4 - 3) / (2 sandboxes taken / 10 s) = 5 s.
    assert got["refill_s"] == pytest.approx(5.0)


def test_a_pools_idle_cpu_counts_every_containers_request() -> None:
    """A sandbox of two containers requesting 500m and 1.5 CPUs idles 2 cores."""
    manifest = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": "two", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "image": "registry.example.com/a:v1",
                            "resources": {"requests": {"cpu": "500m"}},
                        },
                        {
                            "name": "b",
                            "image": "registry.example.com/b:v1",
                            "resources": {"requests": {"cpu": "1.5"}},
                        },
                    ]
                }
            },
        },
    }
    pool = PoolSpec(manifest=manifest)
    series = {"t": [0.0], f"available:{pool.key}": [1.0], f"creating:{pool.key}": [0.0]}
    got = pool_metrics(pool, pool.sandboxset(), series, [], lo=0.0, hi=3600.0)
    assert got["idle_sandbox_hours"] == pytest.approx(1.0)
    assert got["idle_cpu_core_hours"] == pytest.approx(2.0)


def test_a_pools_claim_rate_counts_its_own_claims_only() -> None:
    """Two claims of the pool and one of another over 10 s: 0.2 claims per second."""
    pool = PoolSpec(name="base", replicas=4)
    outcomes = [
        Outcome(workload=0, pool=pool.key, requested=1.0, delivered=1.5, warm=True),
        Outcome(workload=0, pool=pool.key, requested=2.0, delivered=2.5, warm=True),
        Outcome(workload=1, pool="default/other", requested=3.0, delivered=3.5, warm=True),
    ]
    series = {"t": [0.0], f"available:{pool.key}": [4.0], f"creating:{pool.key}": [0.0]}
    got = pool_metrics(pool, pool.sandboxset(), series, outcomes, lo=0.0, hi=10.0)
    assert got["offered_rate"] == pytest.approx(0.2)
    assert got["claims"] == 2.0


def test_node_use_reads_the_window_or_every_sample_when_none_falls_in_it() -> None:
    """Samples at 0, 5 and 10 s: the window [0, 10) reads the first two; a window no sample
    falls in (a run stopped early) reads them all rather than nothing."""
    names = ("node_cpu", "node_cpu_peak", "node_mem", "pending_pods", "node_pods")
    series: dict[str, list[float]] = {"t": [0.0, 5.0, 10.0], "free_pod_slots": [9.0, 7.0, 1.0]}
    series.update({name: [0.1, 0.3, 0.8] for name in names})
    got = node_metrics(series, lo=0.0, hi=10.0, pod_slots=10)
    assert got["node_cpu_mean"] == pytest.approx(0.2)
    assert got["node_cpu_peak"] == 0.3
    assert (got["free_pod_slots_min"], got["node_pod_slots"]) == (7.0, 10.0)
    none_inside = node_metrics(series, lo=20.0, hi=30.0, pod_slots=10)
    assert (none_inside["node_cpu_peak"], none_inside["free_pod_slots_min"]) == (0.8, 1.0)


def test_claims_per_second_count_in_the_step_that_ends_at_or_after_them() -> None:
    """Samples every second: a claim requested at 2.5 s counts in the step ending at 3 s, one
    delivered at 3 s in the step ending at 3 s; rates are per second of the step."""
    outcomes = [
        Outcome(workload=0, pool="p", requested=2.5, delivered=3.0, warm=True),
        Outcome(workload=0, pool="p", requested=0.5, delivered=1.2, warm=False),
        Outcome(workload=0, pool="p", requested=1.0, failed=2.0),
    ]
    rates = binned_rates([0.0, 1.0, 2.0, 3.0, 4.0], outcomes, origin=0.0, interval=1.0)
    assert rates["rate_arrivals"] == [0.0, 2.0, 0.0, 1.0, 0.0]
    assert rates["rate_warm"] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert rates["rate_cold"] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert rates["rate_failed"] == [0.0, 0.0, 1.0, 0.0, 0.0]
