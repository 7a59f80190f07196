"""What limits delivery: each line read from a measurement that shows it, never contradicting another."""

from __future__ import annotations

import threading

from simulator.planning.diagnose import limits
from simulator.planning.executors import SerialExecutor
from simulator.planning.overrides import apply_overrides
from simulator.planning.scenario import Scenario
from simulator.planning.study import Point, PointSummary, run_points


def _summary(scenario: Scenario) -> PointSummary:
    (summary,), partial = run_points(
        [Point({}, scenario)], SerialExecutor(), stop=threading.Event()
    )
    assert not partial
    return summary


def test_cold_claims_alone_do_not_read_as_the_create_limit(tiny: Scenario) -> None:
    """Many cold deliveries, a fine sample step, no claim refused a token: no create-limit line.

    Before, the peak of cold deliveries per sample step (one delivery in a
    20 ms step reads as 50/s) was set against the limit of 49 creations per second.
    """
    scenario = apply_overrides(
        tiny, [("pools.base.replicas", 1), ("sample_interval", "20ms"), ("replications", 1)]
    )
    summary = _summary(scenario)
    assert (summary.mean("cold_share") or 0) > 0.2
    assert not any("create limit" in line for line in limits(summary, scenario))
    assert summary.mean("create_limited") == 0


def test_claims_refused_a_creation_token_read_as_the_create_limit(tiny: Scenario) -> None:
    """A limit of one creation per second under 2 claims/s on an empty pool: the line says so."""
    scenario = apply_overrides(
        tiny,
        [
            ("pools.base.replicas", 0),
            ("cluster.knobs.create_qps", 1.0),
            ("cluster.knobs.create_burst", 1),
            ("replications", 1),
        ],
    )
    summary = _summary(scenario)
    limited = summary.mean("create_limited")
    assert limited is not None and limited > 0
    (line,) = [line for line in limits(summary, scenario) if "create limit" in line]
    assert line.startswith("The manager's create limit (1/s, burst 1; --max-create-qps) refused")


def test_a_lost_nodes_slots_are_not_room_left(tiny: Scenario) -> None:
    """Pods waited for a node after a node loss: no line says more sandboxes fit.

    Before, the lost node's slots counted as capacity: "Nodes ran out of room"
    and "about N more sandboxes fit at the peak" in the same list.
    """
    scenario = apply_overrides(
        tiny,
        [
            ("cluster.nodes", [{"name": "n", "count": 4, "max_pods": 20}]),
            ("workloads[0].hold", "forever"),
            ("faults", [{"kind": "node_loss", "start": "10s", "selector": {"node": "n-1"}}]),
            ("replications", 1),
        ],
    )
    summary = _summary(scenario)
    found = limits(summary, scenario)
    assert any(line.startswith("Nodes ran out of room") for line in found)
    assert not any("more sandboxes fit" in line for line in found)
    assert "Node pod slots peaked at 100% of the slots on the nodes that take pods" in " ".join(
        found
    )
    assert summary.mean("free_pod_slots_min") == 0


def test_warm_deliveries_that_waited_for_a_refill_are_not_called_a_floor(tiny: Scenario) -> None:
    """Without create-on-no-stock a claim that found the pool empty waits, then is delivered
    warm: a larger pool shortens the warm p99, so no line may say no pool size goes below it."""
    scenario = apply_overrides(
        tiny,
        [
            ("pools.base.replicas", 1),
            ("workloads[0].claim", {"create_on_no_stock": False}),
            ("replications", 1),
        ],
    )
    summary = _summary(scenario)
    assert (summary.mean("waited_share") or 0) > 0
    found = " ".join(limits(summary, scenario))
    assert "no pool size goes below it" not in found
    assert "claims that waited for a refill: a larger pool shortens that" in found


def test_claims_that_retried_after_a_failure_do_not_read_as_waiting_for_a_refill(
    tiny: Scenario,
) -> None:
    """With create-on-no-stock, claims retry after an /init failure, not for stock.

    A pool of 20 under 2 claims/s never runs empty; 60% of the /init calls
    fail, so some claims fail every /init retry and retry the claim. No pool
    size shortens those retries: the warm
    p99 is a floor, and the pool did not run empty. Before, any retried claim
    made the lines say "a larger pool shortens that" and "Pool default/base
    ran empty (20 replicas)" (so did the shipped flaky-runtime and node-loss).
    """
    scenario = apply_overrides(
        tiny,
        [
            ("pools.base.replicas", 20),
            ("faults", [{"kind": "runtime_init_failure", "probability": 0.6, "code": 500}]),
            ("replications", 1),
        ],
    )
    summary = _summary(scenario)
    assert (summary.mean("waited_share") or 0) > 0
    assert summary.mean("cold_share") == 0
    found = " ".join(limits(summary, scenario))
    assert "a larger pool shortens that" not in found
    assert "no pool size goes below it" in found
    assert "Pool default/base ran empty" not in found
    assert "Pool default/base never ran empty" in found
