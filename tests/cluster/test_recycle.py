"""Recycling: a killed ``cleanup-enabled`` sandbox returns to its pool (reference §4, §8 #15).

The kill sets the trigger; the Sandbox controller holds the sandbox in phase
``Recycling`` for the grace period (10 s), then resets its metadata and gives
it back to its SandboxSet, which counts it again.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandbox import ConditionType
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.recycle import ANN_CLEANUP
from pytest_kruise_agents.claiming.state import is_controlled_by_sandboxset
from pytest_kruise_agents.claiming.timeouts import LATEST
from pytest_kruise_agents.claiming.view import e2b_state
from simulator.cluster import DEFAULT_USER, Cluster

ENABLED = "agents.kruise.io/cleanup-enabled"
RETAIN = "agents.kruise.io/cleanup-retain-on-failure"


def recycling_pool(replicas: int = 2, annotations: Mapping[str, str] | None = None) -> str:
    """A pool whose pod template enables recycling (plus ``annotations``)."""
    extra = "".join(f'        {k}: "{v}"\n' for k, v in (annotations or {}).items())
    return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: py, namespace: default}}
spec:
  replicas: {replicas}
  runtimes: [{{name: agent-runtime}}]
  template:
    metadata:
      annotations:
        {ENABLED}: "true"
{extra}    spec:
      containers: [{{name: main, image: registry.example.com/py:1}}]
"""


def claimed(cluster: Cluster, **kwargs: Any) -> str:
    """Claim one sandbox of ``py`` and return its E2B id."""
    sbx = cluster.create_sandbox("py", timeout=600, **kwargs)
    return f"default--{sbx.metadata.name}"


def recycling_reason(cluster: Cluster, name: str) -> str | None:
    cond = find_condition(cluster.get("sbx", name).status.conditions, "Recycling")
    return cond.reason if cond is not None else None


def test_a_killed_sandbox_goes_back_to_its_pool_clean() -> None:
    """Recycling for the grace period, then owned by its set again, without the claim's keys."""
    cluster = Cluster(seed=4)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster, metadata={"user": "alice", "label:team": "ml"})
    name = sid.split("--")[1]
    cluster.kill(sid)
    killed_at = cluster.now
    cluster.run_until(lambda: cluster.get("sbx", name).status.phase == "Recycling")
    assert cluster.get("sbx", name).metadata.annotations[ANN_CLEANUP] == "true"
    # Until the reset the sandbox is its caller's, and it lists as paused.
    listed, _ = cluster.list_sandboxes()
    assert [s.metadata.name for s in listed] == [name]
    cluster.run_until(lambda: cluster.get("sbx", name).status.phase == "Running", timeout=30)
    assert 9 <= cluster.now - killed_at <= 12  # the start has whole seconds

    sbx = cluster.get("sbx", name)
    assert sbx.status.recycled_count == 1
    assert recycling_reason(cluster, name) == "RecyclingSucceeded"
    ref = sbx.metadata.controller_ref()
    assert ref is not None and (ref.kind, ref.name) == ("SandboxSet", "py")
    assert sbx.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] == "false"
    assert "team" not in sbx.metadata.labels
    assert set(sbx.metadata.annotations) == {ENABLED}
    assert sbx.spec.shutdown_time is None and sbx.spec.pause_time is None
    assert cluster.list_sandboxes() == ([], None)
    assert [e.detail for e in cluster.log.of_kind("sandbox.recycled")] == [
        f"default/{name} set=py count=1"
    ]


def test_the_recycling_condition_is_a_condition_type() -> None:
    """Every condition type a recycled sandbox carries is a ``ConditionType`` member,
    ``Recycling`` included, so that a reader can match on the enum."""
    cluster = Cluster(seed=4)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    cluster.kill(sid)
    cluster.advance(20)
    written = {c.type for s in cluster.list("sbx") for c in s.status.conditions}
    assert ConditionType.RECYCLING in written
    assert written <= set(ConditionType)


def test_a_killed_sandbox_reads_paused_from_the_kill_on() -> None:
    """Before the controller's Recycling, describe and list say paused, as the traffic does,
    and a connect cannot have it back."""
    cluster = Cluster(seed=4)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    cluster.kill(sid)
    assert e2b_state(cluster.describe(sid), cluster.now_dt()) == "paused"
    # The list reads the manager's cache: once it holds the kill's write (one watch lag).
    assert cluster.run_until(lambda: bool(cluster.list_sandboxes(states=("paused",))[0]), timeout=1)
    assert cluster.get("sbx", sid.split("--")[1]).status.phase == "Running"  # not moved yet
    assert cluster.list_sandboxes(states=("running",)) == ([], None)
    with pytest.raises(ClaimError) as info:
        cluster.connect(sid)
    assert info.value.code == 404


def test_a_recycled_sandbox_spares_a_cold_start_when_capacity_is_short() -> None:
    """One pod fits: the replacement stays Pending, the recycled sandbox rejoins and is claimed.

    Back in its pool the recycled sandbox makes the pool one too big; scale-down
    takes the Pending replacement first (reference §3's order), so the next
    claim is warm and no new pod had to start.
    """
    cluster = Cluster(seed=4, nodes=[{"name": "n1", "cpu": "8", "memory": "16Gi", "max_pods": 1}])
    cluster.apply(recycling_pool(replicas=1))
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    name = sid.split("--")[1]
    cluster.advance(5)
    (replacement,) = [s for s in cluster.list("sbx") if s.metadata.name != name]
    assert replacement.status.phase == "Pending"  # no room for its pod
    cluster.kill(sid)
    cluster.run_until(lambda: recycling_reason(cluster, name) == "RecyclingSucceeded")
    cluster.advance(5)
    assert [s.metadata.name for s in cluster.list("sbx")] == [name]
    again = cluster.create_sandbox("py", timeout=600)
    assert again.metadata.name == name and cluster.records[-1].warm is True
    assert again.metadata.annotations[keys.ANN_OWNER] == cluster.records[-1].owner


def test_only_enabled_running_sandboxes_are_recycled() -> None:
    """Without ``cleanup-enabled``, or paused, a kill deletes as always."""
    cluster = Cluster(seed=4)
    cluster.apply(recycling_pool().replace(f'{ENABLED}: "true"', f'{ENABLED}: "false"'))
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    cluster.kill(sid)
    cluster.advance(1)
    assert all(s.metadata.name != sid.split("--")[1] for s in cluster.list("sbx"))

    cluster = Cluster(seed=4)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    cluster.pause(sid)
    cluster.advance(10)
    cluster.kill(sid)
    cluster.advance(1)
    assert all(s.metadata.name != sid.split("--")[1] for s in cluster.list("sbx"))
    assert not cluster.log.of_kind("manager.recycle")


def test_a_sandbox_with_volume_claim_templates_is_never_recycled() -> None:
    """A PVC-backed sandbox keeps its user's data (reference §4: "rejected with condition if
    PVC-backed"): a trigger set by hand leaves it ``Running`` with ``Recycling``
    ``False/RecyclingRejected``, and a kill deletes it rather than set a trigger that would
    be refused."""
    cluster = Cluster(seed=4)
    claims = (
        "  volumeClaimTemplates: [{metadata: {name: data},"
        " spec: {resources: {requests: {storage: 1Gi}}}}]\n"
    )
    cluster.apply(recycling_pool().replace("  template:\n", claims + "  template:\n", 1))
    cluster.wait_for_pool("py")
    by_hand = claimed(cluster).split("--")[1]
    killed = claimed(cluster).split("--")[1]
    sbx = cluster.get("sbx", by_hand)
    assert sbx.spec.volume_claim_templates
    sbx.metadata.annotations[ANN_CLEANUP] = "true"
    cluster.apply(sbx)
    cluster.advance(15)
    sbx = cluster.get("sbx", by_hand)
    cond = find_condition(sbx.status.conditions, "Recycling")
    assert cond is not None
    assert (sbx.status.phase, cond.status, cond.reason, cond.message) == (
        "Running",
        "False",
        "RecyclingRejected",
        "a sandbox with volumeClaimTemplates cannot be recycled",
    )
    assert sbx.status.recycled_count is None
    cluster.kill(f"default--{killed}")
    cluster.advance(1)
    assert all(s.metadata.name != killed for s in cluster.list("sbx"))
    assert not cluster.log.of_kind("manager.recycle")


def test_the_v0_3_0_profile_deletes_what_it_kills() -> None:
    """Recycling came after the tag (reference §4 "[since v0.3.0]"): a kill deletes."""
    cluster = Cluster(seed=4, profile="openkruise-v0.3.0")
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    cluster.kill(sid)
    cluster.advance(1)
    assert all(s.metadata.name != sid.split("--")[1] for s in cluster.list("sbx"))
    assert not cluster.log.of_kind("manager.recycle")


def test_a_recycled_sandbox_keeps_the_image_and_cpu_its_last_claim_gave_it() -> None:
    """``docs/fidelity.md``, Sandbox controller (in-place updates): the reset drops the claim's
    metadata, not its in-place update, so the sandbox rejoins its pool running the claim's
    image and CPU, its template saying so too."""
    cluster = Cluster(seed=4)
    cpu = "image: registry.example.com/py:1, resources: {requests: {cpu: 500m}}}"
    cluster.apply(recycling_pool().replace("image: registry.example.com/py:1}", cpu))
    cluster.wait_for_pool("py")
    sid = claimed(
        cluster,
        metadata={
            "e2b.agents.kruise.io/image": "registry.example.com/py:2",
            "e2b.agents.kruise.io/cpu-request": "1",
        },
    )
    name = sid.split("--")[1]
    cluster.kill(sid)
    cluster.run_until(lambda: recycling_reason(cluster, name) == "RecyclingSucceeded", timeout=30)
    back = cluster.get("sbx", name)
    assert is_controlled_by_sandboxset(back)
    assert back.spec.template is not None
    for container in (
        back.spec.template["spec"]["containers"][0],
        cluster.get("Pod", name).spec["containers"][0],
    ):
        assert container["image"] == "registry.example.com/py:2"
        assert container["resources"]["requests"] == {"cpu": "1"}


def test_the_v0_3_0_profile_still_recycles_on_a_trigger_set_by_hand() -> None:
    """``docs/fidelity.md``, Sandbox controller: the profile only stops the manager's kill
    from setting the trigger (``recycle_on_kill``); the Sandbox controller does not read the
    profile, so a ``cleanup`` trigger written by hand on a ``cleanup-enabled`` sandbox is
    recycled back to its pool as under ``openkruise-head``."""
    cluster = Cluster(seed=4, profile="openkruise-v0.3.0")
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    name = claimed(cluster).split("--")[1]
    sbx = cluster.get("sbx", name)
    sbx.metadata.annotations[ANN_CLEANUP] = "true"
    cluster.apply(sbx)
    cluster.run_until(lambda: recycling_reason(cluster, name) == "RecyclingSucceeded", timeout=30)
    back = cluster.get("sbx", name)
    assert back.status.recycled_count == 1
    assert is_controlled_by_sandboxset(back)


def test_a_connect_to_a_killed_sandbox_is_a_404_and_never_reaches_the_next_holder() -> None:
    """Listed as paused while it recycles, the sandbox is no longer its killer's to resume.

    Before, the connect waited for it to run again and, once another user had
    claimed it from the pool, answered with that user's sandbox and moved its
    timeout.
    """
    # One pod fits: the recycled sandbox, not a replacement, is the pool's next one.
    cluster = Cluster(seed=4, nodes=[{"name": "n1", "cpu": "8", "memory": "16Gi", "max_pods": 1}])
    cluster.apply(recycling_pool(replicas=1))
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    cluster.kill(sid)
    cluster.advance(1)
    with pytest.raises(ClaimError) as err:
        cluster.connect(sid, 600, user=cluster.records[-1].owner)
    assert err.value.code == 404
    cluster.advance(15)
    bob = cluster.create_sandbox("py", timeout=120, user="bob")
    assert bob.metadata.name == sid.split("--")[1]
    with pytest.raises(ClaimError) as err:
        cluster.connect(sid, 3600)
    assert err.value.code == 404
    assert cluster.get("sbx", bob.metadata.name).spec.shutdown_time == bob.spec.shutdown_time


def pause_and_kill(cluster: Cluster, sid: str, kill_first: bool) -> dict[str, object]:
    """A pause and a kill of ``sid`` sent at the same instant; what each answered."""
    answers: dict[str, object] = {}
    manager = cluster.manager

    def pause() -> Generator[simpy.Event, Any, None]:
        try:
            yield from manager.pause("default", DEFAULT_USER, sid)
            answers["pause"] = "ok"
        except ClaimError as err:
            answers["pause"] = err.code

    def kill() -> Generator[simpy.Event, Any, None]:
        try:
            yield from manager.kill("default", DEFAULT_USER, sid)
            answers["kill"] = "ok"
        except ClaimError as err:
            answers["kill"] = err.code

    for op in (kill(), pause()) if kill_first else (pause(), kill()):
        cluster.env.process(op)
    return answers


@pytest.mark.parametrize("kill_first", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_pause_racing_a_kill_leaves_no_paused_sandbox_in_the_pool(
    seed: int, kill_first: bool
) -> None:
    """Whichever write lands first, the killed sandbox is gone or back in its pool, unpaused.

    Before, a pause landing after the recycle trigger was carried into the pool,
    which then held a paused sandbox it counted as creating, one short for good.
    """
    cluster = Cluster(seed=seed)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster, user=DEFAULT_USER)
    cluster.advance(1)
    answers = pause_and_kill(cluster, sid, kill_first)
    cluster.advance(120)
    assert answers["kill"] == "ok" and answers["pause"] in ("ok", 404, 409)
    assert cluster.list_sandboxes() == ([], None)
    for sbx in cluster.list("sbx"):
        assert not sbx.spec.paused and sbx.status.phase == "Running", sbx.metadata.name
    sbs = cluster.get("sbs", "py")
    assert sbs.status.available_replicas == 2


@pytest.mark.parametrize("offset", [-0.05, 0.05])
def test_a_kill_around_the_auto_pause_recycles_or_deletes_never_strands(offset: float) -> None:
    """Just before its pause time the sandbox is recycled; just after (paused), deleted."""
    cluster = Cluster(seed=3)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sbx = cluster.create_sandbox("py", timeout=30, auto_pause=True)
    assert sbx.spec.pause_time is not None
    due = (sbx.spec.pause_time - cluster.now_dt()).total_seconds()
    cluster.advance(due + offset)
    cluster.kill(f"default--{sbx.metadata.name}")
    cluster.advance(120)
    assert cluster.list_sandboxes() == ([], None)
    mine = [s for s in cluster.list("sbx") if s.metadata.name == sbx.metadata.name]
    if offset < 0:
        (back,) = mine
        assert back.metadata.controller_ref() is not None
        assert not back.spec.paused and back.status.phase == "Running"
    else:
        assert mine == []
    assert cluster.get("sbs", "py").status.available_replicas == 2


def test_a_kill_at_the_shutdown_instant_answers_204_though_the_controller_deletes_first() -> None:
    """Killed at its last instant, a recyclable sandbox races the Sandbox controller's delete:
    the kill's trigger write finds it gone. Its route was known, so the kill answers 204 as
    any kill of a sandbox already gone does (§6.2: 404 only without a route), not a 404."""
    cluster = Cluster(seed=0)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sbx = cluster.create_sandbox("py", timeout=30)
    assert sbx.spec.shutdown_time is not None
    cluster.advance(cluster.ctx.to_seconds(sbx.spec.shutdown_time) - cluster.now)

    cluster.kill(f"default--{sbx.metadata.name}")  # 204

    assert not [s for s in cluster.list("sbx") if s.metadata.name == sbx.metadata.name]
    assert cluster.list_sandboxes() == ([], None)


def test_a_pool_deleted_as_its_recycled_sandbox_rejoins_leaves_nothing() -> None:
    """A rejoin that writes an owner reference to a set just deleted: the GC deletes the sandbox.

    The set is deleted at moments across the end of the grace period; at some
    the controller has read the set from its cache and rejoins it after the
    delete. Whatever the moment, nothing is left.
    """
    orphans = 0
    for hundredth in range(940, 990, 2):
        cluster = Cluster(seed=4)
        cluster.apply(recycling_pool(replicas=1))
        cluster.wait_for_pool("py")
        sid = claimed(cluster)
        cluster.kill(sid)
        cluster.advance(hundredth / 100)
        cluster.delete("sbs", "py")
        cluster.advance(60)
        assert cluster.list("sbx") == [] and cluster.list("pod") == [], hundredth
        orphans += len(cluster.log.of_kind("gc.orphan_deleted"))
    assert orphans  # the race was met at least once


def test_a_recycle_whose_pool_is_gone_fails_and_deletes_the_sandbox() -> None:
    """The SandboxSet deleted meanwhile: RecyclingFailed, and the sandbox is deleted."""
    cluster = Cluster(seed=4)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    name = sid.split("--")[1]
    cluster.kill(sid)
    cluster.advance(1)
    cluster.delete("sbs", "py")
    cluster.advance(15)
    assert cluster.list("sbx") == []
    (failed,) = cluster.log.of_kind("sandbox.recycle_failed")
    assert failed.detail == (f"default/{name} RecyclingFailed: sandboxset default/py not found")


def test_a_failed_recycle_is_retained_for_its_duration_then_deleted() -> None:
    """``cleanup-retain-on-failure: 2m`` keeps the sandbox until a shutdown time two minutes on."""
    cluster = Cluster(seed=4, recycle_grace_s=100.0, recycle_timeout_s=30.0)
    cluster.apply(recycling_pool(annotations={RETAIN: "2m"}))
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    name = sid.split("--")[1]
    cluster.kill(sid)
    cluster.run_until(lambda: recycling_reason(cluster, name) == "RecyclingTimeout", timeout=60)
    failed_at = cluster.now
    sbx = cluster.get("sbx", name)
    assert sbx.status.phase == "Recycling"
    assert sbx.spec.shutdown_time is not None
    assert (sbx.spec.shutdown_time - cluster.now_dt()).total_seconds() == pytest.approx(120, abs=2)
    cluster.run_until(
        lambda: (
            not cluster.list("sbx", labels={"agents.kruise.io/sandbox-pool": "py"})
            or all(s.metadata.name != name for s in cluster.list("sbx"))
        ),
        timeout=300,
    )
    assert 119 <= cluster.now - failed_at <= 123


def test_a_retention_past_the_last_date_keeps_the_failed_recycle_until_then() -> None:
    """A failed recycle's retention ends at the latest ``9999-12-31T23:59:59Z``, as every
    deadline here does (docs/fidelity.md, Dates): on a clock near the year 9900 a
    ``cleanup-retain-on-failure`` of 228 years keeps the sandbox.

    Before, ``now + d`` overflowed inside the Sandbox controller's reconcile: the run
    raised ``OverflowError``."""
    cluster = Cluster(
        seed=4,
        recycle_grace_s=100.0,
        recycle_timeout_s=30.0,
        epoch=datetime(9800, 1, 1, tzinfo=UTC),
    )
    cluster.apply(recycling_pool(annotations={RETAIN: "2000000h"}))
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    name = sid.split("--")[1]
    cluster.kill(sid)
    cluster.run_until(lambda: recycling_reason(cluster, name) == "RecyclingTimeout", timeout=60)
    assert cluster.get("sbx", name).spec.shutdown_time == LATEST


def test_a_recycle_that_times_out_deletes_the_sandbox() -> None:
    """Past ``recycle_timeout_s`` without retention, the sandbox is deleted."""
    cluster = Cluster(seed=4, recycle_grace_s=100.0, recycle_timeout_s=30.0)
    cluster.apply(recycling_pool())
    cluster.wait_for_pool("py")
    sid = claimed(cluster)
    name = sid.split("--")[1]
    cluster.kill(sid)
    killed_at = cluster.now
    cluster.run_until(lambda: all(s.metadata.name != name for s in cluster.list("sbx")), timeout=60)
    assert 29 <= cluster.now - killed_at <= 32  # the start has whole seconds
    assert "RecyclingTimeout" in cluster.log.of_kind("sandbox.recycle_failed")[0].detail


RECYCLE_FAULT_POOL: list[dict[str, Any]] = [
    {"kind": "api_conflict", "selector": {"verb": "update"}},
    {"kind": "api_latency", "latency": "uniform(0, 200ms)"},
    {"kind": "watch_lag", "latency": "uniform(0, 300ms)"},
    {"kind": "runtime_init_failure"},
]

RECYCLE_FAULTS = st.lists(
    st.sampled_from(RECYCLE_FAULT_POOL),
    max_size=2,
    unique_by=lambda f: f["kind"],
)


@settings(
    max_examples=int(os.environ.get("KRUISE_INVARIANT_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    replicas=st.integers(0, 4),
    faults=RECYCLE_FAULTS,
    probability=st.floats(0.05, 0.5),
    spare=st.integers(0, 2),
    plan=st.lists(st.tuples(st.floats(0.0, 60.0), st.floats(0.0, 30.0)), min_size=1, max_size=10),
)
def test_recycling_never_shares_a_sandbox_and_leaves_only_the_pool(
    seed: int,
    replicas: int,
    faults: list[dict[str, Any]],
    probability: float,
    spare: int,
    plan: list[tuple[float, float]],
) -> None:
    """Clients claim, hold and kill recycled sandboxes under faults, on one small node.

    The node fits the pool and ``spare`` pods more: replacements often wait
    for a slot, and recycled sandboxes are claimed again. A sandbox is delivered again only after its previous holder's kill; once
    the load stops nothing is left recycling, claimed or locked, and the pool
    is back at its replicas.
    """
    node = {"name": "n1", "cpu": "64", "memory": "64Gi", "max_pods": max(1, replicas + spare)}
    cluster = Cluster(seed=seed, nodes=[node])
    cluster.apply(recycling_pool(replicas=replicas))
    for f in faults:
        cluster.inject(probability=probability, duration=120, **f)
    cluster.advance(5)
    env = cluster.env
    manager = cluster.manager
    held: dict[str, list[tuple[str, float, float | None]]] = {}

    def client(i: int, start: float, hold: float) -> Generator[simpy.Event, Any, None]:
        user = f"user-{i}"
        yield env.timeout(start)
        try:
            sbx = yield from manager.create_sandbox(
                namespace="default", user=user, template="py", timeout_s=3600
            )
        except ClaimError:
            return
        entry = (user, env.now, None)
        held.setdefault(sbx.metadata.name, []).append(entry)
        yield env.timeout(hold)
        try:
            yield from manager.kill("default", user, f"default--{sbx.metadata.name}")
        except ClaimError:
            return
        spans = held[sbx.metadata.name]
        spans[spans.index(entry)] = (user, entry[1], env.now)

    procs = [env.process(client(i, start, hold)) for i, (start, hold) in enumerate(plan)]
    env.run(until=env.all_of(procs))

    # A sandbox is handed out again only after its last holder killed it.
    for name, spans in held.items():
        for (_, _, killed), (_, delivered, _) in pairwise(spans):
            assert killed is not None and killed <= delivered, (name, spans)

    cluster.clear_faults()
    cluster.advance(400)
    sbs = cluster.get("sbs", "py")
    assert sbs.status.available_replicas == replicas == sbs.status.replicas
    for sbx in cluster.list("sbx"):
        assert sbx.status.phase != "Recycling", sbx.metadata.name
        if is_controlled_by_sandboxset(sbx):
            assert not sbx.metadata.annotations.get(keys.ANN_LOCK)
            assert not sbx.metadata.annotations.get(keys.ANN_OWNER)
        else:
            # Still held: its kill failed (a typed error) or never came.
            owner = sbx.metadata.annotations.get(keys.ANN_OWNER)
            assert owner is not None
            assert any(u == owner and k is None for u, _, k in held[sbx.metadata.name])
