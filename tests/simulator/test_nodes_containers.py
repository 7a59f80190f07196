"""The kubelet's container statuses: what each container is doing, as ``v1.ContainerStatus``
reports it, written with the pod status writes the kubelet makes anyway."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import ObjectMeta, find_condition
from pytest_kruise_agents.api.pod import ContainerStatus, Pod
from simulator.nodes import POD_FINALIZER, NodeSpec
from simulator.world import World

from .test_nodes import IMAGE, add_pod, make, pod, run_until, running


def main_status(world: World, name: str = "p1") -> ContainerStatus:
    p = pod(world, name)
    assert p is not None and p.status.container_statuses
    return p.status.container_statuses[0]


def test_a_running_pod_reports_its_container_running_ready_and_started() -> None:
    """Started and ready, no restart, ``startedAt`` when it started, the image as the runtime
    names it; the pod has no reason of its own."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1", image="python:3.12")
    run_until(world, lambda: running(world, "p1"))
    p = pod(world, "p1")
    assert p is not None and p.status.reason is None and p.status.init_container_statuses == []
    main = main_status(world)
    assert (main.name, main.ready, main.started, main.restart_count) == ("main", True, True, 0)
    assert main.image == "docker.io/library/python:3.12"
    assert main.state.running is not None
    assert main.state.running.started_at == world.ctx.now_dt().replace(microsecond=0)
    assert main.last_state.terminated is None


def test_an_image_pull_failure_is_the_containers_waiting_reason_not_the_pods() -> None:
    """ErrImagePull, then ImagePullBackOff, wait in the container's state (the pod's own
    ``reason`` and ``message`` stay empty, as the kubelet leaves them); Ready says why."""
    world, _ = make([NodeSpec(name="a")])
    fault = world.ctx.faults.inject(kind="image_pull_failure", selector={"image": IMAGE})
    add_pod(world, "p1")
    world.ctx.env.run(until=5)
    main = main_status(world)
    assert main.state.waiting is not None
    assert main.state.waiting.reason == "ErrImagePull"
    assert main.state.waiting.message == (
        f'failed to pull and unpack image "{IMAGE}": failed to resolve reference '
        f'"{IMAGE}": registry unreachable ({fault.id})'
    )
    assert (main.ready, main.started, main.restart_count, main.image) == (False, False, 0, IMAGE)
    p = pod(world, "p1")
    assert p is not None and (p.status.phase, p.status.reason, p.status.message) == (
        "Pending",
        None,
        None,
    )
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and ready.reason == "ContainersNotReady"
    world.ctx.env.run(until=60)
    assert main_status(world).state.waiting.reason == "ImagePullBackOff"  # type: ignore[union-attr]
    world.ctx.faults.clear(fault.id)
    run_until(world, lambda: running(world, "p1"))
    assert main_status(world).state.running is not None


def test_a_failed_start_is_a_crash_the_container_backs_off_from() -> None:
    """A failed start is an instance that exited with an error: the container waits in
    CrashLoopBackOff with the kubelet's back-off message, the crash as its ``lastState``; the
    pod's Ready keeps ``StartContainerFailed`` (the Sandbox controller and claims read it)."""
    world, _ = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="pod_start_failure", count=2)
    p1 = add_pod(world, "p1")
    world.ctx.env.run(until=7)
    main = main_status(world)
    assert main.state.waiting is not None and main.state.waiting.reason == "CrashLoopBackOff"
    assert main.state.waiting.message == (
        f"back-off 10s restarting failed container=main pod=p1_default({p1.metadata.uid})"
    )
    crash = main.last_state.terminated
    assert crash is not None and (crash.exit_code, crash.reason) == (1, "Error")
    # The first instance crashed: no restart yet (restartCount is the instances made, less one).
    assert (main.ready, main.started, main.restart_count) == (False, False, 0)
    p = pod(world, "p1")
    assert p is not None and (p.status.phase, p.status.reason) == ("Running", None)
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and ready.reason == "StartContainerFailed"
    run_until(world, lambda: running(world, "p1"))
    main = main_status(world)
    assert main.restart_count == 2 and main.state.running is not None
    crash = main.last_state.terminated
    assert crash is not None and crash.reason == "Error"
    # The second crash, 10 s of back-off after the first (start 0.5 s between).
    assert crash.finished_at is not None and main.state.running.started_at is not None
    assert main.state.running.started_at - crash.finished_at == pytest.approx(
        timedelta(seconds=21), abs=timedelta(seconds=1)
    )


def test_an_inplace_image_update_creates_the_container_again() -> None:
    """The kubelet stops the container and starts one of the new image: meanwhile it reads
    running but not ready (the kubelet reports the stop with the new instance), then one
    restart more, the stopped instance (Completed, exit 0) as ``lastState``."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    first = main_status(world)
    p = pod(world, "p1").model_copy(deep=True)  # type: ignore[union-attr]
    p.spec["containers"][0]["image"] = "registry.example.com/sandbox:v2"
    updated = world.api.commit_update(p)
    world.ctx.env.run(until=world.ctx.now() + 1)
    stopping = main_status(world)
    assert stopping.state == first.state and not stopping.ready
    stopped_at = world.ctx.now_dt().replace(microsecond=0)

    def updated_ready() -> bool:
        ready = find_condition(pod(world, "p1").status.conditions, "Ready")  # type: ignore[union-attr]
        return ready is not None and ready.observed_generation == updated.metadata.generation

    run_until(world, lambda: running(world, "p1") and updated_ready())
    main = main_status(world)
    assert (main.restart_count, main.ready, main.image) == (
        1,
        True,
        "registry.example.com/sandbox:v2",
    )
    ended = main.last_state.terminated
    assert ended is not None and (ended.exit_code, ended.reason) == (0, "Completed")
    assert first.state.running is not None and ended.started_at == first.state.running.started_at
    assert ended.finished_at is not None
    assert abs(ended.finished_at - stopped_at) <= timedelta(seconds=1)


def test_init_containers_have_run_and_sidecars_keep_running() -> None:
    """Init containers completed (ready, not started), a sidecar running; every container of
    the pod running and ready."""
    world, _ = make([NodeSpec(name="a")])
    spec = {
        "initContainers": [
            {"name": "setup", "image": "busybox:1"},
            {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "main", "image": IMAGE}, {"name": "log", "image": "fluent:1"}],
    }
    world.api.commit_create(
        Pod(
            metadata=ObjectMeta(name="p1", namespace="default", finalizers=[POD_FINALIZER]),
            spec=spec,
        )
    )
    run_until(world, lambda: running(world, "p1"))
    p = pod(world, "p1")
    assert p is not None
    setup, proxy = p.status.init_container_statuses
    assert setup.state.terminated is not None and setup.state.terminated.reason == "Completed"
    assert (setup.ready, setup.started) == (True, False)
    assert proxy.state.running is not None and (proxy.ready, proxy.started) == (True, True)
    assert [
        (c.name, c.ready, c.state.running is not None) for c in p.status.container_statuses
    ] == [
        ("main", True, True),
        ("log", True, True),
    ]


def test_a_killed_pods_containers_are_not_ready() -> None:
    """A pod failed by pod_kill keeps its reason (Killed) and its containers are not ready."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1", labels={keys.LABEL_SANDBOX_TEMPLATE: "base"})
    run_until(world, lambda: running(world, "p1"))
    world.ctx.faults.inject(kind="pod_kill", selector={"template": "base"})
    world.ctx.env.run(until=world.ctx.now() + 1)
    p = pod(world, "p1")
    assert p is not None and (p.status.phase, p.status.reason) == ("Failed", "Killed")
    assert [c.ready for c in p.status.container_statuses] == [False]


_HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("image", "why"),
    [
        (
            "registry.example.com/Sandbox:V1",
            "invalid reference format: repository name (Sandbox) must be lowercase",
        ),
        (
            "Busybox",
            "invalid reference format: repository name (library/Busybox) must be lowercase",
        ),
        (
            "BAD IMAGE",
            "invalid reference format: repository name (library/BAD IMAGE) must be lowercase",
        ),
        ("bad image", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        (
            _HEX64,
            f"invalid repository name ({_HEX64}), cannot specify 64-byte hexadecimal strings",
        ),
        ("a" * 256, "repository name must not be more than 255 characters"),
    ],
)
def test_an_image_reference_the_kubelet_cannot_parse_waits_as_invalid_image_name(
    image: str, why: str
) -> None:
    """The API server takes any non-empty image; the kubelet cannot parse this one: the
    container waits, ``InvalidImageName`` with the kubelet's message, nothing is pulled,
    nothing is retried, and the pod stays Pending and never Ready."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1", image=image)
    world.ctx.env.run(until=600)
    main = main_status(world)
    assert main.state.waiting is not None
    assert (main.state.waiting.reason, main.state.waiting.message) == (
        "InvalidImageName",
        f'Failed to apply default image tag "{image}": couldn\'t parse image reference "{image}": {why}',
    )
    assert (main.ready, main.started, main.restart_count, main.image) == (False, False, 0, image)
    p = pod(world, "p1")
    assert p is not None and (p.status.phase, p.status.reason) == ("Pending", None)
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "ContainersNotReady")
    assert world.ctx.log.of_kind("kubelet.pulled") == []
    assert [e.detail for e in world.ctx.log.of_kind("kubelet.invalid_image")] == [
        f"default/p1 image={image} node=a"
    ]


def test_a_pod_waiting_on_an_invalid_image_runs_once_the_image_is_corrected() -> None:
    """The kubelet tries the pod's image again when its spec changes: a valid one is pulled."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1", image="BAD IMAGE")
    world.ctx.env.run(until=30)
    p = pod(world, "p1").model_copy(deep=True)  # type: ignore[union-attr]
    p.spec["containers"][0]["image"] = IMAGE
    world.api.commit_update(p)
    run_until(world, lambda: running(world, "p1"))
    assert main_status(world).image == IMAGE


def test_an_inplace_update_to_an_invalid_image_stops_the_container_and_waits() -> None:
    """The running instance is stopped (its ``lastState`` Completed) and the new one cannot be
    made: the container waits ``InvalidImageName``, and the pod, Running, is not Ready."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    p = pod(world, "p1").model_copy(deep=True)  # type: ignore[union-attr]
    p.spec["containers"][0]["image"] = "registry.example.com/Sandbox:V2"
    world.api.commit_update(p)
    world.ctx.env.run(until=world.ctx.now() + 60)
    main = main_status(world)
    assert main.state.waiting is not None and main.state.waiting.reason == "InvalidImageName"
    ended = main.last_state.terminated
    assert ended is not None and ended.reason == "Completed"
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Running" and not running(world, "p1")


def test_an_invalid_image_in_another_container_keeps_the_pod_from_starting() -> None:
    """A sidecar or init container the kubelet cannot make waits ``InvalidImageName``; the
    model starts none of the pod's containers then (they read not created), and the pod
    never becomes Ready."""
    world, _ = make([NodeSpec(name="a")])
    spec = {
        "initContainers": [
            {"name": "setup", "image": "busybox:1"},
            {"name": "proxy", "image": "Envoy:1", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "main", "image": IMAGE}, {"name": "log", "image": "fluent:1"}],
    }
    world.api.commit_create(
        Pod(
            metadata=ObjectMeta(name="p1", namespace="default", finalizers=[POD_FINALIZER]),
            spec=spec,
        )
    )
    world.ctx.env.run(until=600)
    p = pod(world, "p1")
    assert p is not None and p.status.phase == "Pending" and not running(world, "p1")
    setup, proxy = p.status.init_container_statuses
    assert setup.state.terminated is not None and setup.state.terminated.reason == "Completed"
    assert proxy.state.waiting is not None and proxy.state.waiting.reason == "InvalidImageName"
    assert [
        (c.name, c.state.waiting and c.state.waiting.reason) for c in p.status.container_statuses
    ] == [
        ("main", "PodInitializing"),
        ("log", "PodInitializing"),
    ]
    assert world.ctx.log.of_kind("kubelet.pulled") == []


# -- a deleted pod another finalizer keeps ------------------------------------------------


def _held_pod(world: World) -> None:
    """Pod p1 with a completed init container, a sidecar and two containers, held by a
    user's finalizer as well as the kubelet's."""
    spec = {
        "initContainers": [
            {"name": "setup", "image": "busybox:1"},
            {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "main", "image": IMAGE}, {"name": "log", "image": "fluent:1"}],
    }
    meta = ObjectMeta(name="p1", namespace="default", finalizers=[POD_FINALIZER, "example.com/x"])
    world.api.commit_create(Pod(metadata=meta, spec=spec))


def test_a_deleted_pod_a_finalizer_keeps_reports_its_containers_stopped() -> None:
    """The kubelet writes the containers it stopped before its final delete: each that ran is
    terminated (killed, 137, ``Error``, from when it started), none is ready, the pod is
    ``Failed`` and not Ready; a completed init container stays as it ended."""
    world, nodes = make([NodeSpec(name="a")])
    _held_pod(world)
    run_until(world, lambda: running(world, "p1"))
    started = main_status(world).state.running
    assert started is not None
    world.ctx.env.run(until=world.ctx.now() + 30)
    world.api.commit_delete("Pod", "default", "p1")
    run_until(world, lambda: bool(world.ctx.log.of_kind("kubelet.stopped")))
    stopped = world.ctx.now_dt().replace(microsecond=0)
    world.ctx.env.run(until=world.ctx.now() + 60)
    p = pod(world, "p1")
    assert p is not None and p.metadata.finalizers == ["example.com/x"]
    ready = find_condition(p.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "PodFailed")
    assert p.status.phase == "Failed"
    setup, *rest = [*p.status.init_container_statuses, *p.status.container_statuses]
    assert setup.state.terminated is not None and setup.state.terminated.reason == "Completed"
    for c in rest:
        end = c.state.terminated
        assert end is not None and (end.exit_code, end.reason) == (137, "Error"), c.name
        assert (c.ready, c.started, c.state.running) == (False, False, None), c.name
    main = p.status.container_statuses[0]
    assert main.state.terminated is not None
    assert main.state.terminated.started_at == started.started_at
    assert main.state.terminated.finished_at == stopped
    assert nodes.utilisation()["a"] == (0.0, 0.0)


def test_a_deleted_pod_only_the_kubelet_keeps_goes_without_a_status_write() -> None:
    """The pod is removed by the kubelet's final delete: no one could read a status written
    before it, so none is (one write: the finalizer's removal)."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1")
    run_until(world, lambda: running(world, "p1"))
    world.api.commit_delete("Pod", "default", "p1")
    writes = world.api.writes
    run_until(world, lambda: pod(world, "p1") is None)
    assert world.api.writes == writes + 1
