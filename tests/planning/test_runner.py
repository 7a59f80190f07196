"""One run of a scenario: what it measures, and that it measures it the same way every time."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from simulator.planning.errors import RunError
from simulator.planning.loading import parse_scenario
from simulator.planning.overrides import apply_overrides
from simulator.planning.runner import derive_seed, run_once
from simulator.planning.scenario import Scenario

from .conftest import TINY


def test_same_seed_same_numbers(tiny: Scenario) -> None:
    """A run is a function of scenario and seed: every figure and series repeats; another replication differs."""
    a = run_once(tiny, replication=0)
    b = run_once(tiny, replication=0)
    c = run_once(tiny, replication=1)
    assert (a.metrics, a.pools, a.series, a.warm_q, a.failures) == (
        b.metrics,
        b.pools,
        b.series,
        b.warm_q,
        b.failures,
    )
    assert a.seed == derive_seed(tiny.seed, "replication", 0) != c.seed
    assert a.metrics != c.metrics


def test_measures_the_window_after_warmup(tiny: Scenario) -> None:
    """Only claims requested after the warm-up and before the horizon count; all of them finish."""
    result = run_once(tiny, keep_claims=True)
    assert result.claims is not None
    times = [c["requested"] for c in result.claims]
    assert times and min(times) >= tiny.warmup and max(times) < tiny.horizon
    m = result.metrics
    assert m["claims"] == len(result.claims) == m["delivered"]
    assert m["unfinished"] == 0 and m["failed"] == 0
    assert m["latency_p50"] is not None and m["latency_p50"] <= m["latency_p99"] <= m["latency_max"]  # type: ignore[operator]
    assert 0.0 <= m["cold_share"] <= 1.0  # type: ignore[operator]
    # Every claim row carries its phases, in order.
    warm = next(c for c in result.claims if c["warm"])
    assert warm["requested"] <= warm["picked"] <= warm["locked"] <= warm["delivered"]


def test_pool_levels_and_little_law(tiny: Scenario) -> None:
    """Pool levels are sampled; the measured refill time (Little's law) is near the step latencies' sum."""
    result = run_once(tiny)
    pool = result.pools["default/base"]
    assert len(result.series["t"]) == len(result.series["available:default/base"])
    assert max(result.series["available:default/base"]) <= 4
    assert pool["refill_s"] is not None and 1.0 < pool["refill_s"] < 3.0
    assert pool["available_mean"] is not None
    assert pool["idle_sandbox_hours"] == pytest.approx(
        pool["available_mean"] * tiny.duration / 3600, rel=0.1
    )


def test_holds_release_node_capacity(tiny: Scenario) -> None:
    """Sandboxes held for a while are killed after it; held forever, they pile up on the nodes."""
    short = run_once(apply_overrides(tiny, [("workloads[0].hold", "2s")]))
    forever = run_once(apply_overrides(tiny, [("workloads[0].hold", "forever")]))
    assert max(short.series["held"]) < 15
    assert max(forever.series["node_pods"]) > 3 * max(short.series["node_pods"])


def test_common_random_numbers_across_pool_sizes(tiny: Scenario) -> None:
    """The arrivals do not depend on the pool: two sizes see the same claims at the same times."""
    small = run_once(apply_overrides(tiny, [("pools.base.replicas", 1)]), keep_claims=True)
    large = run_once(apply_overrides(tiny, [("pools.base.replicas", 8)]), keep_claims=True)
    assert small.claims is not None and large.claims is not None
    assert [c["requested"] for c in small.claims] == pytest.approx(
        [c["requested"] for c in large.claims], abs=1e-9
    )
    assert small.metrics["cold_share"] > large.metrics["cold_share"]  # type: ignore[operator]


def test_waiting_instead_of_creating(tiny: Scenario) -> None:
    """Without create-on-no-stock nobody is cold: claims that find no stock retry instead."""
    text = TINY.replace("hold: exp(10s)", "hold: exp(10s)\n    claim: {create_on_no_stock: false}")
    result = run_once(apply_overrides(parse_scenario(text), [("pools.base.replicas", 2)]))
    assert result.metrics["cold_share"] == 0.0
    assert result.metrics["waited_share"] > 0.1  # type: ignore[operator]


def test_sandboxclaim_path_and_release() -> None:
    """SandboxClaims of two: each replica is one claim, measured from the claim's creation, then released."""
    text = TINY.replace(
        "hold: exp(10s)", "hold: 5s\n    claim: {path: sandboxclaim, replicas: 2}"
    ).replace("rate: 2", "rate: 0.5")
    result = run_once(parse_scenario(text), keep_claims=True)
    assert result.claims is not None
    assert result.metrics["claims"] == len(result.claims) and len(result.claims) % 2 == 0
    assert result.metrics["delivered"] == result.metrics["claims"]
    for row in result.claims:  # from the claim's creation, not from each replica's attempt
        assert row["delivered"] - row["requested"] == pytest.approx(row["latency"])
    held = result.series["held"]
    assert 0 < max(held) <= 12
    # Sandboxes are deleted once their hold is over: the count goes down as well as up.
    assert any(later < earlier for earlier, later in itertools.pairwise(held))


def test_in_place_image_and_csi_mounts(tiny: Scenario) -> None:
    """A claim that replaces the image waits for the pull and the restart; mounts add their time."""
    plain = run_once(tiny)
    inplace = run_once(
        apply_overrides(
            tiny,
            [
                ("workloads[0].claim.image", "registry.example.com/sandbox:v2"),
                ("workloads[0].claim.csi_mounts", 2),
            ],
        )
    )
    assert inplace.metrics["latency_p50"] > plain.metrics["latency_p50"] + 0.5  # type: ignore[operator]
    assert inplace.metrics["failed"] == 0


def test_in_place_cpu_resize(tiny: Scenario) -> None:
    """Claims that double their CPU wait for the resize and hold more of the nodes."""
    plain = run_once(apply_overrides(tiny, [("pools[0].cpu_limit", "1")]))
    resized = run_once(
        apply_overrides(
            tiny,
            [
                ("pools[0].cpu_limit", "1"),
                ("workloads[0].claim.cpu_request", "1"),
                ("workloads[0].claim.cpu_limit", "2"),
            ],
        )
    )
    assert resized.metrics["failed"] == 0
    assert resized.metrics["latency_p50"] > plain.metrics["latency_p50"] + 0.05  # type: ignore[operator]
    assert resized.metrics["node_cpu_mean"] > plain.metrics["node_cpu_mean"]  # type: ignore[operator]


def test_stop_ends_early_with_partial_results(tiny: Scenario) -> None:
    """A stop request ends the run at its next step; what was measured so far comes back, marked."""
    steps = 0

    def stop() -> bool:
        nonlocal steps
        steps += 1
        return steps > 300

    fractions: list[float] = []
    result = run_once(tiny, should_stop=stop, progress=fractions.append)
    assert result.interrupted
    assert len(result.series["t"]) == 301
    assert 0 < fractions[-1] < 1
    full = run_once(tiny)
    assert 0 < result.metrics["claims"] < full.metrics["claims"]  # type: ignore[operator]


def test_a_pool_that_cannot_fill_is_a_clear_error(tiny: Scenario) -> None:
    """No room for the pool: the run says which pool, how far it got, and why (the
    scheduler's message)."""
    cramped = apply_overrides(tiny, [("cluster.nodes", [{"name": "n", "count": 1, "max_pods": 2}])])
    with pytest.raises(
        RunError,
        match=r"pool default/base did not fill: 2 of 4 available .* unschedulable: "
        r"0/1 nodes are available: 1 Too many pods\.",
    ):
        run_once(cramped)


_SELECTIVE = """\
  - manifest: |
      apiVersion: agents.kruise.io/v1alpha1
      kind: SandboxSet
      metadata: {name: base, namespace: default}
      spec:
        replicas: 2
        template:
          spec:
            nodeSelector: {pool: gpu}
            containers: [{name: c, image: registry.example.com/x:v1}]
"""


def test_a_pool_no_node_can_take_says_why_as_the_scheduler_does() -> None:
    """The hint is the scheduler's own reason (here: no node has the pool's label), not a
    guess at the node count; once a node group carries the label, the pool fills."""
    text = TINY.replace("  - {name: base, replicas: 4}\n", _SELECTIVE).replace(
        "replications: 2", "replications: 1"
    )
    with pytest.raises(
        RunError,
        match=r"pool default/base did not fill: 0 of 2 available .* a pod of it is "
        r"unschedulable: 0/2 nodes are available: 2 node\(s\) didn't match Pod's node "
        r"affinity/selector\. preemption: ",
    ):
        run_once(parse_scenario(text))
    labelled = text.replace("{nodes: 2}", "{nodes: [{name: gpu, labels: {pool: gpu}}]}")
    assert run_once(parse_scenario(labelled)).metrics["claims"]


def test_a_pool_whose_image_never_runs_says_so_not_too_few_nodes() -> None:
    """Room enough, but the image is no valid reference: the reason is the container's
    (as ``wait_for_pool`` gives it), not a guess at the node count."""
    bad = _SELECTIVE.replace("            nodeSelector: {pool: gpu}\n", "").replace(
        "registry.example.com/x:v1", '"Bad Image"'
    )
    text = TINY.replace("  - {name: base, replicas: 4}\n", bad).replace(
        "replications: 2", "replications: 1"
    )
    with pytest.raises(RunError) as caught:
        run_once(parse_scenario(text))
    message = str(caught.value)
    assert message.startswith("pool default/base did not fill: 0 of 2 available")
    assert "a pod of it is not ready: " in message and "InvalidImageName" in message
    assert "enough nodes" not in message


def test_common_random_numbers_across_hold_times(tiny: Scenario) -> None:
    """Holds have a generator of their own: a sweep of the hold keeps the arrivals of each replication."""
    requested = []
    for hold in ("exp(10s)", "2s", "lognormal(median=5s, p99=1m)", "forever"):
        result = run_once(apply_overrides(tiny, [("workloads[0].hold", hold)]), keep_claims=True)
        assert result.claims is not None
        requested.append([c["requested"] for c in result.claims])
    assert all(times == pytest.approx(requested[0], abs=1e-9) for times in requested[1:])


def test_pod_slots_count_only_the_nodes_that_take_pods(tiny: Scenario) -> None:
    """A lost node's slots are no room: the share used and the free slots are those of the others."""
    lost = apply_overrides(
        tiny,
        [
            ("cluster.nodes", [{"name": "n", "count": 2, "max_pods": 40}]),
            ("workloads[0].hold", "forever"),
            ("faults", [{"kind": "node_loss", "start": "10s", "selector": {"node": "n-1"}}]),
        ],
    )
    result = run_once(lost)
    t, free, used = (result.series[k] for k in ("t", "free_pod_slots", "node_pods"))
    after = [i for i, x in enumerate(t) if x >= 11]
    # Both read n-2's 40 slots alone (the pods bound to it may briefly exceed them).
    assert after and all(free[i] <= 40 for i in after)
    assert all(free[i] == 0 or used[i] == pytest.approx((40 - free[i]) / 40) for i in after)
    assert result.metrics["free_pod_slots_min"] == min(
        free[i] for i, x in enumerate(t) if tiny.warmup <= x < tiny.horizon
    )


def test_sandboxclaim_replicas_that_fail_fail_at_their_claims_completion() -> None:
    """A replica never delivered fails when its claim completes (its claim timeout), not at
    the end of the run; a delivered replica counts its own attempts, not the claim's."""
    text = """\
name: partial
seed: 3
replications: 1
duration: 30s
drain: 1m
cluster: {nodes: 2}
pools:
  - {name: multi, replicas: 1}
workloads:
  - template: multi
    arrivals: {kind: constant, rate: 0.1}
    hold: 10s
    claim: {path: sandboxclaim, replicas: 3, create_on_no_stock: false, claim_timeout: 5s}
"""
    result = run_once(parse_scenario(text), keep_claims=True)
    assert result.claims is not None
    failed = [row for row in result.claims if row["error"]]
    delivered = [row for row in result.claims if row["delivered"] is not None]
    assert failed and delivered
    for row in failed:
        # completionTime is stored in whole seconds; the timeout's reconcile comes a little after.
        assert 4.0 <= row["failed"] - row["requested"] <= 7.0
    assert result.series["rate_failed"][-1] == 0.0
    assert min(row["attempts"] for row in delivered) == 1
    waited = result.metrics["waited_share"]
    assert waited is not None and waited < 1.0


def test_a_stop_ends_a_long_step_within_it(tiny: Scenario) -> None:
    """A stop is seen inside a step too: a step of minutes of claims (or of a clock that cannot
    advance) ends within a few thousand events, and the window ends at the last sample.

    Before, ``should_stop`` was asked only between steps, so a step that never ended (an
    arrival rate too high for the clock) could not be stopped at all.
    """
    one_step = apply_overrides(
        tiny, [("duration", "10m"), ("warmup", 0), ("sample_interval", "10m")]
    )
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1  # not at the first sample (t = 0): within the one long step after it

    result = run_once(one_step, should_stop=stop)
    assert result.interrupted
    assert result.series["t"] == [0.0]
    assert result.metrics["virtual_s"] < 60  # type: ignore[operator]  # far from the step's 600 s


def test_the_runner_claims_with_the_checked_request(tiny: Scenario) -> None:
    """An E2B workload's claims go through the create path's checks, as ``Cluster.create_sandbox``'s.

    A loaded scenario cannot hold a bad user (it is refused at load); one
    changed behind the validation is refused before the run starts, naming
    the field, rather than delivering sandboxes whose owner label no API
    server would store.
    """
    tampered = tiny.model_copy(deep=True)
    tampered.workloads[0].user = "not a label value!"
    with pytest.raises(
        RunError, match=r"^workloads\[0\]\.user: invalid value 'not a label value!'"
    ):
        run_once(tampered)


def _stop_at(fraction: float) -> tuple[Callable[[float], None], Callable[[], bool]]:
    """A progress callback and a stop check that stops the run once it is ``fraction`` done,
    as a Ctrl-C at that moment would."""
    seen = [0.0]

    def progress(p: float) -> None:
        seen[0] = p

    return progress, lambda: seen[0] >= fraction


def test_a_stopped_run_keeps_the_claims_that_ended_and_fails_none_in_flight(
    tiny: Scenario,
) -> None:
    """Stopped half-way, a run counts the claims of its window that ended before the stop; the
    claims still in flight are left out (and counted as such), not turned into failures.

    Before, every claim in flight at the stop counted as ``unfinished``, hence failed: a
    pool of 1 that never fails read as 5% failed, as if no drain had run.
    """
    scenario = apply_overrides(tiny, [("pools.base.replicas", 1), ("replications", 1)])
    progress, stop = _stop_at(0.5)
    result = run_once(scenario, should_stop=stop, progress=progress, keep_claims=True)
    assert result.interrupted
    assert result.in_flight_at_stop > 0  # cold claims of 1-3 s were under way
    m = result.metrics
    assert m["unfinished"] == 0 and m["failed"] == 0 and m["failed_share"] == 0
    assert "unfinished" not in result.failures
    assert result.claims is not None
    assert m["claims"] == m["delivered"] == len(result.claims)
    assert all(row["delivered"] is not None for row in result.claims)
    # The window ends at the last sample: what the run measured of the 40 s.
    assert result.measured_s == pytest.approx(result.series["t"][-1] - scenario.warmup)
    assert 0 < result.measured_s < scenario.duration
    assert result.pools["default/base"]["failed_share"] == 0


def test_a_complete_run_measured_its_whole_window(tiny: Scenario) -> None:
    """A run that was not stopped covers the scenario's duration, and leaves nothing out."""
    result = run_once(tiny)
    assert not result.interrupted
    assert result.measured_s == tiny.duration and result.in_flight_at_stop == 0


def test_a_run_stopped_in_the_warm_up_measures_nothing(tiny: Scenario) -> None:
    """Stopped before its window began, a run has no figure: no claim count, no node use, no
    idle hours (only the pool's size, which is a setting), so it moves no mean of its point.

    Before, its warm-up samples stood in for the window (node CPU of the warm-up) and its
    idle sandbox-hours read 0, which halved the point's mean.
    """
    progress, stop = _stop_at(0.05)  # 2.25 s into the 5 s warm-up
    result = run_once(tiny, replication=1, should_stop=stop, progress=progress)
    assert result.interrupted and result.measured_s == 0
    simulated = result.metrics["virtual_s"]
    assert simulated is not None and simulated < tiny.warmup
    measured = {k: v for k, v in result.metrics.items() if k != "virtual_s"}
    assert measured and all(v is None for v in measured.values()), measured
    pool = result.pools["default/base"]
    assert pool["replicas"] == 4
    assert all(v is None for k, v in pool.items() if k != "replicas"), pool
    assert result.failures == {} and result.warm_n == result.cold_n == 0


def test_a_run_result_shows_a_few_figures_not_its_time_series(tiny: Scenario) -> None:
    result = run_once(tiny, replication=0)
    text = repr(result)
    assert len(text) < 300, text
    assert text.startswith("<RunResult point={} replication=0 seed=")
    assert "claims=" in text and "failed_share=" in text
    assert result.series  # the data stays
