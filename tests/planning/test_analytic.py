"""Erlang's side of the plan (``simulator.planning.analytic``): the figures it rests on are the model's.

The refill time Erlang uses is the sum of the mean latencies of the steps a
replacement goes through (``REFILL_STEPS``); each step must be one the model
really charges, by the latency name the model charges it under.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.planning.analytic import (
    COLD_DRAWS,
    analytic_estimate,
    arrivals_note,
    cold_latency_estimate,
    cold_miss_share,
    offered_rate,
    parse_max_share,
    parse_slo,
    refill_estimate,
    size_for_loss,
    size_for_wait,
    waits_for_refill,
)
from simulator.planning.errors import PlanningError
from simulator.planning.loading import load_scenario, parse_scenario
from simulator.planning.overrides import apply_overrides
from simulator.planning.runner import run_once
from simulator.planning.scenario import Scenario
from simulator.profile import LATENCY_DOCS

from .conftest import SCENARIOS

STEP = 1.0
"""The one latency a probe turns on (seconds); every other is zero."""


def probe(name: str, replicas: int = 2) -> Scenario:
    """One claim at 5 s from a pool of ``replicas``, every latency zero but ``name`` (1 s)."""
    latencies: dict[str, object] = dict.fromkeys(LATENCY_DOCS, 0)
    latencies[name] = f"{STEP:g}s"
    return parse_scenario(
        {
            "name": "probe",
            "seed": 1,
            "replications": 1,
            "duration": "30s",
            "warmup": "0s",
            "sample_interval": "0.01s",
            "cluster": {"nodes": 1, "latencies": latencies},
            "pools": [{"name": "base", "replicas": replicas}],
            "workloads": [
                {
                    "template": "base",
                    "arrivals": {"kind": "bursts", "bursts": [{"at": "5s", "count": 1, "over": 0}]},
                    "hold": "forever",
                }
            ],
        }
    )


@pytest.mark.parametrize("name", list(LATENCY_DOCS))
def test_each_latency_moves_the_refill_estimate_as_it_moves_the_simulation(name: str) -> None:
    """One warm claim with one latency at 1 s: the slot stays busy as long as the estimate says.

    The slot is busy from the pick until the replacement is back, which the
    run shows as the pool's level (the SandboxSet's count, which drops once it
    sees the lock). Before, the estimate charged ``api.update_status`` for the
    status writes (the model patches them: ``api.update``), left out the
    claim's lock and the reconcile that marks the Sandbox ready; and the
    refill measured by Little's law left out the lock write.
    """
    scenario = probe(name)
    result = run_once(scenario, keep_claims=True)
    (claim,) = result.claims or []
    assert claim["warm"] is True
    t, level = result.series["t"], result.series["available:default/base"]
    down = [i for i, x in enumerate(t) if x >= claim["picked"] and level[i] < 2]
    if down:
        back = next(t[i] for i in range(down[0], len(t)) if level[i] == 2)
        # The count drops when the SandboxSet sees the lock: one watch lag after it.
        lag = STEP if name == "watch.lag" else 0.0
        assert t[down[0]] == pytest.approx(claim["locked"] + lag, abs=0.02)
        busy = back - claim["picked"]
    else:
        busy = 0.0  # everything on the path is instant: the level never moved
    expected = refill_estimate(scenario.cluster.build_profile())
    assert expected == pytest.approx(busy, abs=0.02), name
    measured = result.pools["default/base"]["refill_s"]
    assert measured is not None and measured == pytest.approx(busy, abs=0.05), name


@pytest.mark.parametrize(
    "name", ["api.update", "watch.lag", "controller.reconcile", "manager.pick"]
)
def test_each_latency_moves_the_cold_estimate_as_it_moves_a_cold_claim(name: str) -> None:
    """An empty pool: the claim is created cold, and takes as long as the cold estimate says."""
    scenario = probe(name, replicas=0)
    result = run_once(scenario)
    assert result.metrics["cold_p50"] is not None
    expected = cold_latency_estimate(scenario.cluster.build_profile())
    assert expected == pytest.approx(result.metrics["cold_p50"], abs=0.02)


def test_a_latency_goal_a_cold_claim_meets_gives_erlang_no_target() -> None:
    """``p99<5s`` when a cold delivery takes about 1.8 s: the cold share is free, Erlang has no size.

    Before, a 1% target was invented and Erlang answered 11 replicas.
    """
    scenario = load_scenario(SCENARIOS / "steady.yaml")
    pool = scenario.pools[0]
    est = analytic_estimate(scenario, pool, parse_slo("p99<5s"), None)
    assert est.cold_latency_s < 5
    assert (est.target, est.replicas, est.value) == (None, None, None)
    assert "no goal limits the cold share" in est.describe()
    assert "1.000%" not in est.describe()
    # A goal a cold claim misses still sizes the pool, from the percentile's tail
    # over the share of cold claims that miss it (nearly all of them miss 1 s).
    sized = analytic_estimate(scenario, pool, parse_slo("p99<1s"), None)
    assert sized.cold_miss_share is not None and sized.cold_miss_share > 0.99
    assert sized.target == pytest.approx(0.01 / sized.cold_miss_share)
    assert sized.replicas is not None


def test_without_create_on_no_stock_a_cold_limit_sizes_nothing() -> None:
    """No claim is ever cold when claims wait: ``--max-cold`` alone gives Erlang-C no target."""
    scenario = apply_overrides(
        load_scenario(SCENARIOS / "steady.yaml"),
        [("workloads[0].claim.create_on_no_stock", False)],
    )
    pool = scenario.pools[0]
    est = analytic_estimate(scenario, pool, None, 0.05)
    assert (est.model, est.target, est.replicas) == ("erlang-c", None, None)
    assert "no goal limits the waiting share" in est.describe()
    # The latency goal's tail does limit the share that waits.
    waited = analytic_estimate(scenario, pool, parse_slo("p99<1s"), 0.05)
    assert waited.target == pytest.approx(0.01) and waited.replicas is not None


def test_a_goal_cold_claims_miss_at_their_tail_sizes_the_pool_for_the_tail() -> None:
    """``p99<2s`` at HEAD: cold claims take 1.76 s on average but about a fifth take 2 s or more.

    The goal holds while at most 1% of the claims miss it; only cold claims
    do, so at most 1% / P(cold > 2 s) of them may be cold, about 4.5%: Erlang-B
    asks for 10 replicas, the size the simulation finds. Before, the mean cold
    latency was set against the limit and Erlang said any size meets.
    """
    scenario = load_scenario(SCENARIOS / "steady.yaml")
    slo = parse_slo("p99<2s")
    est = analytic_estimate(scenario, scenario.pools[0], slo, None)
    assert est.cold_latency_s < 2
    miss = est.cold_miss_share
    assert miss is not None and 0.15 < miss < 0.3
    assert est.target == pytest.approx(0.01 / miss)
    assert est.replicas == 10
    assert any(f"misses it {miss * 100:.3g}% of the time" in note for note in est.notes)
    # A stricter --max-cold still wins.
    assert analytic_estimate(scenario, scenario.pools[0], slo, 0.01).target == 0.01


def _cold_path(container_start: str) -> Scenario:
    """A scenario whose cold path is instant but the container's start."""
    latencies: dict[str, object] = dict.fromkeys(LATENCY_DOCS, 0)
    latencies["container.start"] = container_start
    return parse_scenario(
        {
            "name": "cold-path",
            "duration": "60s",
            "cluster": {"nodes": 1, "latencies": latencies},
            "pools": [{"name": "base", "replicas": 2}],
            "workloads": [{"template": "base", "arrivals": {"kind": "poisson", "rate": 1}}],
        }
    )


def test_the_share_of_cold_claims_that_miss_is_sampled_from_the_steps() -> None:
    """A cold path of uniform(0, 4s): half of the cold claims miss 2 s, none misses 5 s.

    ``p99<2s`` then lets 2% of the claims be cold, ``p99<3.9s`` (2.5% of cold
    claims miss it) 40%; ``p99<3.99s`` (0.25% miss it) holds even if every
    claim is cold, and ``p99<5s`` is never missed: no goal limits the cold
    share, and the estimate says why, with the estimated probability.
    """
    scenario = _cold_path("uniform(0s, 4s)")
    profile = scenario.cluster.build_profile()
    half = cold_miss_share(profile, parse_slo("p99<2s"))
    assert half == pytest.approx(0.5, abs=4 / COLD_DRAWS**0.5)
    assert half == cold_miss_share(profile, parse_slo("p99<2s"))  # a fixed seed
    assert cold_miss_share(profile, parse_slo("p99<5s")) == 0.0
    pool = scenario.pools[0]
    sized = analytic_estimate(scenario, pool, parse_slo("p99<2s"), None)
    assert sized.target == pytest.approx(0.01 / half)
    tight = analytic_estimate(scenario, pool, parse_slo("p99<3.9s"), None)
    assert tight.target == pytest.approx(0.4, rel=0.2)
    free = analytic_estimate(scenario, pool, parse_slo("p99<3.99s"), None)
    assert (free.target, free.replicas) == (None, None)
    assert "a cold claim misses p99<3.99s 0.2" in free.describe()
    none = analytic_estimate(scenario, pool, parse_slo("p99<5s"), None)
    assert (none.target, none.cold_miss_share) == (None, 0.0)
    assert "no cold claim misses p99<5s in 20,000 draws" in none.describe()


@pytest.mark.parametrize(
    ("value", "share"),
    [("1%", 0.01), ("0.01", 0.01), (0.01, 0.01), (0, 0.0), (" 5% ", 0.05)],
    ids=["percent", "text", "number", "zero", "spaced"],
)
def test_a_share_is_its_text_or_the_number_itself(value: str | float, share: float) -> None:
    """``--max-cold 0.01`` on the command line and ``max_cold=0.01`` in Python are one share."""
    assert parse_max_share(value, "max_cold") == pytest.approx(share)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (2, "must be in [0, 1) (0% to 99.9%), got 2"),
        (float("nan"), "must be in [0, 1) (0% to 99.9%), got nan"),
        (True, "expected a share such as 1% or 0.01, got True"),
        (None, "expected a share such as 1% or 0.01, got None"),
        ([0.01], "expected a share such as 1% or 0.01, got [0.01]"),
    ],
)
def test_what_is_no_share_is_one_planning_error_naming_the_option(
    value: object, reason: str
) -> None:
    """Not an AttributeError from ``.strip()``: the option (or argument) and the reason."""
    with pytest.raises(PlanningError) as caught:
        parse_max_share(value, "max_cold")  # type: ignore[arg-type]
    assert str(caught.value) == f"max_cold: {reason}"


@pytest.mark.parametrize("value", [5, 0.5, None, b"p99<1s"])
def test_only_text_is_a_latency_goal(value: object) -> None:
    """A number has no statistic: refused naming the option, not a TypeError from ``re``."""
    with pytest.raises(PlanningError) as caught:
        parse_slo(value, "slo")  # type: ignore[arg-type]
    assert str(caught.value) == f"slo: expected a goal such as 'p99<1s', got {value!r}"


@pytest.mark.parametrize(("text", "seconds"), [("p99<1m30s", 90.0), ("p99 <= 1h30m", 5400.0)])
def test_a_goal_takes_a_go_style_compound_duration(text: str, seconds: float) -> None:
    """A goal's limit is a duration as everywhere else in a scenario (``1m30s`` too)."""
    assert parse_slo(text).seconds == seconds


def test_a_goal_whose_duration_cannot_be_read_names_the_duration() -> None:
    """The duration is named, not the whole goal said unreadable."""
    with pytest.raises(PlanningError) as caught:
        parse_slo("p99<1m30x", "slo")
    assert str(caught.value).startswith("slo: invalid duration '1m30x'")


def _waiting(profile: str = "openkruise-head") -> Scenario:
    """steady.yaml with claims that wait for a refill (no create-on-no-stock), on ``profile``."""
    return apply_overrides(
        load_scenario(SCENARIOS / "steady.yaml"),
        [("workloads[0].claim.create_on_no_stock", False), ("cluster.profile", profile)],
    )


def test_a_waiting_pool_is_sized_for_waits_within_the_goal_less_the_claim_path() -> None:
    """Erlang-C sizes for ``P(wait > t) <= 1%`` with ``t`` the goal less 0.2 s of the claim's
    own path: ``p99<1.3s`` leaves 1.1 s of wait (10 replicas; the whole 1.3 s would need 9)."""
    scenario = _waiting()
    pool = scenario.pools[0]
    est = analytic_estimate(scenario, pool, parse_slo("p99<1.3s"), None)
    assert est.model == "erlang-c"
    assert est.replicas == size_for_wait(est.load, est.refill_s, 1.1, 0.01)[0] == 10
    assert size_for_wait(est.load, est.refill_s, 1.3, 0.01)[0] == 9
    assert not any("sleeps" in note for note in est.notes)


def test_a_goal_no_wait_can_meet_sizes_a_waiting_pool_for_no_wait_at_all() -> None:
    """A waiting claim sleeps at least its first back-off (1 s at HEAD, 25 ms in v0.3.0)
    before its retry: a goal that leaves no more than that for the wait (``p99<1.2s`` at HEAD,
    exactly 1 s) is met only by claims that never wait; ``p99<300ms`` in v0.3.0 leaves 100 ms,
    four retries' worth."""
    head = _waiting()
    est = analytic_estimate(head, head.pools[0], parse_slo("p99<1.2s"), None)
    assert "a waiting claim sleeps >= 1s before its retry: every wait misses the goal" in est.notes
    assert est.replicas == size_for_wait(est.load, est.refill_s, 0.0, 0.01)[0]
    old = _waiting("openkruise-v0.3.0")
    est = analytic_estimate(old, old.pools[0], parse_slo("p99<300ms"), None)
    assert not any("sleeps" in note for note in est.notes)
    est = analytic_estimate(old, old.pools[0], parse_slo("p99<225ms"), None)
    assert "a waiting claim sleeps >= 0.025s before its retry: every wait misses the goal" in (
        est.notes
    )


def test_a_pool_one_of_whose_workloads_waits_for_a_refill_is_sized_by_erlang_c() -> None:
    """Two workloads on one pool, one creating on no stock and one waiting: claims of the
    pool may wait, so Erlang-C sizes it (Erlang-B would count the waiting claims as cold)."""
    text = (SCENARIOS / "steady.yaml").read_text()
    text = text.replace(
        "    hold: exp(2m)\n",
        "    hold: exp(2m)\n"
        "  - template: base\n"
        "    arrivals: {kind: poisson, rate: 1}\n"
        "    claim: {create_on_no_stock: false}\n",
    )
    scenario = parse_scenario(text)
    est = analytic_estimate(scenario, scenario.pools[0], parse_slo("p99<2s"), None)
    assert est.model == "erlang-c"
    assert est.rate == pytest.approx(4.0)


def test_erlang_b_sizes_the_smallest_pool_at_or_below_the_target() -> None:
    """Erlang-B(1, 1) is exactly 0.5: a target of 50% takes 1 replica, not 2."""
    assert size_for_loss(1.0, 0.5) == (1, 0.5)
    assert size_for_loss(1.0, 0.49)[0] == 2


def _two_workloads(second: str) -> Scenario:
    """steady.yaml with a second workload on its pool (``second``: its YAML lines)."""
    text = (SCENARIOS / "steady.yaml").read_text()
    return parse_scenario(text.replace("    hold: exp(2m)\n", "    hold: exp(2m)\n" + second))


def test_a_pool_waits_for_refills_and_leaves_poisson_when_any_of_its_workloads_does() -> None:
    """One workload that waits makes the pool's claims wait (the explanation's refill line);
    one that is not Poisson makes Erlang's arrivals the mean rate only."""
    mixed = _two_workloads(
        "  - template: base\n"
        "    arrivals: {kind: constant, rate: 1}\n"
        "    claim: {create_on_no_stock: false}\n"
    )
    pool = mixed.pools[0]
    assert waits_for_refill(mixed, pool)
    assert (
        arrivals_note(mixed, pool) == "arrivals are not Poisson: Erlang uses their mean rate only"
    )
    steady = load_scenario(SCENARIOS / "steady.yaml")
    assert not waits_for_refill(steady, steady.pools[0])
    assert arrivals_note(steady, steady.pools[0]) is None


def test_a_sandboxclaim_of_several_replicas_offers_each_of_them() -> None:
    """A SandboxClaim of 3 sandboxes takes 3 from the pool: 1 claim a second offers 3 a second
    (plus steady's 3), from a Poisson stream as from a trace's rows."""
    many = _two_workloads(
        "  - template: base\n"
        "    arrivals: {kind: poisson, rate: 1}\n"
        "    claim: {path: sandboxclaim, replicas: 3}\n"
    )
    assert offered_rate(many, many.pools[0]) == pytest.approx(6.0)


def test_a_traces_sandboxclaims_of_several_replicas_offer_each_of_them(tmp_path: Path) -> None:
    """Two trace rows in steady's 10 min window, each a SandboxClaim of 3 sandboxes."""
    (tmp_path / "t.csv").write_text("time,template\n70,base\n80,base\n")
    text = (
        (SCENARIOS / "steady.yaml")
        .read_text()
        .replace(
            "    arrivals: {kind: poisson, rate: 3}\n",
            "    arrivals: {kind: trace, file: t.csv}\n    claim: {path: sandboxclaim, replicas: 3}\n",
        )
    )
    (tmp_path / "s.yaml").write_text(text)
    scenario = load_scenario(tmp_path / "s.yaml")
    assert offered_rate(scenario, scenario.pools[0]) == pytest.approx(6 / 600)


def test_an_inclusive_goal_is_met_at_its_limit() -> None:
    """``p99<=1s`` holds at 1 s exactly; ``p99<1s`` does not."""
    inclusive = parse_slo("p99<=1s")
    assert inclusive.inclusive and inclusive.met(1.0)
    strict = parse_slo("p99<1s")
    assert not strict.inclusive and not strict.met(1.0) and strict.met(0.999)


def test_a_share_of_every_claim_is_no_goal() -> None:
    """A share must be below 100%: ``--max-cold 100%`` (or 1) is refused, 99.9% is taken."""
    for text in ("100%", "1", 1.0):
        with pytest.raises(PlanningError, match=r"--max-cold: must be in \[0, 1\)"):
            parse_max_share(text)
    assert parse_max_share("99.9%") == pytest.approx(0.999)


def test_a_large_load_reads_in_whole_figures_never_an_exponent() -> None:
    """At 2,000 claims/s the formula line says ``2,000/s`` and the load ``3,0xx``, not ``2e+03``.

    The tables already wrote figures of 1,000 and above whole; the sentences used ``.3g``.
    """
    scenario = apply_overrides(
        load_scenario(SCENARIOS / "steady.yaml"),
        [("workloads[0].arrivals.rate", 2000)],
    )
    est = analytic_estimate(scenario, scenario.pools[0], None, 0.05)
    line = est.describe()
    assert "a = λ·L = 2,000/s x " in line
    assert f"= {est.load:,.0f}: S = " in line
    assert "e+" not in line
