"""The kubelet's image pulls: one download at a time per node, and one image however named."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import Pod
from simulator.nodes import POD_FINALIZER, NodeSpec
from simulator.world import World

from .test_nodes import add_pod, make, pod, run_until, running, waiting_reason


def pulled(world: World) -> list[tuple[float, str]]:
    """When each image landed, and its name as the log gives it."""
    return [(e.time, e.detail) for e in world.ctx.log.of_kind("kubelet.pulled")]


def test_different_images_on_one_node_are_pulled_one_at_a_time() -> None:
    """serializeImagePulls (the kubelet's default): each download waits for the one before
    it, in the order the pods asked; a pod needing an image queued joins its download."""
    world, _ = make([NodeSpec(name="a")])
    for name, image in (("p1", "x:1"), ("p2", "y:1"), ("p3", "z:1"), ("p4", "y:1")):
        add_pod(world, name, image=image)
    run_until(world, lambda: all(running(world, f"p{i}") for i in range(1, 5)))
    log = pulled(world)
    assert [detail for _, detail in log] == ["x:1 node=a", "y:1 node=a", "z:1 node=a"]
    first = log[0][0]
    # image.pull is 5 s: each download begins when the one before it lands.
    assert [t - first for t, _ in log] == pytest.approx([0.0, 5.0, 10.0])


def test_nodes_pull_in_parallel_with_each_other() -> None:
    """The serial puller is per node: two nodes pull their images at the same time."""
    world, _ = make([NodeSpec(name="a"), NodeSpec(name="b")])
    add_pod(world, "p1", image="x:1")
    world.ctx.env.run(until=0.05)
    add_pod(world, "p2", image="y:1")
    run_until(world, lambda: running(world, "p1") and running(world, "p2"))
    (t1, d1), (t2, d2) = pulled(world)
    assert (d1, d2) == ("x:1 node=a", "y:1 node=b")
    assert t2 - t1 < 1


def test_parallel_pulls_when_the_node_does_not_serialize_them() -> None:
    """``serialize_image_pulls: false`` pulls different images at once."""
    world, _ = make([NodeSpec(name="a", serialize_image_pulls=False)])
    for name, image in (("p1", "x:1"), ("p2", "y:1"), ("p3", "z:1")):
        add_pod(world, name, image=image)
    run_until(world, lambda: all(running(world, f"p{i}") for i in range(1, 4)))
    times = [t for t, _ in pulled(world)]
    assert max(times) - min(times) < 1


@pytest.mark.parametrize(
    ("present", "asked"),
    [
        ("docker.io/library/python:3.12", "python:3.12"),
        ("python:3.12", "docker.io/library/python:3.12"),
        ("busybox:latest", "busybox"),
        ("busybox", "docker.io/library/busybox:latest"),
    ],
)
def test_an_image_is_found_on_the_node_however_its_reference_is_written(
    present: str, asked: str
) -> None:
    """The runtime's image store keys images by normalised reference: no pull for another
    spelling of a pre-pulled image."""
    world, _ = make([NodeSpec(name="a", images=(present,))], latencies={"image.pull": 20.0})
    add_pod(world, "p1", image=asked)
    assert run_until(world, lambda: running(world, "p1")) < 2
    assert pulled(world) == []


def test_pods_naming_one_image_two_ways_share_its_download_and_then_the_cache() -> None:
    """One download serves both spellings; a later pod finds the image on the node."""
    world, _ = make([NodeSpec(name="a")], latencies={"image.pull": 20.0})
    add_pod(world, "p1", image="busybox")
    add_pod(world, "p2", image="docker.io/library/busybox:latest")
    assert run_until(world, lambda: running(world, "p1") and running(world, "p2")) < 25
    assert [d for _, d in pulled(world)] == ["busybox node=a"]
    start = world.ctx.now()
    add_pod(world, "p3", image="busybox:latest")
    assert run_until(world, lambda: running(world, "p3")) - start < 2


def test_a_digest_reference_is_another_image_than_a_tag() -> None:
    """``name@sha256:...`` names its own image: the tagged one on the node does not serve it."""
    digest = "busybox@sha256:" + "a" * 64
    world, _ = make([NodeSpec(name="a", images=("busybox:latest",))])
    add_pod(world, "p1", image=digest)
    run_until(world, lambda: running(world, "p1"))
    assert [d for _, d in pulled(world)] == [f"{digest} node=a"]


def test_a_node_lost_mid_pull_comes_back_with_a_free_puller() -> None:
    """The downloads under way and queued go with the node; once back, it pulls again at
    once, and the download of before the loss, landing, starts nothing."""
    world, _ = make([NodeSpec(name="a")])
    add_pod(world, "p1", image="x:1")
    add_pod(world, "p2", image="y:1")
    world.ctx.env.run(until=2)
    world.ctx.faults.inject(kind="node_loss", selector={"node": "a"}, duration=1)
    world.ctx.env.run(until=4)
    for name, image in (("p3", "z:1"), ("p4", "y:1")):
        add_pod(world, name, image=image)
    run_until(world, lambda: running(world, "p3") and running(world, "p4"))
    log = pulled(world)
    assert [d for _, d in log] == ["z:1 node=a", "y:1 node=a"]
    # z:1 began at once (not behind the lost x:1), y:1 right after it.
    assert log[0][0] == pytest.approx(4 + 0.01 + 0.01 + 0.2 + 5.0, abs=0.1)
    assert log[1][0] - log[0][0] == pytest.approx(5.0)


def test_the_image_name_memos_stay_bounded_when_every_claim_brings_its_own_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claims that each update their sandbox in place to a new image (a per-build tag) do
    not grow the scheduler's image-name memos past their bound: the same size after 5 and
    after 50 such claims. (Nodes' image caches do grow: no image GC, docs/fidelity.md.)"""
    from simulator import nodes as nodes_module
    from simulator.cluster import Cluster
    from tests.cluster.conftest import pool_yaml

    monkeypatch.setattr(nodes_module, "_IMAGE_MEMO_MAX", 8, raising=False)
    cluster = Cluster(seed=1, nodes=2, log=False, records_limit=1)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    done = 0

    def claims(n: int) -> tuple[int, int]:
        nonlocal done
        for _ in range(n):
            done += 1
            image = f"registry.example.com/agent:build-{done}"
            sbx = cluster.create_sandbox(
                "base", timeout=30, metadata={"e2b.agents.kruise.io/image": image}
            )
            cluster.kill(cluster.sandbox_id(sbx))
            cluster.advance(2)
        return len(cluster.nodes._images), len(cluster.nodes._parsed)

    for sizes in (claims(5), claims(45)):
        assert max(sizes) <= 8


def test_only_the_first_containers_image_is_pulled() -> None:
    """``docs/fidelity.md``, Nodes and pods (a deliberate difference): the images of init
    containers, sidecars and other containers cost no pull, are not cached, and an
    ``image_pull_failure`` naming one of them never fires; the pod runs on its first
    container's pull alone."""
    world, _ = make([NodeSpec(name="a")])
    fault = world.ctx.faults.inject(kind="image_pull_failure", selector={"image": "side:1"})
    spec = {
        "initContainers": [
            {"name": "setup", "image": "init:1"},
            {"name": "side", "image": "side:1", "restartPolicy": "Always"},
        ],
        "containers": [
            {"name": "main", "image": "x:1", "resources": {"requests": {"cpu": "1"}}},
            {"name": "extra", "image": "extra:1"},
        ],
    }
    world.api.commit_create(
        Pod(
            metadata=ObjectMeta(name="p1", namespace="default", finalizers=[POD_FINALIZER]),
            spec=spec,
        )
    )
    run_until(world, lambda: running(world, "p1"))
    assert [detail for _, detail in pulled(world)] == ["x:1 node=a"]
    assert fault.fired == 0


def test_a_failed_pull_reports_at_once_without_waiting_for_the_nodes_puller() -> None:
    """``docs/fidelity.md``, Nodes and pods: a pull that fails takes ``image.pull_cached``
    (0.1 s here) and reports ``ErrImagePull`` while the node's serial puller is still busy
    with another image (5 s), where a real kubelet's failing pull queues behind it."""
    world, _ = make([NodeSpec(name="a")])
    world.ctx.faults.inject(kind="image_pull_failure", selector={"image": "y:1"})
    add_pod(world, "p1", image="x:1")
    world.ctx.env.run(until=0.5)
    add_pod(world, "p2", image="y:1")

    def reported() -> bool:
        got = pod(world, "p2")
        return got is not None and bool(got.status.container_statuses)

    failed_at = run_until(world, reported)
    assert waiting_reason(world, "p2") == "ErrImagePull"
    assert failed_at < 1.0
    assert not running(world, "p1")
    assert pulled(world) == []
