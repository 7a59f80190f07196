"""What a pod asks of a node, as kube-scheduler and the kubelet count it.

Init containers, pods bound without the scheduler (kubelet admission), scoring of pods
that request nothing, and in-place resizes of any container's CPU or memory (the
scheduler charges a pod ``max(spec, allocated)`` while its resize is not Infeasible).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api.meta import ObjectMeta, find_condition
from pytest_kruise_agents.api.pod import Pod
from simulator.cluster import Cluster
from simulator.nodes import POD_FINALIZER, Nodes, NodeSpec
from simulator.world import World
from tests.cluster.conftest import pool_yaml

from .test_nodes import IMAGE, bound_to, make, pod, run_until, running


def container(
    name: str = "main",
    *,
    cpu: str | None = "1",
    memory: str | None = "1Gi",
    cpu_limit: str | None = None,
    memory_limit: str | None = None,
    restart: str | None = None,
) -> dict[str, Any]:
    """A container asking ``cpu`` and ``memory`` (None: no request), with optional limits."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    limits = {k: v for k, v in (("cpu", cpu_limit), ("memory", memory_limit)) if v is not None}
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    out: dict[str, Any] = {"name": name, "image": IMAGE}
    if resources:
        out["resources"] = resources
    if restart is not None:
        out["restartPolicy"] = restart
    return out


def create(world: World, name: str, spec: dict[str, Any]) -> Pod:
    """Store a pod with ``spec`` as it is (``nodeName`` included, if given)."""
    created: Pod = world.api.commit_create(
        Pod(
            metadata=ObjectMeta(name=name, namespace="default", finalizers=[POD_FINALIZER]),
            spec=spec,
        )
    )
    return created


def resize(world: World, name: str, index: int, part: str, resource: str, value: str) -> None:
    """Update container ``index`` of pod ``name``: its ``part`` (requests/limits) ``resource``."""
    got = pod(world, name)
    assert got is not None
    changed = got.model_copy(deep=True)
    changed.spec["containers"][index]["resources"][part][resource] = value
    world.api.commit_update(changed)


def settle(world: World, seconds: float = 10.0) -> None:
    world.ctx.env.run(until=world.ctx.now() + seconds)


def phase(world: World, name: str) -> tuple[str, str | None]:
    got = pod(world, name)
    assert got is not None
    return got.status.phase, got.status.reason


def allocated(nodes: Nodes, node: str = "a") -> list[tuple[int, int]]:
    """The (CPU millicores, memory bytes) the node has allocated to each pod, sorted."""
    return sorted(nodes._nodes[node].alloc.values())


GI = 2**30

# -- init containers ---------------------------------------------------------------------


def test_an_init_container_larger_than_any_node_keeps_the_pod_pending() -> None:
    """The pod needs max(sum of containers, largest init container): 6 CPU fits no 4-CPU node."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    create(
        world,
        "p",
        {"initContainers": [container("setup", cpu="6")], "containers": [container(cpu="500m")]},
    )
    settle(world)
    assert bound_to(world, "p") is None and nodes.pending_pods() == 1
    assert nodes.utilisation()["a"] == (0.0, 0.0)


def test_a_pod_is_charged_its_largest_init_container_and_its_sidecars() -> None:
    """An init container of 3 CPU beside a 500m sidecar: 3.5 CPU charged, though the
    containers with the sidecar ask only 1.5 CPU; a second such pod waits."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    spec = {
        "initContainers": [
            container("proxy", cpu="500m", memory="100Mi", restart="Always"),
            container("setup", cpu="3", memory="100Mi"),
        ],
        "containers": [container(cpu="1")],
    }
    create(world, "p", spec)
    create(world, "q", spec)
    run_until(world, lambda: running(world, "p"))
    assert allocated(nodes) == [(3500, GI + 100 * 2**20)]
    assert bound_to(world, "q") is None


# -- kubelet admission of pods bound without the scheduler -------------------------------


def pinned(cpu: str = "3", memory: str = "1Gi") -> dict[str, Any]:
    return {"nodeName": "a", "containers": [container(cpu=cpu, memory=memory)]}


def test_a_pod_bound_at_creation_that_does_not_fit_is_rejected_and_not_charged() -> None:
    """The kubelet's admission: Failed, reason OutOfcpu and the kubelet's message; the node
    keeps only what it admitted, and the rejected pod never starts."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    create(world, "p0", pinned())
    create(world, "p1", pinned())
    run_until(world, lambda: running(world, "p0") and phase(world, "p1")[0] == "Failed")
    settle(world)
    got = pod(world, "p1")
    assert got is not None and got.status.reason == "OutOfcpu"
    assert got.status.message == (
        "Pod was rejected: Node didn't have enough resource: cpu, "
        "requested: 3000, used: 3000, capacity: 4000"
    )
    assert got.status.pod_ip is None
    assert allocated(nodes) == [(3000, GI)]
    (rejected,) = world.ctx.log.of_kind("kubelet.rejected")
    assert rejected.detail == "default/p1 node=a reason=OutOfcpu"
    assert [e.detail.split()[0] for e in world.ctx.log.of_kind("kubelet.running")] == ["default/p0"]


def test_a_pool_pinned_to_a_full_node_fails_and_replaces_its_sandbox_again_and_again() -> None:
    """``docs/fidelity.md``, Nodes and pods: the sandbox whose pod the kubelet rejects fails
    with the rejection's reason, its SandboxSet replaces it, and the replacement is rejected
    again for as long as the node is full; only the pod that fits ever runs."""
    cluster = Cluster(seed=1, nodes=[{"name": "n1", "cpu": "1", "memory": "8Gi"}])
    cluster.apply(
        pool_yaml(replicas=2, cpu="800m", memory="64Mi").replace(
            "    spec:\n      containers:", "    spec:\n      nodeName: n1\n      containers:"
        )
    )
    cluster.advance(3)
    cluster.inject("controller_stall", selector={"controller": "sandboxset"}, duration=60)
    cluster.advance(5)
    failed = [s for s in cluster.list("sbx") if s.status.phase == "Failed"]
    assert [s.status.message for s in failed] == ["OutOfcpu"]
    cluster.clear_faults()
    cluster.advance(10)
    rejected = cluster.log.of_kind("kubelet.rejected")
    assert len({e.detail.split()[0] for e in rejected}) > 5
    assert {e.detail.split(" ", 1)[1] for e in rejected} == {"node=n1 reason=OutOfcpu"}
    assert len(cluster.log.of_kind("kubelet.running")) == 1


@pytest.mark.parametrize(
    ("node", "spec", "reason"),
    [
        (NodeSpec(name="a", max_pods=1), pinned("1"), "OutOfpods"),
        (NodeSpec(name="a", memory="2Gi"), pinned("1", "1500Mi"), "OutOfmemory"),
    ],
)
def test_pod_slots_and_memory_are_admitted_too(
    node: NodeSpec, spec: dict[str, Any], reason: str
) -> None:
    """The pod count is checked first, then CPU, then memory."""
    world, nodes = make([node])
    create(world, "p0", spec)
    create(world, "p1", spec)
    run_until(world, lambda: phase(world, "p1") == ("Failed", reason))
    assert running(world, "p0") or run_until(world, lambda: running(world, "p0"))
    assert len(nodes._nodes["a"].alloc) == 1


def test_a_rejected_pod_is_deleted_at_once() -> None:
    """Nothing runs to stop: its finalizer goes without a grace period."""
    world, _ = make([NodeSpec(name="a", cpu="4")])
    create(world, "p0", pinned())
    create(world, "p1", pinned())
    run_until(world, lambda: phase(world, "p1")[0] == "Failed")
    start = world.ctx.now()
    world.api.commit_delete("Pod", "default", "p1")
    assert run_until(world, lambda: pod(world, "p1") is None) - start < 1


def test_a_pool_pinned_to_a_full_node_replaces_the_sandboxes_the_kubelet_rejects() -> None:
    """A SandboxSet template with nodeName: the pods beyond the node's room are rejected, their
    sandboxes fail with the reason, and the set replaces them (to be rejected again)."""
    cluster = Cluster(seed=1, nodes=[{"name": "n1", "cpu": "4"}, {"name": "n2", "cpu": "4"}])
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "base"},
            "spec": {
                "replicas": 3,
                "template": {
                    "spec": {"nodeName": "n1", "containers": [container(cpu="2")]},
                },
            },
        }
    )
    cluster.advance(30)
    running_pods = [p for p in cluster.list("Pod") if p.status.phase == "Running"]
    assert len(running_pods) == 2
    assert cluster.nodes.utilisation()["n1"][0] == 1.0
    assert cluster.nodes.utilisation()["n2"][0] == 0.0
    assert cluster.log.of_kind("kubelet.rejected")
    dead = [e for e in cluster.log.of_kind("sandboxset.delete") if "reason=dead" in e.detail]
    assert dead


# -- scoring pods that request nothing ---------------------------------------------------


def test_pods_asking_nothing_spread_over_the_nodes() -> None:
    """LeastAllocated scores them with 100m CPU and 200Mi memory per container, so they
    spread as pods with requests do (ties to the smaller name)."""
    world, _ = make([NodeSpec(name=n) for n in ("a", "b", "c", "d")])
    for i in range(8):
        create(world, f"p{i}", {"containers": [container(cpu=None, memory=None)]})
    settle(world)
    placed = [bound_to(world, f"p{i}") for i in range(8)]
    assert placed == ["a", "b", "c", "d", "a", "b", "c", "d"]


def test_the_non_zero_defaults_count_for_scoring_not_for_fit() -> None:
    """A 1-CPU node takes 20 pods asking nothing (scoring would count 2 CPU), and charges nothing."""
    world, nodes = make([NodeSpec(name="a", cpu="1", memory="1Gi")])
    for i in range(20):
        create(world, f"p{i}", {"containers": [container(cpu=None, memory=None)]})
    settle(world)
    assert all(bound_to(world, f"p{i}") == "a" for i in range(20))
    assert nodes.utilisation()["a"] == (0.0, 0.0)


# -- in-place resizes --------------------------------------------------------------------


def resizable(world: World, name: str, cpu: str, *, memory: str = "1Gi") -> Pod:
    """A Burstable pod whose one container asks ``cpu`` and ``memory``, limited to 16 and 16Gi."""
    return create(
        world,
        name,
        {"containers": [container(cpu=cpu, memory=memory, cpu_limit="16", memory_limit="16Gi")]},
    )


def test_room_a_deferred_resize_waits_for_is_not_given_to_a_new_pod() -> None:
    """The scheduler charges the resizing pod its new request; when room frees, the resize
    is carried out and the new pod keeps waiting."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    resizable(world, "a1", "1")
    resizable(world, "b2", "2")
    run_until(world, lambda: running(world, "a1") and running(world, "b2"))
    resize(world, "a1", 0, "requests", "cpu", "3")
    settle(world)
    assert pod(world, "a1").status.resize == "Deferred"  # type: ignore[union-attr]
    resizable(world, "c2", "2")
    settle(world)
    world.api.commit_delete("Pod", "default", "b2")
    run_until(world, lambda: pod(world, "a1").status.resize is None)  # type: ignore[union-attr]
    settle(world, 60)
    assert allocated(nodes) == [(3000, GI)]
    assert bound_to(world, "c2") is None and nodes.pending_pods() == 1


def test_a_new_pod_takes_room_beyond_what_a_deferred_resize_waits_for() -> None:
    """Only the resize's own room is kept: a pod that fits beside it is placed."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    resizable(world, "a1", "1")
    resizable(world, "b2", "2")
    run_until(world, lambda: running(world, "a1") and running(world, "b2"))
    resize(world, "a1", 0, "requests", "cpu", "3")
    settle(world)
    assert pod(world, "a1").status.resize == "Deferred"  # type: ignore[union-attr]
    resizable(world, "c1", "1")
    settle(world)
    assert bound_to(world, "c1") is None
    world.api.commit_delete("Pod", "default", "b2")  # 2 CPU free: 1 for a1's resize, 1 left
    run_until(world, lambda: running(world, "c1"))
    run_until(world, lambda: pod(world, "a1").status.resize is None)  # type: ignore[union-attr]
    assert allocated(nodes) == [(1000, GI), (3000, GI)]


def test_an_infeasible_resize_is_charged_only_its_allocation() -> None:
    """A resize the node can never hold keeps no room from new pods."""
    world, nodes = make([NodeSpec(name="a", cpu="8")])
    resizable(world, "a1", "1")
    resizable(world, "b2", "2")
    run_until(world, lambda: running(world, "a1") and running(world, "b2"))
    resize(world, "a1", 0, "requests", "cpu", "9")
    settle(world)
    assert pod(world, "a1").status.resize == "Infeasible"  # type: ignore[union-attr]
    resizable(world, "c5", "5")
    run_until(world, lambda: running(world, "c5"))
    assert allocated(nodes) == [(1000, GI), (2000, GI), (5000, GI)]


def placed_not_bound(world: World, nodes: Nodes, name: str) -> None:
    """Run until the scheduler has placed pod ``name`` (it looked at the node and reserved
    it: nothing is pending) and before its binding lands (no ``nodeName`` yet)."""
    looked = nodes.nodes_looked
    run_until(world, lambda: nodes.nodes_looked > looked and nodes.pending_pods() == 0)
    assert bound_to(world, name) is None


def test_a_resize_between_scheduling_and_binding_is_charged_its_new_requests() -> None:
    """A pod whose requests change after the scheduler reserved room for it, before its
    kubelet took it, holds its new requests: the kubelet admits the pod it is given (as
    upstream's admits every pod with its spec), and the scheduler's charge follows the
    bound pod. A pod that no longer fits beside it stays pending; the node is never
    over-committed."""
    world, nodes = make([NodeSpec(name="a", cpu="2")])
    resizable(world, "a1", "500m")
    placed_not_bound(world, nodes, "a1")
    resize(world, "a1", 0, "requests", "cpu", "1500m")
    run_until(world, lambda: running(world, "a1"))
    assert allocated(nodes) == [(1500, GI)]
    resizable(world, "b1", "1")
    settle(world, 60)
    assert bound_to(world, "b1") is None and nodes.pending_pods() == 1
    assert allocated(nodes) == [(1500, GI)]


def test_a_resize_between_scheduling_and_binding_that_no_longer_fits_is_rejected() -> None:
    """The kubelet's admission of the resized pod refuses it (``OutOfcpu``) when its new
    requests do not fit beside the node's other pods; its reservation is given back."""
    world, nodes = make([NodeSpec(name="a", cpu="2")])
    resizable(world, "a1", "1")
    run_until(world, lambda: running(world, "a1"))
    resizable(world, "b1", "500m")
    placed_not_bound(world, nodes, "b1")
    resize(world, "b1", 0, "requests", "cpu", "1500m")
    settle(world)
    assert phase(world, "b1") == ("Failed", "OutOfcpu")
    assert allocated(nodes) == [(1000, GI)]


def test_a_pending_pod_resized_to_fit_is_placed_at_once() -> None:
    """A pod that fits no node is tried again when its own requests go down, as
    kube-scheduler moves an unschedulable pod whose requests shrink back to its active
    queue (``UpdatePodScaleDown``): it does not wait for another pod to free room."""
    world, nodes = make([NodeSpec(name="a", cpu="2")])
    resizable(world, "big", "1500m")
    run_until(world, lambda: running(world, "big"))
    resizable(world, "waits", "1")
    settle(world)
    assert bound_to(world, "waits") is None and nodes.pending_pods() == 1
    resize(world, "waits", 0, "requests", "cpu", "500m")
    run_until(world, lambda: running(world, "waits"), limit=world.ctx.now() + 10)
    assert allocated(nodes) == [(500, GI), (1500, GI)]


def test_pending_pods_of_one_shape_are_tried_again_when_one_of_them_shrinks() -> None:
    """The shrunk pod is placed; the others of its former shape, which still fit nowhere,
    keep waiting in their order, and the first of them takes the next room freed."""
    world, nodes = make([NodeSpec(name="a", cpu="2")])
    resizable(world, "big", "1500m")
    run_until(world, lambda: running(world, "big"))
    for name in ("w1", "w2", "w3"):
        resizable(world, name, "1")
    settle(world)
    resize(world, "w2", 0, "requests", "cpu", "500m")
    run_until(world, lambda: running(world, "w2"), limit=world.ctx.now() + 10)
    assert (bound_to(world, "w1"), bound_to(world, "w3")) == (None, None)
    assert nodes.pending_pods() == 2
    world.api.commit_delete("Pod", "default", "big")
    run_until(world, lambda: running(world, "w1"), limit=world.ctx.now() + 10)
    assert bound_to(world, "w3") is None


def test_a_memory_resize_is_carried_out_and_charged() -> None:
    """Memory moves in place as CPU does: the node's allocation follows, no restart, and a
    pod that no longer fits beside it waits."""
    world, nodes = make([NodeSpec(name="a", cpu="4", memory="16Gi")])
    resizable(world, "a1", "1")
    run_until(world, lambda: running(world, "a1"))
    resize(world, "a1", 0, "requests", "memory", "12Gi")
    settle(world)
    got = pod(world, "a1")
    assert got is not None and got.status.resize is None
    ready = find_condition(got.status.conditions, "Ready")
    assert ready is not None and ready.observed_generation == got.metadata.generation
    assert allocated(nodes) == [(1000, 12 * GI)]
    (resized,) = world.ctx.log.of_kind("kubelet.resized")
    assert resized.detail == f"default/a1 node=a cpu=1000m memory={12 * GI}"
    assert not world.ctx.log.of_kind("kubelet.inplace_updated")
    resizable(world, "b8", "1", memory="8Gi")
    settle(world)
    assert bound_to(world, "b8") is None


def test_a_memory_resize_waits_for_room_like_a_cpu_resize() -> None:
    """Deferred while others hold the memory, carried out once they free it."""
    world, nodes = make([NodeSpec(name="a", cpu="4", memory="16Gi")])
    resizable(world, "a1", "1")
    resizable(world, "b8", "1", memory="8Gi")
    run_until(world, lambda: running(world, "a1") and running(world, "b8"))
    resize(world, "a1", 0, "requests", "memory", "12Gi")
    settle(world)
    assert pod(world, "a1").status.resize == "Deferred"  # type: ignore[union-attr]
    (deferred,) = world.ctx.log.of_kind("kubelet.resize_deferred")
    assert deferred.detail == f"default/a1 node=a cpu=1000m memory={12 * GI}"
    world.api.commit_delete("Pod", "default", "b8")
    run_until(world, lambda: pod(world, "a1").status.resize is None)  # type: ignore[union-attr]
    assert allocated(nodes) == [(1000, 12 * GI)]


def test_a_resize_of_a_second_container_is_carried_out() -> None:
    """Any container's CPU counts, not only the first's."""
    world, nodes = make([NodeSpec(name="a", cpu="8")])
    create(
        world,
        "two",
        {
            "containers": [
                container(cpu="1", cpu_limit="4", memory_limit="2Gi"),
                container("side", cpu="500m", memory="256Mi", cpu_limit="4", memory_limit="2Gi"),
            ]
        },
    )
    run_until(world, lambda: running(world, "two"))
    resize(world, "two", 1, "requests", "cpu", "3")
    settle(world)
    assert allocated(nodes) == [(4000, GI + 256 * 2**20)]
    (resized,) = world.ctx.log.of_kind("kubelet.resized")
    assert resized.detail == "default/two node=a cpu=4000m"


def test_a_deferred_resize_withdrawn_frees_its_room_and_clears_the_status() -> None:
    """The spec set back to what the node allocated: no charge beyond it, no ``status.resize``."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    resizable(world, "a1", "1")
    resizable(world, "b2", "2")
    run_until(world, lambda: running(world, "a1") and running(world, "b2"))
    resize(world, "a1", 0, "requests", "cpu", "3")
    settle(world)
    resizable(world, "c1", "1")
    settle(world)
    assert bound_to(world, "c1") is None  # a1's resize keeps the last CPU
    resize(world, "a1", 0, "requests", "cpu", "1")
    run_until(world, lambda: running(world, "c1"))
    settle(world)
    got = pod(world, "a1")
    assert got is not None and got.status.resize is None
    ready = find_condition(got.status.conditions, "Ready")
    assert ready is not None and ready.status == "True"
    assert ready.observed_generation == got.metadata.generation
    assert allocated(nodes) == [(1000, GI), (1000, GI), (2000, GI)]
    assert not world.ctx.log.of_kind("kubelet.resized")


V2 = "registry.example.com/sandbox:v2"


def update_image_and_cpu(world: World, name: str, image: str, cpu: str) -> int:
    """Update pod ``name``'s first container to ``image`` and ``cpu`` in one write; its generation."""
    got = pod(world, name)
    assert got is not None
    changed = got.model_copy(deep=True)
    changed.spec["containers"][0]["image"] = image
    changed.spec["containers"][0]["resources"]["requests"]["cpu"] = cpu
    generation = world.api.commit_update(changed).metadata.generation
    assert generation is not None  # a stored object's: set on create
    return generation


def ready_condition(world: World, name: str) -> tuple[str, int | None] | None:
    """The pod's Ready condition as ``(status, observedGeneration)``, if it has one."""
    got = pod(world, name)
    ready = find_condition(got.status.conditions, "Ready") if got else None
    return None if ready is None else (ready.status, ready.observed_generation)


def test_an_image_and_cpu_update_is_ready_for_its_generation_once_the_new_image_runs() -> None:
    """Image and CPU changed in one pod update: the resize is carried out first, but the
    kubelet restarts the container for the image, so Ready is not True for the new
    generation until the new image runs (after its pull), with the new CPU allocated."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    resizable(world, "a1", "1")
    run_until(world, lambda: running(world, "a1"))
    generation = update_image_and_cpu(world, "a1", V2, "2")
    t = run_until(world, lambda: ready_condition(world, "a1") == ("True", generation))
    got = pod(world, "a1")
    assert got is not None and got.status.container_statuses[0].image == V2
    assert allocated(nodes) == [(2000, GI)]
    log = world.ctx.log
    (resized,) = log.of_kind("kubelet.resized")
    (updated,) = log.of_kind("kubelet.inplace_updated")
    assert resized.time < updated.time <= t
    assert t - resized.time >= 5.0  # the pull of the new image


def test_an_image_and_cpu_update_whose_pull_fails_is_never_ready_for_its_generation() -> None:
    """The resize is done, the image never comes: Ready stays False (ContainersNotReady) for
    the new generation, and the container waits in ImagePullBackOff."""
    world, _ = make([NodeSpec(name="a", cpu="4")])
    resizable(world, "a1", "1")
    run_until(world, lambda: running(world, "a1"))
    world.ctx.faults.inject(kind="image_pull_failure", selector={"image": V2})
    generation = update_image_and_cpu(world, "a1", V2, "2")
    env = world.ctx.env
    seen: list[tuple[str, int | None]] = []  # each (status, observedGeneration) Ready took
    end = env.now + 30
    while env.peek() <= end:
        env.step()
        ready = ready_condition(world, "a1")
        if ready is not None and ready not in seen[-1:]:
            seen.append(ready)
    assert ("True", generation) not in seen
    assert seen[-1] == ("False", generation)
    got = pod(world, "a1")
    assert got is not None
    waiting = got.status.container_statuses[0].state.waiting
    assert waiting is not None and waiting.reason == "ImagePullBackOff"
    assert world.ctx.log.of_kind("kubelet.resized")


@pytest.mark.parametrize(
    ("cpu", "verdict"), [("9", "Infeasible"), ("4", "Deferred")], ids=["infeasible", "deferred"]
)
def test_a_resize_verdict_stands_while_the_image_of_the_same_update_is_replaced(
    cpu: str, verdict: str
) -> None:
    """``status.resize`` says ``Infeasible`` or ``Deferred`` at every write until the resize
    is carried out or withdrawn: the restart and the pull for the new image do not clear it,
    and the verdict is logged once."""
    world, _ = make([NodeSpec(name="a", cpu="4")])
    resizable(world, "a1", "1")
    resizable(world, "b1", "1")
    run_until(world, lambda: running(world, "a1") and running(world, "b1"))
    update_image_and_cpu(world, "a1", V2, cpu)
    env = world.ctx.env
    seen: list[str | None] = []  # each value status.resize took
    end = env.now + 30
    while env.peek() <= end:
        env.step()
        got = pod(world, "a1")
        if got is not None and got.status.resize not in seen[-1:]:
            seen.append(got.status.resize)
    assert seen == [None, verdict]
    got = pod(world, "a1")
    assert got is not None and got.status.container_statuses[0].image == V2
    assert len(world.ctx.log.of_kind("kubelet.resize_" + verdict.lower())) == 1
