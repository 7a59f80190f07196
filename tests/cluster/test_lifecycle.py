"""Sandbox timeouts, auto-pause, pause and connect (reference §4, §6.5)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from pytest_kruise_agents.api.manifest import dump
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.view import sandbox_view
from simulator.apiserver import GARBAGE_COLLECTOR
from simulator.cluster import Cluster

from .conftest import pool_yaml


def test_timeout_kills_the_sandbox_when_time_passes(pooled: Cluster) -> None:
    """A sandbox created with timeout=60 is gone after 60 s of virtual time."""
    sbx = pooled.create_sandbox("base", timeout=60)
    sid = pooled.sandbox_id(sbx)
    pooled.advance(55)
    assert pooled.describe(sid).metadata.name == sbx.metadata.name
    pooled.advance(10)
    with pytest.raises(ClaimError) as err:
        pooled.describe(sid)
    assert err.value.code == 404
    assert not any(s.metadata.name == sbx.metadata.name for s in pooled.list("sbx", "default"))


def test_a_pause_after_the_timeout_does_not_bring_the_sandbox_back(pooled: Cluster) -> None:
    """A Sandbox controller that lags (stalled here) leaves a timed-out sandbox in place for a
    while: a pause then answers 404, as describe does, and the sandbox is deleted once the
    controller catches up, not kept paused for a hundred years."""
    sbx = pooled.create_sandbox("base", timeout=30)
    sid = pooled.sandbox_id(sbx)
    pooled.inject("controller_stall", selector={"controller": "sandbox"}, duration=60)
    pooled.advance(35)
    assert pooled.get("sbx", sbx.metadata.name) is not None
    with pytest.raises(ClaimError) as err:
        pooled.pause(sid)
    assert err.value.code == 404
    pooled.clear_faults()
    pooled.advance(60)
    assert not any(s.metadata.name == sbx.metadata.name for s in pooled.list("sbx", "default"))
    with pytest.raises(ClaimError) as err:
        pooled.connect(sid)
    assert err.value.code == 404


def test_set_timeout_may_shorten(pooled: Cluster) -> None:
    """POST /timeout replaces the end time, even with a shorter one."""
    sbx = pooled.create_sandbox("base", timeout=3600)
    sid = pooled.sandbox_id(sbx)
    pooled.set_timeout(sid, 30)
    pooled.advance(40)
    with pytest.raises(ClaimError):
        pooled.describe(sid)


def test_default_timeout_is_300_seconds(pooled: Cluster) -> None:
    """Without a timeout the sandbox ends 300 s after the claim."""
    sbx = pooled.create_sandbox("base")
    assert sbx.spec.shutdown_time is not None
    claimed = pooled.ctx.to_seconds(sbx.spec.shutdown_time) - 300
    assert abs(claimed - pooled.last_record().locked) < 1.0  # type: ignore[operator]


def test_never_timeout_has_no_end(pooled: Cluster) -> None:
    """never-timeout leaves shutdownTime and pauseTime unset."""
    sbx = pooled.create_sandbox("base", metadata={"e2b.agents.kruise.io/never-timeout": "true"})
    assert sbx.spec.shutdown_time is None and sbx.spec.pause_time is None
    pooled.advance(100_000)
    assert pooled.describe(pooled.sandbox_id(sbx)).metadata.name == sbx.metadata.name


def test_auto_pause_then_connect_resumes(pooled: Cluster) -> None:
    """With autoPause the sandbox pauses at its timeout, keeps existing, and connect resumes it."""
    sbx = pooled.create_sandbox("base", timeout=60, auto_pause=True)
    sid = pooled.sandbox_id(sbx)
    pooled.advance(70)
    paused = pooled.describe(sid)
    assert paused.spec.paused is True
    page, _ = pooled.list_sandboxes(states=["paused"])
    assert [s.metadata.name for s in page] == [sbx.metadata.name]
    resumed, was_paused = pooled.connect(sid, timeout=120)
    assert was_paused is True and resumed.spec.paused is not True
    again = pooled.get("sbx", sbx.metadata.name)
    assert again.status.phase == "Running"
    page, _ = pooled.list_sandboxes(states=["running"])
    assert sbx.metadata.name in [s.metadata.name for s in page]


def test_connect_while_an_auto_pause_is_under_way_leaves_the_sandbox_running(
    pooled: Cluster,
) -> None:
    """A connect that lands between the auto-pause's spec write and the controller's pause.

    The E2B API shows the sandbox as paused as soon as ``spec.paused`` is
    written, while its pod still runs. Connect lets the pause finish first and
    then resumes it, so it never answers with a sandbox that the controller is
    about to stop (upstream answers 400 here: not resumable).
    """
    sbx = pooled.create_sandbox("base", timeout=60, auto_pause=True)
    sid = pooled.sandbox_id(sbx)
    name = sbx.metadata.name
    # A slow pod deletion holds the controller's pause open long enough for the connect.
    pooled.set_latency("api.delete", "1s")

    def pause_requested_but_pod_running() -> bool:
        seen = pooled.describe(sid)  # the manager's view, as GET /sandboxes/{id} answers
        stored = pooled.get("sbx", name)  # etcd: the controller has not stopped it yet
        return seen.spec.paused is True and stored.status.phase == "Running"

    assert pooled.run_until(pause_requested_but_pod_running, timeout=120)
    page, _ = pooled.list_sandboxes(states=["paused"])
    assert [s.metadata.name for s in page] == [name]

    resumed, was_paused = pooled.connect(sid, timeout=120)

    assert was_paused is True
    assert resumed.status.phase == "Running" and resumed.spec.paused is not True
    for _ in range(30):  # and it stays running: no late stop from the interrupted pause
        pooled.advance(1)
        stored = pooled.get("sbx", name)
        assert (stored.status.phase, stored.spec.paused) == ("Running", False), pooled.env.now
    page, _ = pooled.list_sandboxes(states=["running"])
    assert name in [s.metadata.name for s in page]


def test_pause_and_kill(pooled: Cluster) -> None:
    """Pause stops the pod and keeps the sandbox; kill deletes it and a second kill is a 404."""
    sbx = pooled.create_sandbox("base", timeout=600)
    sid = pooled.sandbox_id(sbx)
    pooled.pause(sid)
    stored = pooled.get("sbx", sbx.metadata.name)
    assert stored.status.phase == "Paused"
    assert not [p for p in pooled.list("pod", "default") if p.metadata.name == sbx.metadata.name]
    pooled.kill(sid)
    pooled.advance(5)
    with pytest.raises(ClaimError) as err:
        pooled.kill(sid)
    assert err.value.code == 404


def test_other_users_cannot_see_or_touch(pooled: Cluster) -> None:
    """Another API key gets 404 for a sandbox it does not own and does not list it."""
    sbx = pooled.create_sandbox("base")
    sid = pooled.sandbox_id(sbx)
    other = "00000000-0000-4000-8000-00000000beef"
    with pytest.raises(ClaimError) as err:
        pooled.describe(sid, user=other)
    assert err.value.code == 404
    with pytest.raises(ClaimError):
        pooled.kill(sid, user=other)
    page, _ = pooled.list_sandboxes(user=other)
    assert page == []


def test_a_sandbox_that_dies_while_the_claim_waits_fails_the_attempt_not_the_wait() -> None:
    """Its node is lost while the pod starts: the attempt fails at once, and the next one delivers.

    The E2B path at HEAD has no wait-ready timeout: without this a dead sandbox
    was waited on for ever.
    """
    cluster = Cluster(seed=5, nodes=2)
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(5)
    cluster.set_latency("image.pull", "fixed(60s)")
    proc = cluster.submit_create("base", timeout=600)
    cluster.inject("node_loss", start=cluster.now + 5, duration=10, selector={"node": "node-1"})
    assert cluster.run_until(lambda: proc.triggered, timeout=600)
    rec = cluster.last_record()
    assert rec.delivered is not None and rec.attempts >= 2
    (died,) = [e for e in cluster.log.of_kind("claim.post_failed") if "SandboxDied" in e.detail]
    assert died.time < 30


def test_a_sandbox_auto_paused_before_it_is_ready_fails_the_attempt() -> None:
    """A pause time that passes during a slow start pauses the sandbox: that attempt fails, retried."""
    cluster = Cluster(seed=1)
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(2)
    cluster.set_latency("image.pull", "fixed(60s)")
    proc = cluster.submit_create("base", timeout=30, auto_pause=True)
    assert cluster.run_until(lambda: proc.triggered, timeout=600)
    assert cluster.last_record().delivered is not None
    paused = [e for e in cluster.log.of_kind("claim.post_failed") if "SandboxPaused" in e.detail]
    assert paused and paused[0].time == pytest.approx(32, abs=1)
    # The paused attempts' sandboxes were deleted, not left paused for a century.
    assert len(cluster.list("sbx")) == 1


def test_a_pod_lost_as_a_pause_lands_leaves_a_failed_sandbox_not_a_paused_one(
    pooled: Cluster,
) -> None:
    """§4 step 7: a Running sandbox whose pod is gone is Failed ("Pod Not Found") even when
    ``spec.paused`` was set at the same instant; it is dead, not paused, and cannot resume."""
    name = pooled.create_sandbox("base", timeout=600).metadata.name
    pooled.advance(2)
    stored = pooled.get("sbx", name).model_copy(deep=True)
    stored.spec.paused = True
    pooled.apply(stored)
    # The pod-delete webhook refuses the user: the pod goes as a collector would take it.
    pooled.world.api.commit_delete("Pod", "default", name, requester=GARBAGE_COLLECTOR)
    pooled.advance(30)
    after = pooled.get("sbx", name)
    assert (after.status.phase, after.status.message) == ("Failed", "Pod Not Found")
    assert not [p for p in pooled.list("pod", "default") if p.metadata.name == name]


@pytest.mark.parametrize(("step", "code"), [("resume", 400), ("extend", 500)])
def test_connect_answers_a_resume_conflict_with_400_and_other_conflicts_with_500(
    pooled: Cluster, step: str, code: int
) -> None:
    """§6.5: writes that keep conflicting past RetryOnConflict's steps fail the connect: 400
    when it is the resume's write, 500 when it is the timeout extension's."""
    sbx = pooled.create_sandbox("base", timeout=60, auto_pause=step == "resume")
    sid = pooled.sandbox_id(sbx)
    pooled.advance(70 if step == "resume" else 1)
    pooled.inject(
        "api_conflict",
        selector={"verb": "update", "kind": "Sandbox", "client": "sandbox-manager"},
    )
    with pytest.raises(ClaimError) as err:
        pooled.connect(sid, timeout=600)
    assert err.value.code == code


def test_a_pause_whose_status_write_fails_still_pauses(pooled: Cluster) -> None:
    """The pod is deleted by the reconcile after ``Paused`` is stored, as upstream: a failed
    status write leaves the pod running and the next reconcile pauses, where deleting it
    first would have left a Running sandbox without a pod, Failed."""
    sbx = pooled.create_sandbox("base", timeout=600)
    pooled.advance(2)
    fault = pooled.inject(
        "api_error",
        selector={"verb": "patch", "kind": "Sandbox", "client": "agent-sandbox-controller"},
        count=1,
    )
    pooled.pause(pooled.sandbox_id(sbx))
    assert fault.fired == 1
    stored = pooled.get("sbx", sbx.metadata.name)
    assert stored.status.phase == "Paused"


def test_hand_written_times_count_in_whole_seconds(pooled: Cluster) -> None:
    """A shutdownTime or pauseTime applied with a fraction of a second is truncated where it is
    compared, as upstream's ``pkg/utils/timeout`` does (§9 item 10): the sandbox is deleted, or
    paused, just after the whole second, not up to a second later. The stored value stays as
    written."""
    never = {"e2b.agents.kruise.io/never-timeout": "true"}
    dying = pooled.create_sandbox("base", metadata=never)
    pausing = pooled.create_sandbox("base", metadata=never)
    whole = math.ceil(pooled.now) + 10
    at = pooled.now_dt() + timedelta(seconds=whole - pooled.now)
    written = at.replace(microsecond=900_000)
    edited = pooled.get("sbx", dying.metadata.name)
    edited.spec.shutdown_time = written
    pooled.apply(edited)
    edited = pooled.get("sbx", pausing.metadata.name)
    edited.spec.pause_time = written
    pooled.apply(edited)
    assert pooled.get("sbx", dying.metadata.name).spec.shutdown_time == written
    pooled.advance(whole - pooled.now + 0.5)
    (shutdown,) = pooled.log.of_kind("sandbox.shutdown")
    (paused,) = pooled.log.of_kind("sandbox.auto_pause")
    assert whole < shutdown.time < whole + 0.5
    assert whole < paused.time < whole + 0.5
    assert pooled.get("sbx", pausing.metadata.name).spec.pause_time == written


def test_a_pause_adds_no_finalizer_and_a_paused_sandbox_deleted_goes_at_once(
    pooled: Cluster,
) -> None:
    """``docs/fidelity.md``, Sandbox controller: no finalizer is added, not even by a pause
    (upstream's Stop pause adds one on entering ``Paused``, reference §4), so a paused
    sandbox, which has no pod, is gone at its delete."""
    sbx = pooled.create_sandbox("base", timeout=600)
    pooled.pause(pooled.sandbox_id(sbx))
    paused = pooled.get("sbx", sbx.metadata.name)
    assert (paused.status.phase, paused.metadata.finalizers) == ("Paused", [])
    pooled.delete("sbx", sbx.metadata.name)
    assert all(s.metadata.name != sbx.metadata.name for s in pooled.list("sbx"))


def test_a_fraction_of_a_second_survives_the_controllers_pause(pooled: Cluster) -> None:
    """``docs/fidelity.md``, Sandbox controller: the model's own writes of a Sandbox copy its
    spec as stored, so a ``pauseTime`` and ``shutdownTime`` applied with a fraction of a
    second keep it through the auto-pause (where upstream's re-serialised ``metav1.Time``
    would drop it): ``-o yaml`` still shows ``.900000Z`` and the E2B ``endAt`` is that
    instant."""
    sbx = pooled.create_sandbox("base", metadata={"e2b.agents.kruise.io/never-timeout": "true"})
    whole = math.ceil(pooled.now) + 10
    at = pooled.now_dt() + timedelta(seconds=whole - pooled.now)
    pause_at = at.replace(microsecond=900_000)
    shutdown_at = pause_at + timedelta(seconds=300)
    edited = pooled.get("sbx", sbx.metadata.name)
    edited.spec.pause_time = pause_at
    edited.spec.shutdown_time = shutdown_at
    pooled.apply(edited)
    pooled.advance(whole - pooled.now + 5)
    assert pooled.log.of_kind("sandbox.auto_pause")
    paused = pooled.get("sbx", sbx.metadata.name)
    assert paused.spec.paused is True
    assert (paused.spec.pause_time, paused.spec.shutdown_time) == (pause_at, shutdown_at)
    assert f'pauseTime: "{pause_at:%Y-%m-%dT%H:%M:%S}.900000Z"' in dump(paused)
    view = sandbox_view(paused, pooled.now_dt())
    assert view is not None and view.end_at == pause_at


def test_a_pool_sandbox_past_a_fractional_shutdown_time_is_replaced_at_the_whole_second(
    pooled: Cluster,
) -> None:
    """A pool sandbox turns dead by the clock alone: the SandboxSet re-files it, and starts its
    replacement, just after the truncated shutdownTime, even while the Sandbox controller that
    would delete it is stalled."""
    before = {s.metadata.name for s in pooled.list("sbx", "default")}
    victim = sorted(before)[0]
    whole = math.ceil(pooled.now) + 10
    at = pooled.now_dt() + timedelta(seconds=whole - pooled.now)
    edited = pooled.get("sbx", victim)
    edited.spec.shutdown_time = at.replace(microsecond=900_000)
    pooled.apply(edited)
    pooled.inject("controller_stall", selector={"controller": "sandbox"}, duration=60)
    pooled.advance(whole - pooled.now + 0.5)
    assert {s.metadata.name for s in pooled.list("sbx", "default")} - before


def test_a_connect_that_races_the_shutdown_delete_returns_with_describe_and_list_agreeing() -> None:
    """A connect at a sandbox's last instant extends it, and the Sandbox controller, deciding on
    its cache, deletes it all the same (upstream's race: its delete has no precondition). The
    connect answers; once it has, describe and list show what the API server holds: the
    sandbox gone from both, not running in describe (the manager's own write) while the list,
    reading the cache, already leaves it out."""
    cluster = Cluster(seed=5, nodes=2)
    cluster.apply(pool_yaml("c", 1, namespace="team", cpu="100m", memory="64Mi"))
    cluster.wait_for_pool("c", "team")
    sbx = cluster.create_sandbox("c", namespace="team", timeout=45)
    sid = cluster.sandbox_id(sbx)
    cluster.set_timeout(sid, 30, namespace="team")
    end = cluster.get("sbx", sbx.metadata.name, "team").spec.shutdown_time
    assert end is not None
    cluster.advance(cluster.ctx.to_seconds(end) - cluster.now)  # exactly at the end

    cluster.connect(sid, 1, namespace="team")

    assert not any(s.metadata.name == sbx.metadata.name for s in cluster.list("sbx", "team"))
    with pytest.raises(ClaimError) as err:
        cluster.describe(sid, namespace="team")
    assert err.value.code == 404
    page, _ = cluster.list_sandboxes(namespace="team")
    assert page == []
