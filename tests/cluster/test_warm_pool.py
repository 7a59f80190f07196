"""Warm-pool delivery, replenishment, namespaces and the no-stock paths (reference §3, §5)."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError, NotFoundError
from simulator.cluster import Cluster
from simulator.errors import NotFoundError as KubeNotFoundError
from simulator.errors import PoolTimeoutError
from simulator.latency import Fixed

from .conftest import pool_yaml


def test_a_pool_fills_to_its_replicas(pooled: Cluster) -> None:
    """A new SandboxSet creates its replicas, which become available."""
    sbs = pooled.get("sbs", "base")
    assert sbs.status.replicas == 5 and sbs.status.available_replicas == 5
    assert len(pooled.list("sbx", "default")) == 5


def test_warm_claim_is_sub_second_and_marks_the_sandbox(pooled: Cluster) -> None:
    """An E2B claim from a full pool is delivered warm in well under a second."""
    sbx = pooled.create_sandbox("base", metadata={"userId": "alice"})
    rec = pooled.last_record()
    assert rec.warm is True and rec.latency is not None and rec.latency < 1.0
    assert rec.requested <= rec.worker_acquired <= rec.picked <= rec.locked  # type: ignore[operator]
    assert rec.locked <= rec.runtime_initialized <= rec.delivered  # type: ignore[operator]
    stored = pooled.get("sbx", sbx.metadata.name)
    assert stored.metadata.owner_references == []
    assert stored.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] == "true"
    assert stored.metadata.annotations["userId"] == "alice"
    assert stored.metadata.annotations[keys.ANN_LOCK]


def test_the_pool_replenishes_after_a_claim(pooled: Cluster) -> None:
    """A claimed sandbox leaves the pool and the SandboxSet creates a replacement."""
    pooled.create_sandbox("base")
    sbs = pooled.get("sbs", "base")
    assert sbs.status.available_replicas <= 5
    pooled.wait_for_pool("base", timeout=60)
    assert len(pooled.list("sbx", "default", labels={keys.LABEL_SANDBOX_CLAIMED: "false"})) == 5


def test_burst_beyond_the_pool_is_created_cold(pooled: Cluster) -> None:
    """With create-on-no-stock (the default) claims beyond the pool get new, cold sandboxes."""
    results = pooled.create_sandboxes(8, "base")
    assert all(not isinstance(r, ClaimError) for r in results)
    recs = list(pooled.records)
    assert sum(r.warm is True for r in recs) >= 5
    cold = [r for r in recs if r.warm is False]
    assert cold and all(r.latency is not None and r.latency > 1.0 for r in cold)
    names = [r.metadata.name for r in results if not isinstance(r, ClaimError)]
    assert len(set(names)) == 8


def test_no_stock_without_creation_waits_for_replenishment(pooled: Cluster) -> None:
    """With create-on-no-stock off, a claim on an empty pool retries until the pool refills."""
    pooled.create_sandboxes(5, "base")
    sbx = pooled.create_sandbox(
        "base", metadata={"e2b.agents.kruise.io/create-on-no-stock": "false"}
    )
    rec = pooled.last_record()
    assert rec.warm is True and rec.attempts > 1
    assert "no stock" in " ".join(rec.pick_failures) or rec.pick_failures
    assert sbx.metadata.labels[keys.LABEL_SANDBOX_POOL] == "base"


def test_claim_timeout_bounds_an_e2b_claim(cluster: Cluster) -> None:
    """claim-timeout-seconds ends a claim that cannot be served with a 500 within the timeout."""
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(1)  # the manager learns of the pool through its cache
    start = cluster.now
    with pytest.raises(ClaimError) as err:
        cluster.create_sandbox(
            "base",
            metadata={
                "e2b.agents.kruise.io/create-on-no-stock": "false",
                "e2b.agents.kruise.io/claim-timeout-seconds": "5",
            },
        )
    assert err.value.code == 500
    assert 4.9 <= cluster.now - start <= 5.5
    assert cluster.last_record().failed is not None


def test_a_claim_timeout_during_a_cold_start_says_the_sandbox_was_not_ready() -> None:
    """The error and the record name the sandbox the deadline cut, and how far it had got:
    still Pending (creating) and not Ready; not ``last error: <nil>``."""
    cluster = Cluster(seed=11, latencies={"image.pull": Fixed(value=30.0)})
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(1)
    with pytest.raises(ClaimError) as err:
        cluster.create_sandbox("base", metadata={"e2b.agents.kruise.io/claim-timeout-seconds": "5"})
    rec = cluster.last_record()
    assert rec.attempts == 1 and rec.locked is not None and rec.ready is None
    assert (
        rec.error
        == str(err.value)
        == (
            f"context deadline exceeded, last error: sandbox {rec.sandbox} is not ready before "
            "wait timeout: reason=ResourcePending, state=creating, ready=false: context deadline "
            "exceeded, pick sandbox failures: []"
        )
    )


def test_same_name_pools_in_several_namespaces(cluster: Cluster) -> None:
    """A namespaced caller gets its own namespace's pool; the admin gets either at random."""
    cluster.apply(pool_yaml(namespace="team-a", replicas=6))
    cluster.apply(pool_yaml(namespace="team-b", replicas=6))
    cluster.wait_for_pool("base", "team-a")
    cluster.wait_for_pool("base", "team-b")
    own = cluster.create_sandbox("base", namespace="team-a")
    assert own.metadata.namespace == "team-a"
    seen = {cluster.create_sandbox("base", namespace="").metadata.namespace for _ in range(8)}
    assert seen == {"team-a", "team-b"}


def test_unknown_template_is_a_400_and_changes_nothing(pooled: Cluster) -> None:
    """A template with no SandboxSet in the caller's namespace answers 400."""
    writes = pooled.world.api.writes
    with pytest.raises(ClaimError) as err:
        pooled.create_sandbox("nope")
    assert err.value.code == 400
    with pytest.raises(ClaimError):
        pooled.create_sandbox("base", namespace="elsewhere")
    assert pooled.world.api.writes == writes


def test_a_create_before_the_manager_has_seen_the_new_set_is_a_400(cluster: Cluster) -> None:
    """Straight after ``apply`` the sandbox-manager's cache has not had the SandboxSet yet
    (one watch lag): the create answers 400 "Template or Checkpoint not found", as upstream's
    does before its informer has the set. One watch lag later the same create goes through
    (here on no stock); ``wait_for_pool`` waits for that and more (README, models.md)."""
    cluster.apply(pool_yaml(replicas=0))
    with pytest.raises(NotFoundError) as info:
        cluster.create_sandbox("base")
    assert (info.value.code, str(info.value)) == (400, "Template or Checkpoint not found")
    cluster.advance(0.1)
    cluster.create_sandbox("base")
    assert cluster.last_record().lock_type == "create"


def test_pool_without_agent_runtime_fails_e2b_claims_at_init(cluster: Cluster) -> None:
    """E2B claims always call /init; a pool without agent-runtime fails unless init is skipped."""
    cluster.apply(pool_yaml(agent_runtime=False, replicas=3))
    cluster.wait_for_pool("base")
    with pytest.raises(ClaimError) as err:
        cluster.create_sandbox(
            "base", metadata={"e2b.agents.kruise.io/claim-timeout-seconds": "20"}
        )
    assert err.value.code == 500
    failed = cluster.last_record()
    assert failed.failed is not None and failed.attempts >= 1
    # The locked sandboxes were deleted, never returned to the pool.
    assert not cluster.list("sbx", "default", labels={keys.LABEL_RESERVED_FAILED: "true"})
    sbx = cluster.create_sandbox(
        "base", metadata={"e2b.agents.kruise.io/skip-init-runtime": "true"}
    )
    assert sbx.metadata.annotations.get(keys.ANN_INIT_RUNTIME_REQUEST) is None
    assert cluster.last_record().runtime_initialized is None


@pytest.mark.parametrize(
    ("before", "after"),
    [(3, 3), (3, 6), (6, 3)],
    ids=["same-size", "scaled-up", "scaled-down"],
)
def test_wait_for_pool_waits_for_a_changed_template_to_roll_out(
    cluster: Cluster, before: int, after: int
) -> None:
    """After a re-apply that changes the template, the pool is ready once it runs the new one.

    The controller must have observed the new generation, and ``replicas``
    sandboxes of its update revision must be available to the manager: a warm
    claim then gets the new image. ``status.updatedAvailableReplicas`` alone
    would not tell (upstream #779 keeps it stale while the set scales).
    """
    cluster.apply(pool_yaml(replicas=before, image="registry.example.com/sandbox:v1"))
    cluster.wait_for_pool("base")
    t0 = cluster.now
    cluster.apply(pool_yaml(replicas=after, image="registry.example.com/sandbox:v2"))
    pool = cluster.wait_for_pool("base")
    assert cluster.now > t0
    assert pool.status.observed_generation == pool.metadata.generation
    revision = pool.status.update_revision
    assert revision is not None
    fresh = cluster.list(
        "sbx", labels={keys.LABEL_SANDBOX_POOL: "base", keys.LABEL_TEMPLATE_HASH: revision}
    )
    assert len(fresh) >= after
    sbx = cluster.create_sandbox("base")
    assert cluster.last_record().warm is True
    assert sbx.spec.template is not None
    assert sbx.spec.template["spec"]["containers"][0]["image"].endswith(":v2")


def test_wait_for_pool_returns_at_once_when_nothing_changed(cluster: Cluster) -> None:
    """Re-applying the same pool changes no generation: the pool is still ready."""
    cluster.apply(pool_yaml(replicas=3))
    cluster.wait_for_pool("base")
    t0 = cluster.now
    cluster.apply(pool_yaml(replicas=3))
    cluster.wait_for_pool("base")
    assert cluster.now == t0


def test_a_pool_whose_image_the_kubelet_cannot_parse_never_fills(cluster: Cluster) -> None:
    """Kubernetes takes any non-empty image (the API server does not parse it): the pool is
    stored, and its pods wait ``InvalidImageName`` at the kubelet, never Ready. No sandbox
    becomes available, and wait_for_pool's timeout says why."""
    image = "registry.example.com/Sandbox:V1"
    cluster.apply(pool_yaml(replicas=2, image=image))
    with pytest.raises(TimeoutError) as err:
        cluster.wait_for_pool("base", timeout=120)
    assert str(err.value) == (
        "SandboxSet default/base: 0/2 available after 120s; a pod of it is not ready: "
        "container sandbox waits, InvalidImageName: "
        f'Failed to apply default image tag "{image}": couldn\'t parse image reference '
        f'"{image}": invalid reference format: repository name (Sandbox) must be lowercase'
    )
    assert isinstance(err.value, PoolTimeoutError) and err.value.explained
    rows = cluster.table("pod", "default").splitlines()[1:]
    assert [row.split()[1:3] for row in rows] == [["0/1", "InvalidImageName"]] * 2
    assert [sbx.status.phase for sbx in cluster.list("sbx", "default")] == ["Pending"] * 2


def test_a_pool_that_is_only_slow_times_out_saying_no_reason(cluster: Cluster) -> None:
    """Pods being created or started are under way, no reason: ``explained`` is false, for a
    caller to guess at one (``kruise-agents serve`` suggests too few nodes)."""
    cluster.apply(pool_yaml(replicas=2))
    with pytest.raises(PoolTimeoutError) as err:
        cluster.wait_for_pool("base", timeout=0.5)
    assert str(err.value) == "SandboxSet default/base: 0/2 available after 0.5s"
    assert not err.value.explained


def test_a_wait_ended_before_the_controller_saw_the_new_spec_says_so(cluster: Cluster) -> None:
    """Right after a re-apply the set's status still counts the old spec: ``2/2 available``
    alone would read as a full pool, so the timeout says which generation it counted."""
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.apply(pool_yaml(replicas=2, image="registry.example.com/sandbox:v2"))
    assert not cluster.pool_ready("base")
    with pytest.raises(PoolTimeoutError) as err:
        cluster.wait_for_pool("base", timeout=0)
    assert str(err.value) == (
        "SandboxSet default/base: 2/2 available (the controller has observed generation 1"
        " of 2) after 0s"
    )
    assert cluster.wait_for_pool("base").metadata.generation == 2
    assert cluster.pool_ready("base")


def test_pool_ready_checks_its_arguments_and_runs_nothing(cluster: Cluster) -> None:
    """``pool_ready`` is the wait's test, for a caller that runs the model another way: it
    moves no time, and an unknown pool is the same NotFoundError as ``wait_for_pool``'s."""
    cluster.apply(pool_yaml(replicas=1))
    now = cluster.now
    assert not cluster.pool_ready("base")
    assert cluster.now == now
    with pytest.raises(KubeNotFoundError, match='"nope" not found'):
        cluster.pool_ready("nope")
    with pytest.raises(KubeNotFoundError, match='"nope" not found'):
        cluster.pool_wait_error("nope", "default", 1.0)


@pytest.mark.parametrize("waited", [-1, math.nan, math.inf, True, "5", None])
def test_pool_wait_error_refuses_a_wait_that_is_no_number_of_seconds(
    cluster: Cluster, waited: object
) -> None:
    cluster.apply(pool_yaml(replicas=1))
    with pytest.raises(InvalidError) as err:
        cluster.pool_wait_error("base", "default", waited)  # type: ignore[arg-type]
    assert err.value.field == "waited"


NO_UNAVAILABLE = "  updateStrategy: {maxUnavailable: 0}\n"


def test_a_rollout_that_max_unavailable_0_holds_back_times_out_saying_so(cluster: Cluster) -> None:
    """After a template change wait_for_pool waits for the new revision: its timeout counts
    those sandboxes, not the old ones, and says why none comes (upstream accepts 0, and then
    replaces no old sandbox)."""
    cluster.apply(pool_yaml(replicas=3) + NO_UNAVAILABLE)
    cluster.wait_for_pool("base")
    cluster.apply(pool_yaml(replicas=3, image="registry.example.com/sandbox:v2") + NO_UNAVAILABLE)
    with pytest.raises(TimeoutError) as err:
        cluster.wait_for_pool("base", timeout=120)
    revision = cluster.get("sbs", "base").status.update_revision
    assert str(err.value) == (
        f"SandboxSet default/base: 0/3 of revision {revision} available "
        "(3 of older revisions) after 120s; rollout blocked: "
        "updateStrategy.maxUnavailable 0 lets no old sandbox be replaced"
    )


def test_a_pool_whose_scale_max_unavailable_is_0_times_out_saying_it_creates_nothing(
    cluster: Cluster,
) -> None:
    """``scaleStrategy.maxUnavailable: 0`` is accepted upstream and makes the scale-up budget 0:
    the pool never fills, and the timeout says why (it said only ``0/3 available``)."""
    cluster.apply(pool_yaml(replicas=3) + "  scaleStrategy: {maxUnavailable: '0%'}\n")
    with pytest.raises(TimeoutError) as err:
        cluster.wait_for_pool("base", timeout=60)
    assert str(err.value) == (
        "SandboxSet default/base: 0/3 available after 60s; scale-up blocked: "
        "scaleStrategy.maxUnavailable 0% lets no sandbox be created"
    )
    assert err.value.reason == (  # type: ignore[attr-defined]
        "scale-up blocked: scaleStrategy.maxUnavailable 0% lets no sandbox be created"
    )


def test_a_rollout_held_back_by_a_locked_old_sandbox_names_it(cluster: Cluster) -> None:
    """An old sandbox locked by someone else is skipped, not replaced by the next one: with
    the default budget (20% of 3, one at a time) the rollout replaces none, and the timeout
    names the sandbox and its owner."""
    cluster.apply(pool_yaml(replicas=3))
    cluster.wait_for_pool("base")

    def created(s: Sandbox) -> datetime:
        assert s.metadata.creation_timestamp is not None  # every stored object has one
        return s.metadata.creation_timestamp

    oldest = min(cluster.list("sbx", "default"), key=created)
    oldest.metadata.annotations[keys.ANN_LOCK] = "held-by-hand"
    oldest.metadata.annotations[keys.ANN_OWNER] = "bob"
    cluster.apply(oldest)
    cluster.apply(pool_yaml(replicas=3, image="registry.example.com/sandbox:v2"))
    with pytest.raises(TimeoutError) as err:
        cluster.wait_for_pool("base", timeout=120)
    revision = cluster.get("sbs", "base").status.update_revision
    assert str(err.value) == (
        f"SandboxSet default/base: 0/3 of revision {revision} available "
        "(3 of older revisions) after 120s; rollout blocked: "
        f"old sandbox default/{oldest.metadata.name} is locked by bob"
    )
