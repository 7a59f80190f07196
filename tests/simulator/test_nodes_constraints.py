"""Scheduling constraints as kube-scheduler and the kubelet apply them: well-known node labels,
extended resources, the Unschedulable message, kubelet admission, bindings, scheduler names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.pod import Pod
from simulator.cluster import Cluster
from simulator.nodes import NodeSpec

NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"


def pod_yaml(name: str, spec: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{spec}"


def make_pod(cluster: Cluster, name: str, resources: str = "{}", extra: str = "") -> None:
    spec = f"  containers: [{{name: m, image: busybox, resources: {resources}}}]\n" + extra
    cluster.apply(pod_yaml(name, spec))


def scheduled(pod: Pod) -> tuple[str, str, str] | None:
    cond = find_condition(pod.status.conditions, "PodScheduled")
    return None if cond is None else (cond.status, cond.reason or "", cond.message or "")


def unschedulable(nodes: int, reasons: str, preemption: str) -> tuple[str, str, str]:
    return (
        "False",
        "Unschedulable",
        f"0/{nodes} nodes are available: {reasons}. "
        f"preemption: 0/{nodes} nodes are available: {preemption}..",
    )


# -- well-known labels -----------------------------------------------------------------


def test_nodes_carry_the_kubelets_well_known_labels() -> None:
    """``kubernetes.io/hostname`` (the node's name), ``kubernetes.io/os: linux`` and
    ``kubernetes.io/arch: amd64`` (and their ``beta.`` forms) select nodes, as on a cluster
    whose kubelets registered them; a common Helm-chart selector schedules."""
    cluster = Cluster(seed=1, nodes=[{"name": "a"}, {"name": "b"}])
    selector = "  nodeSelector: {kubernetes.io/os: linux, beta.kubernetes.io/arch: amd64, kubernetes.io/hostname: b}\n"
    make_pod(cluster, "x", extra=selector)
    cluster.advance(30)
    pod = cluster.get("Pod", "x")
    assert (pod.status.phase, pod.spec["nodeName"]) == ("Running", "b")


def test_a_nodes_own_labels_go_over_the_well_known_ones() -> None:
    """As the kubelet lays ``--node-labels`` over its defaults: a node declared ``arm64``
    is ``arm64``, and an ``amd64`` selector does not match it."""
    cluster = Cluster(seed=1, nodes=[{"name": "a", "labels": {"kubernetes.io/arch": "arm64"}}])
    make_pod(cluster, "arm", extra="  nodeSelector: {kubernetes.io/arch: arm64}\n")
    make_pod(cluster, "amd", extra="  nodeSelector: {kubernetes.io/arch: amd64}\n")
    cluster.advance(30)
    assert cluster.get("Pod", "arm").status.phase == "Running"
    amd = cluster.get("Pod", "amd")
    assert scheduled(amd) == unschedulable(
        1, "1 node(s) didn't match Pod's node affinity/selector", f"1 {NOT_HELPFUL}"
    )


# -- extended resources ---------------------------------------------------------------

GPU_POOL = """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: gpu}
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: main
        image: busybox
        resources: {limits: {nvidia.com/gpu: 1}}
"""


def test_a_pod_asking_for_a_gpu_stays_pending_on_nodes_without_one() -> None:
    """An extended resource a node does not declare is one it has none of."""
    cluster = Cluster(seed=1, nodes=[{"name": "cpu-only"}])
    cluster.apply(GPU_POOL)
    cluster.advance(60)
    pods = cluster.list("Pod")
    assert len(pods) == 3 and {p.status.phase for p in pods} == {"Pending"}
    assert pods[0].spec["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": 1}
    assert scheduled(pods[0]) == unschedulable(
        1, "1 Insufficient nvidia.com/gpu", f"1 {NOT_HELPFUL}"
    )


def test_nodes_declare_extended_resources_and_the_scheduler_counts_them() -> None:
    """Two GPUs take two pods; the third waits, as preemption finds no victim, and takes
    the GPU a deleted pod frees."""
    cluster = Cluster(seed=1, nodes=[{"name": "g", "allocatable": {"nvidia.com/gpu": 2}}])
    cluster.apply(GPU_POOL)
    cluster.advance(60)
    pods = sorted(cluster.list("Pod"), key=lambda p: p.status.phase)
    assert [p.status.phase for p in pods] == ["Pending", "Running", "Running"]
    assert scheduled(pods[0]) == unschedulable(
        1, "1 Insufficient nvidia.com/gpu", f"1 {NO_VICTIMS}"
    )
    cluster.delete("Sandbox", pods[1].metadata.name)
    cluster.advance(60)
    assert cluster.get("Pod", pods[0].metadata.name).status.phase == "Running"


def test_ephemeral_storage_is_counted_on_nodes_that_declare_it() -> None:
    """A node declaring ``ephemeral-storage`` takes what fits in it; one that does not
    declare it does not count it (see docs/fidelity.md)."""
    cluster = Cluster(
        seed=1, nodes=[{"name": "small", "allocatable": {"ephemeral-storage": "10Gi"}}]
    )
    make_pod(cluster, "fits", "{limits: {ephemeral-storage: 6Gi}}")
    make_pod(cluster, "waits", "{requests: {ephemeral-storage: 6Gi}}")
    make_pod(cluster, "never", "{requests: {ephemeral-storage: 500Ti}}")
    cluster.advance(30)
    assert cluster.get("Pod", "fits").status.phase == "Running"
    assert scheduled(cluster.get("Pod", "waits")) == unschedulable(
        1, "1 Insufficient ephemeral-storage", f"1 {NO_VICTIMS}"
    )
    assert scheduled(cluster.get("Pod", "never")) == unschedulable(
        1, "1 Insufficient ephemeral-storage", f"1 {NOT_HELPFUL}"
    )
    undeclared = Cluster(seed=1, nodes=[{"name": "a"}])
    make_pod(undeclared, "big", "{requests: {ephemeral-storage: 500Ti}}")
    undeclared.advance(30)
    assert undeclared.get("Pod", "big").status.phase == "Running"


@pytest.mark.parametrize(
    ("allocatable", "error"),
    [
        ({"cpu": "4"}, "'cpu' is the node's own field 'cpu'"),
        ({"pods": "4"}, "'pods' is the node's own field 'max_pods'"),
        ({"gpu": "1"}, "must be a standard resource for containers"),
        ({"nvidia.com/gpu": "1500m"}, "must be an integer"),
        ({"nvidia.com/gpu": "-1"}, "must be greater than or equal to 0"),
        ({"ephemeral-storage": "lots"}, "invalid quantity 'lots'"),
    ],
)
def test_a_nodes_allocatable_names_container_resources(
    allocatable: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        NodeSpec(name="a", allocatable=allocatable)


# -- the Unschedulable message ------------------------------------------------------------


def test_the_message_names_taints_selectors_and_each_short_resource() -> None:
    """``FitError``: the first failing filter of each node (taint, node selector, fit, which
    names every short resource), counted and sorted as text; then preemption's view of
    each node (asking more than a node has at all is beyond its help)."""
    cluster = Cluster(
        seed=1,
        nodes=[
            {"name": "lost", "cpu": "1"},
            {"name": "ssd", "cpu": "1", "labels": {"disk": "ssd"}},
            {"name": "small", "cpu": "1", "memory": "1Gi", "labels": {"disk": "hdd"}},
            {"name": "full", "cpu": "8", "memory": "1Gi", "max_pods": 1, "labels": {"disk": "hdd"}},
        ],
    )
    cluster.inject("node_loss", selector={"node": "lost"}, duration=1000)
    make_pod(cluster, "filler", "{requests: {cpu: 100m}}", "  nodeName: full\n")
    cluster.advance(1)
    make_pod(cluster, "x", "{requests: {cpu: '2', memory: 2Gi}}", "  nodeSelector: {disk: hdd}\n")
    cluster.advance(30)
    assert scheduled(cluster.get("Pod", "x")) == unschedulable(
        4,
        # Sorted as Go's sort.Strings sorts: byte order, upper case first.
        "1 Insufficient cpu, 1 Too many pods, "
        "1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
        "2 Insufficient memory",
        f"4 {NOT_HELPFUL}",
    )


def test_the_message_is_written_anew_when_the_reason_changes() -> None:
    """kube-scheduler rewrites the condition on each failed attempt that says something
    else: a node added that is too small changes the counts."""
    cluster = Cluster(seed=1, nodes=[{"name": "a", "cpu": "1"}])
    make_pod(cluster, "x", "{requests: {cpu: '2'}}")
    cluster.advance(30)
    first = scheduled(cluster.get("Pod", "x"))
    assert first == unschedulable(1, "1 Insufficient cpu", f"1 {NOT_HELPFUL}")
    cluster.nodes.add(NodeSpec(name="b", cpu="1"))
    cluster.advance(30)
    assert scheduled(cluster.get("Pod", "x")) == unschedulable(
        2, "2 Insufficient cpu", f"2 {NOT_HELPFUL}"
    )
    log = cluster.log.text()
    assert log.count("scheduler.unschedulable default/x") == 1


def test_pods_of_one_shape_retried_in_place_all_get_the_new_message() -> None:
    """The pods waiting with the same requests fail alike: each is told the new reason."""
    cluster = Cluster(seed=1, nodes=[{"name": "a", "cpu": "2", "memory": "8Gi"}])
    for name in ("p1", "p2", "p3", "p4"):
        make_pod(cluster, name, "{requests: {cpu: '1', memory: 1Gi}}")
    cluster.advance(30)
    for name in ("p3", "p4"):
        assert scheduled(cluster.get("Pod", name)) == unschedulable(
            1, "1 Insufficient cpu", f"1 {NO_VICTIMS}"
        )
    # A node with CPU to spare but too little memory: both are retried, and told so.
    cluster.nodes.add(NodeSpec(name="b", cpu="4", memory="512Mi"))
    cluster.advance(30)
    for name in ("p3", "p4"):
        assert scheduled(cluster.get("Pod", name)) == unschedulable(
            2, "1 Insufficient cpu, 1 Insufficient memory", f"1 {NO_VICTIMS}, 1 {NOT_HELPFUL}"
        )


# -- kubelet admission ------------------------------------------------------------------


def pinned(cluster: Cluster, resources: str, selector: str = "") -> Pod:
    make_pod(cluster, "pinned", resources, "  nodeName: n1\n" + selector)
    cluster.advance(30)
    return cluster.get("Pod", "pinned")


def test_kubelet_admission_checks_the_node_selector() -> None:
    """A pod bound with ``spec.nodeName`` to a node its selector does not match fails with
    the kubelet's ``NodeAffinity`` predicate."""
    pod = pinned(Cluster(seed=1, nodes=[{"name": "n1"}]), "{}", "  nodeSelector: {disk: ssd}\n")
    assert (pod.status.phase, pod.status.reason, pod.status.message) == (
        "Failed",
        "NodeAffinity",
        "Pod was rejected: Predicate NodeAffinity failed: "
        "node(s) didn't match Pod's node affinity/selector",
    )


def test_kubelet_admission_counts_the_extended_resources_a_node_declares() -> None:
    cluster = Cluster(seed=1, nodes=[{"name": "n1", "allocatable": {"nvidia.com/gpu": 1}}])
    pod = pinned(cluster, "{limits: {nvidia.com/gpu: 2}}")
    assert (pod.status.phase, pod.status.reason, pod.status.message) == (
        "Failed",
        "OutOfnvidia.com/gpu",
        "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, "
        "requested: 2, used: 0, capacity: 1",
    )


def test_kubelet_admission_leaves_out_extended_resources_the_node_does_not_know() -> None:
    """``removeMissingExtendedResources``: the kubelet admits a pod asking for an extended
    resource its node does not report at all (cluster-level resources), as upstream does."""
    pod = pinned(Cluster(seed=1, nodes=[{"name": "n1"}]), "{limits: {nvidia.com/gpu: 1}}")
    assert pod.status.phase == "Running"


# -- binding and scheduler names -----------------------------------------------------------


def test_binding_sets_pod_scheduled_true_at_once() -> None:
    """The binding writes ``PodScheduled=True`` with ``nodeName``: a pod that was
    Unschedulable does not keep saying so while its image downloads."""
    cluster = Cluster(seed=1, nodes=[{"name": "a", "cpu": "1"}])
    cluster.set_latency("image.pull", 120)
    make_pod(cluster, "x", "{requests: {cpu: '2'}}")
    cluster.advance(10)
    assert scheduled(cluster.get("Pod", "x"))[0] == "False"  # type: ignore[index]
    cluster.nodes.add(NodeSpec(name="b", cpu="4"))
    cluster.advance(10)
    pod = cluster.get("Pod", "x")
    assert (pod.spec["nodeName"], pod.status.phase) == ("b", "Pending")
    assert scheduled(pod) == ("True", "", "")


def test_binding_leaves_the_pod_generation_at_one() -> None:
    """``pods/binding`` writes ``nodeName`` past the pod strategy that bumps ``generation``:
    a scheduled pod is at generation 1, and its Ready condition observed generation 1."""
    cluster = Cluster(seed=1, nodes=1)
    make_pod(cluster, "x")
    cluster.advance(10)
    pod = cluster.get("Pod", "x")
    ready = find_condition(pod.status.conditions, "Ready")
    assert pod.spec["nodeName"] == "node-1"
    assert (pod.metadata.generation, ready and ready.observed_generation) == (1, 1)


def test_a_pod_for_another_scheduler_stays_pending_without_a_condition() -> None:
    """No scheduler of that name runs: nobody takes the pod. ``default-scheduler`` is this one."""
    cluster = Cluster(seed=1, nodes=1)
    make_pod(cluster, "other", extra="  schedulerName: my-scheduler\n")
    make_pod(cluster, "default", extra="  schedulerName: default-scheduler\n")
    cluster.advance(30)
    other = cluster.get("Pod", "other")
    assert (other.status.phase, other.spec.get("nodeName"), scheduled(other)) == (
        "Pending",
        None,
        None,
    )
    assert cluster.get("Pod", "default").status.phase == "Running"


# -- fields kept as written and not read -------------------------------------------------


def test_pod_fields_the_model_does_not_read_are_kept_and_change_nothing() -> None:
    """``docs/fidelity.md``, Nodes and pods: the scheduler and kubelet here read no
    ``affinity``, ``tolerations``, ``runtimeClassName``, ``topologySpreadConstraints``,
    container ``hostPort``, ``hostNetwork``, ``priorityClassName``, ``preemptionPolicy`` or
    ``overhead``. Each is stored as written; on one node, a required node affinity no node
    matches, a RuntimeClass no object defines, a zone spread over nodes without the zone label
    and two pods on one host port all run, and a ``hostNetwork`` pod gets a pod address of
    its own, not the node's."""
    cluster = Cluster(seed=1, nodes=[{"name": "a"}])
    port = ", ports: [{containerPort: 80, hostPort: 8080}]"
    affinity = (
        "  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution:"
        " {nodeSelectorTerms: [{matchExpressions: [{key: nope, operator: In, values: [x]}]}]}}}\n"
    )
    spread = (
        "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone,"
        " whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: x}}}]\n"
    )
    pods = {
        "affinity": ("", affinity),
        "tolerations": ("", "  tolerations: [{key: k, operator: Exists}]\n"),
        "runtime-class": ("", "  runtimeClassName: gvisor\n"),
        "spread": ("", spread),
        "port-1": (port, ""),
        "port-2": (port, ""),
        "host-network": ("", "  hostNetwork: true\n"),
        "priority": ("", "  priorityClassName: high\n  preemptionPolicy: Never\n"),
        "overhead": ("", "  overhead: {cpu: 100m}\n"),
    }
    for name, (container, spec) in pods.items():
        cluster.apply(
            pod_yaml(name, f"  containers: [{{name: m, image: busybox{container}}}]\n{spec}")
        )
    cluster.advance(30)
    stored = {name: cluster.get("Pod", name) for name in pods}
    assert {name: pod.status.phase for name, pod in stored.items()} == dict.fromkeys(
        pods, "Running"
    )
    assert stored["runtime-class"].spec["runtimeClassName"] == "gvisor"
    assert stored["priority"].spec["priorityClassName"] == "high"
    assert stored["overhead"].spec["overhead"] == {"cpu": "100m"}
    assert stored["port-1"].spec["containers"][0]["ports"][0]["hostPort"] == 8080
    host_network = stored["host-network"]
    assert host_network.spec["hostNetwork"] is True
    assert host_network.status.host_ip == "192.168.0.1"
    assert host_network.status.pod_ip is not None
    assert host_network.status.pod_ip.startswith("10.")
