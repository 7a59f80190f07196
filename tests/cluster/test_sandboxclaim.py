"""SandboxClaim single and batch claims (reference §5.4)."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from simulator.cluster import Cluster

from .conftest import claim_yaml, pool_yaml


def run_to_completion(cluster: Cluster, name: str, limit: float = 300) -> None:
    cluster.run_until(lambda: cluster.get("sbc", name).status.phase == "Completed", timeout=limit)


def test_single_claim_completes(pooled: Cluster) -> None:
    """A claim of one sandbox completes with AllReplicasClaimed and labels its sandbox."""
    pooled.apply(claim_yaml("one"))
    run_to_completion(pooled, "one")
    claim = pooled.get("sbc", "one")
    assert claim.status.claimed_replicas == 1
    assert claim.status.message == "Successfully claimed 1/1 sandboxes"
    cond = {c.type: c for c in claim.status.conditions}
    assert cond["Completed"].reason == "AllReplicasClaimed"
    mine = pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "one"})
    assert len(mine) == 1
    assert mine[0].metadata.annotations[keys.ANN_OWNER] == claim.metadata.uid


def test_each_attempt_of_a_claim_has_its_own_record_requested_when_it_starts(
    pooled: Cluster,
) -> None:
    """docs/fidelity.md (Records): a SandboxClaim gets one record per claim attempt, whose
    ``requested`` is that attempt's start, not the claim's creation: a lock conflict fails the
    first attempt (its record failed, one attempt), the next attempt's record starts later."""
    pooled.inject(
        "api_conflict",
        count=1,
        selector={"verb": "update", "kind": "Sandbox", "client": "agent-sandbox-controller"},
    )
    pooled.apply(claim_yaml("retried"))
    run_to_completion(pooled, "retried")

    first, second = [r for r in pooled.records if r.path == "sandboxclaim"]
    assert (first.claim_name, second.claim_name) == ("retried", "retried")
    assert (first.attempts, first.error_reason, first.delivered) == (1, "LockConflict", None)
    assert first.failed is not None
    assert (second.attempts, second.error_reason) == (1, None)
    assert second.delivered is not None
    assert first.requested < first.failed <= second.requested


def test_batch_claim_delivers_gradually_in_waves(pooled: Cluster) -> None:
    """A batch claim beyond the pool creates the rest and reports progress as it goes."""
    pooled.apply(claim_yaml("batch", replicas=12, labels="{team: a}", annotations="{note: x}"))
    counts: list[int] = []
    while pooled.get("sbc", "batch").status.phase != "Completed" and pooled.now < 300:
        counts.append(len(pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "batch"})))
        pooled.advance(0.02)
    claim = pooled.get("sbc", "batch")
    assert claim.status.claimed_replicas == 12
    assert counts[0] < 12 and counts == sorted(counts)
    mine = pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "batch"})
    assert len(mine) == 12
    assert all(s.metadata.labels["team"] == "a" for s in mine)
    assert all(s.metadata.annotations["note"] == "x" for s in mine)
    waves = [r for r in pooled.records if r.claim_name == "batch"]
    assert len(waves) >= 12
    table = pooled.table("sbc", "default")
    assert "batch" in table and "Completed" in table and "12" in table


def test_claim_without_stock_and_without_creation_times_out(cluster: Cluster) -> None:
    """With createOnNoStock false and an empty pool the claim completes at its claimTimeout."""
    cluster.apply(pool_yaml(replicas=0))
    cluster.apply(claim_yaml("late", replicas=2, createOnNoStock=False, claimTimeout="10s"))
    run_to_completion(cluster, "late", limit=60)
    claim = cluster.get("sbc", "late")
    cond = {c.type: c for c in claim.status.conditions}
    assert cond["TimedOut"].reason == "ClaimTimeoutReached"
    assert cond["Completed"].reason == "TimeoutReached"
    assert claim.status.claimed_replicas == 0
    assert claim.status.message is not None
    assert claim.status.message.startswith("Timeout reached after")
    assert 10 <= cluster.now <= 14


def test_ttl_after_completed_deletes_only_the_claim(pooled: Cluster) -> None:
    """After ttlAfterCompleted the claim is deleted and its sandboxes stay."""
    pooled.apply(claim_yaml("short", replicas=2, ttlAfterCompleted="30s"))
    run_to_completion(pooled, "short")
    pooled.advance(31)
    assert not pooled.list("sbc", "default")
    assert len(pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "short"})) == 2


def test_a_completed_claim_whose_set_is_gone_keeps_its_completion_and_its_ttl(
    pooled: Cluster,
) -> None:
    """``docs/fidelity.md``, SandboxClaim controller: a Completed claim goes to its TTL before
    the SandboxSet is looked up, so deleting the set afterwards neither rewrites its completion
    as ``SandboxSetNotFound`` nor keeps it past ``ttlAfterCompleted``."""
    pooled.apply(claim_yaml("done", ttlAfterCompleted="30s"))
    run_to_completion(pooled, "done")
    pooled.delete("sbs", "base")
    pooled.advance(10)
    claim = pooled.get("sbc", "done")
    cond = {c.type: c for c in claim.status.conditions}
    assert cond["Completed"].reason == "AllReplicasClaimed"
    assert claim.status.message == "Successfully claimed 1/1 sandboxes"
    pooled.advance(21)
    assert not pooled.list("sbc", "default")


def test_negative_ttl_never_deletes(pooled: Cluster) -> None:
    """A negative ttlAfterCompleted keeps the claim forever."""
    pooled.apply(claim_yaml("kept", ttlAfterCompleted="-1s"))
    run_to_completion(pooled, "kept")
    pooled.advance(7200)
    assert pooled.get("sbc", "kept").status.phase == "Completed"


def test_missing_sandboxset_completes_the_claim(cluster: Cluster) -> None:
    """A claim naming no SandboxSet in its namespace completes with SandboxSetNotFound."""
    cluster.apply(claim_yaml("orphan", template="ghost"))
    run_to_completion(cluster, "orphan", limit=10)
    cond = {c.type: c for c in cluster.get("sbc", "orphan").status.conditions}
    assert cond["Completed"].reason == "SandboxSetNotFound"


def test_shutdown_time_is_copied_and_enforced(pooled: Cluster) -> None:
    """spec.shutdownTime reaches each claimed sandbox, which is deleted at that time."""
    when = (pooled.now_dt().replace(microsecond=0)).timestamp() + 120
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pooled.apply(claim_yaml("bounded", shutdownTime=f'"{stamp}"'))
    run_to_completion(pooled, "bounded")
    mine = pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "bounded"})
    assert mine and mine[0].spec.shutdown_time is not None
    pooled.advance(125)
    assert not pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "bounded"})


def test_claim_path_skips_init_for_a_pool_without_agent_runtime(cluster: Cluster) -> None:
    """The SandboxClaim path silently skips /init when the pool has no agent-runtime."""
    cluster.apply(pool_yaml(agent_runtime=False, replicas=2))
    cluster.wait_for_pool("base")
    cluster.apply(claim_yaml("plain"))
    run_to_completion(cluster, "plain")
    assert cluster.get("sbc", "plain").status.claimed_replicas == 1


def test_csi_mounts_on_a_pool_without_agent_runtime_fail_every_attempt_and_touch_no_sandbox(
    cluster: Cluster,
) -> None:
    """``ValidateAndInitClaimOptions``: CSI mounts need runtime init, which the claim path skips
    for a pool without agent-runtime (§5.1). Every attempt fails before a pick with a 400 that
    names the claim's field and the pool: nothing is claimed, locked or deleted, and the claim
    times out."""
    cluster.apply(pool_yaml(replicas=3, agent_runtime=False))
    cluster.wait_for_pool("base")
    pool = sorted(s.metadata.name for s in cluster.list("sbx", "default"))
    cluster.apply(claim_yaml("csi", dynamicVolumesMount="[{pvName: pv1, mountPath: /data}]"))
    run_to_completion(cluster, "csi", limit=120)
    claim = cluster.get("sbc", "csi")
    assert claim.status.claimed_replicas == 0
    assert {c.type: c.reason for c in claim.status.conditions}["Completed"] == "TimeoutReached"
    mine = [r for r in cluster.records if r.claim_name == "csi"]
    assert {(r.error_code, r.error_reason, r.error) for r in mine} == {
        (
            400,
            "BadRequest",
            "spec.dynamicVolumesMount: CSI mounts need the runtime to be initialised, but "
            "SandboxSet default/base has no agent-runtime "
            "(runtimes: [agent-runtime], or an init container named runtime)",
        )
    }
    assert not [r for r in mine if r.picked is not None]
    assert sorted(s.metadata.name for s in cluster.list("sbx", "default")) == pool


def test_csi_mounts_with_the_runtime_init_skipped_are_refused_at_apply(pooled: Cluster) -> None:
    """With ``skipInitRuntime: true`` every attempt would refuse the mounts, whatever the pool:
    the claim is refused at apply, naming both fields, and nothing is stored or claimed."""
    before = pooled.log.text()
    with pytest.raises(InvalidError) as err:
        pooled.apply(
            claim_yaml(
                "csi",
                skipInitRuntime=True,
                dynamicVolumesMount="[{pvName: pv1, mountPath: /data}]",
            )
        )
    assert err.value.field == "SandboxClaim/csi spec.dynamicVolumesMount"
    assert err.value.reason == (
        "CSI mounts are made by the runtime init, which spec.skipInitRuntime: true skips"
    )
    assert not pooled.list("sbc", "default")
    assert pooled.log.text() == before


@pytest.mark.parametrize("seed", range(4))
def test_a_failed_status_write_does_not_make_the_claim_claim_again(seed: int) -> None:
    """The wave's status write fails and the cache lags: the retry still claims nothing more.

    Upstream's ``max(status.claimedReplicas, active in cache)`` is 0 at that
    moment, which claims a second batch; this controller also counts what it
    claimed itself, so a claim never gets more than it asked for.
    """
    cluster = Cluster(seed=seed)
    cluster.apply(pool_yaml(replicas=8))
    cluster.wait_for_pool("base")
    cluster.apply(claim_yaml("x", replicas=3))
    cluster.run_until(lambda: bool(cluster.log.of_kind("sandboxclaim.wave")))
    cluster.inject(
        "watch_lag",
        latency="fixed(500ms)",
        selector={"informer": "agent-sandbox-controller"},
        duration=3,
    )
    cluster.inject("api_error", selector={"verb": "patch", "kind": "SandboxClaim"}, count=1)
    cluster.advance(120)
    mine = cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "x"})
    assert len(mine) == 3
    status = cluster.get("sbc", "x").status
    assert (status.phase, status.claimed_replicas) == ("Completed", 3)
    (failed_write,) = cluster.log.of_kind("sandboxclaim.reconcile_error")
    assert "500" in failed_write.detail


@pytest.mark.parametrize("reserve", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_a_claim_never_counts_a_sandbox_its_own_attempt_failed(seed: int, reserve: bool) -> None:
    """No stock, an image that never pulls: every attempt fails and deletes (or reserves) its sandbox.

    A reconcile that follows at once (the 2 s requeue fired during the wave)
    reads a cache that has not seen the deletion or the reserved label yet;
    the copy older than the attempt's own write does not count, so the claim
    times out with nothing claimed instead of reporting "Successfully claimed
    1/1 sandboxes" for a sandbox it never delivered (upstream's e2e "should
    timeout claim while preserving sandbox and pod failure evidence on image
    pull failure").
    """
    cluster = Cluster(seed=seed, nodes=2)
    cluster.inject("image_pull_failure")
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(1)
    cluster.apply(
        claim_yaml(
            "c", replicas=1, waitReadyTimeout="2s", claimTimeout="30s", reserveFailedSandbox=reserve
        )
    )
    cluster.advance(60)
    status = cluster.get("sbc", "c").status
    reason = next(c.reason for c in status.conditions if c.type == "Completed")
    assert (status.phase, reason, status.claimed_replicas) == ("Completed", "TimeoutReached", 0)
    assert not [r for r in cluster.records if r.claim_name == "c" and r.delivered is not None]
    mine = cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c"})
    assert all(keys.LABEL_RESERVED_FAILED in s.metadata.labels for s in mine)
    assert bool(mine) == reserve


@pytest.mark.parametrize(
    "image",
    ["UPPER:bad tag", "Registry.example.com/UPPER", "python:" + "t" * 200, "python:3.13@sha256:x"],
)
def test_an_inplace_image_that_is_no_image_reference_is_refused_at_apply(
    pooled: Cluster, image: str
) -> None:
    """``spec.inplaceUpdate.image`` must be an image reference, as the E2B path's image is.

    The E2B create answers 400 "invalid image reference" for the same text
    (and a scenario refuses it at load); a claim took it, and its sandbox's
    pod ran with it. Refused at apply, naming the field, and nothing is stored.
    """
    manifest = claim_yaml("c", inplaceUpdate=f"{{image: {image!r}}}")
    with pytest.raises(InvalidError) as err:
        pooled.apply(manifest)
    assert err.value.field == "SandboxClaim/c spec.inplaceUpdate.image"
    assert err.value.reason == f"invalid image reference {image!r}"
    assert pooled.list("sbc") == []
    good = claim_yaml("ok", inplaceUpdate="{image: 'registry.example.com/team/python:3.13'}")
    assert pooled.apply(good)[0].metadata.name == "ok"


def test_an_inplace_memory_resize_is_refused_at_apply_as_the_e2b_path_refuses_it(
    pooled: Cluster,
) -> None:
    """Only CPU is resized in place (reference §1): a claim asking for memory was taken and
    delivered with the pod's old memory, where the E2B path's ``memory-request`` is a 400.
    Refused at apply, naming the field, and nothing is stored."""
    resources = "{resources: {requests: {cpu: 500m, memory: 1500Mi}, limits: {memory: 3Gi}}}"
    with pytest.raises(InvalidError) as err:
        pooled.apply(claim_yaml("m", inplaceUpdate=resources))
    assert err.value.field == "SandboxClaim/m spec.inplaceUpdate.resources.requests.memory"
    assert err.value.reason == "memory resize is not supported, only cpu"
    assert pooled.list("sbc") == []


def test_an_inplace_cpu_of_zero_is_refused_at_apply_as_the_e2b_path_refuses_it(
    pooled: Cluster,
) -> None:
    """Each claim attempt refused ``cpu: "0"`` (400) until the claim timed out, its status
    never saying why: refused at apply, naming the field, and nothing is stored."""
    with pytest.raises(InvalidError) as err:
        pooled.apply(claim_yaml("z", inplaceUpdate="{resources: {requests: {cpu: '0'}}}"))
    assert err.value.field == "SandboxClaim/z spec.inplaceUpdate.resources.requests.cpu"
    assert err.value.reason == "must be greater than 0, got '0'"
    assert pooled.list("sbc") == []


@pytest.mark.parametrize("window", [1, 3])
def test_a_sandboxclaim_picks_within_the_profiles_candidate_window(window: int) -> None:
    """The controller's attempts read the profile's candidate window, as the manager's do.

    Both callers of the shared TryClaimSandbox take ``CandidateCounts`` (§5.1):
    with a window of ``window`` sandboxes, a first wave of 5 concurrent attempts
    on a full pool of 10 finds only ``window`` candidates, so the others meet
    "all candidates are picked" and the wave ends there.
    """
    cluster = Cluster(seed=5, candidate_count=window)
    cluster.apply(pool_yaml(replicas=10))
    cluster.wait_for_pool("base")
    cluster.apply(claim_yaml("w", replicas=5, createOnNoStock=False))
    run_to_completion(cluster, "w")
    first_wave = [r for r in cluster.records if r.claim_name == "w"][:5]
    assert sum(r.delivered is not None for r in first_wave) == window
    assert [r.error_reason for r in first_wave if r.delivered is None] == [
        "AllCandidatesPicked"
    ] * (5 - window)
    assert cluster.get("sbc", "w").status.claimed_replicas == 5


def test_an_empty_inplace_update_claims_as_a_claim_without_one(pooled: Cluster) -> None:
    """``inplaceUpdate: {}`` (neither ``image`` nor ``resources``) is no in-place update and no
    error (``docs/fidelity.md``, SandboxClaim controller): the warm sandbox is delivered without
    the wait for ready an update needs, its template and pod unchanged."""
    pooled.apply(claim_yaml("empty", inplaceUpdate="{}"))
    run_to_completion(pooled, "empty")
    claim = pooled.get("sbc", "empty")
    assert claim.status.message == "Successfully claimed 1/1 sandboxes"
    record = pooled.records[-1]
    assert (record.claim_name, record.lock_type, record.ready) == ("empty", "update", None)
    (sbx,) = pooled.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "empty"})
    pod = pooled.get("Pod", sbx.metadata.name)
    expected = {"cpu": "500m", "memory": "512Mi"}
    assert sbx.spec.template is not None
    for container in (sbx.spec.template["spec"]["containers"][0], pod.spec["containers"][0]):
        assert container["image"] == "registry.example.com/sandbox:v1"
        assert container["resources"]["requests"] == expected
