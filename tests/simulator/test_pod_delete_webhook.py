"""The pod-delete protection webhook (reference §4, ``pkg/webhook/pod/validating/pod_delete.go``).

Only the sandbox controller may delete the pods sandboxes create; the API
server refuses anyone else's delete with 403 Forbidden, as a validating
admission webhook's denial, and changes nothing. The garbage collector (a
deleted Sandbox takes its pod with it) and node loss (which fails pods, it
deletes none) go on as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import Pod
from simulator.apiserver import (
    GARBAGE_COLLECTOR,
    POD_DELETE_WEBHOOK,
    SANDBOX_CONTROLLER,
    USER_REQUESTER,
    ApiError,
    ForbiddenError,
)
from simulator.cluster import Cluster


def pool(replicas: int = 1) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "python:3.12",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": "py", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "runtimes": [{"name": "agent-runtime"}],
            "template": {"spec": {"containers": [container]}},
        },
    }


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster(seed=4)
    c.apply(pool())
    c.wait_for_pool("py")
    return c


def claimed(cluster: Cluster) -> str:
    """The name of a freshly claimed, running sandbox (its pod has the same name)."""
    name = cluster.create_sandbox("py", timeout=600).metadata.name
    cluster.advance(1)
    return name


def test_a_user_cannot_delete_a_sandbox_pod_and_nothing_changes(cluster: Cluster) -> None:
    """The user's delete is denied with 403 naming the webhook and the reason; the pod, its
    sandbox and the log stay as they were."""
    name = claimed(cluster)
    api = cluster.world.api
    pod = api.peek("Pod", "default", name)
    assert pod is not None and pod.metadata.labels[keys.LABEL_CREATED_BY] == "sandbox"
    with pytest.raises(ForbiddenError) as caught:
        cluster.delete("Pod", name)
    err = caught.value
    assert isinstance(err, ApiError)
    assert (err.code, err.reason, err.webhook) == (403, "Forbidden", POD_DELETE_WEBHOOK)
    assert str(err) == (
        f'admission webhook "{POD_DELETE_WEBHOOK}" denied the request: pod default/{name} '
        f'belongs to a sandbox: only the sandbox controller may delete it, not "{USER_REQUESTER}" '
        "(delete the Sandbox instead)"
    )
    assert api.peek("Pod", "default", name) is pod
    assert not cluster.log.of_kind("user.delete")
    cluster.advance(5)
    sbx = cluster.get("Sandbox", name)
    assert (sbx.status.phase, sbx.status.message) == ("Running", None)


def test_other_components_are_refused_too(cluster: Cluster) -> None:
    """Only the sandbox controller's identity passes: the sandbox-manager's client is refused."""
    name = claimed(cluster)
    world = cluster.world
    assert world.controller_client.name == SANDBOX_CONTROLLER
    proc = world.ctx.env.process(world.api.delete(world.manager_client, "Pod", "default", name))
    cluster.run_until(lambda: proc.triggered)
    assert not proc.ok
    assert isinstance(proc.value, ForbiddenError)
    proc.defused = True
    pod = world.api.peek("Pod", "default", name)
    assert pod is not None and pod.metadata.deletion_timestamp is None


def test_a_pod_not_created_by_a_sandbox_can_be_deleted(cluster: Cluster) -> None:
    """The webhook guards sandbox pods only: a user's own pod is deleted as usual."""
    api = cluster.world.api
    api.commit_create(
        Pod(
            metadata=ObjectMeta(name="mine", namespace="default"),
            spec={"containers": [{"name": "c", "image": "busybox"}]},
        )
    )
    cluster.delete("Pod", "mine")
    assert api.peek("Pod", "default", "mine") is None


@pytest.mark.parametrize("propagation", [None, "Background", "Foreground"])
def test_deleting_the_sandbox_still_takes_its_pod(cluster: Cluster, propagation: Any) -> None:
    """The garbage collector's cascade from a deleted Sandbox is let through."""
    name = claimed(cluster)
    cluster.delete("Sandbox", name, propagation=propagation)
    cluster.run_until(lambda: cluster.world.api.peek("Pod", "default", name) is None, timeout=60)
    assert cluster.world.api.peek("Sandbox", "default", name) is None


def test_a_pod_its_sandbox_orphaned_can_be_deleted_and_the_name_used_again() -> None:
    """A Sandbox deleted with ``Orphan`` propagation leaves its pod with no owner: no Sandbox
    to delete instead, and the controller does not delete a pod it does not control. The
    webhook lets the user delete it, and a Sandbox made anew under the name then runs."""
    cluster = Cluster(seed=1)
    bare = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "Sandbox",
        "metadata": {"name": "s1", "namespace": "default"},
        "spec": {"template": pool()["spec"]["template"]},
    }
    cluster.apply(bare)
    cluster.run_until(lambda: cluster.get("sbx", "s1").status.phase == "Running", timeout=60)
    cluster.delete("sbx", "s1", propagation="Orphan")
    cluster.advance(5)
    pod = cluster.world.api.peek("Pod", "default", "s1")
    assert pod is not None and not pod.metadata.owner_references

    cluster.delete("Pod", "s1")
    cluster.advance(5)

    assert cluster.world.api.peek("Pod", "default", "s1") is None
    cluster.apply(bare)
    cluster.run_until(lambda: cluster.get("sbx", "s1").status.phase == "Running", timeout=120)


def test_the_sandbox_controller_still_deletes_pods_to_pause(cluster: Cluster) -> None:
    """A pause deletes the pod: the sandbox controller's delete is let through."""
    name = claimed(cluster)
    cluster.pause(cluster.sandbox_id(cluster.get("Sandbox", name)))
    cluster.run_until(lambda: cluster.world.api.peek("Pod", "default", name) is None, timeout=60)
    assert cluster.get("Sandbox", name).status.phase == "Paused"


def test_node_loss_still_fails_the_pods_on_the_node(cluster: Cluster) -> None:
    """Node loss fails its pods (it deletes none), so the webhook does not stand in its way."""
    name = claimed(cluster)
    pod = cluster.world.api.peek("Pod", "default", name)
    assert pod is not None
    cluster.inject("node_loss", selector={"node": pod.spec["nodeName"]})
    cluster.advance(5)
    sbx = cluster.get("Sandbox", name)
    assert (sbx.status.phase, sbx.status.message) == ("Failed", "NodeLost")


def test_the_garbage_collector_and_the_controller_may_delete_directly(cluster: Cluster) -> None:
    """``commit_delete`` takes the requester: the allowed identities pass, the default is the user."""
    a, b = claimed(cluster), claimed(cluster)
    api = cluster.world.api
    with pytest.raises(ForbiddenError):
        api.commit_delete("Pod", "default", a)
    api.commit_delete("Pod", "default", a, requester=GARBAGE_COLLECTOR)
    api.commit_delete("Pod", "default", b, requester=SANDBOX_CONTROLLER)
    for name in (a, b):
        pod = api.peek("Pod", "default", name)
        assert pod is None or pod.metadata.deletion_timestamp is not None
