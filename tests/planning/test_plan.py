"""Plan: the simulated smallest pool agrees with Erlang-B where Erlang-B is exact, and says why when not.

With every step instant but the pod creation (exponential, mean L), a pool of
S replicas under Poisson claims with create-on-no-stock is an M/G/S/S loss
system: a claim is cold exactly when all S slots are refilling, so the cold
share is Erlang-B(S, λL). Hold times do not matter (a claimed sandbox leaves
the pool at once) and the nodes are large enough never to hold a pod back.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from simulator.erlang import min_servers_for_loss
from simulator.planning.analytic import (
    AnalyticEstimate,
    analytic_estimate,
    parse_slo,
    size_for_loss,
)
from simulator.planning.diagnose import check_goals
from simulator.planning.errors import PlanningError
from simulator.planning.executors import SerialExecutor
from simulator.planning.formatting import fmt_estimate
from simulator.planning.loading import parse_scenario
from simulator.planning.metrics import Outcome, RunResult, summarise_outcomes
from simulator.planning.overrides import apply_overrides
from simulator.planning.plan import (
    FOUND_NO_STOCK,
    MAX_REPLICAS,
    Candidate,
    PlanResult,
    all_failed_with_stock,
    claims_to_show,
    explain,
    goal_verdict,
    plan,
    run_goals,
)
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate, aggregate

from .conftest import instant_latencies

RATE = 1.0
REFILL = 2.0
TARGET = 0.05


def erlang_scenario() -> Scenario:
    """Poisson claims at 1/s, exponential refill of 2 s, instant everything else."""
    return parse_scenario(
        {
            "name": "erlang-b-exact",
            "seed": 3,
            "replications": 2,
            "duration": "300s",
            "warmup": "20s",
            "cluster": {
                "nodes": [
                    {
                        "name": "big",
                        "count": 4,
                        "cpu": "100000",
                        "memory": "100000Gi",
                        "max_pods": 100000,
                    }
                ],
                "latencies": instant_latencies(f"exp({REFILL:g}s)"),
            },
            "pools": [{"name": "base", "replicas": 3}],
            "workloads": [
                {
                    "template": "base",
                    "arrivals": {"kind": "poisson", "rate": RATE},
                    "hold": "exp(5s)",
                }
            ],
        }
    )


def plan_serially(scenario: Scenario, pool: str, **options: Any) -> PlanResult:
    """``plan`` run in this process, never stopped (the options are the goals and range)."""
    return plan(scenario, pool, executor=SerialExecutor(), stop=threading.Event(), **options)


def test_plan_finds_the_erlang_b_answer() -> None:
    """Erlang-B says 5 replicas for at most 5% cold at load 2; the simulation lands within one."""
    expected = min_servers_for_loss(RATE * REFILL, TARGET)
    assert expected == 5
    result = plan_serially(
        erlang_scenario(),
        "base",
        slo=None,
        max_cold=TARGET,
        low=1,
        high=20,
    )
    assert result.analytic.replicas == expected
    assert result.analytic.refill_s == pytest.approx(REFILL)
    assert result.answer is not None and abs(result.answer - expected) <= 1
    # The answer meets the goal and the size below it does not.
    assert result.candidates[result.answer].meets
    assert not result.candidates[result.answer - 1].meets
    # The refill time measured by Little's law is the pod creation's mean.
    assert result.analytic_measured is not None
    assert result.analytic_measured.refill_s == pytest.approx(REFILL, rel=0.15)
    # Erlang again with the median of the refill times the sizes tried measured.
    refills = sorted(
        est.mean
        for c in result.candidates.values()
        if (est := c.summary.pools["default/base"].get("refill_s")) is not None
    )
    assert len(set(refills)) > 1
    assert result.analytic_measured.refill_s == refills[len(refills) // 2]
    assert any("agree within one replica" in line for line in result.explanation)


def test_no_size_meets_an_impossible_goal(tiny: Scenario) -> None:
    """A goal below the claim path's own latency: no pool size meets it, and the plan says why."""
    result = plan_serially(
        tiny,
        "base",
        slo=parse_slo("p50<1ms"),
        max_cold=None,
        low=1,
        high=2,
    )
    assert result.answer is None
    assert sorted(result.candidates) == [1, 2]
    assert any("Even warm deliveries" in line for line in result.explanation)


def test_no_size_in_range_with_claims_waiting_for_refills_says_a_larger_pool_may(
    tiny: Scenario,
) -> None:
    """Without create-on-no-stock a claim waits for a refill and is then delivered warm: a slow
    warm p99 is the pool's doing, so the plan does not say no pool size fixes it."""
    waiting = apply_overrides(tiny, [("workloads[0].claim", {"create_on_no_stock": False})])
    result = plan_serially(
        waiting,
        "base",
        slo=parse_slo("p99<300ms"),
        max_cold=None,
        low=1,
        high=2,
    )
    assert result.answer is None
    text = " ".join(result.explanation)
    assert "Even warm deliveries" not in text
    assert "counting the claims that waited for a refill" in text


LIMITED = """\
name: limited
seed: 1
replications: 1
duration: 40s
warmup: 0s
cluster:
  nodes: 2
  knobs: {create_qps: 5, create_burst: 5}
pools:
  - {name: base, replicas: 2}
workloads:
  - template: base
    arrivals: {kind: bursts, bursts: [{at: 5s, count: 40, over: 0s}]}
    hold: forever
    claim: {timeout: 3600}
"""


def test_a_slow_warm_p99_made_by_create_limiter_retries_is_not_called_the_claim_paths() -> None:
    """With create-on-no-stock on, a claim the create limiter turns away retries and is often
    then delivered warm: its wait is in the warm p99, but not the first attempts' floor, so
    the plan does not say that no pool size fixes it."""
    scenario = parse_scenario(LIMITED, source="limited.yaml")
    result = plan_serially(scenario, "base", slo=parse_slo("p99<1s"), max_cold=None, low=1, high=2)
    assert result.answer is None
    text = " ".join(result.explanation)
    assert "Even warm deliveries" not in text
    assert "on their first attempt: the rest retried" in text


def test_plan_refuses_bad_requests(tiny: Scenario) -> None:
    """No goal, an unknown pool or an upside-down range: one clear error, nothing run."""
    kwargs = {"executor": SerialExecutor(), "stop": threading.Event(), "low": None, "high": None}
    with pytest.raises(PlanningError, match="give a goal"):
        plan(tiny, "base", slo=None, max_cold=None, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PlanningError, match="--pool: no pool 'nope'"):
        plan(tiny, "nope", slo=None, max_cold=0.01, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PlanningError, match="--range"):
        plan_serially(
            tiny,
            "base",
            slo=None,
            max_cold=0.01,
            low=9,
            high=3,
        )


def test_only_the_runs_at_the_answer_keep_their_claims(tiny: Scenario) -> None:
    """With keep_claims the answer's runs keep one row per claim; every other size's are dropped."""
    result = plan_serially(
        tiny,
        "base",
        slo=None,
        max_cold=0.6,
        low=1,
        high=3,
        keep_claims=True,
    )
    assert result.best is not None and len(result.candidates) >= 2
    for size, candidate in result.candidates.items():
        for run in candidate.summary.runs:
            if size == result.answer:
                claims = run.metrics["claims"]
                assert run.claims is not None and claims is not None
                assert len(run.claims) == claims > 0
            else:
                assert run.claims is None


UNDELIVERED = """\
name: undelivered
seed: 1
replications: 1
duration: 2m
drain: 0s
cluster: {nodes: 4, latencies: {pod.create: 60s}}
pools:
  - {name: base, replicas: 40}
workloads:
  - template: base
    arrivals: {kind: bursts, bursts: [{at: 115s, count: 100, over: 0s}]}
    hold: exp(1m)
    claim: {create_on_no_stock: false}
goals: {slo: p99<1s, max_failed: 1%}
"""


def plan_at_40(scenario: Scenario, max_failed: float) -> PlanResult:
    """The plan of ``scenario``'s pool ``base`` at 40 replicas only, for p99<1s and ``max_failed``."""
    return plan_serially(
        scenario,
        "base",
        slo=parse_slo("p99<1s"),
        max_cold=None,
        max_failed=max_failed,
        low=40,
        high=40,
    )


def test_claims_never_delivered_fail_the_goals_in_simulate_and_plan_alike() -> None:
    """60 of 100 claims still waiting at the end: failed share 60%, both commands say missed.

    Before, such claims counted neither as slow nor as failed: simulate said
    the p99 goal was met and plan answered one replica.
    """
    scenario = parse_scenario(UNDELIVERED)
    result = plan_at_40(scenario, 0.01)
    assert result.answer is None
    (candidate,) = result.candidates.values()
    assert candidate.summary.metrics["failed_share"].mean == pytest.approx(0.6)
    verdicts = {g.name: g.met for g in candidate.goals}
    # The p99 of all claims falls on one never delivered: unbounded, missed.
    assert verdicts == {"latency_p99_all": False, "failed_share": False}
    simulated = check_goals(candidate.summary, scenario.goals)  # type: ignore[arg-type]
    assert [(g.name, g.met) for g in simulated] == [(g.name, g.met) for g in candidate.goals]


def test_plan_holds_the_scenarios_max_failed_too() -> None:
    """``max_failed: 0.1%`` stricter than the p99's 1% tail: the stricter limit is the goal."""
    scenario = parse_scenario(UNDELIVERED.replace("max_failed: 1%", "max_failed: 0.1%"))
    (candidate,) = plan_at_40(scenario, 0.001).candidates.values()
    (failed,) = [g for g in candidate.goals if g.name == "failed_share"]
    assert failed.limit == 0.001


def test_an_interrupted_search_that_found_nothing_says_only_what_it_tried(tiny: Scenario) -> None:
    """Stopped after its first sizes, the plan does not claim the whole range fails."""
    stop = threading.Event()
    result = plan(
        tiny,
        "base",
        slo=parse_slo("p50<1ms"),
        max_cold=None,
        low=1,
        high=50,
        executor=SerialExecutor(),
        stop=stop,
        on_candidate=lambda _c: stop.set(),
    )
    assert result.interrupted and result.answer is None
    tried = ", ".join(str(s) for s in sorted(result.candidates))
    assert result.none_found == f"no size tried meets the goals (interrupted; sizes tried: {tried})"
    assert not any("No size in 1..50" in line for line in result.explanation)


def test_one_replication_is_said_to_give_no_interval() -> None:
    """With one run per size there is no interval to be sure of: the plan says so, not 'uncertain'."""
    (candidate,) = plan_at_40(parse_scenario(UNDELIVERED), 0.01).candidates.values()
    assert candidate.confidence == "one replication: no interval"


def test_an_open_high_is_at_least_low(tiny: Scenario) -> None:
    """``--range 60:`` starts above the default top of the range: the top follows LOW up.

    Before, the default HIGH (from Erlang's estimate) stayed below LOW and the
    plan failed with a range the user never typed.
    """
    result = plan_serially(
        tiny,
        "base",
        slo=None,
        max_cold=0.05,
        low=60,
        high=None,
    )
    assert result.analytic.replicas is not None and result.analytic.replicas < 60
    assert (result.low, result.high) == (60, 4 * 60 + 10)  # 4 x LOW + 10, as documented
    assert result.answer == 60


def test_one_replication_is_not_explained_as_an_uncertain_interval(tiny: Scenario) -> None:
    """With one replication the explanation, like the table, says there is no interval."""
    result = plan_serially(
        tiny.model_copy(update={"replications": 1}),
        "base",
        slo=None,
        max_cold=0.6,
        low=8,
        high=8,
    )
    assert result.best is not None and result.best.confidence == "one replication: no interval"
    assert not any("interval crosses" in line for line in result.explanation)
    assert any("rests on one replication" in line for line in result.explanation)


CRAMPED = """\
name: cramped
seed: 4
replications: 2
duration: 40s
warmup: 5s
cluster:
  nodes: [{name: node, count: 1, cpu: "64", memory: 256Gi, max_pods: 10}]
pools:
  - {name: base, replicas: 4}
workloads:
  - template: base
    arrivals: {kind: constant, rate: 2}
    hold: 0s
"""
"""One node of 10 pod slots: a pool of 11 never fills. Evenly spaced claims need
about 5 replicas where Erlang-B (Poisson) asks for 11 at 0.1% cold."""


def test_a_size_that_does_not_fit_is_a_verdict_and_the_search_stays_below_it() -> None:
    """Erlang starts the search at 11, which the node cannot hold: 11 does not fit, the
    search goes down from there and answers the smallest size that meets the goal.

    Before, the pool's fill error ended the whole plan (exit 2, nothing written).
    """
    result = plan_serially(
        parse_scenario(CRAMPED),
        "base",
        slo=None,
        max_cold=0.001,
        low=1,
        high=None,
    )
    assert result.analytic.replicas == 11
    assert result.fits_below == 11 and "did not fill" in result.unfit[11]
    assert max(result.candidates) < 11  # nothing at or above a size that does not fit
    assert result.answer is not None and result.answer < 11
    assert result.candidates[result.answer].meets
    assert not result.candidates[result.answer - 1].meets
    assert any("From 11 replicas up the pool does not fit" in line for line in result.explanation)
    assert result.as_dict()["does_not_fit"][0]["replicas"] == 11


def test_a_size_run_beside_one_that_does_not_fit_is_not_run_again() -> None:
    """The first batch is 10 and 11: 10 fits, 11 does not; each replication of each size
    the search tries runs once.

    Before, the fill error of 11 threw the batch away and every size of it was run
    again on its own: 10 ran twice.
    """
    ran: dict[int, int] = {}

    def count(result: RunResult) -> None:
        size = result.point["pools.base.replicas"]
        ran[size] = ran.get(size, 0) + 1

    result = plan_serially(
        parse_scenario(CRAMPED), "base", slo=None, max_cold=0.001, low=1, high=None,
        on_result=count,
    )  # fmt: skip
    assert 10 in result.candidates and result.fits_below == 11
    assert ran == dict.fromkeys(result.candidates, 2)


def test_no_size_fits_and_meets_says_so() -> None:
    """From 11 up nothing fits and the range starts at 11: no answer, with the reason."""
    result = plan_serially(
        parse_scenario(CRAMPED),
        "base",
        slo=None,
        max_cold=0.001,
        low=11,
        high=20,
    )
    assert result.answer is None and not result.candidates
    assert result.none_found == (
        "no size in 11..20 meets the goals (from 11 replicas up the pool does not fit on the nodes)"
    )


def test_zero_cold_claims_in_a_few_hundred_is_not_certain_for_a_rare_goal() -> None:
    """0 cold claims of 160 shows the cold share below about 2.3%, not below 0.1%.

    Before, every replication's 0 gave the interval [0%, 0%] and the verdict
    "certain". The plan now says how many claims would settle the goal.
    """
    result = plan_serially(
        parse_scenario(CRAMPED),
        "base",
        slo=None,
        max_cold=0.001,
        low=8,
        high=8,
    )
    best = result.best
    assert best is not None
    (cold,) = best.goals
    assert cold.estimate is not None and cold.estimate.mean == 0.0
    assert cold.estimate.trials == best.summary.pools["default/base"]["warm"].mean * 2
    assert cold.met and not cold.certain and not best.certain
    assert cold.estimate.high == pytest.approx(3.8415 / (cold.estimate.trials + 3.8415), rel=1e-3)
    assert any("takes about 3,838 claims" in line for line in result.explanation)


TWO_POOLS = """\
name: twopools
seed: 4
replications: 2
duration: 30s
warmup: 5s
cluster: {nodes: 2}
pools:
  - {name: base, replicas: 4}
  - {name: idle, replicas: 2}
workloads:
  - template: base
    arrivals: {kind: poisson, rate: 2}
    hold: exp(10s)
"""


def test_a_pool_nobody_claims_from_gets_the_smallest_size_with_no_claims_measured() -> None:
    """No claim to count: the cold-share goal is not measured, not missed; the answer is LOW.

    Before, every size "missed" and the plan answered "No size in 1..14 meets the goals".
    """
    result = plan_serially(
        parse_scenario(TWO_POOLS),
        "idle",
        slo=None,
        max_cold=0.01,
        low=1,
        high=None,
    )
    assert result.answer == 1
    best = result.best
    assert best is not None and best.meets and best.no_claims and not best.certain
    (goal,) = best.goals
    assert (goal.verdict, goal.confidence) == ("not measured", "no claims were measured")
    assert best.confidence == "no claims were measured"
    assert any(
        "No claims were measured for pool default/idle" in line for line in result.explanation
    )


def test_a_pools_goals_are_judged_on_its_own_claims_only() -> None:
    """Planning the idle pool beside a busy one: the busy pool's slow claims are not the idle one's.

    Pool ``base`` has no stock, so its claims are all cold and miss ``p99<1s``;
    nobody claims from ``idle``. Every goal of ``idle`` is not measured, the
    answer is LOW and the explanation says no claims were measured. Before,
    the latency and failed-share goals read the run's claims (all ``base``'s):
    every size of ``idle`` "missed" and no claims-measured line appeared.
    """
    scenario = apply_overrides(parse_scenario(TWO_POOLS), [("pools.base.replicas", 0)])
    result = plan_serially(
        scenario,
        "idle",
        slo=parse_slo("p99<1s"),
        max_cold=0.01,
        low=1,
        high=3,
    )
    assert result.answer == 1
    best = result.best
    assert best is not None and best.meets and best.no_claims
    assert [g.name for g in best.goals] == ["latency_p99_all", "failed_share", "cold_share"]
    assert all(
        (g.verdict, g.confidence) == ("not measured", "no claims were measured") for g in best.goals
    )
    assert any(
        "No claims were measured for pool default/idle" in line for line in result.explanation
    )
    # The run's claims (all base's, all cold) do miss the goal: they are not idle's.
    run_p99 = best.summary.metrics["latency_p99"]
    assert run_p99.mean > 1.0


def test_claims_that_all_failed_are_measured_and_miss() -> None:
    """Claims counted but none delivered: the cold share is undefined, yet the goal is missed."""
    (candidate,) = plan_at_40(parse_scenario(UNDELIVERED), 0.01).candidates.values()
    assert not candidate.no_claims


TWO_DIURNAL = """\
name: twodiurnal
duration: 60s
cluster: {nodes: 2}
pools:
  - {name: a, replicas: 4}
  - {name: b, replicas: 40}
workloads:
  - template: a
    arrivals: {kind: diurnal, mean: 1, amplitude: 0.5, period: 60s, peak: 30s}
  - template: b
    arrivals: {kind: diurnal, mean: 10, amplitude: 0.5, period: 60s, peak: 30s}
"""


def test_the_peak_explained_is_the_planned_pools_own() -> None:
    """Pool a peaks at 1.5/s beside pool b's 15/s: a's explanation speaks of 1.5/s.

    Before, the peak added every pool's traffic (16.5/s) and Erlang-B's answer for it.
    """
    line, estimate = _peak_line(TWO_DIURNAL)
    s_peak, _ = size_for_loss(1.5 * estimate.refill_s, 0.05)
    assert f"at the peak (1.5/s) Erlang-B asks for {s_peak}:" in line


def _peak_line(text: str) -> tuple[str, AnalyticEstimate]:
    """The explanation's line about pool ``a``'s peak rate, and the Erlang estimate it explains."""
    scenario = parse_scenario(text)
    pool = scenario.pool("a")
    estimate = analytic_estimate(scenario, pool, None, 0.05)
    result = PlanResult(
        pool=pool.key,
        slo=None,
        max_cold=0.05,
        low=1,
        high=10,
        analytic=estimate,
        analytic_measured=None,
        answer=None,
        candidates={},
    )
    (line,) = [line for line in explain(result, scenario, pool) if "peak" in line]
    return line, estimate


DIURNAL_AND_MORE = """\
name: diurnalmix
duration: 60s
cluster: {nodes: 2}
pools:
  - {name: a, replicas: 4}
workloads:
  - template: a
    arrivals: {kind: diurnal, mean: 2, amplitude: 0.5, period: 60s, peak: 30s}
  - template: a
    arrivals: {kind: poisson, rate: 3}
  - template: a
    arrivals: {kind: diurnal, mean: 1, amplitude: 1, period: 60s, peak: 0s}
  - template: a
    arrivals: {kind: diurnal, mean: 1, amplitude: 1, period: 60s, peak: 30s}
"""


def test_the_pools_peak_counts_every_workload_at_the_peak() -> None:
    """3/s of Poisson beside a curve peaking at 3/s, and two curves in opposite phase (2/s
    whatever the hour): the pool peaks at 3 + 3 + 2 = 8/s.

    Before, only the diurnal curves counted, each at its own peak: 3 + 2 + 2 = 7/s, with the
    Poisson left out (an answer below the mean rate's) and the opposite phases added.
    """
    line, estimate = _peak_line(DIURNAL_AND_MORE)
    s_peak, _ = size_for_loss(8 * estimate.refill_s, 0.05)
    assert f"at the peak (8/s) Erlang-B asks for {s_peak}:" in line
    assert estimate.replicas is not None
    assert s_peak > estimate.replicas  # the peak asks more than the mean rate does


def test_erlang_without_a_target_starts_the_search_at_low_and_says_why(tiny: Scenario) -> None:
    """``mean<5s`` gives Erlang no share to size: the plan says so and starts at LOW."""
    result = plan_serially(
        tiny,
        "base",
        slo=parse_slo("mean<5s"),
        max_cold=None,
        low=2,
        high=4,
    )
    assert result.analytic.replicas is None and result.analytic.target is None
    assert result.answer == 2
    assert any(line.startswith("Erlang has no size to give") for line in result.explanation)


def _no_stock(tiny: Scenario) -> Scenario:
    """The tiny scenario with claims that wait for a refill (no create-on-no-stock)."""
    return apply_overrides(tiny, [("workloads[0].claim", {"create_on_no_stock": False})])


def test_erlang_without_a_size_is_said_so_with_the_measured_refill_too(tiny: Scenario) -> None:
    """Claims that wait, ``--max-cold`` alone: Erlang-C has no target with either refill time.

    Before, a measured refill off the profile's printed "with the measured
    refill Erlang says None".
    """
    scenario = _no_stock(tiny)
    pool = scenario.pools[0]
    estimate = analytic_estimate(scenario, pool, None, 0.01)
    measured = analytic_estimate(scenario, pool, None, 0.01, refill_s=2 * estimate.refill_s)
    assert (estimate.target, measured.target, measured.replicas) == (None, None, None)
    result = PlanResult(
        pool=pool.key,
        slo=None,
        max_cold=0.01,
        low=1,
        high=4,
        analytic=estimate,
        analytic_measured=measured,
        answer=None,
        candidates={},
    )
    (line,) = [line for line in explain(result, scenario, pool) if "measured refill" in line]
    assert "None" not in line
    assert line.endswith("Erlang still has no size to give (no goal limits the share it sizes).")


def test_a_cold_share_that_cannot_be_nonzero_is_certain(tiny: Scenario) -> None:
    """Without create-on-no-stock no claim is cold: 0 cold of 160 meets ``--max-cold 1%`` for sure.

    Before, the Wilson interval of 0 in 160 (up to 2.3%) crossed 1%: the plan
    called the verdict uncertain and asked for some 380 claims to settle it.
    """
    result = plan_serially(
        _no_stock(tiny),
        "base",
        slo=None,
        max_cold=0.01,
        low=3,
        high=3,
    )
    best = result.best
    assert best is not None
    (cold,) = best.goals
    assert cold.estimate is not None and cold.estimate.mean == 0.0
    assert cold.estimate.high is not None and cold.estimate.high > 0.01  # Wilson's bound
    assert cold.met and cold.certain and best.certain
    assert cold.confidence.startswith("certain: no claim can be cold")
    assert best.confidence == "certain"
    assert not any("not certain" in line or "takes about" in line for line in result.explanation)
    # simulate judges the scenario's cold-share goal alike.
    goals = best.summary.scenario.goals
    assert goals is not None
    (simulated,) = [g for g in check_goals(best.summary, goals) if g.name == "cold_share"]
    assert simulated.certain and simulated.confidence == cold.confidence


def test_a_pool_whose_every_claim_fails_with_stock_at_hand_stops_the_search(tiny: Scenario) -> None:
    """Without the agent runtime every E2B claim fails at ``/init`` (reference §16), whatever
    the pool holds: the search stops at the first size tried above Erlang's at which no claim
    found the pool empty, not after galloping through the whole range, and says why.

    Each failed ``/init`` takes its sandbox out of the pool: at Erlang's size a claim or two
    a run still finds the pool empty and is created cold (and fails alike). Those sizes do not
    stop the search (a claim that found no stock is one more stock may serve); the next size
    up at which every claim had a sandbox to take does.
    """
    no_runtime = tiny.model_copy(
        update={"pools": [tiny.pools[0].model_copy(update={"runtimes": []})]}
    )
    result = plan_serially(
        no_runtime, "base", slo=parse_slo("p99<1s"), max_cold=0.05, low=1, high=None
    )
    assert result.answer is None
    start = result.analytic.replicas
    assert start is not None
    stopped = result.all_failed_at
    assert stopped is not None and stopped >= start
    assert max(result.candidates) == stopped and len(result.candidates) <= 5
    assert result.as_dict()["all_failed_at"] == stopped
    for size, candidate in result.candidates.items():
        own = candidate.summary.pools["default/base"]
        failed = own["failed_share"]
        assert failed is not None and failed.mean == 1.0
        if size < start:
            continue  # run with Erlang's size, never a step of the gallop up
        went_cold = sum(
            own[name].mean for name in ("failed_cold_no_stock", "failed_cold_all_picked")
        )
        # Every size the search went past had claims that found no sandbox to take.
        assert (went_cold == 0) == (size == stopped), (size, went_cold)
    assert "every claim fails, whatever the size" in result.none_found
    (line,) = [line for line in result.explanation if line.startswith("Every claim failed")]
    assert f"at {stopped} replicas (RetryExhausted 100%)" in line
    assert "agent-runtime" in line


def slow_cold_scenario() -> Scenario:
    """Cold starts of 1000 s against a 2 s wait-ready timeout, every other step instant.

    The pool fills before the workload starts; a refill takes 1000 s, longer than the run,
    so a pool smaller than the claims of the warm-up and the window runs empty and stays
    empty: every claim after that is created cold and fails (RetryExhausted), each attempt
    cold again. A pool larger than the claims delivers each warm at once.
    """
    return parse_scenario(
        {
            "name": "slow-cold",
            "seed": 5,
            "replications": 2,
            "duration": "40s",
            "warmup": "10s",
            "cluster": {
                "nodes": [
                    {
                        "name": "big",
                        "count": 2,
                        "cpu": "100000",
                        "memory": "100000Gi",
                        "max_pods": 100000,
                    }
                ],
                "latencies": instant_latencies("1000s"),
            },
            "pools": [{"name": "base", "replicas": 2}],
            "workloads": [
                {
                    "template": "base",
                    "arrivals": {"kind": "poisson", "rate": 0.5},
                    "hold": "exp(10s)",
                    "claim": {"wait_ready_timeout": "2s"},
                }
            ],
        }
    )


def test_claims_created_cold_that_fail_do_not_stop_the_search() -> None:
    """Every claim fails at a small size, each created cold on finding the pool empty: a
    larger pool delivers them warm, so the search gallops on to the size that meets.

    Before, the stop rule counted only picks that failed for no stock: with
    create-on-no-stock a claim that found the pool empty is created cold, and
    when that fails it counted as failed with stock at hand. The plan stopped at
    2 replicas with "every claim fails, whatever the size".
    """
    result = plan_serially(
        slow_cold_scenario(),
        "base",
        slo=parse_slo("mean<5s"),  # Erlang has no size to give: the search starts at LOW
        max_cold=None,
        max_failed=0.01,
        low=2,
        high=None,
    )
    small = result.candidates[2].summary.pools["default/base"]
    failed, claims = small["failed_share"], small["claims"]
    assert failed is not None and failed.mean == 1.0
    # Each failed claim was created cold on finding the pool empty, as the metrics now say;
    # no pick failed for no stock (create-on-no-stock) and none was delivered cold.
    went_cold = small["failed_cold_no_stock"]
    assert claims is not None and went_cold is not None and went_cold.mean == claims.mean > 0
    assert [small[name].mean for name in ("no_stock_claims", "cold_no_stock")] == [0.0, 0.0]
    assert result.all_failed_at is None
    assert "whatever the size" not in result.none_found
    assert not any(line.startswith("Every claim failed") for line in result.explanation)
    assert result.answer is not None and result.answer > 2
    best = result.candidates[result.answer].summary.pools["default/base"]
    assert best["failed_share"] is not None and best["failed_share"].mean == 0.0


def _claims(fast: int, slow: int, failed: int) -> list[Outcome]:
    """``fast`` claims delivered in 0.1 s, ``slow`` in 2 s, ``failed`` never delivered."""
    out: list[Outcome] = []
    for i in range(fast + slow + failed):
        at = float(i)
        if i < fast:
            out.append(Outcome(0, "default/base", at, delivered=at + 0.1, warm=True, attempts=1))
        elif i < fast + slow:
            out.append(Outcome(0, "default/base", at, delivered=at + 2.0, warm=True, attempts=1))
        else:
            out.append(
                Outcome(0, "default/base", at, failed=at + 1.0, attempts=1, reason="Timeout")
            )
    return out


def test_a_percentile_goal_counts_failed_claims_as_slower_than_any_delivered() -> None:
    """``p99<1s`` is judged on the p99 of all the claims, a failed one ranking last.

    0.9% failed and 0.7% delivered in 2 s: 1.6% of the claims took 1 s or more,
    so the goal is missed, though the p99 of the delivered claims (0.1 s) and
    the failed share (0.9%, within the 1% a p99 leaves) each pass. Before, the
    goal read met.
    """
    metrics, _, _, _ = summarise_outcomes(_claims(984, 7, 9), 1000.0)
    assert metrics["latency_p99"] == pytest.approx(0.1)  # the delivered claims' (shown)
    assert metrics["latency_p99_all"] == pytest.approx(2.0)  # all claims', failed last
    figures = aggregate([metrics])
    goals = run_goals(figures, parse_slo("p99<1s"), None)
    assert [(g.name, g.met) for g in goals] == [
        ("latency_p99_all", False),
        ("failed_share", True),
    ]
    # More failed claims than the tail leaves: the p99 of all claims is unbounded.
    metrics, _, _, _ = summarise_outcomes(_claims(985, 0, 15), 1000.0)
    assert metrics["latency_p99_all"] == math.inf
    assert not run_goals(aggregate([metrics]), parse_slo("p99<1s"), None)[0].met
    # Within the tail, the goal holds.
    metrics, _, _, _ = summarise_outcomes(_claims(991, 4, 5), 1000.0)
    assert run_goals(aggregate([metrics]), parse_slo("p99<1s"), None)[0].met


def test_exactly_the_tail_failed_leaves_the_percentile_of_all_claims_on_a_delivered_one() -> None:
    """990 of 1,000 claims delivered, 10 failed: the p99's rank, 990, is the slowest delivered
    claim (2 s), not a failed one; one more failed claim makes it unbounded."""
    metrics, _, _, _ = summarise_outcomes(_claims(983, 7, 10), 1000.0)
    assert metrics["latency_p99_all"] == pytest.approx(2.0)
    assert metrics["failed_share"] == pytest.approx(0.01)
    metrics, _, _, _ = summarise_outcomes(_claims(982, 7, 11), 1000.0)
    assert metrics["latency_p99_all"] == math.inf


def test_an_unbounded_percentile_in_one_replication_misses_the_goal_uncertainly() -> None:
    """One replication's p99 falls on a failed claim: the mean is unbounded, the goal missed.

    The verdict is certain only when every replication misses.
    """
    bad, _, _, _ = summarise_outcomes(_claims(985, 0, 15), 1000.0)
    good, _, _, _ = summarise_outcomes(_claims(1000, 0, 0), 1000.0)
    goal = run_goals(aggregate([bad, good]), parse_slo("p99<1s"), None)[0]
    assert (goal.met, goal.certain) == (False, False)
    assert goal.estimate is not None and goal.estimate.mean == math.inf
    assert fmt_estimate(goal.name, goal.estimate) == "unbounded [100 ms, unbounded]"
    slow, _, _, _ = summarise_outcomes(_claims(900, 100, 0), 1000.0)
    goal = run_goals(aggregate([bad, slow]), parse_slo("p99<1s"), None)[0]
    assert (goal.met, goal.certain) == (False, True)


def test_a_range_whose_lowest_size_meets_the_goals_says_smaller_sizes_were_not_tried() -> None:
    """``--range 12:12`` above Erlang's 5: the answer is only an upper bound, and said so.

    Before, the explanation read "Simulation needs 7 replicas more than Erlang",
    though no size below 12 was run.
    """
    short = erlang_scenario().model_copy(update={"duration": 60.0})
    result = plan_serially(short, "base", slo=None, max_cold=TARGET, low=12, high=12)
    assert result.answer == 12 and result.analytic.replicas == 5
    assert (
        "The smallest size of the range (12) meets the goals; smaller sizes were not tried "
        "(Erlang says 5): a smaller pool may meet them too."
    ) in result.explanation
    assert not any("Simulation needs" in line for line in result.explanation)


def test_a_latency_goal_at_its_limit_is_missed_and_a_share_at_its_limit_met() -> None:
    """``p99<1s`` is strict: a p99 of exactly 1 s misses it, with certainty when the interval
    does not reach below; ``p99<=1s`` and a share goal (``<=``) hold at their limit."""
    at_limit = Estimate(n=3, mean=1.0, std=0.0, low=1.0, high=1.0)
    strict = goal_verdict("latency_p99_all", at_limit, 1.0, inclusive=False)
    assert (strict.met, strict.certain, strict.symbol) == (False, True, "<")
    inclusive = goal_verdict("latency_p99_all", at_limit, 1.0, inclusive=True)
    assert (inclusive.met, inclusive.certain, inclusive.symbol) == (True, True, "<=")
    share = Estimate(n=3, mean=0.01, std=0.0, low=0.005, high=0.01)
    assert goal_verdict("cold_share", share, 0.01, inclusive=True).met


def test_a_range_may_reach_the_largest_sandboxset_and_no_further(tiny: Scenario) -> None:
    """A SandboxSet's ``replicas`` is an int32: a range up to 2147483647 is searched (here
    60 meets the goal at once), one past it is refused before anything runs."""
    result = plan_serially(tiny, "base", slo=None, max_cold=0.05, low=60, high=MAX_REPLICAS)
    assert (result.high, result.answer) == (2**31 - 1, 60)
    with pytest.raises(PlanningError, match=r"--range: sizes must be at most 2147483647"):
        plan_serially(tiny, "base", slo=None, max_cold=0.05, low=60, high=MAX_REPLICAS + 1)


def _all_failed(tiny: Scenario, *runs: Mapping[str, float | None]) -> Candidate:
    """A candidate of ``tiny`` at 4 replicas whose runs' own figures are ``runs``: the pool's
    and, under ``create_limited``, the run's claims the create limiter made wait."""
    from simulator.planning.plan import judge
    from simulator.planning.study import summarise_point

    results = [
        RunResult(
            index=i,
            replication=i,
            seed=i,
            point={},
            metrics={"create_limited": figures.get("create_limited", 0.0)},
            failures={"InitFailed": 10},
            pools={"default/base": {k: v for k, v in figures.items() if k != "create_limited"}},
            series={},
        )
        for i, figures in enumerate(runs)
    ]
    summary = summarise_point({}, tiny, results)
    return Candidate(4, summary, judge(summary, "default/base", None, 0.05))


def test_every_claim_failing_with_stock_at_hand_is_told_apart_from_a_want_of_stock(
    tiny: Scenario,
) -> None:
    """The search stops below any size when every claim of the pool failed in every run and
    none found the pool short: none found it empty, was created cold, or waited for a
    creation token (a token refused says nothing of what its pick found)."""
    found = dict.fromkeys(FOUND_NO_STOCK, 0.0)
    failing = {"claims": 10.0, "failed_share": 1.0, **found}
    every = _all_failed(tiny, failing, failing)
    assert all_failed_with_stock(every, "default/base")
    # No claim delivered: the cold share has no value, yet claims were counted, so the
    # goal is unmeasured but not claim-less, and holds the size back.
    cold = every.goals[-1]
    assert (cold.name, cold.verdict, cold.no_claims, every.meets) == (
        "cold_share",
        "not measured",
        False,
        False,
    )
    limited = {**failing, "create_limited": 1.0}
    assert not all_failed_with_stock(_all_failed(tiny, failing, limited), "default/base")
    no_claims = {"claims": 0.0, "failed_share": None, **found}
    assert not all_failed_with_stock(_all_failed(tiny, failing, no_claims), "default/base")
    short = {**failing, "cold_no_stock": 1.0}
    assert not all_failed_with_stock(_all_failed(tiny, failing, short), "default/base")


def test_the_claims_that_settle_a_share_are_none_for_a_share_at_its_limit() -> None:
    """0 in n claims shows a share below about 3.84/n: 0.1% takes some 3,840 claims; a share
    seen at (or above) its limit is never shown within it, however many claims."""
    needed = claims_to_show(0.0, 0.001)
    assert needed is not None and 3_830 <= needed <= 3_845
    assert claims_to_show(0.01, 0.01) is None
    assert claims_to_show(0.02, 0.01) is None


def test_an_answer_of_one_replica_is_set_against_erlangs(tiny: Scenario) -> None:
    """From the default LOW of 1, an answer of 1 is the smallest pool there is, not an upper
    bound: the explanation compares it with Erlang's rather than suggest a smaller pool."""
    result = plan_serially(tiny, "base", slo=None, max_cold=0.9, low=1, high=1)
    assert result.answer == 1
    assert not any("smaller sizes were not tried" in line for line in result.explanation)


def test_a_plan_stopped_during_a_batch_says_it_was_interrupted(tiny: Scenario) -> None:
    """Stopped after the first run: the batch is cut short, so the result is interrupted and
    says the answer covers only the sizes tried (none here)."""
    stop = threading.Event()
    result = plan(
        tiny,
        "base",
        slo=None,
        max_cold=0.05,
        low=None,
        high=None,
        executor=SerialExecutor(),
        stop=stop,
        on_result=lambda _: stop.set(),
    )
    assert result.interrupted and result.answer is None
    assert result.none_found.startswith("no size tried meets the goals (interrupted")
