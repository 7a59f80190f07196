"""The object API of the fake cluster behaves as a Kubernetes client sees the API server.

``get``/``list``/``apply`` hand out copies, a multi-document ``apply`` is all or
nothing, ``apply`` carries finalizers and owner references, skips no-op writes (a dump applied back is
one), refuses a stale ``resourceVersion`` or another ``uid`` (409) and a
``resourceVersion`` on a create, arguments of the wrong type are refused, lists come
in key order (namespace, then name), a SandboxTemplate materialised by a
SandboxSet is immutable, and the garbage collector counts an owner of a kind the
cluster does not serve as live and collects an owner chain of any length.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pytest_kruise_agents.api import Pod, dump
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.meta import OwnerReference
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.errors import NotFoundError as ClaimNotFoundError
from simulator.cluster import Cluster
from simulator.errors import ConflictError, NotFoundError

from .conftest import claim_yaml, pool_yaml


def snapshot(cluster: Cluster) -> tuple[int, int, dict[tuple[str, str, str], str | None]]:
    """Writes, log length and the resourceVersion of every stored object."""
    api = cluster.world.api
    versions = {
        (kind, o.metadata.namespace, o.metadata.name): o.metadata.resource_version
        for kind in ("SandboxSet", "SandboxClaim", "SandboxTemplate", "Sandbox", "Pod")
        for o in api.peek_list(kind)
    }
    return api.writes, len(cluster.log), versions


def stored(cluster: Cluster, kind: str, name: str) -> Any:
    return cluster.world.api.peek(kind, "default", name)


def image_of(sbs: Any) -> str:
    image: str = sbs.spec.template["spec"]["containers"][0]["image"]
    return image


# -- 1. reads hand out copies ----------------------------------------------------------


def test_get_returns_a_copy_that_does_not_touch_the_store(pooled: Cluster) -> None:
    """Editing what ``get`` returned changes nothing: not the store, not a cache, not a pod."""
    before = snapshot(pooled)
    got = pooled.get("sbs", "base")
    assert got is not stored(pooled, "SandboxSet", "base")
    got.spec.replicas = 9
    assert got.spec.template is not None
    got.spec.template["spec"]["containers"][0]["image"] = "evil:latest"
    got.metadata.labels["x"] = "y"
    assert stored(pooled, "SandboxSet", "base").spec.replicas == 5
    cached = pooled.world.controller_cache.get("SandboxSet", "default", "base")
    assert image_of(cached) == "registry.example.com/sandbox:v1"
    assert {p.spec["containers"][0]["image"] for p in pooled.list("pod")} == {
        "registry.example.com/sandbox:v1"
    }
    assert snapshot(pooled) == before


def test_list_items_are_copies(pooled: Cluster) -> None:
    """Editing an item ``list`` returned leaves the stored object as it was."""
    item = pooled.list("sbx")[0]
    item.metadata.labels["agents.kruise.io/sandbox-claimed"] = "true"
    kept = stored(pooled, "Sandbox", item.metadata.name)
    assert kept.metadata.labels["agents.kruise.io/sandbox-claimed"] == "false"


def test_apply_returns_copies(cluster: Cluster) -> None:
    """The objects ``apply`` returns are the caller's, as ``get``'s are."""
    made: Any = cluster.apply(pool_yaml(replicas=1))[0]
    made.spec.replicas = 4
    assert stored(cluster, "SandboxSet", "base").spec.replicas == 1


def test_the_e2b_calls_return_copies_too(pooled: Cluster) -> None:
    """``create_sandbox``, ``describe``, ``connect``, ``list_sandboxes`` and ``create_sandboxes``
    answer as ``get`` does: editing the answer writes nothing and changes nothing stored."""
    made = pooled.create_sandbox("base", timeout=600)
    sid = pooled.sandbox_id(made)
    (burst,) = pooled.create_sandboxes(1, "base")
    answers = [
        made,
        pooled.describe(sid),
        pooled.connect(sid, 600)[0],
        pooled.list_sandboxes()[0][0],
        burst,
    ]
    before = snapshot(pooled)
    for answer in answers:
        assert not isinstance(answer, Exception)
        assert answer is not stored(pooled, "Sandbox", answer.metadata.name)
        answer.metadata.labels["edited"] = "yes"
        answer.spec.shutdown_time = None
    assert snapshot(pooled) == before
    for answer in answers:
        assert not isinstance(answer, Exception)
        kept = stored(pooled, "Sandbox", answer.metadata.name)
        assert "edited" not in kept.metadata.labels
        assert kept.spec.shutdown_time is not None


def test_a_manifest_of_ordered_dicts_is_stored_as_its_own_copy(cluster: Cluster) -> None:
    """Containers of any dict or list type are copied, not shared with the caller (or pods)."""
    from collections import OrderedDict

    doc = yaml.safe_load(pool_yaml(replicas=1))
    container = OrderedDict(doc["spec"]["template"]["spec"]["containers"][0])
    doc["spec"]["template"]["spec"]["containers"] = [container]
    cluster.apply(doc)
    container["image"] = "evil:latest"
    assert image_of(stored(cluster, "SandboxSet", "base")) != "evil:latest"
    got = cluster.get("sbs", "base")
    assert got.spec.template is not None
    got.spec.template["spec"]["containers"][0]["image"] = "edited:copy"
    assert image_of(stored(cluster, "SandboxSet", "base")) != "edited:copy"


def test_get_edit_apply_is_a_spec_change(pooled: Cluster) -> None:
    """get -> edit -> apply (kubectl edit) bumps generation and rolls the pool to a new revision."""
    rev0 = pooled.get("sbs", "base").status.update_revision
    sbs = pooled.get("sbs", "base")
    assert sbs.spec.template is not None
    sbs.spec.template["spec"]["containers"][0]["image"] = "registry.example.com/sandbox:v2"
    (after,) = pooled.apply(sbs)
    assert after.metadata.generation == 2
    pooled.advance(120)
    now = pooled.get("sbs", "base")
    assert now.status.update_revision != rev0
    assert now.status.observed_generation == 2
    assert {p.spec["containers"][0]["image"] for p in pooled.list("pod")} == {
        "registry.example.com/sandbox:v2"
    }


# -- 2. a multi-document apply is all or nothing -------------------------------------


def test_the_same_new_object_twice_is_refused_up_front(cluster: Cluster) -> None:
    """Two documents naming one object: one InvalidError, and neither is created."""
    before = snapshot(cluster)
    with pytest.raises(InvalidError) as err:
        cluster.apply(pool_yaml("a", 0) + "---\n" + pool_yaml("a", 1))
    assert err.value.field == "SandboxSet/a metadata.name"
    assert "twice" in err.value.reason
    assert snapshot(cluster) == before
    assert cluster.list("sbs") == []


def test_apply_refuses_an_object_with_only_a_generate_name(cluster: Cluster) -> None:
    """As ``kubectl apply`` ("cannot use generate name with apply"): each apply of the
    manifest would make one more object. One InvalidError naming metadata.name, no write."""
    before = snapshot(cluster)
    generated = pool_yaml("unused", 0).replace("name: unused", "generateName: job-")
    with pytest.raises(InvalidError) as err:
        cluster.apply(pool_yaml("a", 0) + "---\n" + generated)
    assert err.value.field == "SandboxSet/job- metadata.name"
    assert "apply needs a name" in err.value.reason
    assert snapshot(cluster) == before


def test_create_makes_a_new_object_from_a_generate_name_each_time(cluster: Cluster) -> None:
    """``kubectl create``: every object is new, so generateName is welcome."""
    generated = pool_yaml("unused", 0).replace("name: unused", "generateName: job-")
    (first,) = cluster.create(generated)
    (second,) = cluster.create(generated)
    assert first.metadata.name != second.metadata.name
    assert first.metadata.name.startswith("job-") and second.metadata.name.startswith("job-")
    assert sorted(o.metadata.name for o in cluster.list("sbs")) == sorted(
        [first.metadata.name, second.metadata.name]
    )
    assert len(cluster.log.of_kind("user.create")) == 2


def test_create_refuses_an_object_that_exists_and_writes_nothing(cluster: Cluster) -> None:
    """409 AlreadyExists, checked before any write: the other documents are not created."""
    cluster.apply(pool_yaml("a", 0))
    before = snapshot(cluster)
    with pytest.raises(ConflictError) as err:
        cluster.create(pool_yaml("b", 0) + "---\n" + pool_yaml("a", 0))
    assert err.value.field == "SandboxSet/a metadata.name"
    assert err.value.reason == "'a' already exists in namespace default"
    assert snapshot(cluster) == before


def test_a_pod_update_the_api_server_refuses_fails_the_whole_apply(pooled: Cluster) -> None:
    """A new set plus a pod update that changes the QoS class (a 422): nothing is created."""
    pod = pooled.list("pod")[0]
    doc = yaml.safe_load(dump(pod))
    doc.pop("status", None)
    both = {"cpu": "1", "memory": "1Gi"}
    doc["spec"]["containers"][0]["resources"] = {"requests": both, "limits": both}
    before = snapshot(pooled)
    with pytest.raises(InvalidError) as err:
        pooled.apply([yaml.safe_load(pool_yaml("newset", 0)), doc])
    assert err.value.field == f"Pod/{pod.metadata.name} spec"
    assert "Pod QoS is immutable" in err.value.reason
    assert snapshot(pooled) == before
    with pytest.raises(NotFoundError):
        pooled.get("sbs", "newset")


# -- 3. finalizers --------------------------------------------------------------------


def with_finalizers(manifest: str, finalizers: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(manifest)
    doc["metadata"]["finalizers"] = finalizers
    return doc


def test_a_finalizer_set_by_apply_can_be_removed_by_apply(cluster: Cluster) -> None:
    """Deleting waits for the finalizer; applying the list without it completes the deletion."""
    cluster.apply(with_finalizers(pool_yaml(replicas=1), ["example.com/keep"]))
    cluster.wait_for_pool("base")
    cluster.delete("sbs", "base")
    terminating = cluster.get("sbs", "base")
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.finalizers == ["example.com/keep"]
    cluster.apply(with_finalizers(pool_yaml(replicas=1), []))
    with pytest.raises(NotFoundError):
        cluster.get("sbs", "base")
    cluster.advance(30)
    assert cluster.list("sbx") == []


def test_completing_a_deletion_does_not_break_the_rest_of_the_apply(cluster: Cluster) -> None:
    """Removing a set's last finalizer and editing its template in one apply: both go through.

    The garbage collection the completed deletion starts runs after the other
    writes, so the template update finds its object (and then goes with its set).
    """
    cluster.apply(with_finalizers(pool_yaml(replicas=1), ["example.com/keep"]))
    cluster.wait_for_pool("base")
    name = cluster.get("sbs", "base").status.current_revision
    cluster.delete("sbs", "base")
    assert name is not None
    tpl = cluster.get("sbt", name)
    tpl.metadata.labels["note"] = "last-words"
    done = cluster.apply([with_finalizers(pool_yaml(replicas=1), []), tpl])
    assert [o.kind for o in done] == ["SandboxSet", "SandboxTemplate"]
    assert done[1].metadata.labels["note"] == "last-words"
    assert cluster.list("sbs") == []
    assert cluster.list("sbt") == []


def test_a_manifest_without_finalizers_keeps_the_stored_ones(cluster: Cluster) -> None:
    """Finalizers the manifest does not mention stay (kubectl apply leaves unmanaged fields)."""
    cluster.apply(with_finalizers(pool_yaml(replicas=0), ["example.com/keep"]))
    cluster.apply(pool_yaml(replicas=1))
    assert cluster.get("sbs", "base").metadata.finalizers == ["example.com/keep"]


def test_a_model_built_in_python_without_finalizers_keeps_the_stored_ones(
    cluster: Cluster,
) -> None:
    """A model that never states finalizers is a manifest that does not mention them: applied
    over a set held by a finalizer while being deleted, it completes no deletion."""
    cluster.apply(with_finalizers(pool_yaml(replicas=1), ["example.com/keep"]))
    cluster.wait_for_pool("base")
    cluster.delete("sbs", "base")
    model = SandboxSet.model_validate(yaml.safe_load(pool_yaml(replicas=1)))
    model.metadata.labels["note"] = "x"
    (kept,) = cluster.apply(model)
    assert kept.metadata.finalizers == ["example.com/keep"]
    assert kept.metadata.deletion_timestamp is not None
    assert len(cluster.list("sbx")) == 1


@pytest.mark.parametrize("deleting", [False, True], ids=["live", "terminating"])
def test_finalizers_null_states_no_finalizers(cluster: Cluster, deleting: bool) -> None:
    """``finalizers: null`` is stated, as ``labels: null`` is (kubectl apply deletes the field, a
    PUT decodes it as empty): the stored finalizers go, and a deletion they held completes."""
    cluster.apply(with_finalizers(pool_yaml(replicas=0), ["example.com/keep"]))
    if deleting:
        cluster.delete("sbs", "base")
    doc: dict[str, Any] = yaml.safe_load(pool_yaml(replicas=0))
    doc["metadata"].update(finalizers=None, labels=None)
    (after,) = cluster.apply(doc)
    assert after.metadata.finalizers == []
    assert [s.metadata.name for s in cluster.list("sbs")] == ([] if deleting else ["base"])


def test_no_finalizer_can_be_added_to_an_object_being_deleted(cluster: Cluster) -> None:
    """As the API server: an object marked for deletion takes no new finalizer."""
    cluster.apply(with_finalizers(pool_yaml(replicas=0), ["example.com/keep"]))
    cluster.delete("sbs", "base")
    before = snapshot(cluster)
    with pytest.raises(InvalidError) as err:
        cluster.apply(with_finalizers(pool_yaml(replicas=0), ["example.com/keep", "b.io/x"]))
    assert err.value.field == "SandboxSet/base metadata.finalizers"
    assert "being deleted" in err.value.reason
    assert snapshot(cluster) == before


def sandbox_owners(cluster: Cluster) -> list[list[str]]:
    return [[r.kind for r in s.metadata.owner_references] for s in cluster.list("sbx")]


def test_a_pool_held_by_orphan_goes_and_leaves_its_sandboxes(cluster: Cluster) -> None:
    """``orphan`` is the garbage collector's: it takes the set's references off its sandboxes,
    then removes the finalizer, and the set goes; the sandboxes and their pods stay."""
    cluster.apply(with_finalizers(pool_yaml(replicas=2), ["orphan"]))
    cluster.wait_for_pool("base")
    assert sandbox_owners(cluster) == [["SandboxSet"], ["SandboxSet"]]
    cluster.delete("sbs", "base")
    with pytest.raises(NotFoundError):
        cluster.get("sbs", "base")
    cluster.advance(30)
    assert sandbox_owners(cluster) == [[], []]
    assert len(cluster.list("pod")) == 2


def test_a_pool_deleted_in_the_foreground_goes_after_its_sandboxes(cluster: Cluster) -> None:
    """``foregroundDeletion``: the garbage collector deletes the sandboxes (each in the
    foreground too, as it has a pod), and the set stays Terminating until they are gone."""
    cluster.apply(with_finalizers(pool_yaml(replicas=2), ["foregroundDeletion"]))
    cluster.wait_for_pool("base")
    cluster.delete("sbs", "base")
    held = cluster.get("sbs", "base")
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["foregroundDeletion"]
    assert all(s.metadata.deletion_timestamp is not None for s in cluster.list("sbx"))
    cluster.advance(60)
    with pytest.raises(NotFoundError):
        cluster.get("sbs", "base")
    assert cluster.list("sbx") == [] and cluster.list("pod") == []


def test_delete_takes_kubectls_cascade_policies(cluster: Cluster) -> None:
    """``delete(..., propagation=)`` is ``kubectl delete --cascade``: Orphan leaves the
    sandboxes without their owner, Foreground holds the set until they are gone."""
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.delete("sbs", "base", propagation="Orphan")
    with pytest.raises(NotFoundError):
        cluster.get("sbs", "base")
    cluster.advance(30)
    assert sandbox_owners(cluster) == [[], []]
    assert "user.delete SandboxSet/default/base Orphan" in cluster.log.text()
    for sbx in cluster.list("sbx"):
        cluster.delete("sbx", sbx.metadata.name)
    cluster.advance(30)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.delete("sbs", "base", propagation="Foreground")
    assert cluster.get("sbs", "base").metadata.finalizers == ["foregroundDeletion"]
    cluster.advance(60)
    assert cluster.list("sbs") == [] and cluster.list("sbx") == []
    with pytest.raises(InvalidError) as err:
        cluster.delete("sbs", "x", propagation="orphan")  # type: ignore[arg-type]
    assert err.value.field == "propagation"


@pytest.mark.parametrize("controller", [True, False], ids=["controller", "plain"])
def test_a_claim_owned_by_an_operators_custom_resource_is_not_collected(
    pooled: Cluster, controller: bool
) -> None:
    """An operator's SandboxClaim owned by its own custom resource, of a kind the fake
    cluster does not serve: the garbage collector counts that owner as live (upstream's,
    with no REST mapping for the kind, never deletes the claim), so the claim stays and
    holds its sandbox rather than vanishing and leaking it."""
    owned = yaml.safe_load(claim_yaml("job-1"))
    owned["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "batch.example.com/v1",
            "kind": "AgentJob",
            "name": "job-1",
            "uid": "6f1c2a9e-0000-4000-8000-000000000002",
            "controller": controller,
        }
    ]
    pooled.apply(owned)
    pooled.advance(30)
    got = pooled.get("sandboxclaim", "job-1")
    assert got.status.claimed_replicas == 1
    assert [r.kind for r in got.metadata.owner_references] == ["AgentJob"]
    assert "gc.orphan_deleted" not in pooled.log.text()


def template_chain(cluster: Cluster, length: int) -> None:
    """SandboxTemplates ``t0 <- t1 <- ...``: each controlled (and blocked) by the one before."""
    owner: dict[str, Any] | None = None
    for i in range(length):
        doc = yaml.safe_load(
            "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxTemplate\n"
            f"metadata: {{name: t{i}, namespace: default}}\n"
            "spec: {template: {spec: {containers: [{name: c, image: img}]}}}\n"
        )
        if owner is not None:
            doc["metadata"]["ownerReferences"] = [owner]
        (made,) = cluster.apply(doc)
        owner = {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxTemplate",
            "name": made.metadata.name,
            "uid": made.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_deleting_the_head_of_a_long_owner_chain_collects_all_of_it(cluster: Cluster) -> None:
    """However deep the owner graph, a delete in the foreground takes every object down
    the chain (each waiting for the one below), and none is left half collected."""
    template_chain(cluster, 200)
    cluster.delete("sbt", "t0", propagation="Foreground")
    assert cluster.list("sbt") == []


def sandbox_template(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxTemplate\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec: {template: {spec: {containers: [{name: c, image: img}]}}}\n"
    )
    return doc


def test_apply_of_an_edited_copy_replaces_the_owner_references(pooled: Cluster) -> None:
    """``ownerReferences`` stated by the manifest replace the stored ones, as a PUT of an edited
    ``kubectl get -o yaml`` does: a sandbox cleared of its set's reference leaves the pool
    (the set makes another), and keeps the label edit of the same apply."""
    sbx = pooled.list("sbx")[0]
    sbx.metadata.owner_references = []
    sbx.metadata.labels["note"] = "detached"
    (after,) = pooled.apply(sbx)
    assert after.metadata.owner_references == []
    assert after.metadata.labels["note"] == "detached"
    pooled.advance(30)
    owners = sandbox_owners(pooled)
    assert (owners.count([]), owners.count(["SandboxSet"])) == (1, 5)


def test_an_owner_reference_added_by_apply_is_honoured_by_the_garbage_collector(
    cluster: Cluster,
) -> None:
    """An owner added on an update counts as one given on a create: deleting the owner
    collects the object, and an owner that does not exist has the object collected at once."""
    (owner,) = cluster.apply(sandbox_template("owner"))
    cluster.apply(sandbox_template("dep"))
    dep = cluster.get("sbt", "dep")
    ref = {"apiVersion": "agents.kruise.io/v1alpha1", "kind": "SandboxTemplate", "name": "owner"}
    dep.metadata.owner_references = [
        OwnerReference.model_validate({**ref, "uid": owner.metadata.uid})
    ]
    cluster.apply(dep)
    cluster.delete("sbt", "owner")
    cluster.advance(1)
    assert cluster.list("sbt") == []
    cluster.apply(sandbox_template("orphan"))
    doc = sandbox_template("orphan")
    doc["metadata"]["ownerReferences"] = [{**ref, "uid": "6f1c2a9e-0000-4000-8000-00000000dead"}]
    cluster.apply(doc)
    cluster.advance(1)
    assert cluster.list("sbt") == []
    assert "gc.orphan_deleted" in cluster.log.text()


def test_a_manifest_without_owner_references_keeps_the_stored_ones(pooled: Cluster) -> None:
    """A manifest that does not mention ``ownerReferences`` leaves those the controllers wrote,
    as kubectl apply leaves the fields it does not manage; ``ownerReferences: null`` removes
    them."""
    name = pooled.list("sbx")[0].metadata.name
    doc: dict[str, Any] = yaml.safe_load(dump(pooled.get("sbx", name)))
    del doc["metadata"]["ownerReferences"]
    doc["metadata"]["labels"]["note"] = "x"
    (after,) = pooled.apply(doc)
    assert after.metadata.labels["note"] == "x"
    assert [r.kind for r in after.metadata.owner_references] == ["SandboxSet"]
    doc["metadata"].update(ownerReferences=None, resourceVersion=None)  # stated: none
    (after,) = pooled.apply(doc)
    assert after.metadata.owner_references == []


def test_an_owner_reference_edit_in_a_refused_apply_changes_nothing(pooled: Cluster) -> None:
    """All or nothing: the owner-reference edit of a document goes only with the others."""
    sbx = pooled.list("sbx")[0]
    sbx.metadata.owner_references = []
    claim = yaml.safe_load(claim_yaml("c"))
    claim["spec"]["replicas"] = 0
    before = snapshot(pooled)
    with pytest.raises(InvalidError):
        pooled.apply([sbx, claim])
    assert snapshot(pooled) == before


# -- 4. no-op updates and stale resourceVersions --------------------------------------


@pytest.mark.parametrize("version", ["", "0", "000"])
def test_an_empty_or_zero_resource_version_is_no_precondition(
    pooled: Cluster, version: str
) -> None:
    """``resourceVersion: ""`` is no version at all, on an update as on a create; one that
    parses to 0 asks for an unconditional update (``Store.Update``), which custom resources
    and pods allow."""
    doc: dict[str, Any] = yaml.safe_load(pool_yaml(replicas=4))
    doc["metadata"]["resourceVersion"] = version
    (updated,) = pooled.apply(doc)
    assert isinstance(updated, SandboxSet)
    assert updated.spec.replicas == 4


def test_a_zero_resource_version_may_come_with_a_create(cluster: Cluster) -> None:
    """The store refuses only a non-zero version on a create (etcd3 ``store.Create``)."""
    doc: dict[str, Any] = yaml.safe_load(pool_yaml(replicas=0))
    doc["metadata"]["resourceVersion"] = "0"
    (made,) = cluster.apply(doc)
    assert made.metadata.resource_version not in (None, "", "0")


def test_re_applying_a_pod_that_states_only_limits_writes_nothing(cluster: Cluster) -> None:
    """The API server fills a request from its limit on every write: the same manifest again
    changes nothing, and the stored requests stay."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "solo", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "img:1", "resources": {"limits": {"cpu": "1"}}}]
        },
    }
    (created,) = cluster.apply(pod)
    (again,) = cluster.apply(pod)
    assert again.metadata.resource_version == created.metadata.resource_version
    assert isinstance(again, Pod)
    assert again.spec["containers"][0]["resources"]["requests"] == {"cpu": "1"}


def test_a_no_op_apply_writes_nothing(pooled: Cluster) -> None:
    """Re-applying what is stored keeps resourceVersion and sends no watch event."""
    rv = pooled.get("sbs", "base").metadata.resource_version
    writes = pooled.world.api.writes
    (same,) = pooled.apply(pool_yaml())
    assert same.metadata.resource_version == rv
    assert pooled.world.api.writes == writes
    assert pooled.get("sbs", "base").metadata.resource_version == rv


def test_a_label_change_is_a_write_without_a_new_generation(pooled: Cluster) -> None:
    """Metadata-only changes are writes (new resourceVersion) but keep the generation."""
    sbs = pooled.get("sbs", "base")
    sbs.metadata.labels["team"] = "a"
    (after,) = pooled.apply(sbs)
    assert after.metadata.resource_version != sbs.metadata.resource_version
    assert after.metadata.generation == 1
    assert after.metadata.labels == {"team": "a"}


def test_a_stale_resource_version_is_a_conflict(pooled: Cluster) -> None:
    """A manifest carrying an old resourceVersion is a 409 and overwrites nothing."""
    old = pooled.get("sbs", "base")
    pooled.apply(pool_yaml(replicas=4))
    old.spec.replicas = 2
    before = snapshot(pooled)
    with pytest.raises(ConflictError) as err:
        pooled.apply(old)
    assert err.value.code == 409
    assert err.value.field == "SandboxSet/base metadata.resourceVersion"
    assert "has been modified" in err.value.reason
    assert isinstance(err.value, InvalidError)
    assert snapshot(pooled) == before
    assert pooled.get("sbs", "base").spec.replicas == 4


def test_the_current_resource_version_is_accepted(pooled: Cluster) -> None:
    """get -> edit -> apply with nothing written in between goes through."""
    doc = yaml.safe_load(dump(pooled.get("sbs", "base")))
    doc["spec"]["replicas"] = 6
    after: Any = pooled.apply(doc)[0]
    assert after.spec.replicas == 6


@pytest.mark.parametrize("version", ["abc", "1.0", "1e3", "-1", " 1", "+1", "18446744073709551616"])
def test_a_resource_version_that_is_no_version_is_invalid(pooled: Cluster, version: str) -> None:
    """A resourceVersion the API server cannot parse as an unsigned integer is bad input
    (``ParseResourceVersion`` answers Invalid, naming the field), not a conflict that no
    retry could resolve; nothing is written."""
    doc: dict[str, Any] = yaml.safe_load(pool_yaml(replicas=4))
    doc["metadata"]["resourceVersion"] = version
    before = snapshot(pooled)
    with pytest.raises(InvalidError) as err:
        pooled.apply(doc)
    assert not isinstance(err.value, ConflictError)
    assert err.value.field == "SandboxSet/base metadata.resourceVersion"
    assert err.value.reason == (
        f"must be a resourceVersion the API server gave (an unsigned integer), got {version!r}"
    )
    assert snapshot(pooled) == before


def test_a_resource_version_is_compared_as_a_number(pooled: Cluster) -> None:
    """``"0<rv>"`` is the stored version, as the API server parses it: no conflict."""
    rv = pooled.get("sbs", "base").metadata.resource_version
    doc: dict[str, Any] = yaml.safe_load(pool_yaml(replicas=4))
    doc["metadata"]["resourceVersion"] = f"0{rv}"
    (after,) = pooled.apply(doc)
    assert isinstance(after, SandboxSet)
    assert after.spec.replicas == 4


@pytest.mark.parametrize(
    "empty",
    ["runtimes: []", "persistentContents: []", "volumeClaimTemplates: []", "scaleStrategy: {}"],
)
def test_applying_a_dump_of_a_pool_changes_nothing(cluster: Cluster, empty: str) -> None:
    """``kubectl get -o yaml | kubectl apply -f -``: an empty list or map the user wrote is
    dumped as written, so the pool keeps its revision and its sandboxes."""
    manifest = pool_yaml(replicas=2, agent_runtime=False)
    cluster.apply(manifest.replace("spec:\n", f"spec:\n  {empty}\n", 1))
    cluster.wait_for_pool("base")
    sbs = cluster.get("sbs", "base")
    sandboxes = sorted(s.metadata.name for s in cluster.list("sbx"))
    writes, _, versions = snapshot(cluster)
    (same,) = cluster.apply(dump(sbs))
    assert same.metadata.resource_version == sbs.metadata.resource_version
    assert (snapshot(cluster)[0], snapshot(cluster)[2]) == (writes, versions)
    cluster.advance(30)
    assert cluster.get("sbs", "base").status.update_revision == sbs.status.update_revision
    assert sorted(s.metadata.name for s in cluster.list("sbx")) == sandboxes


def test_a_dump_of_a_deleted_object_is_not_created_again(pooled: Cluster) -> None:
    """Its ``resourceVersion`` would pass an old version off as current: the API server refuses
    it ("resourceVersion should not be set on objects to be created"), and so do we."""
    (claim,) = pooled.apply(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxClaim\n"
        "metadata: {name: c}\nspec: {templateName: base}\n"
    )
    saved = dump(claim)
    pooled.delete("sbc", "c")
    pooled.advance(1)
    before = snapshot(pooled)
    with pytest.raises(InvalidError) as err:
        pooled.apply(saved)
    assert err.value.field == "SandboxClaim/c metadata.resourceVersion"
    assert err.value.reason.startswith("should not be set on objects to be created")
    assert snapshot(pooled) == before
    doc = yaml.safe_load(saved)
    del doc["metadata"]["resourceVersion"]
    (again,) = pooled.apply(doc)
    assert again.metadata.uid != claim.metadata.uid


def test_an_update_naming_another_uid_is_a_conflict(pooled: Cluster) -> None:
    """A manifest of an object since deleted and made anew under the same name does not
    overwrite the new one: the API server's UID precondition answers 409."""
    got = pooled.get("sbs", "base")
    got.metadata.uid = "00000000-0000-0000-0000-000000000000"
    got.metadata.resource_version = None
    got.spec.replicas = 3
    before = snapshot(pooled)
    with pytest.raises(ConflictError) as err:
        pooled.apply(got)
    assert err.value.code == 409
    assert err.value.field == "SandboxSet/base metadata.uid"
    assert err.value.reason == (
        "Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, "
        f"UID in object meta: {stored(pooled, 'SandboxSet', 'base').metadata.uid}"
    )
    assert snapshot(pooled) == before
    assert pooled.get("sbs", "base").spec.replicas == 5


# -- 5. arguments of the wrong type ------------------------------------------------------


WRONG_ARGUMENTS: list[tuple[str, tuple[Any, ...], str]] = [
    ("get", (None, "base"), "kind"),
    ("get", ("sbs", None), "name"),
    ("get", ("sbs", 5), "name"),
    ("get", ("sbs", ""), "name"),
    ("get", ("sbs", "base", None), "namespace"),
    ("list", (7,), "kind"),
    ("list", ("sbs", 5), "namespace"),
    ("list", ("sbs", ""), "namespace"),
    ("delete", ("sbs", None), "name"),
    ("delete", ("sbs", "base", None), "namespace"),
    ("delete", (b"sbs", "base"), "kind"),
    ("table", ("sbs", 5), "namespace"),
    ("table", (None,), "kind"),
]


@pytest.mark.parametrize(
    ("method", "args", "field"),
    WRONG_ARGUMENTS,
    ids=[f"{m}{args!r}" for m, args, _ in WRONG_ARGUMENTS],
)
def test_wrong_typed_arguments_are_refused(
    pooled: Cluster, method: str, args: tuple[Any, ...], field: str
) -> None:
    """Each names the argument and changes nothing."""
    before = snapshot(pooled)
    with pytest.raises(InvalidError) as err:
        getattr(pooled, method)(*args)
    assert err.value.field == field
    assert snapshot(pooled) == before


# -- 6. key order --------------------------------------------------------------------------


def test_list_and_table_are_in_key_order(cluster: Cluster) -> None:
    """As the API server lists: by namespace, then name, whatever the creation order."""
    cluster.apply(
        pool_yaml("zeta", 0)
        + "---\n"
        + pool_yaml("alpha", 0)
        + "---\n"
        + pool_yaml("mid", 0, namespace="team-b")
        + "---\n"
        + pool_yaml("aaa", 0, namespace="team-a")
    )
    keys = [(o.metadata.namespace, o.metadata.name) for o in cluster.list("sbs")]
    assert keys == [("default", "alpha"), ("default", "zeta"), ("team-a", "aaa"), ("team-b", "mid")]
    assert [o.metadata.name for o in cluster.list("sbs", "default")] == ["alpha", "zeta"]
    rows = [line.split()[:2] for line in cluster.table("sbs").splitlines()[1:]]
    assert rows == [["default", "alpha"], ["default", "zeta"], ["team-a", "aaa"], ["team-b", "mid"]]
    names = [line.split()[0] for line in cluster.table("sbs", "default").splitlines()[1:]]
    assert names == ["alpha", "zeta"]


# -- 7. materialised templates are immutable ------------------------------------------------


def test_a_materialised_template_cannot_be_edited(pooled: Cluster) -> None:
    """The SandboxTemplate ``<set>-<revision>`` a set owns refuses a spec change."""
    name = pooled.get("sbs", "base").status.current_revision
    assert name is not None
    doc = yaml.safe_load(dump(pooled.get("sbt", name)))
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    before = snapshot(pooled)
    with pytest.raises(InvalidError) as err:
        pooled.apply(doc)
    assert err.value.field == f"SandboxTemplate/{name} spec.template"
    assert "immutable" in err.value.reason
    assert snapshot(pooled) == before


def test_a_materialised_template_takes_new_labels(pooled: Cluster) -> None:
    """Only its spec is immutable: labels and annotations may change."""
    name = pooled.get("sbs", "base").status.current_revision
    assert name is not None
    tpl = pooled.get("sbt", name)
    tpl.metadata.annotations["note"] = "kept"
    (after,) = pooled.apply(tpl)
    assert after.metadata.annotations["note"] == "kept"


def test_a_template_of_ones_own_can_be_edited(cluster: Cluster) -> None:
    """A SandboxTemplate no set owns is the user's: its spec may change."""
    doc = yaml.safe_load(pool_yaml())
    tpl: dict[str, Any] = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxTemplate",
        "metadata": {"name": "mine"},
        "spec": {"template": doc["spec"]["template"]},
    }
    cluster.apply(tpl)
    tpl["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
    after: Any = cluster.apply(tpl)[0]
    assert after.spec.template["spec"]["containers"][0]["image"] == "other:1"


_MISSING: dict[str, tuple[Any, type[Exception], int]] = {
    "get": (lambda c: c.get("sbx", "gone"), NotFoundError, 404),
    "delete": (lambda c: c.delete("sbx", "gone"), NotFoundError, 404),
    "wait_for_pool": (lambda c: c.wait_for_pool("gone", timeout=1), NotFoundError, 404),
    "clear_faults": (lambda c: c.clear_faults("gone"), NotFoundError, 404),
    "last_record": (lambda c: c.last_record(), NotFoundError, 404),
    "describe": (lambda c: c.describe("default--gone"), ClaimNotFoundError, 404),
    "kill": (lambda c: c.kill("default--gone"), ClaimNotFoundError, 404),
    "connect": (lambda c: c.connect("default--gone"), ClaimNotFoundError, 404),
    "set_timeout": (lambda c: c.set_timeout("default--gone", 60), ClaimNotFoundError, 404),
    "pause": (lambda c: c.pause("default--gone"), ClaimNotFoundError, 404),
    "create_sandbox": (lambda c: c.create_sandbox("gone"), ClaimNotFoundError, 400),
}


@pytest.mark.parametrize(("call", "raised", "code"), list(_MISSING.values()), ids=list(_MISSING))
def test_what_is_missing_raises_the_not_found_error_the_readme_names(
    cluster: Cluster, call: Any, raised: type[Exception], code: int
) -> None:
    """The object calls raise ``simulator.errors.NotFoundError`` (a ``LookupError``); the E2B
    calls raise the claim path's ``NotFoundError`` (a ``ClaimError``), 400 for a create naming
    no pool, as the sandbox-manager answers. The two classes are unrelated (README)."""
    with pytest.raises(raised) as info:
        call(cluster)
    assert info.value.code == code  # type: ignore[attr-defined]
    assert isinstance(info.value, LookupError) is (raised is NotFoundError)
    assert not issubclass(ClaimNotFoundError, NotFoundError)


def test_the_users_writes_take_no_latency_and_meet_no_fault(cluster: Cluster) -> None:
    """``docs/fidelity.md``, the apply row: the user's own writes are not the subject, so
    ``apply``, ``create`` and ``delete`` land at the instant they are made, past a slow API
    server and API errors injected on every verb, which the components' writes do meet."""
    for verb in ("create", "update", "delete", "patch"):
        cluster.inject("api_error", code=500, selector={"verb": verb}, duration=100)
    for latency in ("api.create", "api.update", "api.delete"):
        cluster.set_latency(latency, 5.0)
    cluster.apply(pool_yaml("p", 1))
    cluster.apply(pool_yaml("p", 2))
    cluster.create(claim_yaml("c", template="p"))
    cluster.delete("sbc", "c")
    assert cluster.now == 0
    assert cluster.get("sbs", "p").spec.replicas == 2
    assert cluster.list("sbc", "default") == []
    assert all(f.fired == 0 for f in cluster.faults)
    cluster.advance(10)  # the SandboxSet controller's creates meet them
    assert sum(f.fired for f in cluster.faults) > 0
