"""Plan: the simulated smallest pool agrees with Erlang-B where Erlang-B is exact, and says why when not.

With every step instant but the pod creation (exponential, mean L), a pool of
S replicas under Poisson claims with create-on-no-stock is an M/G/S/S loss
system: a claim is cold exactly when all S slots are refilling, so the cold
share is Erlang-B(S, λL). Hold times do not matter (a claimed sandbox leaves
the pool at once) and the nodes are large enough never to hold a pod back.
"""

from __future__ import annotations

import threading

import pytest

from simulator.erlang import min_servers_for_loss
from simulator.planning.analytic import parse_slo
from simulator.planning.diagnose import check_goals
from simulator.planning.errors import PlanningError
from simulator.planning.executors import SerialExecutor
from simulator.planning.loading import parse_scenario
from simulator.planning.plan import PlanResult, plan
from simulator.planning.scenario import Scenario

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


def test_plan_finds_the_erlang_b_answer() -> None:
    """Erlang-B says 5 replicas for at most 5% cold at load 2; the simulation lands within one."""
    expected = min_servers_for_loss(RATE * REFILL, TARGET)
    assert expected == 5
    result = plan(
        erlang_scenario(),
        "base",
        slo=None,
        max_cold=TARGET,
        low=1,
        high=20,
        executor=SerialExecutor(),
        stop=threading.Event(),
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
    assert any("agree within one replica" in line for line in result.explanation)


def test_no_size_meets_an_impossible_goal(tiny: Scenario) -> None:
    """A goal below the claim path's own latency: no pool size meets it, and the plan says why."""
    result = plan(
        tiny,
        "base",
        slo=parse_slo("p50<1ms"),
        max_cold=None,
        low=1,
        high=2,
        executor=SerialExecutor(),
        stop=threading.Event(),
    )
    assert result.answer is None
    assert sorted(result.candidates) == [1, 2]
    assert any("Even warm deliveries" in line for line in result.explanation)


def test_plan_refuses_bad_requests(tiny: Scenario) -> None:
    """No goal, an unknown pool or an upside-down range: one clear error, nothing run."""
    kwargs = {"executor": SerialExecutor(), "stop": threading.Event(), "low": None, "high": None}
    with pytest.raises(PlanningError, match="give a goal"):
        plan(tiny, "base", slo=None, max_cold=None, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PlanningError, match="--pool: no pool 'nope'"):
        plan(tiny, "nope", slo=None, max_cold=0.01, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PlanningError, match="--range"):
        plan(
            tiny,
            "base",
            slo=None,
            max_cold=0.01,
            executor=SerialExecutor(),
            stop=threading.Event(),
            low=9,
            high=3,
        )


def test_only_the_runs_at_the_answer_keep_their_claims(tiny: Scenario) -> None:
    """With keep_claims the answer's runs keep one row per claim; every other size's are dropped."""
    result = plan(
        tiny,
        "base",
        slo=None,
        max_cold=0.6,
        low=1,
        high=3,
        executor=SerialExecutor(),
        stop=threading.Event(),
        keep_claims=True,
    )
    assert result.best is not None and len(result.candidates) >= 2
    for size, candidate in result.candidates.items():
        for run in candidate.summary.runs:
            if size == result.answer:
                assert run.claims is not None and len(run.claims) == run.metrics["claims"] > 0
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
    return plan(
        scenario,
        "base",
        slo=parse_slo("p99<1s"),
        max_cold=None,
        max_failed=max_failed,
        low=40,
        high=40,
        executor=SerialExecutor(),
        stop=threading.Event(),
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
    assert verdicts == {"latency_p99": True, "failed_share": False}
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
    result = plan(
        tiny,
        "base",
        slo=None,
        max_cold=0.05,
        low=60,
        high=None,
        executor=SerialExecutor(),
        stop=threading.Event(),
    )
    assert result.low == 60 and result.high >= 60
    assert result.answer == 60


def test_one_replication_is_not_explained_as_an_uncertain_interval(tiny: Scenario) -> None:
    """With one replication the explanation, like the table, says there is no interval."""
    result = plan(
        tiny.model_copy(update={"replications": 1}),
        "base",
        slo=None,
        max_cold=0.6,
        low=8,
        high=8,
        executor=SerialExecutor(),
        stop=threading.Event(),
    )
    assert result.best is not None and result.best.confidence == "one replication: no interval"
    assert not any("interval crosses" in line for line in result.explanation)
    assert any("rests on one replication" in line for line in result.explanation)
