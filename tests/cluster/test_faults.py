"""Latency and fault injection (reference peers §5.1, §8): each fault has its effect."""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster
from simulator.context import CLOCK_END, DEFAULT_EPOCH
from simulator.faults import Fault, FaultInjector

from .conftest import pool_yaml


def test_set_latency_slows_warm_delivery(pooled: Cluster) -> None:
    """A slower agent-runtime /init shows directly in warm delivery latency."""
    pooled.set_latency("runtime.init", "fixed(800ms)")
    pooled.create_sandbox("base")
    rec = pooled.last_record()
    assert rec.warm and rec.latency is not None and rec.latency >= 0.8


def test_api_latency_spike_for_a_window(pooled: Cluster) -> None:
    """An api_latency fault adds its latency to API calls only while its window is open."""
    with pooled.fault("api_latency", latency="fixed(2s)", selector={"verb": "update"}):
        pooled.create_sandbox("base")
        slow = pooled.last_record().latency
    pooled.create_sandbox("base")
    fast = pooled.last_record().latency
    assert slow is not None and fast is not None and slow >= 2.0 > fast


_LOCK = {"client": "sandbox-manager", "verb": "update"}


def _delivered_after(cluster: Cluster, t0: float) -> float:
    cluster.run_until(lambda: bool(cluster.records) and cluster.last_record().done, timeout=500)
    delivered = cluster.last_record().delivered
    assert delivered is not None
    return delivered - t0


def test_clearing_an_api_latency_lets_the_request_it_holds_go_at_once(pooled: Cluster) -> None:
    """A claim's lock held by a 100 s spike goes on when the spike is cleared 1 s in (as
    removing a Toxiproxy latency toxic lets the data it holds through), not 100 s later."""
    t0 = pooled.now
    spike = pooled.inject("api_latency", latency="fixed(100s)", selector=_LOCK)
    pooled.submit_create("base")
    pooled.advance(1)
    pooled.clear_faults(spike.id)
    assert 1 <= _delivered_after(pooled, t0) < 2


def test_an_api_latency_whose_window_ends_mid_request_lets_it_go_then(pooled: Cluster) -> None:
    t0 = pooled.now
    pooled.inject("api_latency", latency="fixed(100s)", duration=1, selector=_LOCK)
    pooled.submit_create("base")
    assert 1 <= _delivered_after(pooled, t0) < 2


def test_a_held_request_keeps_the_latency_of_the_faults_still_in_force(pooled: Cluster) -> None:
    """Only the ended fault's draw is dropped: the request then waits out the others'."""
    t0 = pooled.now
    spike = pooled.inject("api_latency", latency="fixed(100s)", selector=_LOCK)
    pooled.inject("api_latency", latency="fixed(5s)", selector=_LOCK)
    pooled.submit_create("base")
    pooled.advance(1)
    pooled.clear_faults(spike.id)
    assert 5 <= _delivered_after(pooled, t0) < 6


def test_an_api_latency_that_ends_after_its_requests_leaves_the_run_as_it_was() -> None:
    """A spike cleared once the requests it slowed are done changes no event of the run."""

    def run(clear_at: float | None) -> str:
        cluster = Cluster(seed=3)
        cluster.apply(pool_yaml(replicas=5))
        cluster.wait_for_pool("base")
        spike = cluster.inject("api_latency", latency="uniform(1s, 2s)", duration=60)
        cluster.create_sandboxes(3, "base")
        if clear_at is not None:
            cluster.advance(clear_at - cluster.now)
            cluster.clear_faults(spike.id)
        cluster.advance(200 - cluster.now)
        return cluster.log.text()

    assert run(None) == run(120)


def test_api_conflicts_are_retried(pooled: Cluster) -> None:
    """Injected 409s on the lock make the manager retry; the claim still succeeds."""
    pooled.inject("api_conflict", selector={"verb": "update", "kind": "Sandbox"}, count=1)
    pooled.create_sandbox("base")
    rec = pooled.last_record()
    assert rec.delivered is not None and rec.attempts == 2


def test_api_errors_delay_pool_creation(cluster: Cluster) -> None:
    """5xx answers on creates for 20 s hold the pool back until the window closes."""
    cluster.inject(
        "api_error", code=503, selector={"verb": "create", "kind": "Sandbox"}, duration=20
    )
    cluster.apply(pool_yaml(replicas=3))
    cluster.advance(15)
    assert cluster.get("sbs", "base").status.available_replicas == 0
    cluster.wait_for_pool("base", timeout=120)


def test_image_pull_failure_then_recovery(cluster: Cluster) -> None:
    """Image pulls failing keep the pool creating; clearing the fault lets it fill."""
    f = cluster.inject("image_pull_failure")
    cluster.apply(pool_yaml(replicas=2))
    cluster.advance(60)
    sbs = cluster.get("sbs", "base")
    assert sbs.status.available_replicas == 0 and sbs.status.replicas == 2
    cluster.clear_faults(f.id)
    cluster.wait_for_pool("base", timeout=400)


def test_slow_image_pull(cluster: Cluster) -> None:
    """image_pull_slow makes the first fill take at least the injected pull time."""
    cluster.inject("image_pull_slow", latency="fixed(40s)")
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base", timeout=200)
    assert cluster.now >= 40


def test_node_loss_kills_its_sandboxes_and_the_pool_recovers(cluster: Cluster) -> None:
    """Losing a node fails the sandboxes on it; the pool replaces them on other nodes."""
    cluster.apply(pool_yaml(replicas=16))
    cluster.wait_for_pool("base")
    pods = cluster.list("pod", "default")
    victim = pods[0].spec["nodeName"]
    on_victim = {p.metadata.name for p in pods if p.spec["nodeName"] == victim}
    cluster.inject("node_loss", selector={"node": victim}, duration=600)
    cluster.advance(1)
    cluster.wait_for_pool("base", timeout=120)
    alive = {s.metadata.name for s in cluster.list("sbx", "default")}
    assert not (on_victim & alive)
    assert all(p.spec.get("nodeName") != victim for p in cluster.list("pod", "default"))


def test_pod_kill_kills_claimed_sandboxes(pooled: Cluster) -> None:
    """pod_kill fails running sandboxes; the E2B API no longer finds them."""
    sbx = pooled.create_sandbox("base")
    pooled.inject("pod_kill", selector={"namespace": "default"})
    pooled.advance(2)
    try:
        got = pooled.describe(pooled.sandbox_id(sbx))
    except ClaimError as err:
        assert err.code == 404
    else:
        assert got.status.phase in ("Failed", "Succeeded")


def test_an_acting_fault_starting_now_acts_at_once_on_the_virtual_clock(pooled: Cluster) -> None:
    """pod_kill at its start (now) fires when injected, not when the clock next moves: a clear
    right after it does not undo a kill that has begun."""
    sbx = pooled.create_sandbox("base")
    fault = pooled.inject("pod_kill", selector={"namespace": "default"})
    (fired,) = [f.fired for f in pooled.faults if f.id == fault.id]
    assert fired >= 1  # one per pod killed: the claimed one and the pool's
    pooled.clear_faults(fault.id)
    pooled.advance(5)
    with pytest.raises(ClaimError) as err:
        pooled.describe(pooled.sandbox_id(sbx))
    assert err.value.code == 404


def test_a_chaos_schedule_injecting_from_a_simpy_process_runs_as_before(pooled: Cluster) -> None:
    """Injected from inside a process, a fault runs nothing re-entrantly: a schedule the test
    stops at the instant of its next injection stops cleanly, with its faults in force."""
    log: list[tuple[str, float]] = []

    def chaos() -> Any:
        try:
            while True:
                yield pooled.env.timeout(5)
                pooled.inject("api_latency", latency="5ms", duration=1)
                log.append(("injected", pooled.now))
        except simpy.Interrupt:
            log.append(("stopped", pooled.now))

    def stopper(proc: simpy.Process) -> Any:
        yield pooled.env.timeout(6)
        yield pooled.env.timeout(4)
        proc.interrupt()  # the same instant as the schedule's second injection

    start = pooled.now
    proc = pooled.env.process(chaos())
    pooled.env.process(stopper(proc))
    pooled.advance(30)
    # Times after the pool filled: ``(start + 10) - start`` need not be 10 exactly.
    assert [(what, round(t - start, 9)) for what, t in log] == [
        ("injected", 5),
        ("injected", 10),
        ("stopped", 10),
    ]


def test_runtime_unreachable_times_out_init(pooled: Cluster) -> None:
    """An unreachable runtime costs the full per-attempt timeout on each of 5 attempts."""
    pooled.inject("runtime_unreachable", count=5)
    pooled.create_sandbox("base")
    rec = pooled.last_record()
    assert rec.attempts == 2 and rec.latency is not None and rec.latency > 5.0


def test_a_4xx_runtime_init_failure_is_tried_once_and_the_claim_retries(pooled: Cluster) -> None:
    """A 4xx from ``/init`` is not retried (upstream retries 5xx and transport errors only):
    the attempt fails after one ``/init`` try, and the manager claims another sandbox."""
    pooled.inject("runtime_init_failure", code=400, count=1)
    pooled.create_sandbox("base")
    failed = [str(line) for line in pooled.log if "runtime.init_failed" in str(line)]
    assert len(failed) == 1 and "attempts=1 last=status 400" in failed[0]
    assert pooled.last_record().attempts == 2


def test_pod_start_failure_fails_the_wait_fast_and_retries(cluster: Cluster) -> None:
    """A cold sandbox whose container fails to start fails wait-ready at once; the claim retries."""
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(1)
    cluster.inject("pod_start_failure", count=1)
    sbx = cluster.create_sandbox("base")
    rec = cluster.last_record()
    assert rec.warm is False and rec.attempts == 2
    assert rec.sandbox == f"default/{sbx.metadata.name}"
    # The first, failed sandbox was deleted rather than kept.
    assert [s.metadata.name for s in cluster.list("sbx", "default")] == [sbx.metadata.name]


def test_controller_stall_stops_replenishment(pooled: Cluster) -> None:
    """A stalled SandboxSet controller replenishes nothing until the stall ends."""
    pooled.inject("controller_stall", selector={"controller": "sandboxset"}, duration=30)
    pooled.create_sandboxes(3, "base")
    pooled.advance(20)
    unclaimed = pooled.list("sbx", "default", labels={keys.LABEL_SANDBOX_CLAIMED: "false"})
    assert len(unclaimed) == 2
    pooled.advance(30)
    pooled.wait_for_pool("base", timeout=60)


def test_scheduled_fault_waits_for_its_start(pooled: Cluster) -> None:
    """A fault with a start time does nothing before it."""
    pooled.inject("runtime_init_failure", start=pooled.now + 100, duration=10)
    pooled.create_sandbox("base")
    assert pooled.last_record().attempts == 1


def test_a_stall_ends_with_its_with_block(pooled: Cluster) -> None:
    """Leaving ``with cluster.fault("controller_stall", duration=...)`` lets the controller go on at once."""
    with pooled.fault("controller_stall", selector={"controller": "sandboxset"}, duration=300):
        pooled.create_sandbox("base")
        pooled.advance(10)
        unclaimed = pooled.list("sbx", "default", labels={keys.LABEL_SANDBOX_CLAIMED: "false"})
        assert len(unclaimed) == 4
    ended = pooled.now
    pooled.wait_for_pool("base", timeout=60)
    # The replacement's whole start-up (pod, cached image, runtime), not the 290 s left.
    assert pooled.now - ended < 10


def test_the_end_of_a_fault_block_clears_its_own_fault_only(cluster: Cluster) -> None:
    """A block whose fault was cleared early leaves a later fault that took the freed id."""
    with cluster.fault("api_latency", id="slow", latency="fixed(1s)"):
        cluster.clear_faults("slow")  # ended early on purpose
        cluster.inject("api_error", id="slow", code=503)  # a new fault reusing the id
    assert [(f.id, f.kind) for f in cluster.faults] == [("slow", "api_error")]


def _run_with(*fault: tuple[str, dict[str, Any]]) -> str:
    cluster = Cluster(seed=3)
    cluster.apply(pool_yaml(replicas=5))
    cluster.wait_for_pool("base")
    for kind, fields in fault:
        cluster.inject(kind, **fields)
    cluster.create_sandboxes(5, "base")
    cluster.advance(30)
    return cluster.log.text()


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("api_error", {}),
        ("api_latency", {"latency": "fixed(1s)"}),
        ("runtime_init_failure", {}),
        ("node_loss", {}),
        ("pod_kill", {}),
        ("controller_stall", {}),
    ],
)
def test_a_fault_of_probability_0_leaves_the_run_as_it_is_without_it(
    kind: str, fields: dict[str, Any]
) -> None:
    """Probability 0 is "never fires" (Toxiproxy's ``toxicity: 0``): it draws nothing, so a
    sweep whose baseline is p=0 runs the same as the run with no fault, byte for byte."""
    assert _run_with((kind, {"probability": 0.0, **fields})) == _run_with()


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("pod_kill", {"selector": {"template": "nope"}}),
        ("controller_stall", {"selector": {"controller": "sandboxclaim"}, "duration": 5}),
    ],
    ids=["pod_kill-of-no-pod", "stall-of-an-idle-controller"],
)
def test_a_fault_that_matches_nothing_leaves_the_run_as_it_is_without_it(
    kind: str, fields: dict[str, Any]
) -> None:
    """An uncertain fault draws its probability only when it matches something: a pod kill
    selecting no pod, or a stall of a controller that never works (no SandboxClaim here),
    changes nothing, byte for byte."""
    assert _run_with((kind, {"probability": 0.5, **fields})) == _run_with()


def test_a_node_loss_with_no_node_to_take_leaves_the_run_as_it_is_without_it() -> None:
    """A node loss without a ``node`` selector, at a moment no node is ready, draws nothing."""

    def run(*, idle_loss: bool) -> str:
        cluster = Cluster(seed=3, nodes=[{"name": "node-1"}])
        cluster.apply(pool_yaml(replicas=2))
        cluster.wait_for_pool("base")
        cluster.inject("node_loss", selector={"node": "node-1"}, duration=20)
        if idle_loss:
            cluster.inject("node_loss", probability=0.5)
        cluster.advance(60)  # the node comes back and the pool refills: draws follow
        return cluster.log.text()

    assert run(idle_loss=True) == run(idle_loss=False)


def test_a_stall_that_held_a_controller_has_fired(pooled: Cluster) -> None:
    """``fired`` shows whether a stall held anything: it counts the reconciles it held."""
    idle = pooled.inject("controller_stall", selector={"controller": "sandboxclaim"}, duration=20)
    busy = pooled.inject("controller_stall", selector={"controller": "sandboxset"}, duration=20)
    pooled.create_sandbox("base")
    pooled.advance(30)
    assert idle.fired == 0  # no SandboxClaim: nothing to hold
    assert busy.fired >= 1


def test_fired_is_an_output_not_an_input(pooled: Cluster) -> None:
    """A fault given ``fired`` is refused (it would start used up), and nothing is added."""
    with pytest.raises(InvalidError) as info:
        pooled.inject("api_conflict", count=2, fired=2)
    assert info.value.field == "fired"
    assert "output" in info.value.reason
    assert pooled.faults == []


@pytest.mark.parametrize("knobs", [{}, {"claim_workers": 10}], ids=["alone", "beside-a-knob"])
def test_a_bad_latency_is_named_by_its_name(knobs: dict[str, Any]) -> None:
    """Cluster(latencies=...) names ``latencies.<name>``, as set_latency does, whatever knobs come with it."""
    with pytest.raises(InvalidError) as info:
        Cluster(latencies={"api.get": "1s", "image.pull": "bogus"}, **knobs)
    assert info.value.field == "latencies.image.pull"
    assert "invalid latency 'bogus'" in info.value.reason


def test_a_latency_that_could_draw_past_a_float_is_refused_wherever_it_is_given(
    pooled: Cluster,
) -> None:
    """``lognormal(median=1ms, p99=1e300)`` (each parameter finite, its sigma 300) is refused
    with the field it came in, and changes nothing: before, it was taken, and the first
    draw past what a float holds killed the controller that drew it, for the rest of the run."""
    spec = "lognormal(median=1ms, p99=1e300)"
    why = "p99 (1e+300) must be at most 5.49e+34 s with median 0.001 s"
    with pytest.raises(InvalidError) as info:
        Cluster(latencies={"watch.lag": spec})
    assert (info.value.field, why in info.value.reason) == ("latencies.watch.lag", True)
    log, profile = pooled.log.text(), pooled.profile
    with pytest.raises(InvalidError) as info:
        pooled.set_latency("watch.lag", spec)
    assert (info.value.field, why in info.value.reason) == ("latencies.watch.lag", True)
    with pytest.raises(InvalidError) as info:
        pooled.inject("api_latency", latency=spec)
    assert (info.value.field, why in info.value.reason) == ("latency", True)
    assert (pooled.log.text(), pooled.profile, pooled.faults) == (log, profile, [])


def test_a_bad_knob_beside_good_latencies_is_named_knobs() -> None:
    """Only a bad latency is blamed on the latencies."""
    with pytest.raises(InvalidError) as info:
        Cluster(latencies={"image.pull": "1s"}, claim_workers=0)
    assert info.value.field == "knobs"
    assert "claim_workers" in info.value.reason


def test_a_fault_model_injected_again_starts_its_count_afresh(pooled: Cluster) -> None:
    """Injecting a used Fault object again does not carry its ``fired`` over (it would start used up)."""
    used = pooled.inject("api_conflict", count=1, selector={"verb": "update", "kind": "Sandbox"})
    pooled.create_sandbox("base")
    assert used.fired == 1
    pooled.clear_faults()
    again = pooled.ctx.faults.inject(used)
    assert again.fired == 0 and again.active(pooled.now)


def test_a_generated_fault_id_skips_an_id_the_user_chose(cluster: Cluster) -> None:
    """An id chosen by the caller never makes a later inject without an id fail.

    Generated ids look like chosen ones (``<kind>-<n>``), so the generator steps over
    the ids in force; a chosen id that is in use is still refused, naming ``id``.
    """
    chosen = cluster.inject("api_error", id="api_error-1", probability=0.1)
    taken = cluster.inject("api_error", id="api_error-3", probability=0.1)
    first = cluster.inject("api_error", probability=0.2)
    second = cluster.inject("api_error", probability=0.2)
    ids = [f.id for f in cluster.faults]
    assert ids == [chosen.id, taken.id, first.id, second.id]
    assert len(set(ids)) == 4
    with pytest.raises(InvalidError) as info:
        cluster.inject("api_error", id=first.id)
    assert info.value.field == "id" and "already in use" in info.value.reason
    assert [f.id for f in cluster.faults] == ids


def test_a_fault_that_has_ended_is_listed_but_no_longer_consulted(pooled: Cluster) -> None:
    """A closed window or a used-up count ends a fault: it stays in ``cluster.faults`` with what
    it did (``fired``) until cleared, but the model no longer consults it, so a chaos
    schedule costs no more at each API call than the faults that can still act."""
    used = pooled.inject("api_conflict", count=1, selector={"verb": "update", "kind": "Sandbox"})
    windows = [
        pooled.inject("api_latency", start=pooled.now + 2 * i, duration=1, latency="10ms")
        for i in range(50)
    ]
    lasting = pooled.inject("api_error", probability=0.001, selector={"verb": "get"})
    pooled.create_sandbox("base")
    pooled.advance(120)
    pooled.create_sandbox("base")  # consults them all again, after every window
    assert used.fired == 1
    assert sum(f.fired for f in windows) > 0
    assert pooled.faults == [used, *windows, lasting]
    injector = pooled.ctx.faults
    assert (injector.consulted("api_conflict"), injector.consulted("api_latency")) == ([], [])
    assert injector.consulted("api_error") == [lasting]
    pooled.clear_faults(used.id)  # an ended fault is cleared as any other
    assert used not in pooled.faults


def test_acting_faults_end_after_their_moment(cluster: Cluster) -> None:
    """A pod kill ends once it has acted; a node loss lasts its window (or until cleared)."""
    cluster.apply(pool_yaml(replicas=4))
    cluster.wait_for_pool("base")
    kill = cluster.inject("pod_kill", count=1, start=cluster.now + 1)
    brief = cluster.inject("node_loss", selector={"node": "node-1"}, duration=30)
    lasting = cluster.inject("node_loss", selector={"node": "node-2"})
    cluster.advance(5)
    assert kill.fired == 1
    injector = cluster.ctx.faults
    assert injector.consulted("pod_kill") == []
    assert injector.consulted("node_loss") == [brief, lasting]
    cluster.advance(60)
    cluster.inject("api_error", probability=0.001)  # an inject drops what has ended
    assert injector.consulted("node_loss") == [lasting]
    assert cluster.faults[:3] == [kill, brief, lasting]


def test_an_advance_landing_on_an_acting_faults_start_or_end_sees_it_act() -> None:
    """Acting faults hold their window as consulted ones do (``start <= now < start +
    duration``): an ``advance`` that lands on the start has killed and lost, one that
    lands on the end has recovered the node, with no ``advance(0)`` after it."""
    cluster = Cluster(seed=1, nodes=2)
    cluster.apply(pool_yaml(replicas=4))
    cluster.wait_for_pool("base")
    cluster.advance(20 - cluster.now)
    kill = cluster.inject("pod_kill", start=30, selector={"node": "node-1"})
    loss = cluster.inject("node_loss", start=30, duration=10, selector={"node": "node-2"})
    cluster.advance(10)
    assert cluster.now == 30
    assert kill.fired >= 1 and loss.fired == 1
    assert [e.kind for e in cluster.log.of_kind("node.lost")] == ["node.lost"]
    cluster.advance(10)
    assert cluster.now == 40
    assert [e.kind for e in cluster.log.of_kind("node.recovered")] == ["node.recovered"]


def test_an_advance_over_a_node_loss_s_whole_window_lands_on_a_recovered_node() -> None:
    """One ``advance`` from before a ``node_loss``'s start onto its ``start + duration``
    has seen the node lost and come back: the end belongs to what follows the window, as
    when the start and the end are reached by two advances. (The end was timed only
    when the loss acted, after the advance's own stop at that instant: the node stayed
    lost until the next ``advance(0)``.)"""
    cluster = Cluster(seed=1, nodes=3)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.advance(20 - cluster.now)
    loss = cluster.inject("node_loss", start=30, duration=10, selector={"node": "node-2"})
    cluster.advance(20)
    assert cluster.now == 40
    assert loss.fired == 1
    assert [(e.time, e.detail) for e in cluster.log.of_kind("node.")] == [
        (30, "node-2 fault=node_loss-1"),
        (40, "node-2"),
    ]
    assert cluster.nodes.ready_nodes() == ["node-1", "node-2", "node-3"]


def test_an_acting_fault_injected_during_an_advance_acts_when_the_advance_lands_on_it() -> None:
    """A fault injected from inside the simulation (a SimPy process: a chaos schedule) while
    an ``advance`` runs holds its window as one injected before it: the advance that lands
    on its ``start`` has seen it act, and one landing on its ``start + duration`` has seen
    the node come back. (Its timers were ordered after the stop that advance had already
    set for that instant: the loss acted only at the next ``advance(0)``.)"""
    cluster = Cluster(seed=1, nodes=3)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.advance(20 - cluster.now)
    injected: list[Fault] = []

    def chaos() -> Generator[simpy.Event, Any, None]:
        yield cluster.env.timeout(5)
        injected.append(
            cluster.inject("node_loss", start=30, duration=10, selector={"node": "node-2"})
        )
        injected.append(cluster.inject("pod_kill", start=40, selector={"node": "node-1"}))

    cluster.env.process(chaos())
    cluster.advance(10)
    assert cluster.now == 30
    loss, kill = injected
    assert loss.fired == 1 and cluster.nodes.ready_nodes() == ["node-1", "node-3"]
    cluster.advance(10)
    assert cluster.now == 40
    assert cluster.nodes.ready_nodes() == ["node-1", "node-2", "node-3"]
    assert kill.fired >= 1
    assert [(e.time, e.kind) for e in cluster.log.of_kind("node.")] == [
        (30, "node.lost"),
        (40, "node.recovered"),
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Fault(kind="api_error", probability=p),
        lambda p: Fault.model_validate({"kind": "api_error", "probability": p}),
        # Planning's fault schedules build Faults and inject them without Cluster.inject.
        lambda p: FaultInjector(lambda: 0.0, random.Random(0)).inject(
            kind="api_error", probability=p
        ),
    ],
    ids=["model", "validate", "injector"],
)
def test_a_nan_probability_is_no_number_between_0_and_1(make: Any) -> None:
    """NaN fails every bound: the Fault model itself says what a probability must be, not
    "must be <= 1.0" (as if it were too big), wherever the Fault is made."""
    with pytest.raises(ValueError, match=r"must be a number between 0 and 1, got nan") as info:
        make(float("nan"))
    assert "<=" not in str(info.value) and ">=" not in str(info.value)
    if isinstance(info.value, InvalidError):
        assert info.value.field == "probability"


def test_the_selector_of_a_fault_in_force_is_read_only(pooled: Cluster) -> None:
    """The Fault ``inject`` and ``faults`` hand out cannot change the fault in force through its
    selector either (an edit of it made the fault match what ``inject`` never checked): each
    edit raises InvalidError naming ``selector``, and the fault keeps acting on its own targets.
    A copy (``dict(...)``, ``model_copy``) is the caller's to edit."""
    wanted = {"verb": "update", "kind": "Sandbox"}
    fault = pooled.inject("api_conflict", count=1, selector=dict(wanted))
    edits: list[Callable[[dict[str, str]], object]] = [
        lambda s: s.__setitem__("verb", "create"),
        lambda s: s.__delitem__("kind"),
        lambda s: s.update(verb="create"),
        lambda s: s.pop("verb"),
        lambda s: s.popitem(),
        lambda s: s.clear(),
        lambda s: s.setdefault("client", "kube-scheduler"),
        lambda s: s.__ior__({"verb": "create"}),
    ]
    for view in (fault, pooled.faults[0]):
        for edit in edits:
            with pytest.raises(InvalidError) as err:
                edit(view.selector)
            assert err.value.field == "selector" and "read-only" in err.value.reason
    assert pooled.ctx.faults.faults[0].selector == wanted
    pooled.create_sandbox("base")
    assert fault.fired == 1  # it still fails the sandbox update it was injected for
    # Read as a plain mapping: dumped (the admin API's JSON), copied, edited as a copy.
    assert fault.model_dump(mode="json")["selector"] == wanted
    mine = dict(fault.selector)
    mine["verb"] = "create"
    deep = fault.model_copy(deep=True)
    deep.selector = mine
    assert (copy.deepcopy(fault).selector, pooled.faults[0].selector) == (wanted, wanted)
    assert pickle.loads(pickle.dumps(fault.model_copy())).selector == wanted


def test_a_fault_model_injected_shares_no_selector_with_its_caller(cluster: Cluster) -> None:
    """A Fault object injected is copied: the caller's selector edited afterwards (a schedule
    reusing its Fault) does not change the fault in force."""
    mine = Fault(kind="api_conflict", selector={"verb": "update"})
    injected = cluster.ctx.faults.inject(mine)
    mine.selector["verb"] = "create"
    assert injected.selector == {"verb": "update"}


@pytest.mark.parametrize("kind", ["pod_kill", "node_loss", "api_error"])
def test_a_fault_whose_window_passes_the_clocks_end_is_refused_and_adds_nothing(
    kind: str,
) -> None:
    """The clock stops at CLOCK_END: a fault starting later could never act, and the timer
    of its start (or of its end) would keep the model from ever going idle."""
    cluster = Cluster(seed=1, nodes=1, epoch=DEFAULT_EPOCH)
    end = (CLOCK_END - DEFAULT_EPOCH).total_seconds()

    with pytest.raises(InvalidError) as late:
        cluster.inject(kind, start=1e15)
    with pytest.raises(InvalidError) as long:
        cluster.inject(kind, start=end - 10, duration=11)

    assert late.value.field == "start"
    assert late.value.reason == (
        f"must be at most {end:g} (9900-01-24T23:59:59Z, where the clock stops): "
        "a fault starting later could never act, got 1e+15"
    )
    assert long.value.field == "duration"
    assert long.value.reason == (
        "must end the fault's window by 9900-01-24T23:59:59Z, where the clock stops "
        "(at most 10 s after its start); omit it for a fault in force until cleared, got 11"
    )
    assert cluster.faults == []
    # The last instant the clock reaches is still a start, and a window may close there.
    assert cluster.inject(kind, start=end - 10, duration=10).start == end - 10
    assert cluster.inject(kind, start=end).start == end


@pytest.mark.parametrize(
    ("now", "duration", "step"),
    [(21.5, 1e-320, 3.552713678800501e-15), (1e8, "1ns", 1.4901161193847656e-08)],
    ids=["denormal", "1ns-at-1e8"],
)
def test_a_duration_that_adds_nothing_to_the_start_is_refused_as_0_is(
    now: float, duration: float | str, step: float
) -> None:
    """Under the clock's step at its start, ``start + duration == start``: the window would
    close as it opens, and the fault (a pod_kill "starting now") never act. Before, it was
    taken, listed with ``fired == 0`` and a ``fault.window_closed`` line; now it is refused
    naming ``duration``, and nothing is added or logged. A duration of one step acts."""
    cluster = Cluster(seed=2, nodes=1)
    cluster.apply(pool_yaml(replicas=2))
    cluster.advance(now)
    log = cluster.log.text()

    with pytest.raises(InvalidError) as info:
        cluster.inject("pod_kill", duration=duration)

    assert info.value.field == "duration"
    assert info.value.reason.startswith(f"must be at least {step!r} s at a start of {now:g} s")
    assert "the window would close as it opens" in info.value.reason
    assert (cluster.faults, cluster.log.text()) == ([], log)
    assert cluster.inject("pod_kill", duration=step).fired == 2


def test_clear_fault_clears_that_fault_not_a_later_one_under_its_id() -> None:
    """By identity, as a ``fault`` block's end: a fault cleared by id frees the id, and a
    fault injected later may take it; clearing the first one again clears nothing."""
    cluster = Cluster(seed=1)
    first = cluster.inject("api_error", probability=0.5)
    cluster.clear_faults(first.id)
    later = cluster.inject("api_error", probability=0.25, id=first.id)
    assert cluster.clear_fault(first) is False
    assert [f.probability for f in cluster.faults] == [0.25]
    assert cluster.clear_fault(cluster.faults[0]) is True
    assert cluster.faults == []
    with pytest.raises(InvalidError) as err:
        cluster.clear_fault(later.id)  # type: ignore[arg-type]
    assert err.value.field == "fault"
