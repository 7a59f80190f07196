"""Pods written through ``Cluster.apply``: the API server's pod create and update validation.

A Pod's spec is checked as a pod template's spec is (``ValidatePodSpec``), and
an update may change only what ``ValidatePodUpdate`` lets change. A refused
apply raises one :class:`InvalidError` naming the field and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator.cluster import Cluster
from simulator.nodes import NodeSpec

from .conftest import pool_yaml


def _pod(name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
    if spec is not None:
        doc["spec"] = spec
    return doc


def _c(**fields: Any) -> dict[str, Any]:
    return {"name": "a", "image": "x", **fields}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (None, "spec.containers", "at least one container"),
        ({"containers": []}, "spec.containers", "at least one container"),
        ({"containers": [_c(), _c(image="y")]}, "spec.containers[1].name", "duplicate"),
        ({"containers": [{"name": "a"}]}, "spec.containers[0].image", "required"),
        ({"containers": [_c(name="A_B")]}, "spec.containers[0].name", "RFC 1123 label"),
        (
            {"containers": [_c(resources={"requests": {"cpu": "-1"}})]},
            "spec.containers[0].resources.requests.cpu",
            "greater than or equal to 0",
        ),
        (
            {"containers": [_c(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})]},
            "spec.containers[0].resources.requests",
            "less than or equal to cpu limit",
        ),
        (
            {"containers": [_c(resources={"requests": {"cpu": "1e3m"}})]},
            "spec.containers[0].resources.requests.cpu",
            "invalid quantity",
        ),
        ({"restartPolicy": "Sometimes", "containers": [_c()]}, "spec.restartPolicy", "Sometimes"),
        ({"nodeSelectr": {}, "containers": [_c()]}, "spec.nodeSelectr", "unknown field"),
        (
            {"containers": [_c(imagePullPolice="Never")]},
            "spec.containers[0].imagePullPolice",
            "unknown field",
        ),
    ],
)
def test_a_pod_the_api_server_refuses_is_not_created(
    cluster: Cluster, spec: dict[str, Any] | None, field: str, reason: str
) -> None:
    """No spec, no container, a duplicate or malformed container name, no image, a negative
    request, a request above its limit, a malformed quantity, an unknown restartPolicy, an
    unknown field of the spec or of a container."""
    writes = cluster.world.api.writes
    with pytest.raises(InvalidError) as caught:
        cluster.apply(_pod("p", spec))
    assert caught.value.field == f"Pod/p {field}"
    assert reason in caught.value.reason
    assert cluster.world.api.writes == writes
    assert cluster.list("pod", "default") == []


def test_a_negative_request_cannot_make_room_on_a_node() -> None:
    """The pod that would have made a node's allocation negative is refused."""
    cluster = Cluster(seed=1, nodes=[NodeSpec(name="n1", cpu="4", memory="64Gi")])
    hog = _pod("hog", {"containers": [_c(resources={"requests": {"cpu": "-100"}})]})
    with pytest.raises(InvalidError):
        cluster.apply(hog)
    cluster.advance(5)
    assert cluster.nodes.utilisation() == {"n1": (0.0, 0.0)}


def test_a_valid_pod_is_created_and_runs(cluster: Cluster) -> None:
    """The checks refuse only what the API server refuses."""
    spec = {"containers": [_c(resources={"requests": {"cpu": " 250m"}})]}
    cluster.apply(_pod("ok", spec))
    cluster.advance(10)
    assert cluster.get("pod", "ok").status.phase == "Running"


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.__setitem__("nodeName", "elsewhere"),
        lambda s: s["containers"][0].__setitem__("command", ["sleep", "1"]),
        lambda s: s["containers"].append({"name": "side", "image": "busybox"}),
        lambda s: s.__setitem__("restartPolicy", "Never"),
        lambda s: s.__setitem__("nodeSelector", {"disk": "ssd"}),
        lambda s: s["containers"][0].__setitem__("name", "renamed"),
    ],
    ids=["nodeName", "command", "container added", "restartPolicy", "nodeSelector", "name"],
)
def test_a_pod_update_may_not_change_an_immutable_field(pooled: Cluster, change: Any) -> None:
    """``ValidatePodUpdate``: 422 naming ``spec``, with Kubernetes' message; nothing is written."""
    pod = pooled.list("pod", "default")[0]
    before = pod.spec["nodeName"]
    change(pod.spec)
    writes = pooled.world.api.writes
    with pytest.raises(InvalidError) as caught:
        pooled.apply(pod)
    assert caught.value.field == f"Pod/{pod.metadata.name} spec"
    assert caught.value.reason.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    )
    assert pooled.world.api.writes == writes
    assert pooled.get("pod", pod.metadata.name).spec["nodeName"] == before


def test_a_pod_update_may_change_images_resources_and_add_tolerations(pooled: Cluster) -> None:
    """What Kubernetes lets change: an image, CPU and memory (in-place resize), a new
    toleration, a shorter activeDeadlineSeconds."""
    pod = pooled.list("pod", "default")[0]
    container = pod.spec["containers"][0]
    container["image"] = "registry.example.com/sandbox:v2"
    container["resources"]["requests"]["memory"] = "256Mi"
    pod.spec["tolerations"] = [{"key": "k", "operator": "Exists"}]
    pooled.apply(pod)
    after = pooled.get("pod", pod.metadata.name)
    assert after.spec["containers"][0]["image"].endswith(":v2")
    assert after.spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    pod = pooled.get("pod", pod.metadata.name)
    pod.spec["tolerations"] = []
    with pytest.raises(InvalidError) as caught:
        pooled.apply(pod)
    assert caught.value.field == f"Pod/{pod.metadata.name} spec.tolerations"


def _web(labels: dict[str, str], image: str = "nginx:1.25", **spec: Any) -> dict[str, Any]:
    doc = _pod("web", {"containers": [{"name": "main", "image": image}], **spec})
    doc["metadata"]["labels"] = labels
    return doc


def _scheduled_web(cluster: Cluster) -> str:
    """Apply pod ``web`` and let the scheduler bind it; its ``resourceVersion``."""
    cluster.apply(_web({"app": "web"}))
    cluster.advance(10)
    pod = cluster.get("pod", "web")
    assert pod.spec["nodeName"] and pod.status.phase == "Running"
    return str(pod.metadata.resource_version)


def test_reapplying_a_scheduled_pods_manifest_changes_nothing(cluster: Cluster) -> None:
    """``kubectl apply`` leaves the ``nodeName`` the binding set: the pod's own manifest,
    which states none, is a no-op (no write), not a change of node."""
    rv = _scheduled_web(cluster)
    writes = cluster.world.api.writes
    assert cluster.apply(_web({"app": "web"}))[0].metadata.resource_version == rv
    assert cluster.world.api.writes == writes


def test_a_scheduled_pods_labels_and_image_change_by_apply(cluster: Cluster) -> None:
    """A label change is written, and an image change is the in-place update the kubelet
    carries out; the pod stays on its node."""
    _scheduled_web(cluster)
    node = cluster.get("pod", "web").spec["nodeName"]
    cluster.apply(_web({"app": "api"}, image="nginx:1.26"))
    cluster.advance(30)
    pod = cluster.get("pod", "web")
    assert (pod.metadata.labels, pod.spec["nodeName"]) == ({"app": "api"}, node)
    assert [s.image for s in pod.status.container_statuses] == ["docker.io/library/nginx:1.26"]
    assert pod.status.phase == "Running"


@pytest.mark.parametrize("node", ["elsewhere", None], ids=["another node", "null"])
def test_a_nodename_the_manifest_states_is_compared(cluster: Cluster, node: str | None) -> None:
    """A manifest that states another node, or ``nodeName: null``, still changes the node:
    refused, naming ``spec`` and ``spec.nodeName``; nothing is written."""
    rv = _scheduled_web(cluster)
    with pytest.raises(InvalidError) as caught:
        cluster.apply(_web({"app": "web"}, nodeName=node))
    assert caught.value.field == "Pod/web spec"
    assert caught.value.reason.endswith("(changed: spec.nodeName)")
    assert cluster.get("pod", "web").metadata.resource_version == rv


def test_a_templateref_name_longer_than_a_label_value_is_refused(cluster: Cluster) -> None:
    """It becomes every sandbox's ``agents.kruise.io/sandbox-template`` label, as a
    SandboxSet's name becomes their ``sandbox-pool`` label."""
    doc = pool_yaml().split("  template:")[0] + f"  templateRef: {{name: {'t' * 64}}}\n"
    with pytest.raises(InvalidError) as caught:
        cluster.apply(doc)
    assert caught.value.field == "SandboxSet/base spec.templateRef.name"
    assert "at most 63 characters" in caught.value.reason
    assert cluster.list("sbs", "default") == []


def test_the_sandbox_controller_does_not_label_pods_with_the_sandbox_name(
    pooled: Cluster,
) -> None:
    """Upstream writes ``agents.kruise.io/sandbox-name`` only on the E2B create path, in the
    pod template; a pool's pods do not carry it (so a long sandbox name is no bad label)."""
    for pod in pooled.list("pod", "default"):
        assert "agents.kruise.io/sandbox-name" not in pod.metadata.labels


def test_a_pod_made_from_a_template_with_a_typo_can_be_read_and_applied_back(
    cluster: Cluster,
) -> None:
    """The SandboxSet's template is schemaless, so its typo is stored; the controller's typed
    decode drops it, so the pod has none, and ``get`` then ``apply`` of the pod (as with
    ``kubectl edit``) is a no-op, not a refusal of a field the pod was made with."""
    doc = pool_yaml(replicas=1).replace(
        "        - name: sandbox\n", "        - name: sandbox\n          imagePullPolice: Always\n"
    )
    assert "imagePullPolice" in doc
    cluster.apply(doc)
    cluster.wait_for_pool("base")
    template = cluster.get("sbs", "base").spec.template
    assert template is not None and "imagePullPolice" in template["spec"]["containers"][0]
    (pod,) = cluster.list("pod", "default")
    assert "imagePullPolice" not in pod.spec["containers"][0]
    assert cluster.apply(pod)[0].metadata.resource_version == pod.metadata.resource_version
