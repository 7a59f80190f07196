"""Objects deleted while a claim is still working on them: the claim's late writes and routes
never reach what has gone, nor what is made anew under its name."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import NotFoundError
from pytest_kruise_agents.claiming.extensions import KEY_NEVER_TIMEOUT
from simulator.apiserver import UIDConflictError
from simulator.cluster import Cluster

from .conftest import claim_yaml, pool_yaml


def owned_by(cluster: Cluster, uid: str | None) -> list[str]:
    """Names of the sandboxes whose owner annotation is ``uid``."""
    return [
        s.metadata.name
        for s in cluster.list("sbx")
        if s.metadata.annotations.get(keys.ANN_OWNER) == uid
    ]


def test_a_sandbox_deleted_during_init_is_not_described_as_running() -> None:
    """``kubectl delete`` of a sandbox while its create's ``/init`` is in flight: the deletion
    drops the call's connection, so the create retries onto another sandbox (reference §5.2
    steps 6-7); describe and connect of the deleted one answer 404 from then on and the list
    omits it, where the route table served the deleted sandbox as running for ever."""
    cluster = Cluster(seed=1, latencies={"runtime.init": "fixed(900ms)"})
    cluster.apply(pool_yaml(replicas=1, cpu="100m", memory="64Mi"))
    cluster.wait_for_pool("base")
    proc = cluster.submit_create("base", timeout=300, metadata={KEY_NEVER_TIMEOUT: "true"})
    records = cluster.records

    def locked() -> bool:
        return len(records) > 0 and records[len(records) - 1].locked is not None

    assert cluster.run_until(locked, timeout=10)
    cluster.advance(0.5)
    key = records[len(records) - 1].sandbox
    assert key is not None
    name = key.split("/")[1]
    cluster.delete("sbx", name)
    assert cluster.run_until(lambda: not proc.is_alive, timeout=60)
    delivered = proc.value
    assert isinstance(delivered, Sandbox) and delivered.metadata.name != name
    sid = f"default--{name}"
    for wait in (30, 86400):
        cluster.advance(wait)
        with pytest.raises(NotFoundError) as err:
            cluster.describe(sid)
        assert err.value.code == 404
        with pytest.raises(NotFoundError):
            cluster.connect(sid, 60)
        listed = cluster.list_sandboxes()[0]
        assert [cluster.sandbox_id(s) for s in listed] == [cluster.sandbox_id(delivered)]


def test_a_claim_made_anew_under_its_name_gets_none_of_the_old_claims_progress() -> None:
    """A SandboxClaim of 4 deleted during its first wave and applied anew with 1 replica: the
    new claim claims its one sandbox and completes with 1/1, where the old reconcile's status
    write made it ``Successfully claimed 4/1`` owning nothing."""
    cluster = Cluster(seed=1)
    cluster.apply(pool_yaml(replicas=0, cpu="100m", memory="64Mi"))
    cluster.advance(5)
    old = cluster.apply(claim_yaml("job", replicas=4))[0]
    cluster.advance(0.05)
    cluster.delete("sbc", "job")
    new = cluster.apply(claim_yaml("job", replicas=1))[0]
    cluster.advance(60)
    got = cluster.get("sbc", "job")
    assert got.metadata.uid == new.metadata.uid
    assert got.status.phase == "Completed"
    assert (got.status.claimed_replicas, got.status.message) == (
        1,
        "Successfully claimed 1/1 sandboxes",
    )
    assert len(owned_by(cluster, new.metadata.uid)) == 1
    assert len(owned_by(cluster, old.metadata.uid)) == 4


def test_a_patch_with_another_objects_uid_is_a_409_and_changes_nothing() -> None:
    """A patch carrying ``metadata.uid`` applies only to that object: on one made anew under
    the name the API server answers 409 Conflict naming both UIDs, and writes nothing."""
    cluster = Cluster(seed=2)
    cluster.apply(pool_yaml(replicas=0))
    old = cluster.apply(claim_yaml("job", replicas=1, createOnNoStock=False))[0]
    cluster.delete("sbc", "job")
    new = cluster.apply(claim_yaml("job", replicas=1, createOnNoStock=False))[0]
    api = cluster.world.api

    def mutate(obj: Any) -> None:
        obj.status.message = "written"

    proc = cluster.env.process(
        api.patch(
            cluster.world.controller_client,
            "SandboxClaim",
            "default",
            "job",
            mutate,
            subresource="status",
            uid=old.metadata.uid,
        )
    )
    with pytest.raises(UIDConflictError) as err:
        cluster.env.run(until=proc)
    assert err.value.code == 409 and err.value.is_conflict
    assert f"UID in precondition: {old.metadata.uid}" in err.value.message
    assert f"UID in object meta: {new.metadata.uid}" in err.value.message
    after = api.peek("SandboxClaim", "default", "job")
    assert after is not None and after.status.message != "written"
