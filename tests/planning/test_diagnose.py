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


def _limited_burst(tiny: Scenario, replicas: int, *more: tuple[str, object]) -> Scenario:
    """A burst of 40 claims held forever, a create limit of 2/s (burst 2): most claims that
    find nothing to pick are refused a creation token and retry after the manager's back-off."""
    return apply_overrides(
        tiny,
        [
            ("pools.base.replicas", replicas),
            (
                "workloads[0].arrivals",
                {"kind": "bursts", "bursts": [{"at": "10s", "count": 40, "over": "0s"}]},
            ),
            ("workloads[0].hold", "forever"),
            ("cluster.knobs.create_qps", 2.0),
            ("cluster.knobs.create_burst", 2),
            ("replications", 1),
            *more,
        ],
    )


def test_warm_claims_the_create_limiter_turned_away_are_not_called_a_floor(
    tiny: Scenario,
) -> None:
    """With create-on-no-stock, a claim the create limiter refuses a token retries, and often
    then takes a refilled warm sandbox: its wait is in the warm p99, and a larger pool
    shortens it. The line says so, and gives the p99 of the warm claims delivered on their
    first attempt (the claim path's own floor) apart.

    Before, the line said "the claim path itself ... sets that floor; no pool size goes
    below it" (a pool of 5 under a burst of 500: warm p99 18.4 s; a pool of 400: 1.42 s).
    """
    scenario = _limited_burst(tiny, 2)
    summary = _summary(scenario)
    limited = summary.mean("warm_retried_limited")
    first = summary.mean("warm_first_p99")
    warm = summary.mean("warm_p99")
    assert limited is not None and limited > 0
    assert first is not None and warm is not None and first < 1.0 < warm
    (line,) = [line for line in limits(summary, scenario) if line.startswith("Warm deliveries")]
    assert "no pool size goes below it" not in line
    assert "refused a creation token" in line
    assert "a larger pool shortens that" in line
    assert "delivered on their first attempt take" in line


def test_the_create_limit_line_counts_claims_in_whole_numbers(tiny: Scenario) -> None:
    """One replication refused 36 claims a token: "refused 36 claims", not "36.0 claims"."""
    scenario = _limited_burst(tiny, 2)
    summary = _summary(scenario)
    limited = summary.mean("create_limited")
    assert limited is not None and limited == int(limited) > 0
    found = limits(summary, scenario)
    (line,) = [line for line in found if line.startswith("The manager's create limit")]
    assert f"refused {int(limited)} claims per run" in line


def test_cold_deliveries_while_the_pool_had_stock_do_not_read_as_ran_empty(
    tiny: Scenario,
) -> None:
    """A claim whose window of candidates is all being picked by concurrent claims is created
    cold (or refused a creation token) while the pool still has stock (reference §5.2).

    A window of 5 candidates, a pool of 60 and a burst of 40: the lowest level measured stays
    far above 0, yet claims go cold and retry. The pool did not run empty, and a larger pool
    would not shorten the retries. Before, any cold delivery made the line say
    "Pool default/base ran empty (60 replicas)" (the CLI said so of a pool of 600 whose
    lowest point was 157).
    """
    scenario = _limited_burst(tiny, 60, ("cluster.knobs.candidate_count", 5))
    summary = _summary(scenario)
    (run,) = summary.runs
    assert (run.pools["default/base"]["available_min"] or 0) >= 1
    assert (summary.mean("cold_share") or 0) > 0
    assert (summary.mean("warm_retried_limited") or 0) > 0
    found = limits(summary, scenario)
    text = " ".join(found)
    assert "ran empty" not in text
    (pool_line,) = [line for line in found if line.startswith("Pool default/base")]
    assert "had stock at every sample" in pool_line
    assert "every candidate" in pool_line
    (warm_line,) = [line for line in found if line.startswith("Warm deliveries")]
    assert "a larger pool does not shorten that" in warm_line
    assert "a larger pool shortens that" not in warm_line


def _burst_between_samples(tiny: Scenario, count: int, over: str) -> Scenario:
    """A burst of ``count`` claims at 13 s on a pool of 4 sampled every 10 s: the burst and
    the refill after it fall between two samples, which see the pool full."""
    return apply_overrides(
        tiny,
        [
            ("pools.base.replicas", 4),
            ("sample_interval", "10s"),
            (
                "workloads[0].arrivals",
                {"kind": "bursts", "bursts": [{"at": "13s", "count": count, "over": over}]},
            ),
            ("workloads[0].hold", "5s"),
            ("replications", 1),
        ],
    )


def test_a_pool_that_emptied_between_two_samples_says_so(tiny: Scenario) -> None:
    """Ten claims over one second take the 4 sandboxes, and the next ones find none and are
    created cold; the pool is full again at the next sample. The claims' records say they
    found no stock, and the line says the pool ran empty between two samples.

    Before, the line said the pool "had stock at every sample" and guessed between a busy
    window and an empty pool (a review counted 7 of 10 cold picks of ``steady`` as no stock).
    """
    scenario = _burst_between_samples(tiny, 10, "1s")
    summary = _summary(scenario)
    (run,) = summary.runs
    pool = run.pools["default/base"]
    assert (pool["available_min"] or 0) >= 1
    assert (pool["cold_no_stock"] or 0) > 0 and pool["cold_all_picked"] == 0
    (line,) = [line for line in limits(summary, scenario) if line.startswith("Pool default/base")]
    assert line.startswith("Pool default/base ran empty between two samples (4 replicas; ")
    assert f"{pool['cold_no_stock']:.0f} claims per run found no stock" in line
    assert f"(per run: {pool['cold_no_stock']:.0f} created on finding no stock)" in line
    assert "had stock at every sample" not in line


def test_cold_claims_whose_window_was_all_being_picked_read_as_stock_remaining(
    tiny: Scenario,
) -> None:
    """Eight claims at one instant on a pool of 4 with a window of 2 candidates: claims find
    both candidates of their window in flight and are created cold while the pool had stock
    beyond it. The records say so, and the line states it instead of guessing an empty pool
    between two samples."""
    scenario = apply_overrides(
        _burst_between_samples(tiny, 8, "0s"), [("cluster.knobs.candidate_count", 2)]
    )
    summary = _summary(scenario)
    (run,) = summary.runs
    pool = run.pools["default/base"]
    assert (pool["cold_all_picked"] or 0) > 0 and pool["cold_no_stock"] == 0
    (line,) = [line for line in limits(summary, scenario) if line.startswith("Pool default/base")]
    assert "had stock at every sample (lowest 4 of 4 available) and no claim found it empty" in line
    assert "(the first 2 available sandboxes) was being picked by concurrent claims" in line
    assert "created one cold while stock remained" in line
    assert "emptied between two samples" not in line

    # A summary without the records' reasons (written before they were kept) keeps the guess.
    for name in ("cold_no_stock", "cold_all_picked"):
        del summary.pools["default/base"][name]
    (line,) = [line for line in limits(summary, scenario) if line.startswith("Pool default/base")]
    assert line.endswith("or the pool emptied between two samples.")


def test_cold_claims_that_found_the_whole_pool_being_picked_read_as_running_out(
    tiny: Scenario,
) -> None:
    """Eight claims at one instant on a pool of 4, inside one window of 100: four pick the four
    sandboxes and the other four find every one of them in flight. That is the pool running
    out (a pool of 8 has no cold claim here), not stock left over.

    Before, the line said they "created one cold while stock remained".
    """
    scenario = _burst_between_samples(tiny, 8, "0s")
    summary = _summary(scenario)
    (run,) = summary.runs
    pool = run.pools["default/base"]
    assert (pool["cold_all_picked"] or 0) > 0 and pool["cold_no_stock"] == 0
    (line,) = [line for line in limits(summary, scenario) if line.startswith("Pool default/base")]
    assert "every sandbox of the pool (4 replicas, within one claim's window of 100" in line
    assert "a larger pool reduces that" in line
    assert "while stock remained" not in line
    larger = _summary(apply_overrides(scenario, [("pools.base.replicas", 8)]))
    assert (larger.mean("cold_share") or 0) == 0


def test_a_stopped_run_misses_no_goal_for_its_claims_in_flight(tiny: Scenario) -> None:
    """Ctrl-C half-way through a run of a pool that never fails: the failed share is 0 and
    its goal met, and no line says claims were still in flight when a drain ended.

    Before, the claims in flight at the stop counted as failed: "failed share: missed" and
    "N claims per run were still in flight when the run ended (drain 600s): the system did
    not keep up", though no drain had run.
    """
    from simulator.planning.diagnose import check_goals
    from simulator.planning.runner import run_once
    from simulator.planning.scenario import Goals
    from simulator.planning.study import summarise_point

    scenario = apply_overrides(tiny, [("pools.base.replicas", 1), ("replications", 1)])
    seen = [0.0]

    def progress(p: float) -> None:
        seen[0] = p

    run = run_once(scenario, should_stop=lambda: seen[0] >= 0.5, progress=progress)
    assert run.interrupted and run.in_flight_at_stop > 0
    point = summarise_point({}, scenario, [run])
    (failed,) = check_goals(point, Goals(max_failed="0.1%"))
    assert failed.name == "failed_share" and failed.met, failed
    assert not any("still in flight" in line for line in limits(point, scenario))


def test_the_failed_lines_parts_add_up_to_its_total() -> None:
    """The failed line lists the failures by reason, and they add up to the claims it says
    failed; claims still in flight when the drain ended have a line of their own.

    Before, its parentheses listed ``unfinished`` too: "5.5 of 584 claims per run failed
    (RetryExhausted 5.5, unfinished 0.5)".
    """
    import re

    from simulator.planning.loading import parse_scenario
    from simulator.planning.metrics import Outcome, RunResult, summarise_outcomes
    from simulator.planning.study import summarise_point

    from .conftest import TINY

    scenario = parse_scenario(TINY)
    outcomes = [
        *(Outcome(0, "default/base", float(i), delivered=i + 0.1, warm=True) for i in range(10)),
        *(
            Outcome(0, "default/base", 10.0 + i, failed=20.0, reason="RetryExhausted")
            for i in range(4)
        ),
        Outcome(0, "default/base", 15.0, failed=20.0, reason="ClaimTimeout"),
        Outcome(0, "default/base", 16.0),  # still in flight when the drain ended
    ]
    metrics, failures, _, _ = summarise_outcomes(outcomes, 40.0)
    run = RunResult(0, 0, 1, {}, metrics, failures, {}, {})
    point = summarise_point({}, scenario, [run])
    found = limits(point, scenario)
    (line,) = [line for line in found if "claims per run failed" in line]
    total = float(re.match(r"([\d.]+) of", line).group(1))  # type: ignore[union-attr]
    parts = re.search(r"\((.*)\)", line).group(1)  # type: ignore[union-attr]
    assert "unfinished" not in parts, line
    assert sum(float(p.rsplit(" ", 1)[1]) for p in parts.split(", ")) == total == 5.0, line
    (flight,) = [line for line in found if "still in flight" in line]
    assert flight.startswith("1.0 claims per run were still in flight when the drain ended")


def test_a_pool_within_one_window_that_ran_empty_was_all_spoken_for(tiny: Scenario) -> None:
    """Sixteen claims within 0.2 s on a pool of 4: some find no stock, others find all 4
    sandboxes, inside their window of 100, being picked. No stock remained beyond the window:
    the line says the pool was all spoken for.

    Before, it said those were "created while stock remained", as of a pool larger than the
    window (``steady``'s 12 replicas read so).
    """
    scenario = _burst_between_samples(tiny, 16, "0.2s")
    summary = _summary(scenario)
    pool = summary.runs[0].pools["default/base"]
    assert (pool["cold_no_stock"] or 0) > 0 and (pool["cold_all_picked"] or 0) > 0
    (line,) = [line for line in limits(summary, scenario) if line.startswith("Pool default/base")]
    assert line.startswith("Pool default/base ran empty")
    assert (
        f"{pool['cold_all_picked']:.0f} created with every sandbox of the pool, all within "
        "their window of 100, being picked by concurrent claims: the pool was all spoken for"
    ) in line
    assert "while stock remained" not in line
