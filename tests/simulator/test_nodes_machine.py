"""The node layer (kube-scheduler and the kubelets) as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` drives one :class:`~simulator.cluster.Cluster` through its
public API: drawn nodes (CPU, memory, pod slots, labels, pre-pulled images), more of
them added later (``cluster.nodes.add``); bare pods applied with drawn requests (as
requests, or as limits standing in for them, or zero), a second container, init
containers and sidecars (init containers with ``restartPolicy: Always``), a
``nodeSelector`` (a label some nodes have, a node's hostname, one no node has),
``tolerations`` and ``affinity`` (which the model ignores: docs/fidelity.md), a
grace period, an image written in several forms of the same reference, and now
and then a ``nodeName`` given at creation (the kubelet's admission, a node not
added yet included); pods resized (the first container's CPU and memory: an
in-place resize, or new requests for a pod not placed yet, or placed and not yet
bound); pods deleted; SandboxSets (pools) applied, scaled and deleted;
``node_loss`` faults on a drawn node (now or ahead, for a while or until cleared),
``image_pull_slow`` and ``image_pull_failure`` faults, and faults cleared; time
advanced. Two rules aim at a pending pod, then let the scheduler settle: one
deletes a pod whose room alone it would fit in, one adds a node it fits on
(drawn deletes and nodes rarely line up with one; a scheduler that never retried
on a node added went unseen without them). Every latency is fixed (see ``LATENCIES``), so that a pull is told from
a cached one by its time.

A small model of kube-scheduler and the kubelet, written from docs/fidelity.md and
upstream (``AggregateContainerRequests``, ``NodeResourcesFit``, ``NodeAffinity`` of
a ``nodeSelector``), is checked after every rule:

- no node is over-committed: the requests of the pods bound to it that hold room
  (not ``Failed``/``Succeeded``, not stopped by its kubelet after their delete) sum
  to at most its allocatable CPU and memory, and they are at most ``max_pods``;
  the scheduler's own books never pass a node's allocatable either (a pod whose
  resize is under way counts the smaller of its requests and its allocation);
- scheduler liveness: once nothing has changed for ``SETTLE_S`` (no rule acted, no
  fault window opened or closed), a pod the scheduler should place (unbound, not
  being deleted, for the default scheduler) fits no ready node, and reads
  ``PodScheduled=False/Unschedulable`` ``0/<nodes> nodes are available``; the
  scheduler's books then hold, node by node, exactly the pods that hold room, each
  charged its allocation (kube-scheduler's fit charges ``max(spec, allocated)``
  unless the resize is ``Infeasible``);
- a resize: once settled, a running pod's resize is carried out (its allocation,
  from ``kubelet.resized``, is its requests), or it is ``Deferred`` because it does
  not fit beside the others' allocations, or ``Infeasible`` above the node's;
- a lost node takes no pod, and a second after it was lost no pod bound to it is
  alive (each is ``Failed`` with a reason, ``NodeLost`` unless it had failed
  before, or gone);
  a pool's sandbox whose pod was lost is replaced (reference §3: the SandboxSet
  deletes its dead sandboxes and makes others), so once settled a pool has
  ``replicas`` sandboxes, none ``Failed``, and none of its pods is on a lost node;
- the image cache: an image is downloaded (``kubelet.pulled``) only when the node
  does not hold it (pre-pulled, or pulled since the node last came back: a lost
  node comes back with only its pre-pulled images), a download takes at least an
  ``image.pull`` after a pod needing it came to the node, a pod runs only once
  its image is on its node, and a pod whose image its node held when it was bound
  starts without a pull (its start takes the cached path's time);
- pod IPs are unique among the pods that are alive, each in its node's range, with
  its node's host IP;
- nothing leaks: every pod is bound, pending or ended; a pod deleted is gone once
  its grace period has passed.

``derandomize=True`` keeps the suite deterministic (about 10 s of one core).
``KRUISE_MACHINE_EXAMPLES``, ``KRUISE_MACHINE_STEPS`` and ``KRUISE_MACHINE_HUNT``
(see tests/machines.py) turn it into a hunt.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.pod import Pod, normalize_image
from simulator.cluster import Cluster
from simulator.faults import Fault
from simulator.nodes import NodeSpec, well_known_labels
from tests.machines import machine_settings

LATENCIES = {
    "api.create": 0.01,
    "api.update": 0.01,
    "api.update_status": 0.01,
    "api.delete": 0.01,
    "api.get": 0.01,
    "watch.lag": 0.01,
    "scheduler.bind": 0.01,
    "pod.create": 0.2,
    "image.pull": 5.0,
    "image.pull_cached": 0.1,
    "container.start": 0.5,
    "container.ready": 0.2,
    "pod.stop": 0.1,
    "inplace.resize": 0.3,
}
PULL_S = LATENCIES["image.pull"]
FAST_START_S = 2.0
"""Longest a pod whose image its node holds takes from its binding to Running (1.0 s of
kubelet steps, and a few API writes and watch lags)."""
SETTLE_S = 20.0
"""How long nothing must have changed for the scheduler to have done what it can."""
POOL_SETTLE_S = 60.0
"""How long nothing must have changed for the pools to be back at their replicas."""
SLOW_PULL_S = 30.0
ADMITTED_S = 0.05
"""How soon a kubelet has admitted (or refused) a pod created with its node's name."""

NODE_NAMES = ("n0", "n1", "n2", "n3", "n4")
IMAGES = (
    "busybox",
    "docker.io/library/busybox:latest",
    "nginx:1.25",
    "docker.io/library/nginx:1.25",
    "registry.example.com/agent:v1",
    "python:3.12",
)
LABELS: tuple[dict[str, str], ...] = (
    {},
    {"disk": "ssd"},
    {"disk": "hdd"},
    {"disk": "ssd", "gpu": "no"},
)
SELECTORS: tuple[dict[str, str] | None, ...] = (
    None,
    None,
    None,
    {"disk": "ssd"},
    {"disk": "hdd"},
    {"kubernetes.io/hostname": "n1"},
    {"kubernetes.io/os": "linux"},
    {"disk": "nvme"},
)
CPU_M = (None, None, 0, 100, 250, 500, 1000, 1500, 3000)
MEM_MI = (None, None, 0, 64, 256, 512, 1024, 3072)
TERMINAL = ("Failed", "Succeeded")


@dataclass
class Ask:
    """One container's requests, as drawn (``None``: not stated)."""

    cpu: int | None
    mem: int | None
    form: str
    """``requests``, ``limits`` (a limit stands in for the request) or ``both``."""

    def resources(self) -> dict[str, Any]:
        amounts: dict[str, Any] = {}
        if self.cpu is not None:
            amounts["cpu"] = f"{self.cpu}m"
        if self.mem is not None:
            amounts["memory"] = f"{self.mem}Mi"
        if not amounts:
            return {}
        if self.form == "requests":
            return {"requests": amounts}
        if self.form == "limits":
            return {"limits": amounts}
        return {"requests": amounts, "limits": dict(amounts)}


@dataclass
class PodPlan:
    """A pod as the machine made it, and what the model says it asks of a node."""

    name: str
    image: str
    cpu: int
    """Millicores the scheduler charges (upstream's ``AggregateContainerRequests``)."""
    mem: int
    """Bytes."""
    selector: dict[str, str] | None
    node_name: str | None
    grace: float
    created: float
    manifest: dict[str, Any] | None = None
    """The pod as last applied (a bare pod's), to resize it."""
    alloc: tuple[int, int] | None = None
    """What its kubelet allocated it (``None`` before a kubelet took it): its requests when
    taken, then each resize the kubelet carried out (``kubelet.resized``)."""

    def charged(self) -> tuple[int, int]:
        """What the pod holds on its node for certain: of its allocation and its requests,
        the smaller (a resize down frees room as the kubelet accepts it, before its log)."""
        if self.alloc is None:
            return self.cpu, self.mem
        return min(self.cpu, self.alloc[0]), min(self.mem, self.alloc[1])

    def scheduled_charge(self, infeasible: bool) -> tuple[int, int]:
        """What kube-scheduler charges for it: ``max(spec, allocated)``, the allocation alone
        while its resize is Infeasible."""
        if self.alloc is None:
            return self.cpu, self.mem
        if infeasible:
            return self.alloc
        return max(self.cpu, self.alloc[0]), max(self.mem, self.alloc[1])


def aggregate(containers: list[Ask], inits: list[tuple[Ask, bool]]) -> tuple[int, int]:
    """Upstream's ``resourcehelper.PodRequests`` (no overhead): the containers' sum and the
    sidecars', or the largest init container beside the sidecars started before it."""
    cpu = sum(a.cpu or 0 for a in containers)
    mem = sum((a.mem or 0) << 20 for a in containers)
    side_cpu = side_mem = 0
    init_cpu = init_mem = 0
    for ask, sidecar in inits:
        c, m = ask.cpu or 0, (ask.mem or 0) << 20
        if sidecar:
            cpu, mem = cpu + c, mem + m
            side_cpu, side_mem = side_cpu + c, side_mem + m
            c, m = side_cpu, side_mem
        else:
            c, m = c + side_cpu, m + side_mem
        init_cpu, init_mem = max(init_cpu, c), max(init_mem, m)
    return max(cpu, init_cpu), max(mem, init_mem)


@dataclass
class NodeModel:
    spec: NodeSpec
    index: int
    cpu: int
    mem: int
    labels: dict[str, str]
    added: float
    images: set[str] = field(default_factory=set)


@dataclass
class Loss:
    fault: Fault
    node: str
    start: float
    end: float | None
    cleared_at: float | None = None

    def holds(self, now: float) -> bool:
        end = (
            self.end
            if self.cleared_at is None
            else min(self.end or self.cleared_at, self.cleared_at)
        )
        return self.start <= now and (end is None or now < end)


asks = st.builds(
    Ask,
    st.sampled_from(CPU_M),
    st.sampled_from(MEM_MI),
    st.sampled_from(("requests", "requests", "limits", "both")),
)
node_specs: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    cpu=st.sampled_from(("1", "2", "4")),
    memory=st.sampled_from(("1Gi", "2Gi", "4Gi")),
    max_pods=st.sampled_from((1, 2, 3, 5)),
    labels=st.sampled_from(LABELS),
    images=st.lists(st.sampled_from(IMAGES), max_size=2, unique=True),
)


class NodesMachine(RuleBasedStateMachine):
    """Nodes, pods, pools and node faults; a model of kube-scheduler and the kubelet."""

    def __init__(self) -> None:
        super().__init__()
        self.cluster: Cluster
        self.nodes: dict[str, NodeModel] = {}
        self.pods: dict[str, PodPlan] = {}
        """Every pod the machine or a pool made, by name (names are never reused)."""
        self.pools: dict[str, tuple[dict[str, Any], int]] = {}
        self.losses: list[Loss] = []
        self.image_faults: list[tuple[Fault, float, float | None]] = []
        self.changed = 0.0
        """When a rule last changed something (a fault boundary counts too)."""
        self.serial = 0
        self.seen = 0
        """Events of the log already read."""
        self.stopped: set[str] = set()
        """Pods their kubelet stopped after their delete (``kubelet.stopped``)."""
        self.bound_at: dict[str, tuple[float, str]] = {}
        """When and where each pod was bound (``scheduler.bound``)."""
        self.arrived: dict[str, list[float]] = {}
        """Per node, when pods came to it (bound there, or created with its name)."""
        self.deleted_at: dict[str, float] = {}
        self.pool_asks: dict[str, tuple[str, int, int]] = {}
        """Each pool's image and requests, as it was made."""
        self.shapes: dict[str, tuple[Ask, Ask | None, list[tuple[Ask, bool]]]] = {}
        """Each bare pod's containers' requests, as last applied."""
        self.held_at_bind: dict[str, bool] = {}
        """Whether each pod's node held its image when the pod was bound there."""

    # -- set-up -----------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**16), specs=st.lists(node_specs, min_size=1, max_size=3))
    def start(self, seed: int, specs: list[dict[str, Any]]) -> None:
        named = [{"name": NODE_NAMES[i], **s} for i, s in enumerate(specs)]
        self.cluster = Cluster(seed=seed, nodes=named, latencies=LATENCIES)
        for spec in self.cluster.nodes.specs:
            self._note_node(spec)

    def _note_node(self, spec: NodeSpec) -> None:
        cpu = int(float(spec.cpu) * 1000)
        mem = int(spec.memory.removesuffix("Gi")) << 30
        labels = {**well_known_labels(spec.name), **spec.labels}
        images = {normalize_image(i) for i in spec.images}
        self.nodes[spec.name] = NodeModel(
            spec, len(self.nodes), cpu, mem, labels, self.cluster.now, images
        )

    @property
    def now(self) -> float:
        return self.cluster.now

    def _changed(self) -> None:
        self.changed = self.now

    # -- rules --------------------------------------------------------------------------

    @precondition(lambda self: len(self.nodes) < len(NODE_NAMES))
    @rule(spec=node_specs)
    def add_node(self, spec: dict[str, Any]) -> None:
        """A node joins: pending pods are retried on it, and its kubelet runs the pods
        created with its name before it existed."""
        name = NODE_NAMES[len(self.nodes)]
        self.cluster.nodes.add({"name": name, **spec})
        self._note_node(self.cluster.nodes.specs[-1])
        for plan in self.pods.values():
            if plan.node_name == name:
                self.arrived.setdefault(name, []).append(self.now)
        self._changed()

    @rule(
        main=asks,
        second=st.none() | asks,
        inits=st.lists(st.tuples(asks, st.booleans()), max_size=2),
        image=st.sampled_from(IMAGES),
        selector=st.sampled_from(SELECTORS),
        ignored=st.sampled_from(("", "", "tolerations", "affinity")),
        grace=st.sampled_from((None, 0, 2)),
        node_name=st.sampled_from((None,) * 8 + NODE_NAMES[:4]),
    )
    def apply_pod(
        self,
        main: Ask,
        second: Ask | None,
        inits: list[tuple[Ask, bool]],
        image: str,
        selector: dict[str, str] | None,
        ignored: str,
        grace: int | None,
        node_name: str | None,
    ) -> None:
        """A bare pod with drawn requests, sidecars and init containers, and constraints."""
        self.serial += 1
        name = f"pod-{self.serial}"
        containers: list[dict[str, Any]] = [
            {"name": "main", "image": image, "resources": main.resources()}
        ]
        if second is not None:
            containers.append(
                {"name": "helper", "image": "helper:1", "resources": second.resources()}
            )
        spec: dict[str, Any] = {"containers": containers}
        if inits:
            spec["initContainers"] = [
                {
                    "name": f"init-{i}",
                    "image": "init:1",
                    "resources": ask.resources(),
                    **({"restartPolicy": "Always"} if sidecar else {}),
                }
                for i, (ask, sidecar) in enumerate(inits)
            ]
        if selector is not None:
            spec["nodeSelector"] = dict(selector)
        if ignored == "tolerations":
            spec["tolerations"] = [{"key": "disk", "operator": "Exists", "effect": "NoSchedule"}]
        elif ignored == "affinity":
            spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "disk", "operator": "In", "values": ["x"]}
                                ]
                            }
                        ]
                    }
                }
            }
        if grace is not None:
            spec["terminationGracePeriodSeconds"] = grace
        if node_name is not None:
            spec["nodeName"] = node_name
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
        self.cluster.apply(manifest)
        cpu, mem = aggregate([main] if second is None else [main, second], inits)
        self.pods[name] = PodPlan(
            name, image, cpu, mem, selector, node_name, float(grace or 0), self.now, manifest
        )
        self.shapes[name] = (main, second, inits)
        if node_name is not None:
            self.pods[name].alloc = (cpu, mem)
        if node_name is not None and node_name in self.nodes:
            self.arrived.setdefault(node_name, []).append(self.now)
        self._changed()

    def _bare_pods(self) -> list[str]:
        return sorted(
            p.metadata.name
            for p in self.cluster.list("Pod")
            if p.metadata.name.startswith("pod-") and p.metadata.deletion_timestamp is None
        )

    @rule(data=st.data())
    def delete_pod(self, data: st.DataObject) -> None:
        """A bare pod deleted: it goes once its kubelet stopped it (at once if unbound or
        ended)."""
        names = self._bare_pods()
        if not names:
            return
        bound = [n for n in names if (self._stored(n) or Pod()).spec.get("nodeName")]
        bound_first: int = data.draw(st.integers(0, 3), label="bound first")
        if bound and bound_first:
            names = bound  # mostly one that holds room a pending pod may wait for
        name = data.draw(st.sampled_from(names), label="pod")
        self.cluster.delete("Pod", name)
        self.deleted_at[name] = self.now
        self._changed()

    def _unplaced(self) -> list[Pod]:
        """The pods left to the scheduler and not placed: unbound, Pending, not being deleted."""
        return [
            pod
            for pod in self.cluster.world.api.peek_list("Pod")
            if not pod.spec.get("nodeName")
            and pod.status.phase == "Pending"
            and pod.metadata.deletion_timestamp is None
        ]

    def _pending(self) -> list[PodPlan]:
        """The plans of the pods left to the scheduler and not placed, by name."""
        plans = [self._plan(pod.metadata.name) for pod in self._unplaced()]
        return sorted((p for p in plans if p is not None), key=lambda p: p.name)

    @rule(data=st.data())
    def free_room_for_a_pending_pod(self, data: st.DataObject) -> None:
        """A bare pod deleted whose room alone a pending pod would fit in: the scheduler
        must try the pending pod again when the room frees. (Drawn deletes rarely pick
        such a pod; without this rule a scheduler that never retried went unseen.)"""
        usage = self._usage(scheduler=True)
        holders: set[str] = set()
        for plan in self._pending():
            for node, (cpu, mem, count, pods) in usage.items():
                for pod in pods:
                    name = pod.metadata.name
                    held = self._plan(name)
                    if (
                        held is None
                        or not name.startswith("pod-")
                        or pod.metadata.deletion_timestamp is not None
                    ):
                        continue
                    c, m = held.scheduled_charge(pod.status.resize == "Infeasible")
                    if self._fits(plan, node, (cpu - c, mem - m, count - 1, [])):
                        holders.add(name)
        if not holders:
            return
        name = data.draw(st.sampled_from(sorted(holders)), label="holder")
        event("freed room a pending pod fits in")
        self.cluster.delete("Pod", name)
        self.deleted_at[name] = self.now
        self._changed()
        self.advance(SETTLE_S)  # settled, so the liveness check looks at once

    @precondition(lambda self: len(self.nodes) < len(NODE_NAMES))
    @rule(data=st.data())
    def add_a_node_for_a_pending_pod(self, data: st.DataObject) -> None:
        """A node joins that a pending pod fits on (its selector's labels, room for it):
        the scheduler must try the pending pod on it."""
        pending = [p for p in self._pending() if "kubernetes.io/hostname" not in (p.selector or {})]
        if not pending:
            return
        plan = data.draw(st.sampled_from(pending), label="pending pod")
        cpu = max(1, -(-plan.cpu // 1000))
        gib = max(1, -(-plan.mem // (1 << 30)))
        labels = {
            k: v for k, v in (plan.selector or {}).items() if not k.startswith("kubernetes.io/")
        }
        event("added a node a pending pod fits on")
        self.add_node({"cpu": str(cpu), "memory": f"{gib}Gi", "max_pods": 2, "labels": labels})
        self.advance(SETTLE_S)  # settled, so the liveness check looks at once

    @rule(
        data=st.data(),
        cpu=st.sampled_from((0.1, 0.25, 0.4, 0.6, 0.8, 1.0, 1.5)),
        mem=st.sampled_from((0.1, 0.25, 0.4, 0.6, 0.8, 1.0, 1.5)),
    )
    def resize_pod(self, data: st.DataObject, cpu: float, mem: float) -> None:
        """A bare pod's first container asks for other CPU and memory, drawn as shares of
        its node's (the first node's for a pod not placed): an in-place resize that fits,
        waits for room or can never fit, or new requests for a pod not placed yet; one the
        API server refuses changes nothing (a QoS class change, a request above its limit)."""
        stored = {n: self._stored(n) or Pod() for n in self._bare_pods()}
        names = [n for n, p in stored.items() if p.status.phase not in TERMINAL]
        if not names:
            return
        usage = self._usage()
        crowded = [
            n for n in names if usage.get(stored[n].spec.get("nodeName") or "", [0] * 3)[2] > 1
        ]
        crowded_first: bool = data.draw(st.booleans(), label="crowded first")
        if crowded and crowded_first:
            names = crowded  # one beside others, whose resize up may have to wait for room
        name = data.draw(st.sampled_from(names), label="pod")
        plan = self.pods[name]
        main, second, inits = self.shapes[name]
        if main.cpu is None and main.mem is None:
            return
        where = str((self._stored(name) or Pod()).spec.get("nodeName") or "")
        node = self.nodes.get(where) or next(iter(self.nodes.values()))
        millis, mebis = max(int(node.cpu * cpu), 1), max(int((node.mem >> 20) * mem), 1)
        new = Ask(
            millis if main.cpu is not None else None,
            mebis if main.mem is not None else None,
            main.form,
        )
        assert plan.manifest is not None
        manifest = deep_copy(plan.manifest)
        manifest["spec"]["containers"][0]["resources"] = new.resources()
        try:
            self.cluster.apply(manifest)
        except InvalidError:
            return
        plan.manifest = manifest
        self.shapes[name] = (new, second, inits)
        plan.cpu, plan.mem = aggregate([new] if second is None else [new, second], inits)
        if plan.node_name is not None and plan.node_name not in self.nodes:
            # Named for a node not added yet: its kubelet, when it registers, admits the
            # pod with the requests it has then (no resize to carry out).
            plan.alloc = (plan.cpu, plan.mem)
        self._changed()

    @rule(
        pool=st.sampled_from(("p0", "p1")),
        replicas=st.integers(0, 3),
        ask=asks,
        image=st.sampled_from(IMAGES),
    )
    def apply_pool(self, pool: str, replicas: int, ask: Ask, image: str) -> None:
        """A SandboxSet made, or scaled (its template is the one it was made with)."""
        known = self.pools.get(pool)
        template = (
            known[0]
            if known is not None
            else {"containers": [{"name": "main", "image": image, "resources": ask.resources()}]}
        )
        self.cluster.apply(
            {
                "apiVersion": "agents.kruise.io/v1alpha1",
                "kind": "SandboxSet",
                "metadata": {"name": pool},
                "spec": {"replicas": replicas, "template": {"spec": template}},
            }
        )
        if known is None:
            self.pool_asks[pool] = (image, *aggregate([ask], []))
        self.pools[pool] = (template, replicas)
        self._changed()

    @precondition(lambda self: bool(self.pools))
    @rule(data=st.data())
    def delete_pool(self, data: st.DataObject) -> None:
        pool = data.draw(st.sampled_from(sorted(self.pools)), label="pool")
        self.cluster.delete("SandboxSet", pool)
        del self.pools[pool]
        self._changed()

    @rule(
        data=st.data(),
        ahead=st.sampled_from((0.0, 0.0, 3.0)),
        duration=st.sampled_from((None, 2.0, 8.0, 40.0)),
    )
    def lose_node(self, data: st.DataObject, ahead: float, duration: float | None) -> None:
        """A ``node_loss`` of a drawn node, now or ahead, for a while or until cleared."""
        node = data.draw(st.sampled_from(sorted(self.nodes)), label="node")
        start = self.now + ahead
        fault = self.cluster.inject(
            "node_loss", selector={"node": node}, start=start, duration=duration
        )
        self.losses.append(Loss(fault, node, start, None if duration is None else start + duration))
        self._changed()

    @rule(
        kind=st.sampled_from(("image_pull_slow", "image_pull_failure")),
        image=st.sampled_from(IMAGES),
        duration=st.sampled_from((3.0, 20.0)),
    )
    def image_fault(self, kind: str, image: str, duration: float) -> None:
        """Slow or failing pulls of one image (as the pod writes it) for a while."""
        extra: dict[str, Any] = {"latency": SLOW_PULL_S} if kind == "image_pull_slow" else {}
        fault = self.cluster.inject(
            kind, selector={"image": image}, start=self.now, duration=duration, **extra
        )
        self.image_faults.append((fault, self.now, self.now + duration))
        self._changed()

    @precondition(lambda self: bool(self.cluster.faults))
    @rule(data=st.data())
    def clear_fault(self, data: st.DataObject) -> None:
        faults = self.cluster.faults
        fault = data.draw(st.sampled_from(faults), label="fault")
        self.cluster.clear_fault(fault)
        for loss in self.losses:
            if loss.fault.id == fault.id and loss.cleared_at is None:
                loss.cleared_at = self.now
        self.image_faults = [
            (f, s, self.now if f.id == fault.id and (e is None or e > self.now) else e)
            for f, s, e in self.image_faults
        ]
        self._changed()

    @rule(seconds=st.sampled_from((0.02, 0.05, 0.5, 2.0, 7.0, 30.0, 60.0)))
    def advance(self, seconds: float) -> None:
        """Let time pass: a fault window opening or closing meanwhile is a change too."""
        before = self.now
        self.cluster.advance(seconds)
        for loss in self.losses:
            for edge in (loss.start, loss.end, loss.cleared_at):
                if edge is not None and before < edge <= self.now:
                    self.changed = max(self.changed, edge)
        for _, start, end in self.image_faults:
            for edge in (start, end):
                if edge is not None and before < edge <= self.now:
                    self.changed = max(self.changed, edge)
        self._read_log()

    # -- the model's reading of the log --------------------------------------------------

    def _lost(self, node: str, now: float | None = None) -> bool:
        at = self.now if now is None else now
        return any(loss.node == node and loss.holds(at) for loss in self.losses)

    def _lost_since(self, node: str) -> float | None:
        """When the loss that holds ``node`` now began (the earliest in force)."""
        starts = [loss.start for loss in self.losses if loss.node == node and loss.holds(self.now)]
        return min(starts) if starts else None

    def _plan(self, name: str) -> PodPlan | None:
        plan = self.pods.get(name)
        if plan is not None:
            return plan
        pod = self._stored(name)
        if pod is None:
            return None
        pool = pod.metadata.labels.get("agents.kruise.io/sandbox-pool")
        if pool is None or pool not in self.pool_asks:
            return None
        image, cpu, mem = self.pool_asks[pool]
        plan = self.pods[name] = PodPlan(name, image, cpu, mem, None, None, 0.0, self.now)
        return plan

    def _stored(self, name: str) -> Pod | None:
        for pod in self.cluster.world.api.peek_list("Pod"):
            if pod.metadata.name == name:
                return pod
        return None

    def _read_log(self) -> None:
        """Walk the new events in order: pulls, bindings, starts, stops, recoveries."""
        events = list(self.cluster.log)
        for ev in events[self.seen :]:
            if ev.kind == "node.recovered":
                node = self.nodes[ev.detail]
                node.images = {normalize_image(i) for i in node.spec.images}
            elif ev.kind == "scheduler.bound":
                ref, node_part = ev.detail.split(" node=")
                name = ref.split("/", 1)[1]
                self.bound_at[name] = (ev.time, node_part)
                self.arrived.setdefault(node_part, []).append(ev.time)
                plan = self._plan(name)
                if plan is not None:
                    held = normalize_image(plan.image) in self.nodes[node_part].images
                    self.held_at_bind[name] = held
                    plan.alloc = (plan.cpu, plan.mem)
            elif ev.kind == "kubelet.resized":
                ref, rest = ev.detail.split(" node=")
                plan = self._plan(ref.split("/", 1)[1])
                assert plan is not None and plan.alloc is not None, ev
                words = dict(w.split("=") for w in rest.split(" ")[1:])
                cpu = int(words["cpu"].removesuffix("m"))
                plan.alloc = (cpu, int(words.get("memory", plan.alloc[1])))
            elif ev.kind == "kubelet.stopped":
                self.stopped.add(ev.detail.split("/", 1)[1])
            elif ev.kind == "kubelet.pulled":
                image, node_name = ev.detail.split(" node=")
                node = self.nodes[node_name]
                key = normalize_image(image)
                assert key not in node.images, f"{image} pulled again on {node_name} at {ev.time}"
                event("an image pulled")
                node.images.add(key)
                # A download takes an image.pull at least, from a pod that came to the node.
                assert any(t <= ev.time - PULL_S + 1e-6 for t in self.arrived.get(node_name, [])), (
                    f"{image} on {node_name} landed at {ev.time}, under {PULL_S}s after any pod came"
                )
            elif ev.kind == "kubelet.running":
                ref, rest = ev.detail.split(" node=")
                name = ref.split("/", 1)[1]
                node_name = rest.split(" ")[0]
                plan = self._plan(name)
                if plan is None:
                    continue
                key = normalize_image(plan.image)
                assert key in self.nodes[node_name].images, (
                    f"{name} runs {plan.image} on {node_name}, which does not hold it"
                )
                bound = self.bound_at.get(name)
                if bound is not None and bound[1] == node_name:
                    self._check_fast_start(name, plan, bound[0], ev.time, node_name)
        self.seen = len(events)

    def _check_fast_start(
        self, name: str, plan: PodPlan, bound: float, running: float, node_name: str
    ) -> None:
        """A pod whose image its node held when it was bound starts without a pull."""
        if running - bound <= FAST_START_S:
            event("a fast start")
            return
        event("a slow start")
        if not self.held_at_bind.get(name):
            return
        if any(
            f.kind == "image_pull_failure" and s < running and (e is None or e > bound)
            for f, s, e in self.image_faults
        ):
            return  # an Always pull policy asks the registry, which fails meanwhile
        raise AssertionError(
            f"{name}: {plan.image} was on {node_name} when bound at {bound}, "
            f"yet it ran only at {running}"
        )

    # -- checks --------------------------------------------------------------------------

    def _holding(self, pod: Pod) -> bool:
        """Whether ``pod`` holds room on its node (the model's kubelet).

        A pod holds it once its kubelet admitted it (it saw the pod a watch lag after its
        binding, or its creation with a ``nodeName``), unless it refused it (``Failed``:
        a pod resized while its binding was under way may no longer fit).
        """
        if not pod.spec.get("nodeName") or pod.status.phase in TERMINAL:
            return False
        name = pod.metadata.name
        plan = self._plan(name)
        if plan is not None and plan.node_name is not None:
            node = self.nodes.get(plan.node_name)
            if node is None or self.now < max(plan.created, node.added) + ADMITTED_S:
                return False
        else:
            bound = self.bound_at.get(name)
            if bound is None or self.now < bound[0] + ADMITTED_S:
                return False
        return name not in self.stopped

    def _usage(
        self, *, scheduler: bool = False, settled: bool = False
    ) -> dict[str, tuple[int, int, int, list[Pod]]]:
        """Per node, the CPU, memory and pod slots the pods holding room take: what they
        hold for certain (by default), what the scheduler charges for them, or (``settled``)
        their allocations."""
        usage: dict[str, tuple[int, int, int, list[Pod]]] = {n: (0, 0, 0, []) for n in self.nodes}
        for pod in self.cluster.world.api.peek_list("Pod"):
            node = str(pod.spec.get("nodeName") or "")
            if node not in usage or not self._holding(pod):
                continue
            plan = self._plan(pod.metadata.name)
            assert plan is not None, pod.metadata.name
            cpu, mem, count, pods = usage[node]
            if scheduler:
                c, m = plan.scheduled_charge(pod.status.resize == "Infeasible")
            elif settled:
                assert plan.alloc is not None, plan.name
                c, m = plan.alloc
            else:
                c, m = plan.charged()
            usage[node] = (cpu + c, mem + m, count + 1, [*pods, pod])
        return usage

    @invariant()
    def no_node_is_over_committed(self) -> None:
        """The pods holding room on a node fit in it; the scheduler's books never pass it."""
        if not hasattr(self, "cluster"):
            return
        self._read_log()
        for name, (cpu, mem, count, pods) in self._usage().items():
            node = self.nodes[name]
            held = [p.metadata.name for p in pods]
            assert cpu <= node.cpu, (name, cpu, node.cpu, held)
            assert mem <= node.mem, (name, mem, node.mem, held)
            assert count <= node.spec.max_pods, (name, count, held)
        for book in self.cluster.nodes._nodes.values():
            assert book.cpu_used <= book.cpu_cap and book.mem_used <= book.mem_cap, book.name
            assert len(book.alloc) <= book.pods_cap, book.name

    def _fits(self, plan: PodPlan, node: str, usage: tuple[int, int, int, list[Pod]]) -> bool:
        model = self.nodes[node]
        cpu, mem, count, _ = usage
        return (
            not self._lost(node)
            and count + 1 <= model.spec.max_pods
            and cpu + plan.cpu <= model.cpu
            and mem + plan.mem <= model.mem
            and all(model.labels.get(k) == v for k, v in (plan.selector or {}).items())
        )

    @invariant()
    def pending_only_while_nothing_fits(self) -> None:
        """Settled, a pod left to the scheduler fits no ready node, and says so."""
        if not hasattr(self, "cluster") or self.now - self.changed < SETTLE_S:
            return
        usage = self._usage(scheduler=True)
        event("settled")
        for pod in self._unplaced():
            plan = self._plan(pod.metadata.name)
            assert plan is not None, pod.metadata.name
            fits = [n for n in self.nodes if self._fits(plan, n, usage[n])]
            assert not fits, f"{plan.name} ({plan.cpu}m, {plan.mem}B) pending, fits {fits}"
            event("settled with a pod pending")
            cond = find_condition(pod.status.conditions, "PodScheduled")
            assert cond is not None and (cond.status, cond.reason) == ("False", "Unschedulable")
            assert (cond.message or "").startswith(f"0/{len(self.nodes)} nodes are available: ")
        # The scheduler's books: exactly the pods that hold room, each at its allocation.
        allocated = self._usage(settled=True)
        for book in self.cluster.nodes._nodes.values():
            cpu, mem, _, pods = allocated[book.name]
            want = {p.metadata.uid or "" for p in pods}
            assert set(book.alloc) == want, (book.name, sorted(book.alloc), sorted(want))
            assert (book.cpu_used, book.mem_used) == (cpu, mem), book.name

    @invariant()
    def resizes_wait_only_for_room(self) -> None:
        """Settled, a running pod's resize is carried out, or waits Deferred because it does
        not fit beside the others' allocations, or is Infeasible above its node's."""
        if not hasattr(self, "cluster") or self.now - self.changed < SETTLE_S:
            return
        allocated = self._usage(settled=True)
        for pod in self.cluster.world.api.peek_list("Pod"):
            plan = self.pods.get(pod.metadata.name)
            if plan is None or plan.alloc is None or not self._holding(pod):
                continue
            node_name = str(pod.spec["nodeName"])
            node = self.nodes[node_name]
            ready = find_condition(pod.status.conditions, "Ready")
            if pod.status.phase != "Running" or ready is None:
                continue  # not started yet: a resize waits for the start
            verdict = pod.status.resize
            cpu, mem, _, _ = allocated[node_name]
            others = (cpu - plan.alloc[0], mem - plan.alloc[1])
            if verdict is None:
                assert plan.alloc == (plan.cpu, plan.mem), (
                    plan.name,
                    plan.alloc,
                    plan.cpu,
                    plan.mem,
                )
                continue
            event(f"a resize {verdict}")
            if verdict == "Infeasible":
                assert plan.cpu > node.cpu or plan.mem > node.mem, plan.name
            else:
                assert verdict == "Deferred", (plan.name, verdict)
                assert plan.cpu <= node.cpu and plan.mem <= node.mem, plan.name
                assert others[0] + plan.cpu > node.cpu or others[1] + plan.mem > node.mem, (
                    f"{plan.name} Deferred, yet fits: {others} + {plan.cpu, plan.mem}"
                )

    @invariant()
    def lost_nodes_run_nothing(self) -> None:
        """A lost node is not ready, and a second in, no pod bound to it is alive."""
        if not hasattr(self, "cluster"):
            return
        ready = set(self.cluster.nodes.ready_nodes())
        for name in self.nodes:
            lost = self._lost(name)
            assert (name not in ready) == lost, (name, lost)
            since = self._lost_since(name)
            if since is None or self.now - since < 1.0:
                continue
            for pod in self.cluster.world.api.peek_list("Pod"):
                plan = self._plan(pod.metadata.name)
                if pod.spec.get("nodeName") != name or (plan and self.now - plan.created < 1.0):
                    continue
                assert pod.status.phase in TERMINAL, (pod.metadata.name, pod.status.phase)
                assert pod.status.reason, pod.metadata.name
                event("a lost pod checked")
                assert pod.metadata.deletion_timestamp is None, pod.metadata.name

    @invariant()
    def pools_replace_their_lost_sandboxes(self) -> None:
        """Settled, each pool has its replicas, none Failed, none on a lost node."""
        if not hasattr(self, "cluster") or self.now - self.changed < POOL_SETTLE_S:
            return
        for pool, (_, replicas) in self.pools.items():
            sandboxes = [
                s
                for s in self.cluster.list("Sandbox")
                if s.metadata.labels.get("agents.kruise.io/sandbox-pool") == pool
                and s.metadata.deletion_timestamp is None
            ]
            assert len(sandboxes) == replicas, (pool, len(sandboxes), replicas)
            event("a pool settled")
            assert all(s.status.phase != "Failed" for s in sandboxes), pool
        for pod in self.cluster.world.api.peek_list("Pod"):
            if "agents.kruise.io/sandbox-pool" in pod.metadata.labels:
                assert pod.status.phase not in TERMINAL, pod.metadata.name

    @invariant()
    def pod_ips_are_unique(self) -> None:
        """Among the pods alive, no two share an IP; each is in its node's range."""
        if not hasattr(self, "cluster"):
            return
        seen: dict[str, str] = {}
        for pod in self.cluster.world.api.peek_list("Pod"):
            ip = pod.status.pod_ip
            if not ip or pod.status.phase in TERMINAL or pod.metadata.name in self.stopped:
                continue
            assert ip not in seen, (ip, seen[ip], pod.metadata.name)
            seen[ip] = pod.metadata.name
            node = self.nodes[str(pod.spec["nodeName"])]
            base = int(ipaddress.IPv4Address("10.0.0.0")) + (node.index << 16)
            assert base < int(ipaddress.IPv4Address(ip)) < base + (1 << 16), (ip, node.spec.name)
            assert pod.status.host_ip == f"192.168.{node.index // 254}.{node.index % 254 + 1}"

    @invariant()
    def nothing_leaks(self) -> None:
        """Every pod is bound, pending or ended; a deleted pod is gone once stopped."""
        if not hasattr(self, "cluster"):
            return
        for pod in self.cluster.world.api.peek_list("Pod"):
            name = pod.metadata.name
            phase = pod.status.phase
            assert phase in ("Pending", "Running", *TERMINAL), (name, phase)
            if phase == "Running":
                assert pod.spec.get("nodeName"), name
            deleted = self.deleted_at.get(name)
            if deleted is not None:
                plan = self.pods[name]
                assert self.now - deleted < plan.grace + 1.0, (name, deleted, self.now)


NodesMachine.TestCase.settings = machine_settings(50, 40)
test_nodes_machine = NodesMachine.TestCase
