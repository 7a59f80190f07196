"""What a SandboxClaim counts as claimed, under watch lag and failed status writes (§5.4)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandboxclaim import SandboxClaimStatus
from simulator.cluster import Cluster

from .conftest import claim_yaml, pool_yaml


def _completed_reason(status: SandboxClaimStatus) -> str | None:
    return next((c.reason for c in status.conditions if c.type == "Completed"), None)


@pytest.mark.parametrize("seed", range(10))
def test_a_claim_whose_attempts_all_failed_under_watch_lag_claims_nothing(seed: int) -> None:
    """The controllers' cache lags 0-10 s; an empty pool; a wait-ready timeout of 2 s.

    Every attempt creates a sandbox, times out waiting for it and deletes it,
    mostly before the cache has shown it at all. The late ADDED copy is older
    than that deletion and does not count as an active sandbox of the claim,
    so the claim times out with nothing claimed, where it used to complete
    "Successfully claimed 3/3 sandboxes" (or time out "claimed 2/3") owning none.
    """
    cluster = Cluster(seed=seed)
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(40)
    cluster.inject(
        "watch_lag",
        selector={"informer": "agent-sandbox-controller"},
        latency="uniform(0s, 10s)",
    )
    cluster.apply(claim_yaml("c1", replicas=3, waitReadyTimeout="2s", claimTimeout="30s"))
    cluster.advance(60)
    cluster.clear_faults()
    cluster.advance(60)
    status = cluster.get("sbc", "c1").status
    assert (status.phase, _completed_reason(status), status.claimed_replicas) == (
        "Completed",
        "TimeoutReached",
        0,
    )
    assert status.message is not None and status.message.endswith("claimed 0/3 sandboxes")
    assert not [r for r in cluster.records if r.claim_name == "c1" and r.delivered is not None]
    assert cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c1"}) == []


def test_a_claim_under_a_long_watch_lag_counts_only_what_it_delivered() -> None:
    """Default timeouts; the controllers' cache lags 20-40 s for 150 s, from just after the
    claim is seen: attempts fail and delete their sandboxes before the cache shows them.

    The claim's count is what it delivered: as many as the sandboxes that
    carry its name, each delivered by an attempt (it used to complete
    "Successfully claimed 5/5 sandboxes" owning none).
    """
    cluster = Cluster(seed=2)
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(40)
    cluster.apply(claim_yaml("c1", replicas=5, claimTimeout="3m"))
    cluster.advance(0.005)
    cluster.inject(
        "watch_lag",
        selector={"informer": "agent-sandbox-controller"},
        latency="uniform(20s, 40s)",
        duration=150,
    )
    cluster.advance(300)
    status = cluster.get("sbc", "c1").status
    mine = cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c1"})
    delivered = {r.sandbox for r in cluster.records if r.claim_name == "c1" and r.delivered}
    assert status.phase == "Completed"
    assert status.claimed_replicas == len(mine) == len(delivered)
    assert {f"default/{s.metadata.name}" for s in mine} == delivered


def test_a_claim_whose_status_writes_failed_completes_with_all_it_claimed() -> None:
    """A pool of 3 for a claim of 6 (no creation); its status writes fail for 20 s from the
    moment "3/6" has landed, while the refilled pool delivers the other three.

    The claim timeout (15 s) passes while the writes fail; once they land
    the claim completes with what it claimed, 6/6 ``AllReplicasClaimed``, as
    six sandboxes carry its name, not "Timeout reached ..., claimed 3/6".
    """
    cluster = Cluster(seed=4)
    cluster.apply(pool_yaml(replicas=3))
    cluster.advance(60)
    cluster.apply(claim_yaml("c1", replicas=6, claimTimeout="15s", createOnNoStock=False))
    cluster.advance(0.5)
    assert cluster.get("sbc", "c1").status.message == "Claiming sandboxes: 3/6 claimed"
    cluster.inject("api_error", selector={"kind": "SandboxClaim", "verb": "patch"}, duration=20)
    cluster.advance(60)
    status = cluster.get("sbc", "c1").status
    assert (status.phase, _completed_reason(status), status.claimed_replicas) == (
        "Completed",
        "AllReplicasClaimed",
        6,
    )
    assert status.message == "Successfully claimed 6/6 sandboxes"
    assert len(cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c1"})) == 6
    (done,) = cluster.log.of_kind("sandboxclaim.completed")
    assert done.time >= 80  # the 20 s of failed writes began at 60.5


def test_a_claim_whose_status_writes_failed_counts_all_it_claimed_when_its_pool_goes() -> None:
    """A pool of 3 for a claim of 6 (no creation); its status writes fail for 20 s from the
    moment "3/6" has landed, while the refilled pool delivers the other three; then the
    pool is deleted.

    The claim completes ``SandboxSetNotFound`` (its pool goes before it has all six on
    record) counting what it claimed, 6, as six sandboxes carry its name, not the "3/6"
    its status last held: the count the claim timeout's completion takes too.
    """
    cluster = Cluster(seed=4)
    cluster.apply(pool_yaml(replicas=3))
    cluster.advance(60)
    cluster.apply(claim_yaml("c1", replicas=6, claimTimeout="5m", createOnNoStock=False))
    cluster.advance(0.5)
    assert cluster.get("sbc", "c1").status.message == "Claiming sandboxes: 3/6 claimed"
    cluster.inject("api_error", selector={"kind": "SandboxClaim", "verb": "patch"}, duration=20)
    cluster.advance(15)
    assert len(cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c1"})) == 6
    assert cluster.get("sbc", "c1").status.claimed_replicas == 3  # the writes still fail
    cluster.delete("sbs", "base")
    cluster.advance(60)
    status = cluster.get("sbc", "c1").status
    assert (status.phase, _completed_reason(status), status.claimed_replicas) == (
        "Completed",
        "SandboxSetNotFound",
        6,
    )
    assert status.message == "SandboxSet default/base not found"
    assert len(cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c1"})) == 6


def test_a_claim_whose_status_writes_failed_counts_all_it_claimed_when_the_gate_stops_it() -> None:
    """Gate ``SandboxInPlaceResourceResize`` off. A pool of 3 for a claim of 9 (no
    creation) delivers three and "3/9" lands; the pool is emptied, the claim's status
    writes fail for 40 s, and the pool, filled again, delivers three more; the pool is
    emptied again and the claim re-applied asking for a CPU resize.

    The claim completes ``FeatureGateDisabled`` counting what it claimed, 6, as six
    sandboxes carry its name, not the "3/9" its status last held: the count the pool-gone
    and the claim timeout's completions take too.
    """
    cluster = Cluster(seed=4, inplace_resource_resize=False)
    cluster.apply(pool_yaml(replicas=3))
    cluster.advance(60)
    spec: dict[str, Any] = {"replicas": 9, "claimTimeout": "5m", "createOnNoStock": False}
    cluster.apply(claim_yaml("c1", **spec))
    cluster.advance(0.5)
    assert cluster.get("sbc", "c1").status.message == "Claiming sandboxes: 3/9 claimed"
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(5)
    cluster.inject("api_error", selector={"kind": "SandboxClaim", "verb": "patch"}, duration=40)
    cluster.apply(pool_yaml(replicas=3))

    def mine() -> int:
        return len(cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "c1"}))

    assert cluster.run_until(lambda: mine() == 6, timeout=30)
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(2)
    assert cluster.get("sbc", "c1").status.claimed_replicas == 3  # the writes still fail
    cluster.apply(claim_yaml("c1", inplaceUpdate="{resources: {limits: {cpu: '2'}}}", **spec))
    cluster.advance(60)
    status = cluster.get("sbc", "c1").status
    assert (status.phase, _completed_reason(status), status.claimed_replicas) == (
        "Completed",
        "FeatureGateDisabled",
        6,
    )
    assert status.message is not None and status.message.endswith("claimed 6/9 sandboxes")
    assert mine() == 6
    (done,) = cluster.log.of_kind("sandboxclaim.completed")
    assert done.time >= 105  # the 40 s of failed writes began at 65.5
