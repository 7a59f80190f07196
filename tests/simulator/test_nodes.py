"""The scheduler and kubelets of the fake cluster: placement, pod start-up, deletion and faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_kruise_agents.api import dump, keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.meta import ObjectMeta, find_condition
from pytest_kruise_agents.api.pod import Pod, PodRequests, pod_requests
from simulator.context import SimContext
from simulator.nodes import (
    ANN_GRACE_SECONDS,
    MAX_NODES,
    POD_FINALIZER,
    Nodes,
    NodeSpec,
    backoff_delay,
)
from simulator.profile import get_profile
from simulator.world import World

IMAGE = "registry.example.com/sandbox:v1"

# Every step fixed, so that timings in assertions are exact.
FIXED = {
    "api.create": 0.01,
    "api.update": 0.01,
    "api.update_status": 0.01,
    "api.delete": 0.01,
    "api.get": 0.01,
    "watch.lag": 0.0,
    "scheduler.bind": 0.01,
    "pod.create": 0.2,
    "image.pull": 5.0,
    "image.pull_cached": 0.1,
    "container.start": 0.5,
    "container.ready": 0.2,
    "inplace.update": 1.0,
    "pod.stop": 0.1,
}


def make(
    specs: list[NodeSpec],
    *,
    seed: int = 1,
    latencies: dict[str, Any] | None = None,
    **knobs: Any,
) -> tuple[World, Nodes]:
    profile = get_profile("openkruise-head").with_overrides(
        latencies={**FIXED, **(latencies or {})}, **knobs
    )
    world = World(SimContext(seed=seed, profile=profile))
    nodes = Nodes(world, specs)
    nodes.start()
    return world, nodes


def add_pod(
    world: World,
    name: str,
    *,
    cpu: str = "1",
    memory: str = "1Gi",
    image: str = IMAGE,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
) -> Pod:
    spec: dict[str, object] = {
        "containers": [
            {
                "name": "main",
                "image": image,
                "resources": {"requests": {"cpu": cpu, "memory": memory}},
            }
        ]
    }
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    pod = Pod(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            labels=labels or {},
            annotations=annotations or {},
            finalizers=[POD_FINALIZER],
        ),
        spec=spec,
    )
    created: Pod = world.api.commit_create(pod)
    return created


def pod(world: World, name: str) -> Pod | None:
    got: Pod | None = world.api.peek("Pod", "default", name)
    return got


def running(world: World, name: str) -> bool:
    p = pod(world, name)
    if p is None or p.status.phase != "Running":
        return False
    ready = find_condition(p.status.conditions, "Ready")
    return ready is not None and ready.status == "True"


def run_until(world: World, pred: Callable[[], bool], limit: float = 600.0) -> float:
    """Step the simulation until ``pred`` holds; return the virtual time it first did."""
    env = world.ctx.env
    while not pred():
        if env.peek() > limit:
            raise AssertionError(f"condition not met by t={limit}")
        env.step()
    return float(env.now)


def test_pod_starts_and_reports_running_ready_with_ips() -> None:
    """A pod is bound, created, pulled, started and reported Running/Ready with pod and host IPs."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    t = run_until(world, lambda: running(world, "p1"))
    # bind 0.01 + patch 0.01, pod.create 0.2, pull 5, start 0.5, ready 0.2, status patch 0.01
    assert t == pytest.approx(5.93)
    p = pod(world, "p1")
    assert p is not None
    assert p.spec["nodeName"] == "a"
    assert p.status.pod_ip == "10.0.0.1"
    assert p.status.host_ip == "192.168.0.1"
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and ready.observed_generation == p.metadata.generation
    # pods/binding writes nodeName past the pod strategy that bumps generation: still 1.
    assert p.metadata.generation == 1


def test_a_ready_pods_ready_condition_carries_no_reason_an_unready_ones_says_why() -> None:
    """As the kubelet writes v1.PodCondition: Ready True with no reason or message (it sets
    none), Ready False with ContainersNotReady while an image is replaced, or the failure's
    reason; a dump leaves the empty texts out (omitempty)."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    got = pod(world, "p1")
    assert got is not None
    ready = find_condition(got.status.conditions, "Ready")
    scheduled = find_condition(got.status.conditions, "PodScheduled")
    assert ready is not None and (ready.status, ready.reason, ready.message) == ("True", "", "")
    assert scheduled is not None and (scheduled.reason, scheduled.message) == ("", "")
    text = dump(got)
    assert 'reason: ""' not in text and 'message: ""' not in text
    assert "reason:" not in text[text.index("conditions:") :]
    p = got.model_copy(deep=True)
    p.spec["containers"][0]["image"] = "registry.example.com/sandbox:v2"
    world.api.commit_update(p)
    world.ctx.env.run(until=world.ctx.now() + 1)
    ready = find_condition(pod(world, "p1").status.conditions, "Ready")  # type: ignore[union-attr]
    assert ready is not None and (ready.status, ready.reason) == ("False", "ContainersNotReady")


def test_pods_pend_when_nothing_fits_and_start_when_a_pod_is_deleted() -> None:
    """A pod that fits nowhere stays Pending/Unschedulable until a deletion frees room."""
    world, nodes = make([NodeSpec(name="a", cpu="2")])
    for name in ("p1", "p2", "p3"):
        add_pod(world, name)
    run_until(world, lambda: running(world, "p1") and running(world, "p2"))
    world.ctx.env.run(until=world.ctx.now() + 30)
    p3 = pod(world, "p3")
    assert p3 is not None and p3.status.phase == "Pending" and not p3.spec.get("nodeName")
    cond = find_condition(p3.status.conditions, "PodScheduled")
    assert cond is not None and (cond.status, cond.reason) == ("False", "Unschedulable")
    assert nodes.pending_pods() == 1
    assert nodes.utilisation()["a"][0] == pytest.approx(1.0)

    world.api.commit_delete("Pod", "default", "p1")
    run_until(world, lambda: running(world, "p3"))
    assert pod(world, "p1") is None
    assert nodes.pending_pods() == 0


def test_max_pods_and_memory_bound_a_node() -> None:
    """Pod slots and memory are capacity too, not only CPU."""
    world, nodes = make([NodeSpec(name="a", max_pods=1), NodeSpec(name="b", memory="1Gi")])
    add_pod(world, "p1", cpu="100m", memory="600Mi")
    add_pod(world, "p2", cpu="100m", memory="600Mi")
    add_pod(world, "p3", cpu="100m", memory="600Mi")
    world.ctx.env.run(until=30)
    placed = sorted(p.spec.get("nodeName") or "-" for p in world.api.peek_list("Pod"))
    assert placed == ["-", "a", "b"]
    assert nodes.pending_pods() == 1


def test_least_allocated_spreads_pods_with_name_tie_break() -> None:
    """The scheduler prefers the least allocated node, and the smaller name on a tie."""
    world, _ = make([NodeSpec(name="b"), NodeSpec(name="a")])
    add_pod(world, "p1")
    world.ctx.env.run(until=1)
    add_pod(world, "p2")
    world.ctx.env.run(until=2)
    assert pod(world, "p1").spec["nodeName"] == "a"  # type: ignore[union-attr]
    assert pod(world, "p2").spec["nodeName"] == "b"  # type: ignore[union-attr]


def test_node_selector_is_honoured() -> None:
    """A pod with a nodeSelector goes only to a node with those labels."""
    world, _ = make([NodeSpec(name="a"), NodeSpec(name="gpu", labels={"kind": "gpu"})])
    add_pod(world, "p1", node_selector={"kind": "gpu"})  # set at create: a pod's spec is fixed
    run_until(world, lambda: running(world, "p1"))
    assert pod(world, "p1").spec["nodeName"] == "gpu"  # type: ignore[union-attr]


def test_first_pull_is_slow_and_later_pulls_on_the_node_are_fast() -> None:
    """The first pull of an image on a node costs image.pull; later pods hit the node's cache."""
    world, _ = make([NodeSpec(name="a")], latencies={"image.pull": 20.0})
    add_pod(world, "p1")
    first = run_until(world, lambda: running(world, "p1"))
    assert first >= 20
    start = world.ctx.now()
    add_pod(world, "p2")
    second = run_until(world, lambda: running(world, "p2")) - start
    assert second < 2


def test_pods_pulling_the_same_image_share_one_pull() -> None:
    """Two pods starting together on a node wait for one pull, not two."""
    world, _ = make([NodeSpec(name="a")], latencies={"image.pull": 20.0})
    add_pod(world, "p1")
    add_pod(world, "p2")
    t = run_until(world, lambda: running(world, "p1") and running(world, "p2"))
    assert t < 25
    assert len(world.ctx.log.of_kind("kubelet.pulled")) == 1


def test_pre_pulled_images_are_cached() -> None:
    """Images listed in the node spec need no pull."""
    world, _ = make([NodeSpec(name="a", images=(IMAGE,))], latencies={"image.pull": 20.0})
    add_pod(world, "p1")
    assert run_until(world, lambda: running(world, "p1")) < 2


def test_pod_ips_are_unique_across_nodes_and_recreations() -> None:
    """Every pod gets a distinct IP from its node's range, also after pods are recreated."""
    world, _ = make([NodeSpec(name=f"n{i}") for i in range(3)])
    for i in range(12):
        add_pod(world, f"p{i}", cpu="100m")
    run_until(world, lambda: all(running(world, f"p{i}") for i in range(12)))
    first = {pod(world, f"p{i}").status.pod_ip for i in range(12)}  # type: ignore[union-attr]
    for i in range(6):
        world.api.commit_delete("Pod", "default", f"p{i}")
    run_until(world, lambda: all(pod(world, f"p{i}") is None for i in range(6)))
    for i in range(6):
        add_pod(world, f"p{i}", cpu="100m")
    run_until(world, lambda: all(running(world, f"p{i}") for i in range(12)))
    now = [pod(world, f"p{i}").status.pod_ip for i in range(12)]  # type: ignore[union-attr]
    assert len(set(now)) == 12 and len(first) == 12
    assert not set(now[:6]) & first
    assert {ip.split(".")[1] for ip in now if ip} == {"0", "1", "2"}


def test_the_last_node_a_cluster_may_have_gives_its_pods_addresses() -> None:
    """Node ``MAX_NODES - 1`` (the last index) has a host IP and a /16 of pod addresses; no
    node can be added past it, where they would stop being addresses."""
    small = [NodeSpec(name=f"n{i:04d}", cpu="100m") for i in range(MAX_NODES - 1)]
    world, nodes = make([*small, NodeSpec(name="last")])
    add_pod(world, "p1")  # 1 CPU: only the last node fits
    run_until(world, lambda: running(world, "p1"))
    p = pod(world, "p1")
    assert p is not None and p.spec["nodeName"] == "last"
    assert (p.status.pod_ip, p.status.host_ip) == ("29.135.0.1", "192.168.19.174")

    with pytest.raises(InvalidError) as refused:
        nodes.add(NodeSpec(name="one-more"))
    assert (refused.value.field, refused.value.reason) == (
        "nodes",
        f"must be at most {MAX_NODES} (Kubernetes' supported cluster size), got {MAX_NODES + 1}",
    )
    assert len(nodes.specs) == MAX_NODES


def test_graceful_deletion_waits_for_the_grace_period() -> None:
    """A deleted pod lingers for its grace period plus pod.stop, then is gone and frees its node."""
    world, nodes = make([NodeSpec(name="a")])
    add_pod(world, "p1", annotations={ANN_GRACE_SECONDS: "5"})
    run_until(world, lambda: running(world, "p1"))
    start = world.ctx.now()
    world.api.commit_delete("Pod", "default", "p1")
    marked = pod(world, "p1")
    assert marked is not None and marked.metadata.deletion_timestamp is not None
    gone = run_until(world, lambda: pod(world, "p1") is None)
    # grace 5 + pod.stop 0.1 + finalizer patch 0.01
    assert gone - start == pytest.approx(5.11)
    assert nodes.utilisation()["a"] == (0.0, 0.0)


@pytest.mark.parametrize(("knob", "lingers"), [(None, 0.11), (3.0, 3.11)])
def test_a_pod_deleted_with_no_grace_period_takes_the_profiles(
    knob: float | None, lingers: float
) -> None:
    """``docs/fidelity.md``, Nodes and pods: with no grace period given (no delete's, no
    ``terminationGracePeriodSeconds``, which the API server here does not default to 30 s)
    the kubelet stops the containers over ``pod_delete_grace_s`` (0 s by default), as for a
    process that exits at SIGTERM; a grace period given is waited out in full."""
    knobs: dict[str, Any] = {} if knob is None else {"pod_delete_grace_s": knob}
    world, _ = make([NodeSpec(name="a")], **knobs)
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    held = pod(world, "p1")
    assert held is not None and "terminationGracePeriodSeconds" not in held.spec
    start = world.ctx.now()
    world.api.commit_delete("Pod", "default", "p1")
    gone = run_until(world, lambda: pod(world, "p1") is None)
    # grace + pod.stop 0.1 + finalizer patch 0.01
    assert gone - start == pytest.approx(lingers)


def test_a_grace_of_zero_asked_with_the_delete_overrides_the_pods_own() -> None:
    """The delete's grace (the annotation standing in for ``gracePeriodSeconds``) wins over
    the pod's ``terminationGracePeriodSeconds``, a grace of 0 too: the pod stops at once."""
    world, _ = make([NodeSpec(name="a")])
    world.api.commit_create(
        Pod(
            metadata=ObjectMeta(
                name="p1",
                namespace="default",
                annotations={ANN_GRACE_SECONDS: "0"},
                finalizers=[POD_FINALIZER],
            ),
            spec={
                "terminationGracePeriodSeconds": 30,
                "containers": [
                    {"name": "main", "image": IMAGE, "resources": {"requests": {"cpu": "1"}}}
                ],
            },
        )
    )
    run_until(world, lambda: running(world, "p1"))
    start = world.ctx.now()
    world.api.commit_delete("Pod", "default", "p1")
    gone = run_until(world, lambda: pod(world, "p1") is None)
    # grace 0 + pod.stop 0.1 + finalizer patch 0.01
    assert gone - start == pytest.approx(0.11)


def test_deleting_an_unscheduled_pod_removes_it_at_once() -> None:
    """A pod deleted while unschedulable goes with its delete, and leaves no pending pod."""
    world, nodes = make([NodeSpec(name="a", cpu="1")])
    add_pod(world, "big", cpu="4")
    world.ctx.env.run(until=5)
    assert world.api.commit_delete("Pod", "default", "big") is None
    assert pod(world, "big") is None
    world.ctx.env.run(until=6)
    assert nodes.pending_pods() == 0


@pytest.mark.parametrize("grace", [None, "5", "30"])
def test_an_unscheduled_pod_deleted_goes_at_once_whatever_its_grace_period(
    grace: str | None,
) -> None:
    """``docs/fidelity.md``, Nodes and pods: as the API server's ``CheckGracefulDelete``,
    a pod without ``spec.nodeName`` is deleted at once, its grace period notwithstanding (a
    bound one waits it out, then ``pod.stop``)."""
    world, _ = make([NodeSpec(name="a", cpu="1")])
    add_pod(world, "big", cpu="4", annotations={} if grace is None else {ANN_GRACE_SECONDS: grace})
    world.ctx.env.run(until=5)
    held = pod(world, "big")
    assert held is not None and "nodeName" not in held.spec
    assert world.api.commit_delete("Pod", "default", "big") is None
    assert pod(world, "big") is None
    assert world.ctx.now() == 5


def test_a_pod_that_ended_goes_at_its_delete() -> None:
    """``docs/fidelity.md``, Nodes and pods: as ``CheckGracefulDelete``, a pod whose phase is
    ``Failed`` (killed here) is deleted at once, its grace period notwithstanding."""
    world, nodes = make([NodeSpec(name="a")])
    add_pod(world, "p1", annotations={ANN_GRACE_SECONDS: "30"})
    run_until(world, lambda: running(world, "p1"))
    world.ctx.faults.inject(kind="pod_kill", count=1)
    world.ctx.env.run(until=world.ctx.now() + 1)
    killed = pod(world, "p1")
    assert killed is not None and killed.status.phase == "Failed"
    assert world.api.commit_delete("Pod", "default", "p1") is None
    assert pod(world, "p1") is None
    world.ctx.env.run(until=world.ctx.now() + 1)
    assert nodes.utilisation()["a"] == (0.0, 0.0) and nodes.pending_pods() == 0


def test_the_binding_refuses_a_pod_being_deleted_and_the_pod_never_runs() -> None:
    """``docs/fidelity.md``, the binding row: the scheduler's binding refuses a pod being
    deleted, as ``pods/binding`` does ("is being deleted, cannot be assigned to a host"): a
    pod deleted while its binding is under way, and held by someone's finalizer, is never
    bound, never started, and goes once the finalizer does."""
    world, nodes = make([NodeSpec(name="a")], latencies={"scheduler.bind": 1.0})
    held_by = "example.com/hold"
    hold = add_pod(world, "p1", annotations={ANN_GRACE_SECONDS: "5"}).model_copy(deep=True)
    hold.metadata.finalizers.append(held_by)
    world.api.commit_update(hold)
    world.ctx.env.run(until=0.5)
    world.api.commit_delete("Pod", "default", "p1")
    world.ctx.env.run(until=2)  # the binding, due at 1 s, came and was refused
    held = pod(world, "p1")
    assert held is not None and "nodeName" not in held.spec
    assert held.metadata.finalizers == [held_by]  # the kubelet's went with the delete
    released = held.model_copy(deep=True)
    released.metadata.finalizers = []
    world.api.commit_update(released)
    assert pod(world, "p1") is None
    world.ctx.env.run(until=world.ctx.now() + 5)
    assert not world.ctx.log.of_kind("kubelet.running")
    assert nodes.utilisation()["a"] == (0.0, 0.0)


def waiting_reason(world: World, name: str) -> str | None:
    """Why the pod's first container waits, or ``None`` if it does not."""
    p = pod(world, name)
    assert p is not None and p.status.container_statuses
    waiting = p.status.container_statuses[0].state.waiting
    return None if waiting is None else waiting.reason


def test_image_pull_failure_backs_off_and_recovers_when_cleared() -> None:
    """Failing pulls keep the pod Pending, its container waiting (ErrImagePull, then
    ImagePullBackOff), until cleared."""
    world, _ = make([NodeSpec(name="a")])
    fault = world.ctx.faults.inject(kind="image_pull_failure", selector={"image": IMAGE})
    add_pod(world, "p1")
    world.ctx.env.run(until=5)
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Pending"
    assert waiting_reason(world, "p1") == "ErrImagePull"
    world.ctx.env.run(until=60)
    assert waiting_reason(world, "p1") == "ImagePullBackOff"
    world.ctx.faults.clear(fault.id)
    cleared = world.ctx.now()
    t = run_until(world, lambda: running(world, "p1"))
    # The next retry comes within the current back-off (at most 40 s here).
    assert t - cleared <= 40 + 6
    assert waiting_reason(world, "p1") is None
    assert pod(world, "p1").status.reason is None  # type: ignore[union-attr]


def test_backoff_doubles_to_a_cap() -> None:
    """The kubelet's back-off is 10 s doubling, at most 300 s."""
    assert [backoff_delay(n) for n in (1, 2, 3, 5, 6, 10)] == [10, 20, 40, 160, 300, 300]
    # A pull failing for days: still the cap, not an OverflowError at 1,025 failures.
    assert backoff_delay(5_000) == 300


def test_slow_pull_takes_the_fault_latency() -> None:
    """image_pull_slow replaces the pull time with the fault's latency."""
    world, _ = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="image_pull_slow", latency="fixed(40s)")
    add_pod(world, "p1")
    assert run_until(world, lambda: running(world, "p1")) >= 40


def test_pod_start_failure_reports_start_container_failed_then_restarts() -> None:
    """A failed start shows Ready False/StartContainerFailed until a restart succeeds."""
    world, _ = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="pod_start_failure", count=1)
    add_pod(world, "p1")
    world.ctx.env.run(until=7)
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Running"
    assert waiting_reason(world, "p1") == "CrashLoopBackOff"
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "StartContainerFailed")
    t = run_until(world, lambda: running(world, "p1"))
    assert t > 15


def test_inplace_image_update_restarts_the_container() -> None:
    """A new first-container image is pulled and restarted in place; Ready tracks the generation."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    ip = pod(world, "p1").status.pod_ip  # type: ignore[union-attr]
    p = pod(world, "p1").model_copy(deep=True)  # type: ignore[union-attr]
    p.spec["containers"][0]["image"] = "registry.example.com/sandbox:v2"
    updated = world.api.commit_update(p)
    world.ctx.env.run(until=world.ctx.now() + 1)
    ready = find_condition(pod(world, "p1").status.conditions, "Ready")  # type: ignore[union-attr]
    assert ready is not None and ready.status == "False"

    def done() -> bool:
        cur = pod(world, "p1")
        cond = find_condition(cur.status.conditions, "Ready") if cur else None
        return (
            cond is not None
            and cond.status == "True"
            and (cond.observed_generation == updated.metadata.generation)
        )

    run_until(world, done)
    assert pod(world, "p1").status.pod_ip == ip  # type: ignore[union-attr]
    assert world.ctx.log.of_kind("kubelet.inplace_updated")


def test_node_loss_fails_its_pods_and_the_node_comes_back_empty() -> None:
    """A lost node's pods fail with NodeLost, new pods go elsewhere, and the node returns empty."""
    world, nodes = make([NodeSpec(name="a"), NodeSpec(name="b")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    victim = pod(world, "p1").spec["nodeName"]  # type: ignore[union-attr]
    world.ctx.faults.inject(kind="node_loss", selector={"node": victim}, duration=30)
    world.ctx.env.run(until=world.ctx.now() + 1)
    p = pod(world, "p1")
    assert p is not None and (p.status.phase, p.status.reason) == ("Failed", "NodeLost")
    assert victim not in nodes.ready_nodes()
    add_pod(world, "p2")
    run_until(world, lambda: running(world, "p2"))
    assert pod(world, "p2").spec["nodeName"] != victim  # type: ignore[union-attr]
    # A terminating pod of the lost node is force-finalised.
    world.api.commit_delete("Pod", "default", "p1")
    run_until(world, lambda: pod(world, "p1") is None)
    world.ctx.env.run(until=world.ctx.now() + 40)
    assert victim in nodes.ready_nodes()
    assert nodes.utilisation()[victim] == (0.0, 0.0)


def test_node_lost_while_binding_sends_the_pod_back_to_the_queue() -> None:
    """A pod whose node is lost before its bind lands is placed again when a node is back."""
    world, nodes = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="node_loss", selector={"node": "a"}, start=0.005, duration=20)
    add_pod(world, "p1")
    world.ctx.env.run(until=10)
    p = pod(world, "p1")
    assert p is not None and not p.spec.get("nodeName") and nodes.pending_pods() == 1
    t = run_until(world, lambda: running(world, "p1"))
    assert t > 20


def test_node_loss_at_a_future_start() -> None:
    """A node_loss with a start time acts then, not before."""
    world, nodes = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="node_loss", start=50.0)
    world.ctx.env.run(until=49)
    assert nodes.ready_nodes() == ["a"]
    world.ctx.env.run(until=51)
    assert nodes.ready_nodes() == []


def test_pod_kill_kills_matching_running_pods() -> None:
    """pod_kill fails up to ``count`` running pods that match its selector, with reason Killed."""
    world, nodes = make([NodeSpec(name="a")])
    label = {keys.LABEL_SANDBOX_TEMPLATE: "base"}
    for name in ("p1", "p2", "p3"):
        add_pod(world, name, labels=label)
    add_pod(world, "other", labels={keys.LABEL_SANDBOX_TEMPLATE: "other"})
    run_until(world, lambda: all(running(world, n) for n in ("p1", "p2", "p3", "other")))
    world.ctx.faults.inject(kind="pod_kill", selector={"template": "base"}, count=2)
    world.ctx.env.run(until=world.ctx.now() + 1)
    phases = {
        p.metadata.name: (p.status.phase, p.status.reason) for p in world.api.peek_list("Pod")
    }
    assert sorted(phases.values()).count(("Failed", "Killed")) == 2
    assert phases["other"] == ("Running", None)
    assert nodes.utilisation()["a"][0] == pytest.approx(2 / 16)


def test_unschedulable_pods_are_retried_on_an_added_node() -> None:
    """A pod pending for lack of room is placed as soon as a node is added."""
    world, nodes = make([NodeSpec(name="a", cpu="1")])
    add_pod(world, "big", cpu="8")
    world.ctx.env.run(until=10)
    nodes.add(NodeSpec(name="b", cpu="32"))
    run_until(world, lambda: running(world, "big"))
    assert [s.name for s in nodes.specs] == ["a", "b"]


def test_a_pod_bound_by_name_to_a_node_added_later_starts_on_it() -> None:
    """The kubelet of a node that registers runs the pods already bound to its name."""
    world, nodes = make([NodeSpec(name="a")])
    pod = Pod(
        metadata=ObjectMeta(name="later", namespace="default", finalizers=[POD_FINALIZER]),
        spec={"nodeName": "b", "containers": [{"name": "main", "image": IMAGE}]},
    )
    world.api.commit_create(pod)
    world.ctx.env.run(until=5)
    assert not running(world, "later")
    nodes.add(NodeSpec(name="b"))
    run_until(world, lambda: running(world, "later"))
    got = world.api.peek("Pod", "default", "later")
    assert got is not None and got.status.host_ip is not None


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        (NodeSpec(name="a"), "name", "node 'a' already exists"),
        ({"name": "a"}, "name", "node 'a' already exists"),
        ("n9", "spec", "must be a NodeSpec or a mapping, got 'n9'"),
        ({"name": "n9", "cpu": "lots"}, "cpu", "lots"),
        ({"name": "n9", "colour": "red"}, "colour", "unknown field"),
        ({"name": "n9", "max_pods": True}, "max_pods", "must be an integer, got True"),
    ],
)
def test_adding_a_bad_node_raises_a_typed_error_naming_the_field(
    spec: Any, field: str, reason: str
) -> None:
    """``Nodes.add`` answers as the cluster's constructor does: one InvalidError, nothing added."""
    world, nodes = make([NodeSpec(name="a")])
    with pytest.raises(InvalidError) as caught:
        nodes.add(spec)
    assert caught.value.field == field and reason in caught.value.reason
    assert [s.name for s in nodes.specs] == ["a"]
    assert world.ctx.log.of_kind("node.added") == []


def test_a_node_can_be_added_from_a_mapping() -> None:
    _, nodes = make([NodeSpec(name="a")])
    nodes.add({"name": "b", "cpu": 8})
    assert [(s.name, s.cpu) for s in nodes.specs] == [("a", "16"), ("b", "8")]


def test_node_spec_rejects_bad_input() -> None:
    """Bad node specs fail with an error naming the field; duplicate names are refused."""
    with pytest.raises(ValidationError, match="cpu"):
        NodeSpec(name="a", cpu="lots")
    with pytest.raises(ValidationError, match="memory"):
        NodeSpec(name="a", memory="0")
    with pytest.raises(ValidationError, match="colour"):
        NodeSpec.model_validate({"name": "a", "colour": "red"})
    assert NodeSpec.model_validate({"name": "a", "cpu": 8}).cpu == "8"
    with pytest.raises(ValueError, match="already exists"):
        make([NodeSpec(name="a"), NodeSpec(name="a")])


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"name": "Worker 1"}, "name", "RFC 1123 subdomain"),
        ({"name": "node\nforged-row"}, "name", "RFC 1123 subdomain"),
        ({"name": "a" * 254}, "name", "at most 253 characters"),
        ({"name": "n", "labels": {"not a key!": "v"}}, "labels", "invalid key 'not a key!'"),
        ({"name": "n", "labels": {"zone": "not a value!"}}, "labels", "invalid value"),
    ],
)
def test_a_node_name_and_labels_follow_the_api_servers_rules(
    spec: dict[str, object], field: str, reason: str
) -> None:
    """A node's name is a DNS-1123 subdomain and its labels valid labels (``ValidateNodeName``,
    ``ValidateLabels``): ``Worker 1`` was taken, and a name with a newline split a table row."""
    with pytest.raises(ValidationError) as info:
        NodeSpec.model_validate(spec)
    error = info.value.errors()[0]
    assert error["loc"] == (field,)
    assert reason in str(info.value)
    fine = NodeSpec(name="n1.zone-a.example.com", labels={"example.com/zone": "a", "empty": ""})
    assert fine.name == "n1.zone-a.example.com"


def test_a_node_spec_cannot_be_edited_in_place() -> None:
    """A NodeSpec is immutable through and through (clusters built from one share it, and a
    kubelet reads its images again when the node comes back): its labels and allocatable are
    read-only (an edit raises InvalidError naming the field), its images a tuple. It still
    dumps, copies and validates as before."""
    given = {"name": "a", "labels": {"zone": "a"}, "allocatable": {"nvidia.com/gpu": 8}}
    spec = NodeSpec.model_validate({**given, "images": ["img:1"]})
    edits: list[Callable[[Any], object]] = [
        lambda t: t.__setitem__("zone", "b"),
        lambda t: t.update(zone="b"),
        lambda t: t.pop("zone", None),
        lambda t: t.clear(),
    ]
    for field in ("labels", "allocatable"):
        table: Any = getattr(spec, field)
        for edit in edits:
            with pytest.raises(InvalidError) as err:
                edit(table)
            assert err.value.field == field and "read-only" in err.value.reason
    images: Any = spec.images
    with pytest.raises(AttributeError):
        images.append("img:2")
    assert (spec.labels, spec.allocatable, spec.images) == (
        {"zone": "a"},
        {"nvidia.com/gpu": "8"},
        ("img:1",),
    )
    assert NodeSpec.model_validate_json(spec.model_dump_json()) == spec
    assert NodeSpec.model_validate(spec.model_dump()) == spec
    assert NodeSpec(name="b").labels == {} and NodeSpec(name="b").images == ()


def test_same_seed_same_log() -> None:
    """Two runs with the same seed and calls log the same events."""

    def run() -> str:
        world, _ = make(
            [NodeSpec(name="a"), NodeSpec(name="b")],
            seed=5,
            latencies={
                "pod.create": "uniform(0.1s, 0.5s)",
                "image.pull": "lognormal(median=5s, p99=30s)",
            },
        )
        world.ctx.faults.inject(kind="pod_start_failure", probability=0.3)
        for i in range(8):
            add_pod(world, f"p{i}")
        world.ctx.env.run(until=120)
        return world.ctx.log.text()

    assert run() == run()


# --------------------------------------------------------------------------- fault edges


@pytest.mark.parametrize("duration", [None, 100.0], ids=["open-ended", "with-duration"])
@pytest.mark.parametrize(
    ("component", "start_up"),
    # From the release: the kubelet's pod.create, pull, start, ready and status patch
    # (5.91 s); the scheduler's bind and the kubelet's whole start (5.93 s).
    [("kubelet", 5.91), ("scheduler", 5.93)],
)
def test_a_cleared_stall_releases_its_component_at_once(
    component: str, start_up: float, duration: float | None
) -> None:
    """Clearing a controller_stall, with a duration or not, lets the component go on at that moment."""
    world, _ = make([NodeSpec(name="a")])
    stall = world.ctx.faults.inject(
        kind="controller_stall", selector={"controller": component}, duration=duration
    )
    add_pod(world, "p1")
    world.ctx.env.run(until=5.5)  # between whole seconds: no polling tick lands on the clear
    assert pod(world, "p1").status.phase == "Pending"  # type: ignore[union-attr]
    world.ctx.faults.clear(stall.id)
    assert run_until(world, lambda: running(world, "p1")) == pytest.approx(5.5 + start_up)


def test_a_stall_counts_as_fired_when_it_holds_something() -> None:
    """``fired`` of a stall counts the steps it held: 0 while it held nothing."""
    world, _ = make([NodeSpec(name="a")])
    stall = world.ctx.faults.inject(
        kind="controller_stall", selector={"controller": "kubelet"}, duration=10
    )
    world.ctx.env.run(until=1)
    assert stall.fired == 0
    add_pod(world, "p1")
    add_pod(world, "p2")
    run_until(world, lambda: running(world, "p1") and running(world, "p2"))
    assert stall.fired == 2  # one pod start each


def test_a_stalled_kubelet_stops_no_pod_until_the_stall_ends() -> None:
    """A component makes no progress while stalled: a pod deleted meanwhile keeps its slot and
    its finalizer until the kubelet goes on."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    start = world.ctx.now()
    stall = world.ctx.faults.inject(
        kind="controller_stall", selector={"controller": "kubelet"}, duration=30
    )
    world.api.commit_delete("Pod", "default", "p1")
    world.ctx.env.run(until=start + 29)
    assert pod(world, "p1") is not None  # still terminating: its finalizer is not removed
    assert not world.ctx.log.of_kind("kubelet.stopped")
    assert stall.fired >= 1
    ended = run_until(world, lambda: pod(world, "p1") is None)
    assert ended >= start + 30


def test_a_node_loss_whose_window_closed_before_it_was_injected_never_acts() -> None:
    """Acting faults act when their window opens, and not at all once it has closed."""
    world, nodes = make([NodeSpec(name="a")])
    add_pod(world, "p1", labels={keys.LABEL_SANDBOX_TEMPLATE: "base"})
    run_until(world, lambda: running(world, "p1"))
    world.ctx.env.run(until=10)
    loss = world.ctx.faults.inject(kind="node_loss", start=0, duration=5)
    kill = world.ctx.faults.inject(kind="pod_kill", start=2, duration=1)
    world.ctx.env.run(until=20)
    assert nodes.ready_nodes() == ["a"] and running(world, "p1")
    assert (loss.fired, kill.fired) == (0, 0)
    assert [e.kind for e in world.ctx.log.of_kind("fault.window_closed")] == [
        "fault.window_closed"
    ] * 2


def test_a_node_loss_injected_inside_its_window_recovers_when_the_window_ends() -> None:
    """Injected after its start, a node_loss acts at once and still recovers at start + duration."""
    world, nodes = make([NodeSpec(name="a")])
    world.ctx.env.run(until=10)
    world.ctx.faults.inject(kind="node_loss", selector={"node": "a"}, start=5, duration=20)
    world.ctx.env.run(until=24.9)
    assert nodes.ready_nodes() == []
    world.ctx.env.run(until=25.1)
    assert nodes.ready_nodes() == ["a"]


@pytest.mark.parametrize("duration", [None, 600.0], ids=["open-ended", "with-duration"])
def test_clearing_a_node_loss_brings_the_node_back(duration: float | None) -> None:
    """Clearing a node_loss ends it, as deleting a Chaos Mesh resource recovers the target."""
    world, nodes = make([NodeSpec(name="a")])
    loss = world.ctx.faults.inject(kind="node_loss", selector={"node": "a"}, duration=duration)
    world.ctx.env.run(until=5)
    assert nodes.ready_nodes() == []
    world.ctx.faults.clear(loss.id)
    assert nodes.ready_nodes() == ["a"]
    add_pod(world, "p1")
    assert run_until(world, lambda: running(world, "p1")) == pytest.approx(5 + 5.93)


def test_a_slow_pull_drawing_zero_takes_no_time() -> None:
    """image_pull_slow's draw replaces image.pull even when it is 0 (an instant registry)."""
    world, _ = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="image_pull_slow", latency="0s")
    add_pod(world, "p1")
    assert run_until(world, lambda: running(world, "p1")) == pytest.approx(5.93 - 5.0)


def test_overlapping_slow_pulls_do_not_add_up() -> None:
    """Of several matching image_pull_slow faults the first injected decides, as check() picks."""
    world, _ = make([NodeSpec(name="a")])
    first = world.ctx.faults.inject(kind="image_pull_slow", latency="10s")
    second = world.ctx.faults.inject(kind="image_pull_slow", latency="30s")
    add_pod(world, "p1")
    assert run_until(world, lambda: running(world, "p1")) == pytest.approx(5.93 - 5.0 + 10.0)
    assert (first.fired, second.fired) == (1, 0)


# --------------------------------------------------------------------------- retry cost


def bound_to(world: World, name: str) -> str | None:
    p = pod(world, name)
    return str(p.spec.get("nodeName")) if p is not None and p.spec.get("nodeName") else None


def is_bound(world: World, name: str) -> Callable[[], bool]:
    return lambda: bound_to(world, name) is not None


def full_with_waiting(waiting: int) -> tuple[World, Nodes]:
    """Two nodes of two pod slots each, full with ``r0..r3``; ``w0..`` wait, unschedulable."""
    world, nodes = make([NodeSpec(name="a", max_pods=2), NodeSpec(name="b", max_pods=2)])
    for i in range(4):
        add_pod(world, f"r{i}")
    run_until(world, lambda: all(running(world, f"r{i}") for i in range(4)))
    for i in range(waiting):
        add_pod(world, f"w{i}")
    world.ctx.env.run(until=world.ctx.now() + 5)
    assert nodes.pending_pods() == waiting
    return world, nodes


def count_fits(nodes: Nodes) -> Callable[[], int]:
    """The fit evaluations of ``nodes``' scheduler from now on (one per node asked about a pod)."""
    start = nodes.nodes_looked
    return lambda: nodes.nodes_looked - start


def free_slots(world: World, names: list[str]) -> list[str | None]:
    """Delete ``names`` one after the other; return where the earliest waiting pods went."""
    placed: list[str | None] = []
    for i, name in enumerate(names):
        world.api.commit_delete("Pod", "default", name)
        run_until(world, is_bound(world, f"w{i}"))
        world.ctx.env.run(until=world.ctx.now() + 5)
        placed.append(bound_to(world, f"w{i}"))
    return placed


def test_a_freed_slot_costs_one_fit_per_request_shape_not_per_pending_pod() -> None:
    """A retry looks at the nodes for the first waiting pod of a shape, and for the next only
    once one was placed: a freed slot costs the same with 200 pods pending as with 2.

    Counted as fit evaluations (one per node asked); trying every pending pod would cost
    200 pods x 2 nodes per freed slot.
    """
    world, nodes = full_with_waiting(200)
    fits = count_fits(nodes)
    placed = free_slots(world, ["r0", "r1", "r2"])
    # Per freed slot: w<i> placed (2 nodes asked), then w<i+1> found unfit (2 nodes asked).
    assert fits() == 3 * 4
    assert None not in placed
    assert nodes.pending_pods() == 197
    # Those left are marked once, when they first failed: a retry writes nothing for them.
    assert len(world.ctx.log.of_kind("scheduler.unschedulable")) == 200


def test_a_retry_held_by_a_stall_still_costs_one_fit_per_shape() -> None:
    """A stalled scheduler takes every waiting pod back into its queue (the stall holds the
    pass); once a shape was found unfit in it, the pods of that shape behind are not fitted
    again until room grows."""
    world, nodes = full_with_waiting(200)
    fits = count_fits(nodes)
    start = world.ctx.now()
    world.ctx.faults.inject(
        kind="controller_stall", selector={"controller": "scheduler"}, duration=20
    )
    world.api.commit_delete("Pod", "default", "r0")
    assert run_until(world, is_bound(world, "w0")) >= start + 20
    assert fits() == 4
    assert nodes.pending_pods() == 199


def test_a_retry_parses_no_quantity_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiting pod's requests are read once, not at every retry (its containers list is
    stored once and never changed in place)."""
    world, _ = full_with_waiting(50)
    parsed = 0

    def counted(template: dict[str, Any] | None) -> PodRequests:
        nonlocal parsed
        parsed += 1
        return pod_requests(template)

    monkeypatch.setattr("simulator.nodes.pod_requests", counted)
    free_slots(world, ["r0", "r1", "r2"])
    assert parsed == 0


def test_waiting_pods_of_one_shape_are_placed_in_the_order_they_became_unschedulable() -> None:
    """Each freed slot goes to the pod that has waited longest: retries keep the order."""
    world, nodes = full_with_waiting(5)
    assert free_slots(world, ["r0", "r1", "r2"]) == ["a", "b", "a"]  # where each slot was
    assert [bound_to(world, f"w{i}") for i in range(3, 5)] == [None, None]
    assert nodes.pending_pods() == 2


def test_a_retry_places_a_smaller_pod_waiting_behind_one_that_does_not_fit() -> None:
    """A pod that does not fit holds back only pods of its own shape: a smaller one behind it
    takes the room, and the big one waits until there is room for it."""
    world, nodes = make([NodeSpec(name="a", cpu="4")])
    add_pod(world, "r0", cpu="2")
    add_pod(world, "r1", cpu="2")
    run_until(world, lambda: running(world, "r0") and running(world, "r1"))
    add_pod(world, "big", cpu="3")
    add_pod(world, "small", cpu="1")
    add_pod(world, "small2", cpu="1")
    world.ctx.env.run(until=world.ctx.now() + 5)
    world.api.commit_delete("Pod", "default", "r0")
    run_until(world, lambda: running(world, "small") and running(world, "small2"))
    assert bound_to(world, "big") is None and nodes.pending_pods() == 1
    for name in ("r1", "small"):
        world.api.commit_delete("Pod", "default", name)
    run_until(world, lambda: running(world, "big"))


def test_a_waiting_pod_whose_requests_change_is_retried_with_the_new_ones() -> None:
    """Requests read once are read again when the pod's spec changes (an in-place resize of a
    pending pod): the next retry places it by what it asks for now."""
    world, nodes = make([NodeSpec(name="a", cpu="2")])
    add_pod(world, "r0", cpu="2")
    run_until(world, lambda: running(world, "r0"))
    add_pod(world, "p", cpu="4")
    add_pod(world, "q", cpu="4")
    world.ctx.env.run(until=world.ctx.now() + 5)
    resized = pod(world, "p").model_copy(deep=True)  # type: ignore[union-attr]
    resized.spec["containers"][0]["resources"]["requests"]["cpu"] = "1"
    world.api.commit_update(resized)
    world.ctx.env.run(until=world.ctx.now() + 5)
    assert bound_to(world, "p") is None  # nothing freed yet
    world.api.commit_delete("Pod", "default", "r0")
    run_until(world, lambda: running(world, "p"))
    assert bound_to(world, "q") is None and nodes.pending_pods() == 1
    assert nodes.utilisation()["a"][0] == pytest.approx(0.5)


def test_a_waiting_pod_that_failed_is_not_placed_when_room_frees() -> None:
    """A pending pod that ended (phase Failed) while it waited is dropped at the next retry."""
    world, nodes = make([NodeSpec(name="a", max_pods=1)])
    add_pod(world, "r0")
    run_until(world, lambda: running(world, "r0"))
    add_pod(world, "p")
    add_pod(world, "q")
    world.ctx.env.run(until=world.ctx.now() + 5)
    failed = pod(world, "p").model_copy(deep=True)  # type: ignore[union-attr]
    failed.status.phase = "Failed"
    world.api.commit_update(failed, subresource="status")
    world.api.commit_delete("Pod", "default", "r0")
    run_until(world, lambda: running(world, "q"))
    assert bound_to(world, "p") is None and nodes.pending_pods() == 0


def test_an_overlapping_node_loss_holds_the_node_until_its_own_window_ends() -> None:
    """Two node_loss faults on one node with overlapping windows: the node stays lost until
    neither is in force, and the second counts as fired (it holds the node)."""
    world, nodes = make([NodeSpec(name="a"), NodeSpec(name="b")])
    faults = world.ctx.faults
    first = faults.inject(kind="node_loss", selector={"node": "a"}, start=10, duration=30)
    second = faults.inject(kind="node_loss", selector={"node": "a"}, start=20, duration=40)
    world.ctx.env.run(until=45)  # the first window [10, 40) is over, the second [20, 60) is not
    assert "a" not in nodes.ready_nodes()
    assert (first.fired, second.fired) == (1, 1)
    assert world.ctx.log.of_kind("node.recovered") == []
    world.ctx.env.run(until=61)
    assert "a" in nodes.ready_nodes()
    assert len(world.ctx.log.of_kind("node.recovered")) == 1


def test_clearing_one_of_two_node_losses_keeps_the_node_lost() -> None:
    """A clear ends only the cleared fault's hold: the other still keeps the node lost."""
    world, nodes = make([NodeSpec(name="a"), NodeSpec(name="b")])
    faults = world.ctx.faults
    first = faults.inject(kind="node_loss", selector={"node": "a"})
    faults.inject(kind="node_loss", selector={"node": "a"}, duration=100)
    world.ctx.env.run(until=1)
    faults.clear(first.id)
    world.ctx.env.run(until=50)
    assert "a" not in nodes.ready_nodes()
    world.ctx.env.run(until=101)
    assert "a" in nodes.ready_nodes()


def test_a_node_loss_with_a_count_loses_that_many_nodes() -> None:
    """``count`` on a node_loss without a node selector loses that many random ready nodes
    (Chaos Mesh ``mode: fixed`` with ``value``); each lost node is one firing."""
    world, nodes = make([NodeSpec(name=n) for n in "abcde"])
    f = world.ctx.faults.inject(kind="node_loss", count=3, duration=10)
    world.ctx.env.run(until=1)
    assert len(nodes.ready_nodes()) == 2 and f.fired == 3
    world.ctx.env.run(until=11)
    assert len(nodes.ready_nodes()) == 5


def test_a_pull_failure_fails_only_the_pods_its_selector_matches() -> None:
    """Pods sharing a download each consult image_pull_failure with their own labels: a pod
    the selector leaves out gets the image while a selected one fails beside it."""
    world, _ = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="image_pull_failure", selector={"template": "bad"})
    add_pod(world, "good-1", labels={keys.LABEL_SANDBOX_TEMPLATE: "good"})
    add_pod(world, "bad-1", labels={keys.LABEL_SANDBOX_TEMPLATE: "bad"})
    run_until(world, lambda: running(world, "good-1"))
    failed = [e.detail for e in world.ctx.log.of_kind("kubelet.pull_failed")]
    assert failed and all("default/bad-1 " in d for d in failed)
    assert not running(world, "bad-1")


def test_a_slow_pull_does_not_slow_a_pod_its_selector_leaves_out() -> None:
    """A pod the image_pull_slow selector leaves out, joining a slowed download, has the
    image after its own ordinary pull; one it selects, joining an ordinary download, is
    slowed (the fault fires for it) but gets the image when that download lands."""
    world, _ = make([NodeSpec(name="a")])
    f = world.ctx.faults.inject(
        kind="image_pull_slow", latency="fixed(10m)", selector={"template": "slow"}
    )
    add_pod(world, "slow-1", labels={keys.LABEL_SANDBOX_TEMPLATE: "slow"})
    world.ctx.env.run(until=1)
    add_pod(world, "fast-1", labels={keys.LABEL_SANDBOX_TEMPLATE: "fast"})
    t = run_until(world, lambda: running(world, "fast-1") and running(world, "slow-1"))
    assert t < 10  # image.pull is 5 s: fast-1's own pull lands the image for both
    assert f.fired == 1

    world, _ = make([NodeSpec(name="a")])
    g = world.ctx.faults.inject(
        kind="image_pull_slow", latency="fixed(10m)", selector={"template": "slow"}
    )
    add_pod(world, "fast-1", labels={keys.LABEL_SANDBOX_TEMPLATE: "fast"})
    world.ctx.env.run(until=1)
    add_pod(world, "slow-1", labels={keys.LABEL_SANDBOX_TEMPLATE: "slow"})
    assert run_until(world, lambda: running(world, "slow-1")) < 10
    assert g.fired == 1


@pytest.mark.parametrize("how", ["clear", "window"])
def test_a_slow_pull_goes_on_at_the_ordinary_rate_once_its_fault_ends(how: str) -> None:
    """Clearing an image_pull_slow (or its window ending) mid-pull lifts its bandwidth limit:
    what was downloaded is kept, and the rest takes that share of an ordinary pull."""
    world, _ = make([NodeSpec(name="a")])
    faults = world.ctx.faults
    duration = 12.2 if how == "window" else None  # the pull begins at about 0.2 s
    f = faults.inject(kind="image_pull_slow", latency="fixed(100s)", duration=duration)
    add_pod(world, "p1")
    world.ctx.env.run(until=12.2)
    if how == "clear":
        faults.clear(f.id)
    pulled = run_until(world, lambda: bool(world.ctx.log.of_kind("kubelet.pulled")))
    # 12 of 100 s done, so 88% of the 5 s ordinary pull is left.
    assert pulled == pytest.approx(12.2 + 0.88 * 5.0, abs=0.05)


@pytest.mark.parametrize("how", ["clear", "window"])
def test_lifting_a_pull_fault_faster_than_an_ordinary_pull_does_not_slow_it(how: str) -> None:
    """An image_pull_slow whose draw (2 s) beats an ordinary pull (5 s), lifted mid-pull:
    the pull still lands when the fault would have made it, not later.

    Before, the rest took its share of an ordinary pull (landing at 3.75 s instead of 2.2 s).
    """
    world, _ = make([NodeSpec(name="a")])
    faults = world.ctx.faults
    duration = 1.2 if how == "window" else None
    f = faults.inject(kind="image_pull_slow", latency="fixed(2s)", duration=duration)
    add_pod(world, "p1")
    world.ctx.env.run(until=1.2)
    if how == "clear":
        faults.clear(f.id)
    pulled = run_until(world, lambda: bool(world.ctx.log.of_kind("kubelet.pulled")))
    assert pulled == pytest.approx(0.2 + 2.0, abs=0.05)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_pods", True), ("max_pods", "7"), ("serialize_image_pulls", 1), ("images", "busybox")],
)
def test_a_node_spec_keeps_the_kind_each_field_was_given(field: str, value: object) -> None:
    """Strict, as a profile is: ``True`` is no pod count and ``"7"`` no number."""
    with pytest.raises(ValidationError) as info:
        NodeSpec.model_validate({"name": "a", field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_a_nodes_pre_pulled_images_are_references_the_kubelet_can_parse() -> None:
    """A runtime holds no image under a name the kubelet cannot parse (as a pod naming one
    waits ``InvalidImageName``): such a pre-pulled image is a mistake, named with its index."""
    with pytest.raises(ValidationError) as info:
        NodeSpec(name="a", images=("python:3.12", "BAD IMG"))
    error = info.value.errors()[0]
    assert error["loc"] == ("images", 1)
    assert "'BAD IMG': invalid reference format" in str(info.value)
    assert NodeSpec(name="a", images=("localhost:5000/x@sha256:" + "a" * 64,)).images


def test_an_unschedulable_condition_whose_write_failed_is_written_on_a_later_attempt() -> None:
    """kube-scheduler writes ``PodScheduled=False`` on each failed attempt: one failed
    status write (a 503) does not leave the pod without it for ever."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=0, nodes=[NodeSpec(name="n1", cpu="4", memory="8Gi")])
    cluster.inject(
        "api_error", code=503, count=1, selector={"client": "kube-scheduler", "verb": "patch"}
    )
    cluster.apply(
        """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: p, namespace: default}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: sandbox
          image: registry.example.com/sandbox:v1
          resources: {requests: {cpu: "3", memory: 256Mi}}
"""
    )
    cluster.advance(10)
    assert [f.fired for f in cluster.faults] == [1]
    cluster.advance(900)
    message = cluster.unschedulable_message("p")
    assert message is not None and "Insufficient cpu" in message
    assert sum("scheduler.unschedulable" in str(e) for e in cluster.log) == 1
