"""Bad manifests and calls raise one clear typed error and leave the cluster unchanged."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator.cluster import Cluster
from simulator.errors import NotFoundError

from .conftest import claim_yaml, pool_yaml


def snapshot(cluster: Cluster) -> tuple[int, int]:
    return cluster.world.api.writes, len(cluster.log)


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        (pool_yaml(replicas=-1), "spec.replicas"),
        (claim_yaml("c", replicas=0), "spec.replicas"),
        (claim_yaml("c", claimTimeout="abc"), "spec.claimTimeout"),
        (claim_yaml("c", claimTimeout="500ms"), "spec.claimTimeout"),
        (claim_yaml("c", waitReadyTimeout="0s"), "spec.waitReadyTimeout"),
        (claim_yaml("c", unknownField=1), "spec.unknownField"),
        ("kind: Nope\napiVersion: v1\nmetadata: {name: x}\n", "kind"),
        ("{not: [valid", "manifest"),
    ],
)
def test_invalid_manifests(cluster: Cluster, manifest: str, field: str) -> None:
    """Each invalid manifest names the field and changes nothing."""
    before = snapshot(cluster)
    with pytest.raises(InvalidError) as err:
        cluster.apply(manifest)
    assert field in err.value.field
    assert err.value.reason
    assert snapshot(cluster) == before


def test_one_bad_document_rejects_the_whole_apply(cluster: Cluster) -> None:
    """A multi-document apply with one bad document applies none of them."""
    before = snapshot(cluster)
    with pytest.raises(InvalidError):
        cluster.apply(pool_yaml() + "---\n" + claim_yaml("c", replicas=0))
    assert snapshot(cluster) == before
    assert cluster.list("sbs") == []


def test_claim_replicas_are_immutable(pooled: Cluster) -> None:
    """Changing a SandboxClaim's replicas is refused."""
    pooled.apply(claim_yaml("c", replicas=1))
    with pytest.raises(InvalidError, match="immutable"):
        pooled.apply(claim_yaml("c", replicas=2))


def test_unknown_objects_and_bad_calls(cluster: Cluster) -> None:
    """Reads of missing objects raise NotFoundError; bad arguments raise InvalidError."""
    with pytest.raises(NotFoundError):
        cluster.get("sbx", "ghost")
    with pytest.raises(InvalidError):
        cluster.get("widgets", "x")
    with pytest.raises(InvalidError):
        cluster.advance(-1)
    with pytest.raises(InvalidError):
        cluster.inject("no_such_fault")
    with pytest.raises(InvalidError):
        cluster.set_latency("no.such.latency", "1s")
