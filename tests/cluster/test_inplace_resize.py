"""In-place CPU resize at claim time (reference §5.2 step 4, §5.5 ``cpu-request``/``cpu-limit``).

The claim writes the new CPU into the sandbox's pod template; the Sandbox
controller updates the pod in place (``InplaceUpdate=False/InplaceUpdating``);
the kubelet resizes it without a restart when the node has room, and the claim
waits for that. The API server refuses a resize that changes the pod's QoS class
or puts a request above its limit; the kubelet defers one that needs room others
hold and refuses one the node can never hold.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest
import simpy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.pod import qos_class
from pytest_kruise_agents.api.sandbox import ConditionType, Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError, ClaimTimeoutError, NotFoundError
from simulator.cluster import Cluster

from .conftest import claim_yaml

CPU_REQUEST = "e2b.agents.kruise.io/cpu-request"
CPU_LIMIT = "e2b.agents.kruise.io/cpu-limit"


def pool(
    name: str = "base",
    replicas: int = 2,
    *,
    request: str = "500m",
    limit: str = "1",
    memory_limit: str | None = None,
) -> str:
    """A SandboxSet whose container requests ``request`` CPU and limits it to ``limit``."""
    limits = f"{{cpu: '{limit}'" + (f", memory: {memory_limit}}}" if memory_limit else "}")
    return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  runtimes: [{{name: agent-runtime}}]
  template:
    spec:
      containers:
        - name: sandbox
          image: registry.example.com/sandbox:v1
          resources:
            requests: {{cpu: '{request}', memory: 512Mi}}
            limits: {limits}
"""


def filled(*pools: str, node_cpu: str | None = None) -> Cluster:
    """A cluster (on one node of ``node_cpu`` cores if given) whose pools are full."""
    nodes = [{"name": "node-1", "cpu": node_cpu, "memory": "64Gi"}] if node_cpu else None
    cluster = Cluster(seed=5, nodes=nodes) if nodes else Cluster(seed=5)
    names = []
    for manifest in pools:
        (obj,) = cluster.apply(manifest)
        names.append(obj.metadata.name)
    for name in names:
        cluster.wait_for_pool(name)
    return cluster


def container_cpu(cluster: Cluster, name: str) -> tuple[str | None, str | None]:
    res = cluster.get("pod", name).spec["containers"][0]["resources"]
    return res.get("requests", {}).get("cpu"), res.get("limits", {}).get("cpu")


def inplace(sbx: Sandbox) -> tuple[str, str, str]:
    cond = find_condition(sbx.status.conditions, ConditionType.INPLACE_UPDATE)
    assert cond is not None, "no InplaceUpdate condition"
    return cond.status, cond.reason, cond.message


def test_the_pod_is_resized_in_place_before_the_claim_returns() -> None:
    """The same pod (no restart) gets the new CPU; the node's allocation follows; then delivery."""
    cluster = filled(pool(replicas=1), node_cpu="4")
    assert cluster.nodes.utilisation()["node-1"][0] == 0.5 / 4
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "750m", CPU_LIMIT: "2"})
    name = sbx.metadata.name
    pod = cluster.get("pod", name)
    assert container_cpu(cluster, name) == ("750m", "2")
    assert pod.metadata.uid == sbx.status.pod_info.pod_uid  # type: ignore[union-attr]
    assert pod.status.resize is None
    sbx = cluster.get("sbx", name)
    assert inplace(sbx)[:2] == ("True", "Succeeded")
    node = pod.spec["nodeName"]
    cluster.wait_for_pool("base")
    # The node holds 750m for the resized pod and 500m for the pool's refill.
    assert cluster.nodes.utilisation()[node][0] == (0.75 + 0.5) / 4
    log = cluster.log
    (resized,) = log.of_kind("kubelet.resized")
    assert f"default/{name} node={node} cpu=750m" in resized.detail
    (claimed,) = log.of_kind("manager.claim")
    assert resized.time < claimed.time
    assert not log.of_kind("kubelet.inplace_updated")  # a resize restarts nothing
    rec = cluster.last_record()
    assert rec.warm is True and rec.ready is not None and rec.ready >= resized.time


def test_a_direct_edit_of_a_claimed_sandbox_resizes_it_again_and_back() -> None:
    """Editing the sandbox's template (as SandboxUpdateOps would) resizes its pod each time."""
    cluster = filled(pool(replicas=1), node_cpu="4")
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "750m"})
    cluster.wait_for_pool("base")
    for cpu, used in (("500m", 0.5 + 0.5), ("1", 1.0 + 0.5), ("500m", 0.5 + 0.5)):
        edited = cluster.get("sbx", sbx.metadata.name).model_copy(deep=True)
        assert edited.spec.template is not None
        edited.spec.template["spec"]["containers"][0]["resources"]["requests"]["cpu"] = cpu
        cluster.apply(edited)

        def resized(c: str = cpu) -> bool:
            return container_cpu(cluster, sbx.metadata.name)[0] == c

        assert cluster.run_until(resized)
        cluster.advance(5)
        assert cluster.nodes.utilisation()["node-1"][0] == used / 4, cpu
        assert inplace(cluster.get("sbx", sbx.metadata.name))[:2] == ("True", "Succeeded")
    assert len(cluster.log.of_kind("kubelet.resized")) == 4


def test_a_guaranteed_pod_is_resized_when_request_and_limit_move_together() -> None:
    """Both CPU values raised together keep the pod Guaranteed: allowed."""
    cluster = filled(pool(request="1", limit="1", memory_limit="512Mi"))
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "2", CPU_LIMIT: "2"})
    pod = cluster.get("pod", sbx.metadata.name)
    assert container_cpu(cluster, sbx.metadata.name) == ("2", "2")
    assert qos_class({"spec": pod.spec}) == "Guaranteed"
    assert inplace(cluster.get("sbx", sbx.metadata.name))[:2] == ("True", "Succeeded")


def test_a_resize_that_would_change_the_qos_class_is_refused_and_reported() -> None:
    """Raising only the limit of a Guaranteed pod: the pod update is a 422, the condition Failed.

    As the reference's wait-ready reads only ``InplaceUpdating``, the claim still
    returns the sandbox (on its old CPU), and the refusal is not retried.
    """
    cluster = filled(pool(request="1", limit="1", memory_limit="512Mi"))
    sbx = cluster.create_sandbox("base", metadata={CPU_LIMIT: "2"})
    name = sbx.metadata.name
    assert container_cpu(cluster, name) == ("1", "1")
    status, reason, message = inplace(cluster.get("sbx", name))
    assert (status, reason) == ("False", "Failed")
    assert message == (
        f'Pod "{name}" is invalid: spec: Invalid value: "Burstable": '
        "Pod QoS is immutable (was Guaranteed)"
    )
    cluster.advance(30)
    assert len(cluster.log.of_kind("sandbox.inplace_failed")) == 1
    assert cluster.last_record().delivered is not None
    # The refusal holds for that spec only: an edit that keeps the pod Guaranteed is carried out.
    edited = cluster.get("sbx", name).model_copy(deep=True)
    assert edited.spec.template is not None
    resources = edited.spec.template["spec"]["containers"][0]["resources"]
    resources["requests"]["cpu"] = resources["limits"]["cpu"] = "2"
    cluster.apply(edited)
    assert cluster.run_until(lambda: container_cpu(cluster, name) == ("2", "2"), timeout=60)
    assert cluster.run_until(lambda: inplace(cluster.get("sbx", name))[:2] == ("True", "Succeeded"))


def test_a_request_above_the_limit_is_refused() -> None:
    """``cpu-request`` above the container's CPU limit: 422 naming the container's requests."""
    cluster = filled(pool(limit="1"))
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "1500m"})
    status, reason, message = inplace(cluster.get("sbx", sbx.metadata.name))
    assert (status, reason) == ("False", "Failed")
    assert 'spec.containers[0].resources.requests: Invalid value: "1500m"' in message
    assert container_cpu(cluster, sbx.metadata.name) == ("500m", "1")


def test_a_resize_without_room_is_deferred_until_room_comes_free() -> None:
    """On a full node the resize waits (``Deferred``), and so does the claim, until pods leave."""
    cluster = filled(
        pool("base", replicas=1, limit="2"),
        pool("filler", replicas=2, limit="2"),
        node_cpu="2",
    )
    proc = cluster.submit_create("base", metadata={CPU_REQUEST: "1500m"})
    assert cluster.run_until(lambda: bool(cluster.log.of_kind("kubelet.resize_deferred")))
    cluster.advance(2)
    assert not proc.triggered
    claimed = cluster.list("sbx", "default", labels={"agents.kruise.io/sandbox-claimed": "true"})
    (sbx,) = claimed
    assert cluster.get("pod", sbx.metadata.name).status.resize == "Deferred"
    assert inplace(sbx)[1] == "InplaceUpdating"

    cluster.delete("sbs", "filler")
    assert cluster.run_until(lambda: proc.triggered, timeout=60)
    assert isinstance(proc.value, Sandbox)
    pod = cluster.get("pod", sbx.metadata.name)
    assert pod.status.resize is None
    assert container_cpu(cluster, sbx.metadata.name) == ("1500m", "2")
    deferred = cluster.log.of_kind("kubelet.resize_deferred")
    assert len(deferred) == 1  # retried when room came free, reported once
    (resized,) = cluster.log.of_kind("kubelet.resized")
    assert resized.time > deferred[0].time


def test_a_resize_the_node_can_never_hold_is_infeasible() -> None:
    """More CPU than the node has at all: ``Infeasible``, the condition Failed, no waiting."""
    cluster = filled(pool(replicas=1, limit="4"), node_cpu="2")
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "3"})
    pod = cluster.get("pod", sbx.metadata.name)
    assert pod.status.resize == "Infeasible"
    status, reason, message = inplace(cluster.get("sbx", sbx.metadata.name))
    assert (status, reason, message) == ("False", "Failed", "resize does not fit node node-1")
    assert cluster.log.of_kind("kubelet.resize_infeasible")
    assert cluster.last_record().attempts == 1


def test_a_no_stock_creation_starts_with_the_new_cpu() -> None:
    """With an empty pool the new sandbox's pod is created with the CPU asked for: no resize."""
    cluster = filled(pool(replicas=0))
    cluster.advance(1)  # the manager learns of the pool through its cache
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "750m", CPU_LIMIT: "2"})
    assert cluster.last_record().warm is False
    assert container_cpu(cluster, sbx.metadata.name) == ("750m", "2")
    assert not cluster.log.of_kind("kubelet.resized")


def test_a_no_stock_creation_with_a_request_above_the_limit_gets_no_pod() -> None:
    """The API server refuses the pod (422), as it refuses the resize; the claim waits on.

    The Sandbox has no webhook and takes the CPU; its pod may not request more
    than its limit, so the Sandbox controller's create fails at every
    reconcile (Ready ``False/PodCreateFailed``), nothing lands on a node, and
    the claim waits for a readiness that does not come.
    """
    cluster = filled(pool(replicas=0, limit="2"))
    cluster.advance(1)
    proc = cluster.submit_create("base", metadata={CPU_REQUEST: "3"})
    cluster.advance(30)
    assert not proc.triggered
    (sbx,) = cluster.list("sbx", "default", labels={"agents.kruise.io/sandbox-claimed": "true"})
    ready = find_condition(sbx.status.conditions, ConditionType.READY)
    assert ready is not None and (ready.status, ready.reason) == ("False", "PodCreateFailed")
    assert ready.message == (
        f'Pod "{sbx.metadata.name}" is invalid: spec.containers[0].resources.requests: '
        'Invalid value: "3": must be less than or equal to cpu limit of 2'
    )
    assert cluster.list("pod") == []
    assert cluster.nodes.utilisation()["node-1"] == (0.0, 0.0)


def test_a_sandboxclaim_resizes_in_place() -> None:
    """``spec.inplaceUpdate.resources`` takes the same path as the E2B keys."""
    cluster = filled(pool())
    cluster.apply(
        claim_yaml("c", inplaceUpdate="{resources: {requests: {cpu: 800m}, limits: {cpu: '2'}}}")
    )
    assert cluster.run_until(lambda: cluster.get("sbc", "c").status.phase == "Completed")
    (sbx,) = cluster.list("sbx", "default", labels={"agents.kruise.io/claim-name": "c"})
    assert container_cpu(cluster, sbx.metadata.name) == ("800m", "2")
    assert inplace(sbx)[:2] == ("True", "Succeeded")


IMAGE = "e2b.agents.kruise.io/image"
NEW_IMAGE = "registry.example.com/sandbox:v2"


def test_a_new_image_and_cpu_are_both_carried_out_before_the_claim_returns() -> None:
    """The kubelet resizes first, but the claim waits for the new image too (reference §5.2
    step 6): the pull lies between lock and ready, and the sandbox is delivered running the
    new image on the new CPU."""
    cluster = filled(pool(replicas=1), node_cpu="4")
    sbx = cluster.create_sandbox("base", metadata={IMAGE: NEW_IMAGE, CPU_REQUEST: "750m"})
    name = sbx.metadata.name
    main = cluster.get("pod", name).status.container_statuses[0]
    assert (main.image, main.ready) == (NEW_IMAGE, True)
    assert container_cpu(cluster, name) == ("750m", "1")
    assert inplace(cluster.get("sbx", name))[:2] == ("True", "Succeeded")
    log = cluster.log
    (resized,) = log.of_kind("kubelet.resized")
    (updated,) = log.of_kind("kubelet.inplace_updated")
    (succeeded,) = log.of_kind("sandbox.inplace_updated")
    assert resized.time < updated.time < succeeded.time
    rec = cluster.last_record()
    assert rec.locked is not None and rec.ready is not None
    assert rec.locked < resized.time and rec.ready >= succeeded.time


def test_a_new_image_with_a_resize_the_node_can_never_hold_is_delivered_on_the_old_cpu() -> None:
    """The resize is ``Infeasible`` (``InplaceUpdate False/Failed``, as for CPU alone), but the
    image is carried out: the claim waits for it and delivers the new image on the old CPU."""
    cluster = filled(pool(replicas=1, limit="4"), node_cpu="2")
    sbx = cluster.create_sandbox("base", metadata={IMAGE: NEW_IMAGE, CPU_REQUEST: "3"})
    name = sbx.metadata.name
    pod = cluster.get("pod", name)
    assert pod.status.resize == "Infeasible"
    main = pod.status.container_statuses[0]
    assert (main.image, main.ready) == (NEW_IMAGE, True)
    status, reason, message = inplace(cluster.get("sbx", name))
    assert (status, reason, message) == ("False", "Failed", "resize does not fit node node-1")
    (updated,) = cluster.log.of_kind("kubelet.inplace_updated")
    (failed,) = cluster.log.of_kind("sandbox.inplace_failed")
    rec = cluster.last_record()
    assert rec.ready is not None and rec.ready >= failed.time > updated.time


@pytest.mark.parametrize(
    "cpu", [None, "750m", "3"], ids=["image", "image+cpu", "image+infeasible-cpu"]
)
def test_a_new_image_that_fails_to_pull_fails_each_attempt_with_or_without_new_cpu(
    cpu: str | None,
) -> None:
    """The pull never succeeds: each attempt's wait-ready times out and its sandbox is
    deleted, until the claim times out; a resize carried out (or found ``Infeasible``)
    meanwhile changes nothing."""
    cluster = filled(pool(replicas=1, limit="4"), node_cpu="2")
    cluster.inject("image_pull_failure", selector={"image": NEW_IMAGE})
    metadata = {
        IMAGE: NEW_IMAGE,
        "e2b.agents.kruise.io/claim-timeout-seconds": "30",
        "e2b.agents.kruise.io/wait-ready-timeout-seconds": "10",
    }
    if cpu is not None:
        metadata[CPU_REQUEST] = cpu
    with pytest.raises(ClaimTimeoutError):
        cluster.create_sandbox("base", metadata=metadata)
    rec = cluster.last_record()
    assert rec.delivered is None and rec.attempts >= 2
    assert not cluster.list("sbx", "default", labels={"agents.kruise.io/sandbox-claimed": "true"})
    assert bool(cluster.log.of_kind("kubelet.resized")) == (cpu == "750m")


def test_a_sandboxclaim_updating_image_and_cpu_whose_pull_fails_claims_nothing() -> None:
    """``spec.inplaceUpdate: {image, resources}``: the claim completes with ``TimeoutReached``
    and no sandbox, as it does for the image alone, not with a sandbox that never runs it."""
    cluster = filled(pool(replicas=1))
    cluster.inject("image_pull_failure", selector={"image": NEW_IMAGE})
    update = f"{{image: '{NEW_IMAGE}', resources: {{requests: {{cpu: 750m}}}}}}"
    cluster.apply(claim_yaml("c", waitReadyTimeout="5s", claimTimeout="20s", inplaceUpdate=update))
    cluster.advance(40)
    status = cluster.get("sbc", "c").status
    completed = find_condition(status.conditions, "Completed")
    assert completed is not None
    assert (status.phase, completed.reason, status.claimed_replicas) == (
        "Completed",
        "TimeoutReached",
        0,
    )
    assert not [r for r in cluster.records if r.claim_name == "c" and r.delivered is not None]
    assert cluster.log.of_kind("kubelet.resized")


CPU_VALUES = st.sampled_from(["250m", "500m", "1", "1500m", "2", "3", "6"])


@settings(
    max_examples=int(os.environ.get("KRUISE_INVARIANT_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    replicas=st.integers(1, 4),
    plan=st.lists(
        st.tuples(
            st.floats(0.0, 20.0),
            st.floats(0.0, 40.0),
            st.one_of(st.none(), CPU_VALUES, CPU_VALUES),
            st.one_of(st.none(), CPU_VALUES),
        ),
        min_size=1,
        max_size=8,
    ),
)
@example(  # user-1's resize waits an hour for room; its sandbox's timeout ends 10 s after
    seed=32859014,
    replicas=4,
    plan=[
        (5e-324, 38.447653543836935, None, None),
        (18.451223907771745, 38.01649669411228, "3", "6"),
        (12.566758695676745, 1e-05, "1", "2"),
        (0.0, 6.366369480730408, "3", None),
        (10.310614806350278, 1.3963420031670284, None, None),
        (10.149033545998554, 2.4469, "500m", None),
        (13.335526714350545, 16.316796626903333, "500m", None),
        (0.5, 23.951499723992523, None, "250m"),
    ],
)
def test_resizes_never_overcommit_a_node_and_leave_nothing_allocated(
    seed: int, replicas: int, plan: list[tuple[float, float, str | None, str | None]]
) -> None:
    """Clients claim with random CPU requests and limits on one 4-core node, hold, and kill.

    The node's allocation never exceeds its capacity, whatever is deferred,
    refused or infeasible; every claim ends; a sandbox whose update succeeded
    runs the CPU it asked for; once the clients are gone and the pool is
    deleted, the node holds nothing. A kill finds its sandbox unless the
    sandbox's timeout passed first: the timeout runs from the claim's lock
    (§5.2 step 4), and a resize the kubelet defers holds the claim until there
    is room, for as long as that takes (the wait-ready timeout is unlimited).
    """
    cluster = Cluster(seed=seed, nodes=[{"name": "n1", "cpu": "4", "memory": "64Gi"}])
    cluster.apply(pool(replicas=replicas, limit="2"))
    cluster.advance(5)
    env = cluster.env
    manager = cluster.manager
    peaks: list[float] = []
    outcomes: list[str] = []

    def watch() -> Generator[simpy.Event, Any, None]:
        while True:
            peaks.append(cluster.nodes.utilisation()["n1"][0])
            yield env.timeout(0.05)

    def client(
        i: int, start: float, hold: float, request: str | None, limit: str | None
    ) -> Generator[simpy.Event, Any, None]:
        metadata = {k: v for k, v in ((CPU_REQUEST, request), (CPU_LIMIT, limit)) if v}
        yield env.timeout(start)
        try:
            sbx = yield from manager.create_sandbox(
                namespace="default",
                user=f"user-{i}",
                template="base",
                timeout_s=3600,
                metadata=metadata,
            )
        except ClaimError as err:
            outcomes.append(f"error {err.code}")
            return
        name = sbx.metadata.name
        cond = find_condition(sbx.status.conditions, ConditionType.INPLACE_UPDATE)
        if cond is not None and cond.reason == "Succeeded":
            want = (request, limit)
            have = container_cpu(cluster, name)
            assert all(w is None or w == h for w, h in zip(want, have, strict=True)), (want, have)
        outcomes.append(cond.reason if cond is not None else "plain")
        yield env.timeout(hold)
        try:
            yield from manager.kill("default", f"user-{i}", f"default--{name}")
        except NotFoundError:
            assert sbx.spec.shutdown_time is not None
            assert cluster.now_dt() >= sbx.spec.shutdown_time

    env.process(watch())
    procs = [env.process(client(i, *args)) for i, args in enumerate(plan)]
    env.run(until=env.all_of(procs))
    assert len(outcomes) == len(plan)
    assert max(peaks) <= 1.0

    cluster.delete("sbs", "base")
    cluster.advance(60)
    assert not cluster.list("pod")
    assert cluster.nodes.utilisation()["n1"] == (0.0, 0.0)


def test_with_the_resize_gate_off_a_sandboxclaim_asking_for_cpu_completes_unclaimed() -> None:
    """Gate ``SandboxInPlaceResourceResize`` off: ``Completed`` / ``FeatureGateDisabled`` at once."""
    cluster = Cluster(seed=5, inplace_resource_resize=False)
    cluster.apply(pool())
    cluster.wait_for_pool("base")
    cluster.apply(claim_yaml("c", inplaceUpdate="{resources: {limits: {cpu: '2'}}}"))
    assert cluster.run_until(lambda: cluster.get("sbc", "c").status.phase == "Completed")
    status = cluster.get("sbc", "c").status
    completed = find_condition(status.conditions, "Completed")
    assert completed is not None and completed.reason == "FeatureGateDisabled"
    assert status.claimed_replicas == 0
    assert not cluster.list("sbx", "default", labels={"agents.kruise.io/claim-name": "c"})
    # An image-only in-place update is not behind the gate.
    cluster.apply(claim_yaml("d", inplaceUpdate="{image: 'registry.example.com/sandbox:v2'}"))
    assert cluster.run_until(lambda: cluster.get("sbc", "d").status.claimed_replicas == 1)


def test_with_the_resize_gate_off_the_controller_leaves_the_pod_cpu_alone() -> None:
    """The E2B keys still write the sandbox's template, but no pod is resized."""
    cluster = Cluster(seed=5, inplace_resource_resize=False)
    cluster.apply(pool())
    cluster.wait_for_pool("base")
    sbx = cluster.create_sandbox("base", metadata={CPU_REQUEST: "750m"})
    assert container_cpu(cluster, sbx.metadata.name) == ("500m", "1")
    assert find_condition(sbx.status.conditions, ConditionType.INPLACE_UPDATE) is None
    assert not cluster.log.of_kind("sandbox.inplace_update")
