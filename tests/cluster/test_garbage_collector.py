"""The garbage collector's corner cases that its state machine
(``tests/simulator/test_garbage_collector_machine.py``) found, each as the rule it broke.

SandboxTemplates stand in for any kind: no controller writes them, so what
happens to them is the garbage collector's doing alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from simulator.cluster import Cluster
from simulator.errors import NotFoundError

TEMPLATE_API = "agents.kruise.io/v1alpha1"


def template(
    name: str,
    *,
    owners: list[dict[str, Any]] | None = None,
    finalizers: list[str] | None = None,
) -> dict[str, Any]:
    """A SandboxTemplate manifest, with ``owners`` as its owner references and its
    ``finalizers`` if given."""
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owners is not None:
        meta["ownerReferences"] = owners
    if finalizers is not None:
        meta["finalizers"] = finalizers
    return {
        "apiVersion": TEMPLATE_API,
        "kind": "SandboxTemplate",
        "metadata": meta,
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img"}]}}},
    }


def owner_ref(
    name: str,
    uid: str | None,
    *,
    kind: str = "SandboxTemplate",
    api_version: str = TEMPLATE_API,
    block: bool | None = None,
) -> dict[str, Any]:
    assert uid is not None
    ref: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}
    if block is not None:
        ref["blockOwnerDeletion"] = block
    return ref


@pytest.fixture
def cluster() -> Cluster:
    return Cluster(seed=5)


def test_a_reference_retargeted_under_the_same_uid_to_an_owner_gone_is_collected(
    cluster: Cluster,
) -> None:
    """An owner reference edited to name another owner (another kind, apiVersion or name)
    under the uid it had is a new owner, as one with a new uid is: the garbage collector
    looks at the object, and an owner that no longer exists has it collected at once.

    The dependent first names its owner's uid as a ConfigMap's (a kind the cluster does not
    serve: live, so the owner's delete leaves it); the edit that makes it the
    SandboxTemplate that was deleted leaves it with no live owner."""
    (owner,) = cluster.apply(template("owner"))
    uid = owner.metadata.uid
    assert uid is not None
    cluster.apply(
        template("dep", owners=[owner_ref("owner", uid, kind="ConfigMap", api_version="v1")])
    )
    cluster.delete("sbt", "owner")
    assert [t.metadata.name for t in cluster.list("sbt")] == ["dep"]
    cluster.apply(template("dep", owners=[owner_ref("owner", uid)]))
    cluster.advance(1)
    with pytest.raises(NotFoundError):
        cluster.get("sbt", "dep")


def test_a_reference_renamed_under_the_same_uid_keeps_a_live_owner_s_dependent(
    cluster: Cluster,
) -> None:
    """Renaming a reference to a name with no object drops it when another owner lives,
    as a dangling reference given with a new uid is dropped: the object stays."""
    (first,) = cluster.apply(template("first"))
    (second,) = cluster.apply(template("second"))
    assert first.metadata.uid is not None and second.metadata.uid is not None
    refs = [owner_ref("first", first.metadata.uid), owner_ref("second", second.metadata.uid)]
    cluster.apply(template("dep", owners=refs))
    refs[0] = owner_ref("nobody", first.metadata.uid)
    cluster.apply(template("dep", owners=refs))
    cluster.advance(1)
    kept = cluster.get("sbt", "dep")
    assert [r.name for r in kept.metadata.owner_references] == ["second"]
