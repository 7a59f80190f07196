"""The pod's policies the kubelet acts on: ``imagePullPolicy`` and ``restartPolicy``."""

from __future__ import annotations

from typing import Any

from pytest_kruise_agents.api.meta import ObjectMeta, find_condition
from pytest_kruise_agents.api.pod import Pod
from simulator.nodes import POD_FINALIZER, NodeSpec
from simulator.world import World

from .test_nodes import make, pod, run_until, running


def add(world: World, name: str, *containers: dict[str, Any], **spec: Any) -> Pod:
    """A pod of ``containers`` (``main`` of ``busybox:1.36`` if none), with ``spec``'s fields."""
    listed = list(containers) or [{"name": "main", "image": "busybox:1.36"}]
    created: Pod = world.api.commit_create(
        Pod(
            metadata=ObjectMeta(name=name, namespace="default", finalizers=[POD_FINALIZER]),
            spec={"containers": listed, **spec},
        )
    )
    return created


def kinds(world: World, kind: str) -> list[str]:
    return [e.detail for e in world.ctx.log.of_kind(kind)]


def waiting(world: World, name: str) -> tuple[str | None, str | None]:
    p = pod(world, name)
    assert p is not None and p.status.container_statuses
    state = p.status.container_statuses[0].state.waiting
    assert state is not None
    return state.reason, state.message


# -- imagePullPolicy ---------------------------------------------------------------------


def test_never_with_the_image_absent_waits_in_err_image_never_pull_and_pulls_nothing() -> None:
    """``Never``: the kubelet does not pull; the container waits with its words."""
    world, _ = make([NodeSpec(name="a")])
    add(world, "p1", {"name": "main", "image": "nginx:1.25", "imagePullPolicy": "Never"})
    world.ctx.env.run(until=60)
    assert waiting(world, "p1") == (
        "ErrImageNeverPull",
        'Container image "nginx:1.25" is not present with pull policy of Never',
    )
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Pending"
    assert kinds(world, "kubelet.pulled") == []
    assert kinds(world, "kubelet.never_pull") == ["default/p1 image=nginx:1.25 node=a"]


def test_never_starts_once_another_pods_pull_brought_the_image() -> None:
    """The pod worker looks again after its back-off period: an image now on the node is used."""
    world, _ = make([NodeSpec(name="a")])
    add(world, "p1", {"name": "main", "image": "nginx:1.25", "imagePullPolicy": "Never"})
    world.ctx.env.run(until=1)
    add(world, "p2", {"name": "main", "image": "nginx:1.25"})
    assert run_until(world, lambda: running(world, "p1")) < 25


def test_never_uses_an_image_on_the_node() -> None:
    world, _ = make([NodeSpec(name="a", images=("nginx:1.25",))])
    add(world, "p1", {"name": "main", "image": "nginx:1.25", "imagePullPolicy": "Never"})
    assert run_until(world, lambda: running(world, "p1")) < 2


def test_always_asks_the_registry_though_the_image_is_cached() -> None:
    """``Always`` (written, or the default of ``latest`` and of no tag) fails under an
    ``image_pull_failure`` with the image on the node; ``IfNotPresent`` uses the cache."""
    world, _ = make([NodeSpec(name="a", images=("busybox:latest", "busybox:1.36"))])
    world.ctx.faults.inject(kind="image_pull_failure")
    add(world, "untagged", {"name": "main", "image": "busybox"})
    add(world, "latest", {"name": "main", "image": "busybox:latest"})
    add(world, "always", {"name": "main", "image": "busybox:1.36", "imagePullPolicy": "Always"})
    add(world, "tagged", {"name": "main", "image": "busybox:1.36"})
    add(world, "given", {"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent"})
    world.ctx.env.run(until=30)
    assert running(world, "tagged") and running(world, "given")
    for name in ("untagged", "latest", "always"):
        assert not running(world, name)
        assert waiting(world, name)[0] == "ImagePullBackOff"


def test_always_with_a_cached_image_and_no_fault_costs_a_cached_pull() -> None:
    world, _ = make([NodeSpec(name="a", images=("busybox",))])
    add(world, "p1", {"name": "main", "image": "busybox"})
    assert run_until(world, lambda: running(world, "p1")) < 2
    assert kinds(world, "kubelet.pulled") == []


def test_err_image_pull_carries_the_pull_error_and_the_back_off_its_own_words() -> None:
    """``ErrImagePull`` says why the pull failed; ``Back-off pulling image`` is
    ``ImagePullBackOff``'s message. Ready names the unready containers."""
    world, _ = make([NodeSpec(name="a")])
    fault = world.ctx.faults.inject(kind="image_pull_failure")
    add(world, "p1", {"name": "main", "image": "nginx:1.25"})
    world.ctx.env.run(until=5)
    assert waiting(world, "p1") == (
        "ErrImagePull",
        'failed to pull and unpack image "docker.io/library/nginx:1.25": failed to resolve '
        f'reference "docker.io/library/nginx:1.25": registry unreachable ({fault.id})',
    )
    p = pod(world, "p1")
    assert p is not None
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None
    assert (ready.reason, ready.message) == (
        "ContainersNotReady",
        "containers with unready status: [main]",
    )
    world.ctx.env.run(until=60)
    assert waiting(world, "p1") == ("ImagePullBackOff", 'Back-off pulling image "nginx:1.25"')


# -- restartPolicy -------------------------------------------------------------------------


def test_never_restarting_a_failed_container_fails_the_pod() -> None:
    """``restartPolicy: Never``: one start, the container terminated (exit code 1,
    ``Error``), the pod ``Failed`` with Ready ``PodFailed``; its room is freed."""
    world, nodes = make([NodeSpec(name="a", images=("busybox:1.36",))])
    world.ctx.faults.inject(kind="pod_start_failure")
    add(world, "p1", restartPolicy="Never")
    world.ctx.env.run(until=400)
    assert len(kinds(world, "kubelet.start_failed")) == 1
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Failed"
    main = p.status.container_statuses[0]
    term = main.state.terminated
    assert term is not None and (term.exit_code, term.reason) == (1, "Error")
    assert (main.ready, main.restart_count, main.state.waiting) == (False, 0, None)
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "PodFailed")
    assert nodes.utilisation()["a"] == (0.0, 0.0)


def test_never_keeps_a_pod_with_other_containers_running_unready() -> None:
    """kubelet ``getPhase``: a pod whose other containers run is still ``Running``."""
    world, _ = make([NodeSpec(name="a", images=("busybox:1.36",))])
    world.ctx.faults.inject(kind="pod_start_failure", count=1)
    add(
        world,
        "p1",
        {"name": "main", "image": "busybox:1.36"},
        {"name": "proxy", "image": "busybox:1.36"},
        restartPolicy="Never",
    )
    world.ctx.env.run(until=400)
    assert len(kinds(world, "kubelet.start_failed")) == 1
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Running"
    main, proxy = p.status.container_statuses
    assert main.state.terminated is not None and proxy.state.running is not None
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.message) == (
        "False",
        "containers with unready status: [main]",
    )


def test_on_failure_restarts_a_failed_container() -> None:
    """``OnFailure`` restarts a container that exited with an error, as ``Always`` does."""
    world, _ = make([NodeSpec(name="a", images=("busybox:1.36",))])
    world.ctx.faults.inject(kind="pod_start_failure", count=1)
    add(world, "p1", restartPolicy="OnFailure")
    run_until(world, lambda: running(world, "p1"))
    p = pod(world, "p1")
    assert p is not None and p.status.container_statuses[0].restart_count == 1


# -- readinessGates ------------------------------------------------------------------------


def test_a_readiness_gate_without_its_condition_keeps_a_running_pod_unready() -> None:
    """``GeneratePodReadyCondition``: the containers run and are ready, the pod is not
    (``ReadinessGatesNotReady``, naming the gate): its Sandbox is never available."""
    world, _ = make([NodeSpec(name="a", images=("busybox:1.36",))])
    add(world, "p1", readinessGates=[{"conditionType": "example.com/lb-registered"}])
    world.ctx.env.run(until=30)
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Running"
    assert p.status.container_statuses[0].ready
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "ReadinessGatesNotReady",
        'corresponding condition of pod readiness gate "example.com/lb-registered" does not exist.',
    )
