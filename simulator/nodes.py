"""The nodes of the fake cluster: a kube-scheduler and one kubelet per node.

:class:`Nodes` runs, on the scheduler's and kubelets' informer cache
(``world.node_cache``):

* the **scheduler** — one process placing unscheduled pods, one at a time, on
  the ready node that fits what the pod asks (CPU, memory, pod count: see
  :func:`~pytest_kruise_agents.api.pod.pod_requests`, init containers
  included) and is least allocated afterwards, counting 100m CPU and 200Mi
  memory for a container that requests none (ties: the smaller name). As
  kube-scheduler, it looks only until it has found
  :func:`feasible_nodes_to_find` nodes that fit (every node up to 100 nodes;
  the profile's ``percentage_of_nodes_to_score``), from where the last pod's
  search stopped, round the nodes in the order they were added. A pod
  whose resize the kubelet has not carried out is charged ``max(spec,
  allocated)`` unless the resize is Infeasible. It reserves the node at once
  (the scheduler's *assumed pod*) and binds in a background step:
  ``scheduler.bind`` latency, then a write of ``spec.nodeName``. A pod that
  fits nowhere stays Pending with ``PodScheduled=False/Unschedulable`` and is
  retried when a pod frees resources, a node is added or comes back, or a
  waiting pod's requests change (resized), in the order pods became
  unschedulable. A retry tries the first waiting pod of each request shape
  (requests, nodeSelector), the next of that shape only once one
  was placed: the decisions of trying them all, at a cost that does not grow
  with the number of pods pending;
* one **kubelet** per node, with its own API client, running bound pods. A pod
  bound without the scheduler (``spec.nodeName`` at creation) is admitted
  first: one that does not fit beside the node's pods fails with reason
  ``OutOfpods``, ``OutOfcpu`` or ``OutOfmemory`` and is not charged; so is a pod the
  scheduler placed whose requests changed before its kubelet took it (resized while
  its binding was under way: the kubelet admits the pod it is given). Then
  ``pod.create`` (the pod sandbox, which gets an IP), the image pull
  (``image.pull`` the first time the node pulls an image, ``image.pull_cached``
  after; one download at a time per node unless ``serialize_image_pulls`` is
  off; references normalised, so ``busybox`` is ``busybox:latest``; one the
  kubelet cannot parse is not pulled: its container waits ``InvalidImageName``
  until the image changes, see :mod:`simulator.imageref`),
  ``container.start``, ``container.ready``, then one status write:
  phase Running, ``podIP``, ``hostIP``, ``Ready=True`` (with no reason, as the
  kubelet writes it: only an unready pod's Ready says why,
  ``ContainersNotReady`` or the failure's reason) and the container statuses
  (``v1.ContainerStatus``: running, ready, started, ``restartCount``; init
  containers completed and sidecars running, for they take no time here). A
  container's waiting reason (``ErrImagePull``, ``InvalidImageName``,
  ``CrashLoopBackOff``) is in its
  status, not the pod's ``reason``, which only a failed pod has. The kubelet restarts
  the container in place when the first container's image changes, resizes
  it in place (no restart, ``inplace.resize``) when any container's CPU or
  memory changes and the node has room (else ``status.resize`` is
  ``Deferred``, retried when a pod frees room, or ``Infeasible``; with a new image
  too, the resize is not reported Ready on its own: the pod is Ready for its
  new generation once the new image runs), and
  carries out graceful deletion (pods carry the :data:`POD_FINALIZER`, which the
  API server drops at the delete of a pod no node runs or that has ended: it goes
  at once); a pod
  that another finalizer keeps after that reads as the kubelet left it (``Failed``,
  its containers killed, none ready).

The ``Ready`` condition the kubelet writes carries ``observedGeneration``
(the pod ``metadata.generation`` it has realised, as Kubernetes 1.33 does), so
that a reader can tell a Ready pod running the *new* spec from one still
reporting the old one.

The kubelet reads the first container's ``imagePullPolicy`` (defaulted by the
image's tag: :func:`~pytest_kruise_agents.api.pod.image_pull_policy`): ``Never``
pulls nothing (``ErrImageNeverPull`` without the image), ``Always`` asks the
registry though the image is on the node. It reads ``restartPolicy``: under
``Never`` a container that failed is not started again (the pod is ``Failed`` if it
has no other container).

Faults consulted, for each pod with its own labels (pods sharing a download
of an image included): ``image_pull_failure`` (the first container waits,
ErrImagePull, then ImagePullBackOff, retried with a 10 s back-off doubling to
300 s; a cached image only under ``imagePullPolicy: Always``), ``image_pull_slow`` (the pod's pull takes the fault's latency instead;
the rest of it goes at the ordinary rate once the fault ends),
``pod_start_failure`` (Ready False with reason ``StartContainerFailed``, the
first container crashed, exit code 1, and waiting in CrashLoopBackOff with the
same back-off; only the first failure of a loop is written, see
``docs/fidelity.md``). Faults acting when their window opens (never once it has closed):
``node_loss`` (the node's pods fail with reason NodeLost, the node takes no
pods until no node_loss in force holds it, then comes back empty)
and ``pod_kill`` (running pods matching the selector fail with reason Killed).
A ``controller_stall`` of ``scheduler`` or ``kubelet`` holds them (the
kubelet's pod starts and stops alike, each at its next step, and every request
their clients would send) until its window ends or it is cleared.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import datetime, timedelta
from itertools import chain, islice
from typing import Annotated, Any, Final, Literal

import simpy
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.durations import format_duration
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.meta import Condition, find_condition, set_condition
from pytest_kruise_agents.api.pod import (
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    Pod,
    PodRequests,
    PullPolicy,
    Scalars,
    image_pull_policy,
    is_sidecar,
    normalize_image,
    pod_requests,
)
from pytest_kruise_agents.api.problems import format_path
from pytest_kruise_agents.api.problems import reason as problem_reason
from pytest_kruise_agents.api.quantity import (
    cpu_millis,
    memory_bytes,
    positive_cpu,
    positive_memory,
    quantity_text,
)
from pytest_kruise_agents.api.resources import (
    EPHEMERAL_STORAGE,
    amount,
    is_extended,
    node_resource_problem,
    quantity_value_problem,
)
from pytest_kruise_agents.api.validation import FieldProblem, check_labels, dns_subdomain_problem
from simulator.apiserver import ANN_GRACE_SECONDS, POD_FINALIZER, ApiError, Client
from simulator.faults import Fault, StallGate, check_node_names
from simulator.imageref import INVALID_IMAGE_NAME, image_name_problem, invalid_image_message
from simulator.readonly import ReadOnlyDict
from simulator.world import World

__all__ = [
    "ANN_GRACE_SECONDS",
    "BACKOFF_INITIAL_S",
    "BACKOFF_MAX_S",
    "DEFAULT_SCHEDULER",
    "MAX_NODES",
    "MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND",
    "MIN_FEASIBLE_NODES_TO_FIND",
    "POD_FINALIZER",
    "UNSCHEDULABLE_RETRY_S",
    "NodeSpec",
    "Nodes",
    "backoff_delay",
    "feasible_nodes_to_find",
    "node_allocatable",
    "node_image",
    "node_labels",
    "node_name",
    "node_spec_of",
    "too_many_nodes",
    "well_known_labels",
]

DEFAULT_SCHEDULER = "default-scheduler"
"""The only scheduler the model runs; a pod naming another stays Pending, with no condition."""


MAX_NODES: Final = 5000
"""The most nodes a cluster may have: Kubernetes' supported cluster size (its scalability
limits: at most 5,000 nodes). Every node's pod range (``10.0.0.0 + index << 16``, a /16 each)
and host IP (``192.168.<index // 254>.<index % 254 + 1>``) is then an address: the last
node's pods are in 29.135.0.0/16, its host IP is 192.168.19.174."""


def too_many_nodes(count: int, *, listed: bool = False) -> str | None:
    """Why ``count`` nodes (``listed``: a list of that many) are more than a cluster may
    have, else ``None``.

    The one check of the maximum, worded for every caller: ``Cluster``, the
    config file, the ``kruise`` marker, a scenario.
    """
    if count <= MAX_NODES:
        return None
    # Past the ranges' end the pod addresses and host IPs stop being addresses (a run
    # failed deep inside, and only once a pod landed on such a node).
    what = f"must list at most {MAX_NODES} nodes" if listed else f"must be at most {MAX_NODES}"
    return f"{what} (Kubernetes' supported cluster size), got {count}"


BACKOFF_INITIAL_S = 10.0
"""First back-off of ImagePullBackOff and CrashLoopBackOff."""
BACKOFF_MAX_S = 300.0
"""Cap of the kubelet's back-offs."""

UNSCHEDULABLE_RETRY_S = 300.0
"""How long after a failed ``PodScheduled=False`` write the scheduler writes it again:
kube-scheduler's longest stay in its unschedulable queue (``podMaxInUnschedulablePodsDuration``,
5 min), after which the pod is tried again and the condition written anew."""

_API_RETRY_S = 1.0
_NO_STATE = ContainerState()
"""An empty ``lastState``, shared (stored objects are never changed in place)."""
_TERMINAL = ("Failed", "Succeeded")
_IPS_PER_NODE = 65534
_IMAGE_MEMO_MAX = 4096
"""Image references whose normal form and parse verdict are memoised (cleared when full: a
run whose claims each bring an image, an in-place update's per-build tag, would grow them
by one a claim; a miss costs one parse)."""

Op = Generator[simpy.Event, Any, Any]
ObjKey = tuple[str, str]
Shape = tuple[int, int, int, int, Scalars, frozenset[tuple[str, Any]] | None]
"""What the scheduler's decision for a pod depends on: its :class:`PodRequests` (for fit and
for scoring), and its nodeSelector."""
Resources = tuple[tuple[str | None, ...], ...]
"""Each container's CPU and memory requests and limits, as written (see :func:`_resources`)."""
_NOTHING = PodRequests(0, 0, 0, 0)
PodPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


def backoff_delay(failures: int) -> float:
    """The kubelet's back-off after ``failures`` failures in a row: 10 s doubling, at most 300 s."""
    # The exponent stops growing long after the cap (2**1024 is no float).
    return float(min(BACKOFF_INITIAL_S * 2 ** min(max(failures - 1, 0), 62), BACKOFF_MAX_S))


MIN_FEASIBLE_NODES_TO_FIND = 100
"""kube-scheduler's ``minFeasibleNodesToFind``: a cluster this small or smaller is searched
whole for each pod, and a larger one until at least this many feasible nodes are found."""
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
"""kube-scheduler's ``minFeasibleNodesPercentageToFind``: the floor of the adaptive share."""


def feasible_nodes_to_find(percentage: int, nodes: int) -> int:
    """How many feasible nodes end the scheduler's search for a pod among ``nodes`` nodes.

    kube-scheduler's ``numFeasibleNodesToFind`` (``pkg/scheduler/schedule_one.go``), in
    Go's integer division: every node under 100 nodes; else ``percentage``
    (``percentageOfNodesToScore``) of them, 0 meaning adaptive, ``50 - nodes/125`` but at
    least 5; and never fewer than 100. 300 nodes: 48%, 144; 1,000: 42%, 420; 5,000: 10%, 500.
    """
    if nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return nodes
    if percentage == 0:
        percentage = max(50 - nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


_SPEC_READ_ONLY: Final = {
    field: f"the {field} of a NodeSpec are read-only (the clusters built from a spec share "
    f"it): make another NodeSpec, or add a node with other {field} (cluster.nodes.add)"
    for field in ("labels", "allocatable")
}


def _read_only(table: Mapping[str, str], field: str) -> ReadOnlyDict[str, str]:
    """``table`` as the read-only ``field`` of a :class:`NodeSpec`."""
    return ReadOnlyDict(table, field=field, reason=_SPEC_READ_ONLY[field])


# One each, shared by every spec that has none: nobody can edit them.
_NO_LABELS: Final = _read_only({}, "labels")
_NO_ALLOCATABLE: Final = _read_only({}, "allocatable")


def node_image(value: str) -> str:
    """``value`` if it is an image reference the kubelet can parse: a node's runtime holds
    no image under another name (see :mod:`simulator.imageref`)."""
    why = image_name_problem(value)
    if why is not None:
        raise ValueError(f"{value!r}: {why}")
    return value


class NodeSpec(BaseModel):
    """One node: its name, allocatable CPU, memory, pod slots and other resources, labels
    and pre-pulled images."""

    # Strict, as a profile and a scenario are: ``True`` is no pod count, ``"7"`` no
    # number (quantities still take a number: ``cpu: 16`` is meant as a quantity).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1)
    cpu: str = "16"
    memory: str = "64Gi"
    max_pods: int = Field(default=110, ge=1)
    # Read-only tables and a tuple: clusters built from one spec share it (the plugin's
    # recipe gives every test's cluster the same specs), and a kubelet reads the images
    # again when its node comes back, so an edit in place would change other runs.
    labels: Mapping[str, str] = Field(default_factory=lambda: _NO_LABELS)
    """Labels beside (and over) the kubelet's own: see :func:`well_known_labels`."""
    allocatable: Mapping[str, str] = Field(default_factory=lambda: _NO_ALLOCATABLE)
    """Allocatable amounts of other resources: extended resources (``nvidia.com/gpu: 8``),
    ``ephemeral-storage``, ``hugepages-2Mi``. A node lacking one has none of it, but for
    ``ephemeral-storage``, which is then not counted (see ``docs/fidelity.md``)."""
    images: tuple[Annotated[str, AfterValidator(node_image)], ...] = ()
    """Images the node holds already (pre-pulled): references the kubelet can parse."""
    serialize_image_pulls: bool = True
    """The kubelet's ``serializeImagePulls`` (its default, true): one image download at a
    time on the node, the others queued in order. False pulls different images at once."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return node_name(value)

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return _read_only(node_labels(dict(value)), "labels")

    @field_validator("images", mode="before")
    @classmethod
    def _list_to_tuple(cls, value: Any) -> tuple[Any, ...]:
        # A list of images is meant (YAML, JSON and callers write one); kept as a tuple.
        if isinstance(value, list | tuple):
            return tuple(value)
        raise ValueError(f"must be a list, got {value!r}")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _number_to_text(cls, value: Any) -> Any:
        # ``cpu: 16`` in YAML is an int; a quantity is still meant.
        return quantity_text(value)

    @field_validator("allocatable", mode="before")
    @classmethod
    def _numbers_to_text(cls, value: Any) -> Any:
        return {k: quantity_text(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("allocatable")
    @classmethod
    def _check_allocatable(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        return _read_only(node_allocatable(dict(value)), "allocatable")

    @field_validator("cpu")
    @classmethod
    def _check_cpu(cls, value: str) -> str:
        return positive_cpu(value)

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        return positive_memory(value)


def node_name(value: str) -> str:
    """``value`` if it is a node name (a DNS-1123 subdomain, as ``ValidateNodeName`` asks).

    A node name is printed in tables and selected by faults: ``Worker 1`` or a name
    with a newline would be refused by the API server and break a table's rows.
    """
    problem = dns_subdomain_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def well_known_labels(name: str) -> dict[str, str]:
    """The labels the kubelet registers its node with (``initialNode``): the hostname (the
    node's name here), the OS and architecture, in their GA and ``beta.`` forms.

    A node's own :attr:`NodeSpec.labels` go over them, as the kubelet lays its
    ``--node-labels`` over them (these keys are among those it allows).
    """
    return {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }


def node_allocatable(value: dict[str, str]) -> dict[str, str]:
    """``value`` if each entry names a resource a container may request (not CPU, memory or
    pods, which are the node's own fields) and its amount is a quantity of it."""
    for name, quantity in value.items():
        why = node_resource_problem(name)
        if why is None:
            try:
                if amount(quantity) < 0:
                    why = f"must be greater than or equal to 0, got {quantity!r}"
            except ValueError as err:
                why = str(err)
        why = why or quantity_value_problem(name, quantity)
        if why is not None:
            raise ValueError(f"{name}: {why}")
    return value


def node_labels(value: dict[str, str]) -> dict[str, str]:
    """``value`` if its keys and values are valid labels (``ValidateLabels``)."""
    try:
        check_labels(value)
    except FieldProblem as exc:
        raise ValueError(str(exc)) from None
    return value


def _key(pod: Any) -> ObjKey:
    return (pod.metadata.namespace, pod.metadata.name)


def _first_image(spec: dict[str, Any]) -> str | None:
    containers = spec.get("containers") or []
    if not containers:
        return None
    image = containers[0].get("image")
    return str(image) if image is not None else None


def _first_pull_policy(spec: dict[str, Any]) -> PullPolicy:
    """The first container's ``imagePullPolicy``, defaulted by its image's tag."""
    containers = spec.get("containers") or [{}]
    first = containers[0]
    return image_pull_policy(first if isinstance(first, dict) else {})


def _restarts_on_failure(spec: dict[str, Any]) -> bool:
    """Whether the kubelet restarts a container that exited with an error.

    ``restartPolicy`` ``Always`` (the default) and ``OnFailure`` do; ``Never`` does not.
    """
    return spec.get("restartPolicy") != "Never"


def node_spec_of(spec: Any, where: str = "") -> NodeSpec:
    """``spec`` as a :class:`NodeSpec` (a mapping is validated); else :class:`InvalidError`
    naming the field below ``where`` (``nodes[0].max_pods``, or ``max_pods`` with no
    ``where``), its reason worded as a manifest's (``must be an integer, got True``)."""
    if isinstance(spec, NodeSpec):
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidError(where or "spec", f"must be a NodeSpec or a mapping, got {spec!r}")
    try:
        return NodeSpec.model_validate(spec)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = format_path(error["loc"])
        field = f"{where}.{path}" if where and path else path or where or "spec"
        raise InvalidError(
            field, problem_reason(error, known=list(NodeSpec.model_fields))
        ) from None


def _unmet_gates(pod: Pod) -> str | None:
    """Why the pod's ``readinessGates`` keep it from Ready, in the kubelet's words, or ``None``.

    ``GeneratePodReadyCondition``: each gate whose condition is absent, or not
    ``True``, is named; the messages are joined with ``", "``.
    """
    gates = pod.spec.get("readinessGates")
    if not gates or not isinstance(gates, list):
        return None
    unmet = []
    for gate in gates:
        kind = str(gate.get("conditionType", "")) if isinstance(gate, dict) else ""
        cond = find_condition(pod.status.conditions, kind)
        if cond is None:
            unmet.append(
                f"corresponding condition of pod readiness gate {_go_quote(kind)} does not exist."
            )
        elif cond.status != "True":
            unmet.append(
                f'the status of pod readiness gate {_go_quote(kind)} is not "True", but {cond.status}'
            )
    return ", ".join(unmet) or None


def _go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints a plain string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _requests(pod: Pod) -> PodRequests:
    return pod_requests({"spec": pod.spec})


_UNREACHABLE = "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
"""TaintToleration's reason on a lost node (the lifecycle controller's NoSchedule taint)."""
_NOT_MATCHED = "node(s) didn't match Pod's node affinity/selector"
"""NodeAffinity's reason (``ErrReasonPod``)."""
_NO_VICTIMS = "No preemption victims found for incoming pod"
_NOT_HELPFUL = "Preemption is not helpful for scheduling"


def _histogram(counts: Counter[str]) -> str:
    """``FitError``'s reasons: each with the count of nodes that gave it, sorted as text."""
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def _shape(ask: PodRequests, selector: dict[str, Any] | None) -> Shape | None:
    """The pod's request shape, or ``None`` for a selector whose values cannot be hashed."""
    try:
        return (*ask, frozenset(selector.items()) if selector else None)
    except TypeError:
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _resources(spec: dict[str, Any]) -> Resources:
    """Each container's (CPU request, CPU limit, memory request, memory limit), as written.

    What an in-place resize may change (init containers' resources are immutable).
    """
    out = []
    for container in spec.get("containers") or []:
        res = container.get("resources") if isinstance(container, dict) else None
        req = res.get("requests") if isinstance(res, dict) else None
        lim = res.get("limits") if isinstance(res, dict) else None
        req = req if isinstance(req, dict) else {}
        lim = lim if isinstance(lim, dict) else {}
        out.append(
            (
                _text(req.get("cpu")),
                _text(lim.get("cpu")),
                _text(req.get("memory")),
                _text(lim.get("memory")),
            )
        )
    return tuple(out)


def _ready_reason(ready: bool) -> str:
    """The reason the kubelet's status write gives a pod's Ready condition.

    Only an unready pod's condition gets one (``ContainersNotReady``); a Ready
    pod's is left empty. ``PodReady`` stays the signature's word for "ready".
    """
    return "PodReady" if ready else "ContainersNotReady"


def _is_terminal(pod: Pod) -> bool:
    return pod.status.phase in _TERMINAL


def _grace_seconds(pod: Pod, default: float) -> float:
    # The annotation stands in for DeleteOptions.gracePeriodSeconds, which
    # this API server does not carry; then the pod's own grace period.
    raw = pod.metadata.annotations.get(ANN_GRACE_SECONDS)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    spec_grace = pod.spec.get("terminationGracePeriodSeconds")
    if isinstance(spec_grace, int | float) and not isinstance(spec_grace, bool) and spec_grace >= 0:
        return float(spec_grace)
    return default


def _gone(pod: Pod) -> ApiError:
    return ApiError(
        404, "NotFound", f'pod "{pod.metadata.name}" (uid {pod.metadata.uid}) not found'
    )


class _PodRun:
    """The kubelet's state of one pod it runs."""

    __slots__ = (
        "containers",
        "created",
        "dead",
        "first_start",
        "held_for",
        "image",
        "instances",
        "ip",
        "last_state",
        "last_status",
        "main_image",
        "pod",
        "process",
        "realised",
        "resources",
        "running_since",
        "started",
        "state",
        "stopped_at",
        "terminating",
        "uid",
        "unparsed",
        "wake",
    )

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.uid: str = pod.metadata.uid or ""
        self.process: simpy.Process | None = None
        self.image: str | None = None
        self.resources = _resources(pod.spec)
        """The containers' CPU and memory the node has allocated."""
        self.containers: Any = pod.spec.get("containers")
        """A containers list known to ask for :attr:`resources` (stored lists never change)."""
        self.held_for: Resources = self.resources
        """The resources the scheduler's charge for the pod was last set for (see ``Nodes._hold``)."""
        self.realised = 0
        """The pod generation last reported Ready with all of its spec carried out."""
        self.started = False
        self.ip: str | None = None
        self.terminating = False
        self.dead = False
        self.wake: simpy.Event | None = None
        self.last_status: tuple[Any, ...] | None = None
        # The containers as the kubelet reports them (see ``_container_statuses``):
        # the first container is the one the model runs, restarts and updates in
        # place; the others start with its first start and keep running.
        self.created: float | None = None
        """When the pod sandbox was made: the init containers ran then (they take no time here)."""
        self.first_start: datetime | None = None
        """When the pod's containers were first started (the other containers' ``startedAt``)."""
        self.running_since: datetime | None = None
        """When the first container's running instance started; ``None`` if none runs."""
        self.state: ContainerState | None = None
        """The first container's state when no instance runs; ``None`` while none was created."""
        self.stopped_at: datetime | None = None
        """When the running instance was stopped to be created again, if it was."""
        self.last_state: ContainerState | None = None
        """The first container's ``lastState``: how its previous instance ended."""
        self.instances = 0
        """Instances of the first container created: ``restartCount`` is one fewer."""
        self.main_image: str | None = None
        """The image of the first container's latest instance, as the spec wrote it."""
        self.unparsed: dict[str, str] | None = None
        """The other containers the kubelet cannot make, each with its ``InvalidImageName``
        message (see ``Nodes._never_starts``)."""

    def resources_changed(self) -> bool:
        """Whether the pod's containers ask for other CPU or memory than the node allocated."""
        containers = self.pod.spec.get("containers")
        if containers is self.containers:
            return False
        if _resources(self.pod.spec) != self.resources:
            return True
        self.containers = containers
        return False


def _completed(since: datetime | None, now: datetime) -> ContainerState:
    """A container instance stopped by the kubelet (to be created again): it ended cleanly."""
    return ContainerState(
        terminated=ContainerStateTerminated(
            exit_code=0, reason="Completed", started_at=since, finished_at=now
        )
    )


def _stop_main(run: _PodRun, now: datetime) -> None:
    """The first container's running instance is stopped, to be created again (in place).

    Its status still reads running, not ready, until the new instance runs or
    waits: the kubelet reports the stop only after the sync that pulls and
    starts the new one (as with Kruise's in-place update, the pod stays Running).
    """
    if run.running_since is not None:
        run.stopped_at = now


def _retire_main(run: _PodRun, now: datetime) -> None:
    """The first container's latest instance, stopped if it ran, becomes its ``lastState``."""
    since = run.running_since
    if since is not None:
        run.running_since = None
        run.last_state = _completed(since, run.stopped_at or now)
        run.stopped_at = None


_BOUNDARY: Final = simpy.events.EventPriority(simpy.events.URGENT - 1)
"""The priority of a window's edge: before every other event due at that moment, the stop
of an ``advance`` landing there included, whenever that stop was scheduled."""


def _boundary_timer(env: simpy.Environment, delay: float) -> simpy.Event:
    """A timer for a window's edge, processed before the ordinary events due at that moment.

    An acting fault holds its window as a consulted one does, from ``start``
    up to ``start + duration`` exclusive. An ``advance`` (``env.run(until=t)``)
    stops before the ordinary events due at ``t``, and after the edges due at
    ``t`` (:data:`_BOUNDARY`, ahead of the stop's urgent priority): so the fault
    has acted at its start, and a lost node has come back at its end, when an
    ``advance`` lands on either, though the fault was injected during that
    advance (by a SimPy process: a chaos schedule), after its stop was set. One
    due now (a fault starting as it is injected) is ordinary: it acts after
    what was already due now, as it always has.
    """
    if delay <= 0:
        return env.timeout(0)
    timer = simpy.Event(env)
    timer._ok = True
    timer._value = None
    env.schedule(timer, _BOUNDARY, delay)
    return timer


def _main_waits(run: _PodRun, now: datetime, reason: str, message: str) -> None:
    """The first container cannot run (its image cannot be pulled): it waits, ``reason``."""
    _retire_main(run, now)
    run.state = ContainerState(waiting=ContainerStateWaiting(reason=reason, message=message))


def _main_crashed(run: _PodRun, now: datetime, image: str | None, message: str) -> None:
    """A new instance of the first container was started and failed: it backs off.

    It counts as a container that ran and exited with an error (exit code 1,
    ``Error``), as a crash-looping process does.
    """
    run.instances += 1
    run.main_image = image
    run.first_start = run.first_start or now
    run.running_since = None
    run.last_state = ContainerState(
        terminated=ContainerStateTerminated(
            exit_code=1, reason="Error", started_at=now, finished_at=now
        )
    )
    run.state = ContainerState(
        waiting=ContainerStateWaiting(reason="CrashLoopBackOff", message=message)
    )


def _main_exited(run: _PodRun, now: datetime, image: str | None) -> None:
    """A new instance of the first container was started and failed, not to be restarted.

    It reads terminated (exit code 1, ``Error``), as an exited process does under
    ``restartPolicy: Never``; no ``lastState``.
    """
    run.instances += 1
    run.main_image = image
    run.first_start = run.first_start or now
    run.running_since = None
    run.state = ContainerState(
        terminated=ContainerStateTerminated(
            exit_code=1, reason="Error", started_at=now, finished_at=now
        )
    )


def _main_started(run: _PodRun, now: datetime, image: str | None) -> None:
    """A new instance of the first container runs (the pod's start, a restart, an update)."""
    if run.instances:
        _retire_main(run, now)
    run.instances += 1
    run.main_image = image
    run.first_start = run.first_start or now
    run.state = None
    run.running_since = now


def _not_created(run: _PodRun, container: dict[str, Any]) -> ContainerStatus:
    init = run.pod.spec.get("initContainers")
    return _waiting(container, "PodInitializing" if init else "ContainerCreating")


def _waiting(container: dict[str, Any], reason: str, message: str | None = None) -> ContainerStatus:
    """A container never created: it waits, ``reason``."""
    waiting = (
        ContainerStateWaiting(reason=reason)
        if message is None
        else ContainerStateWaiting(reason=reason, message=message)
    )
    return ContainerStatus(
        name=container.get("name", ""),
        state=ContainerState(waiting=waiting),
        last_state=_NO_STATE,
        image=container.get("image", ""),
        started=False,
    )


_KUBELET_ONLY: Final = [POD_FINALIZER]
"""The finalizers of a pod that only the kubelet keeps (not to be changed)."""


def _held(pod: Pod) -> bool:
    """Whether a finalizer other than the kubelet's keeps ``pod`` once the kubelet lets it go."""
    return any(f != POD_FINALIZER for f in pod.metadata.finalizers)


def _stopped(statuses: list[ContainerStatus], now: datetime) -> list[ContainerStatus]:
    """``statuses`` once the kubelet has stopped the pod: a running container is killed."""
    out = []
    for c in statuses:
        running = c.state.running
        if running is not None:
            killed = ContainerStateTerminated(
                exit_code=137, reason="Error", started_at=running.started_at, finished_at=now
            )
            c = c.model_copy(
                update={
                    "state": ContainerState(terminated=killed),
                    "ready": False,
                    "started": False,
                }
            )
        elif c.ready and c.state.terminated is None:
            c = c.model_copy(update={"ready": False})
        out.append(c)
    return out


def _unready(statuses: list[ContainerStatus]) -> list[ContainerStatus]:
    return [c.model_copy(update={"ready": False}) if c.ready else c for c in statuses]


class _Waiting:
    """An unschedulable pod as the scheduler last tried it: which pod, asking for what."""

    __slots__ = ("selector", "seq", "shape", "uid")

    def __init__(
        self, seq: int, uid: str, shape: Shape | None, selector: dict[str, Any] | None
    ) -> None:
        self.seq = seq
        """Its place in the retry order (the order pods became unschedulable)."""
        self.uid = uid
        self.shape = shape
        self.selector = selector


class _PullPart:
    """One pod's pull within a shared download: slowed by ``fault``, or ordinary (``None``)."""

    __slots__ = ("fault", "finish", "latency", "start")

    def __init__(self, fault: Fault | None, start: float, latency: float) -> None:
        self.fault = fault
        self.start = start
        self.latency = latency
        self.finish = start + latency


class _Pull:
    """A download of one image on one node, shared by the pods that need it.

    Each pod's pull lasts its own time (``image.pull``, or the draw of an
    ``image_pull_slow`` that selects that pod); the image lands when the
    first of them is done, for every pod waiting (the node's image store is
    shared, as containerd shares a fetch under way). A pod the fault does not
    select is not slowed by another's slowed pull.
    """

    __slots__ = ("done", "epoch", "finish", "landed", "name", "parts", "queued", "want_ordinary")

    def __init__(self, done: simpy.Event, epoch: int, name: str) -> None:
        self.done = done
        """Succeeds (``True``) when the image lands."""
        self.name = name
        """The image as the first pod that needs it writes it (the log's name for it)."""
        self.queued: list[dict[str, str | None]] | None = None
        """While it waits for the node's serial puller: each waiting pod's fault attributes."""
        self.epoch = epoch
        """The node's epoch when the download began: a node lost since keeps no image."""
        self.finish = float("inf")
        """When the earliest of the pulls lands the image."""
        self.landed = False
        self.parts: list[_PullPart] = []
        self.want_ordinary = False
        """A pod no fault slows joined before the first pull began (see ``Nodes._join_pull``)."""


class _Node:
    """Capacity, allocations, image cache, IP pool and kubelet state of one node."""

    def __init__(self, spec: NodeSpec, index: int, client: Client) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.client = client
        self.cpu_cap = cpu_millis(spec.cpu)
        self.mem_cap = memory_bytes(spec.memory)
        self.pods_cap = spec.max_pods
        self.labels = {**well_known_labels(spec.name), **spec.labels}
        """The node's labels: the kubelet's own, the spec's over them."""
        self.scalar_cap = {name: amount(value) for name, value in spec.allocatable.items()}
        """The allocatable amounts of the other resources the node declares."""
        self.scalar_used: dict[str, int] = {}
        self.scalar_alloc: dict[str, Scalars] = {}
        """Each pod's requests of the other resources, for pods that ask for some."""
        self.cpu_used = 0
        self.mem_used = 0
        self.alloc: dict[str, tuple[int, int]] = {}
        """Each pod's (CPU, memory) the kubelet has allocated (admitted, or reserved by the scheduler)."""
        self.cpu_scored = 0
        self.mem_scored = 0
        self.scored: dict[str, tuple[int, int]] = {}
        """Each pod's (CPU, memory) as scoring counts it (``PodRequests.scored_*``)."""
        self.cpu_held = 0
        self.mem_held = 0
        self.held: dict[str, tuple[int, int]] = {}
        """What a pod's resize not carried out yet asks beyond its allocation: the scheduler
        charges a pod ``max(spec, allocated)`` unless the resize is Infeasible."""
        self.ready = True
        self.held_by: dict[int, None] = {}
        """The node_loss faults (by ``id(fault)``) holding the node lost: it recovers when none is left."""
        self.epoch = 0
        self.images: dict[str, None] = dict.fromkeys(map(normalize_image, spec.images))
        """The images on the node, by normalised reference."""
        self.pulls: dict[str, _Pull] = {}
        """The downloads under way or queued, by normalised reference."""
        self.pulling: _Pull | None = None
        """The download the serial puller is on (``serialize_image_pulls``)."""
        self.pull_queue: list[tuple[str, _Pull]] = []
        """The downloads waiting for the serial puller, in the order they were asked for."""
        self.runs: dict[str, _PodRun] = {}
        self.deferred: dict[str, _PodRun] = {}
        """Pods whose resize waits for room on this node."""
        self.lost: dict[str, None] = {}
        self.forcing: dict[str, None] = {}
        self.host_ip = f"192.168.{index // 254}.{index % 254 + 1}"
        self._ip_base = int(ipaddress.IPv4Address("10.0.0.0")) + (index << 16)
        self._ip_next = 0
        self._ips: dict[str, None] = {}

    def short_of(self, scalars: Scalars, *, admission: bool) -> list[tuple[str, int, int, int]]:
        """The other resources the node cannot give ``scalars`` of: ``(name, requested, used,
        capacity)``, ``ephemeral-storage`` first, then by name.

        A node that does not declare ``ephemeral-storage`` does not count it; one that
        does not declare an extended resource has none, but the kubelet's admission
        leaves such a request out (``removeMissingExtendedResources``).
        """
        short: list[tuple[str, int, int, int]] = []
        for name, requested in scalars:
            capacity = self.scalar_cap.get(name)
            if capacity is None:
                if name == EPHEMERAL_STORAGE or (admission and is_extended(name)):
                    continue
                capacity = 0
            used = self.scalar_used.get(name, 0)
            if used + requested > capacity:
                item = (name, requested, used, capacity)
                if name == EPHEMERAL_STORAGE:
                    short.insert(0, item)
                else:
                    short.append(item)
        return short

    def admission_problem(
        self, ask: PodRequests, selector: dict[str, Any] | None
    ) -> tuple[str, str] | None:
        """``(reason, message)`` if the kubelet refuses a pod bound here without the scheduler.

        The kubelet's admission (``GeneralPredicates``) runs the scheduler's fit on the
        pods it holds: the pod count, CPU, memory, then the other resources; the first
        short one names the reason (``OutOfcpu``, ``OutOfnvidia.com/gpu``). Then the
        node selector (``NodeAffinity``).
        """
        checks = [
            ("pods", 1, len(self.alloc), self.pods_cap),
            ("cpu", ask.cpu, self.cpu_used, self.cpu_cap),
            ("memory", ask.memory, self.mem_used, self.mem_cap),
        ]
        if ask.scalars:
            checks += self.short_of(ask.scalars, admission=True)
        for resource, requested, used, capacity in checks:
            if used + requested > capacity:
                return f"OutOf{resource}", (
                    f"Pod was rejected: Node didn't have enough resource: {resource}, "
                    f"requested: {requested}, used: {used}, capacity: {capacity}"
                )
        if selector and any(self.labels.get(k) != v for k, v in selector.items()):
            return (
                "NodeAffinity",
                f"Pod was rejected: Predicate NodeAffinity failed: {_NOT_MATCHED}",
            )
        return None

    def reasons(self, ask: PodRequests, selector: dict[str, Any] | None) -> tuple[list[str], bool]:
        """Why a pod asking ``ask`` does not fit here, as kube-scheduler's filters say it, and
        whether preemption could help (an evicted pod could make room).

        The first failing filter speaks (TaintToleration, NodeAffinity, NodeResourcesFit);
        the fit names each short resource, and asking more than the node has at all is
        beyond preemption's help.
        """
        if not self.ready:
            return [_UNREACHABLE], False
        if selector and any(self.labels.get(k) != v for k, v in selector.items()):
            return [_NOT_MATCHED], False
        out = []
        hopeless = False
        if len(self.alloc) >= self.pods_cap:
            out.append("Too many pods")
        for name, requested, used, capacity in (
            ("cpu", ask.cpu, self.cpu_used + self.cpu_held, self.cpu_cap),
            ("memory", ask.memory, self.mem_used + self.mem_held, self.mem_cap),
            *self.short_of(ask.scalars, admission=False),
        ):
            if used + requested > capacity:
                out.append(f"Insufficient {name}")
                hopeless = hopeless or requested > capacity
        return out, not hopeless

    def reserve(self, uid: str, ask: PodRequests) -> None:
        if uid in self.alloc:
            return
        self.alloc[uid] = (ask.cpu, ask.memory)
        self.cpu_used += ask.cpu
        self.mem_used += ask.memory
        if ask.scalars:
            self.scalar_alloc[uid] = ask.scalars
            for name, n in ask.scalars:
                self.scalar_used[name] = self.scalar_used.get(name, 0) + n
        self.scored[uid] = (ask.scored_cpu, ask.scored_memory)
        self.cpu_scored += ask.scored_cpu
        self.mem_scored += ask.scored_memory

    def charge(self, uid: str) -> tuple[int, int]:
        """What the scheduler charges for pod ``uid``: its allocation and any hold."""
        cpu, mem = self.alloc.get(uid, (0, 0))
        held = self.held.get(uid, (0, 0))
        return cpu + held[0], mem + held[1]

    def hold(self, uid: str, cpu: int, mem: int) -> bool:
        """Charge pod ``uid`` ``cpu`` and ``mem`` beyond its allocation; whether room grew."""
        was = self.held.pop(uid, (0, 0))
        if cpu or mem:
            self.held[uid] = (cpu, mem)
        self.cpu_held += cpu - was[0]
        self.mem_held += mem - was[1]
        return cpu < was[0] or mem < was[1]

    def resize(self, uid: str, ask: PodRequests) -> bool:
        """Change a pod's allocation in place (an accepted resize); whether room grew."""
        before = self.charge(uid)
        was = self.alloc.get(uid, (0, 0))
        self.alloc[uid] = (ask.cpu, ask.memory)
        self.cpu_used += ask.cpu - was[0]
        self.mem_used += ask.memory - was[1]
        was = self.scored.get(uid, (0, 0))
        self.scored[uid] = (ask.scored_cpu, ask.scored_memory)
        self.cpu_scored += ask.scored_cpu - was[0]
        self.mem_scored += ask.scored_memory - was[1]
        self.hold(uid, 0, 0)
        after = self.charge(uid)
        return after[0] < before[0] or after[1] < before[1]

    def free(self, uid: str) -> bool:
        got = self.alloc.pop(uid, None)
        if got is None:
            return False
        self.cpu_used -= got[0]
        self.mem_used -= got[1]
        for name, n in self.scalar_alloc.pop(uid, ()):
            self.scalar_used[name] -= n
        scored = self.scored.pop(uid, (0, 0))
        self.cpu_scored -= scored[0]
        self.mem_scored -= scored[1]
        self.hold(uid, 0, 0)
        return True

    def allocate_ip(self) -> str:
        # Sequential addresses in the node's 10.<index>.0.0/16 (index 256 is
        # 11.0.0.0/16, and so on), skipping those in use; an address is not
        # reused until the range wraps, so a recreated pod gets a new IP.
        for _ in range(_IPS_PER_NODE):
            n = self._ip_next % _IPS_PER_NODE + 1
            self._ip_next += 1
            ip = str(ipaddress.IPv4Address(self._ip_base + n))
            if ip not in self._ips:
                self._ips[ip] = None
                return ip
        raise RuntimeError(f"node {self.name}: all {_IPS_PER_NODE} pod IPs are in use")

    def release_ip(self, ip: str | None) -> None:
        if ip is not None:
            self._ips.pop(ip, None)

    def forget_pulls(self) -> None:
        """Drop the downloads under way and queued (the node was lost, or is back)."""
        self.pulls = {}
        self.pulling = None
        self.pull_queue = []

    def reset(self) -> None:
        """Forget everything that ran here (the node was lost)."""
        self.alloc.clear()
        self.cpu_used = 0
        self.mem_used = 0
        self.scalar_alloc.clear()
        self.scalar_used.clear()
        self.scored.clear()
        self.cpu_scored = 0
        self.mem_scored = 0
        self.held.clear()
        self.cpu_held = 0
        self.mem_held = 0
        self.runs.clear()
        self.deferred.clear()
        self.forget_pulls()
        self._ips.clear()


class Nodes:
    """The scheduler and the kubelets of a set of nodes (see the module docstring).

    :param world: the cluster wiring; the scheduler uses ``world.scheduler_client``,
        each kubelet its own ``kubelet/<node>`` client.
    :param specs: the initial nodes (names must be unique).
    """

    def __init__(self, world: World, specs: list[NodeSpec]) -> None:
        self.world = world
        self.ctx = world.ctx
        self.api = world.api
        self.cache = world.node_cache
        self.client = world.scheduler_client
        prof = self.ctx.profile
        # The node lifecycle controller (kube-controller-manager) fails the pods
        # of a lost node and force-deletes its terminating ones.
        self._lifecycle = self.api.client(
            "node-lifecycle-controller", prof.controller_qps, prof.controller_burst
        )
        self._nodes: dict[str, _Node] = {}
        self._order: list[_Node] = []
        """The nodes in the order they were added: the scheduler's round of them."""
        self._next_start = 0
        """kube-scheduler's ``nextStartNodeIndex``: where in :attr:`_order` the next pod's
        search for a node begins (moved on by the nodes each search looked at)."""
        self.nodes_looked = 0
        """The nodes the scheduler's searches have looked at (filtered, and scored if they
        fit), in all: what the searches cost, for tests and ``bench/scheduler_search.py``."""
        self._queue: dict[ObjKey, None] = {}
        self._unschedulable: dict[ObjKey, _Waiting] = {}
        self._by_shape: dict[Shape, dict[ObjKey, _Waiting]] = {}
        """The unschedulable pods by request shape, each in retry order."""
        self._waiting_seq = 0
        self._stale = False
        """Whether an unschedulable pod may have changed since it last failed (:meth:`_recheck`)."""
        self._placed: dict[str, str] = {}
        self._reserved_from: dict[str, Any] = {}
        """The containers list each pod placed and not yet taken by its kubelet had when the
        scheduler read its requests (see :meth:`_readmit_if_resized`)."""
        self._marked: dict[str, str] = {}
        """The Unschedulable message last written to each pod, by uid."""
        self._messages: dict[Shape, str] = {}
        """The Unschedulable message of each request shape, while no node's state changed."""
        self._asks: dict[str, tuple[Any, PodRequests]] = {}
        """Each unplaced pod's requests, by uid, with the containers list they were read
        from: a retry reuses them rather than parsing quantities again."""
        self._images: dict[str, str] = {}
        """Normalised image references, by reference as written (a handful per cluster;
        at most ``_IMAGE_MEMO_MAX``)."""
        self._parsed: dict[str, str | None] = {}
        """Each image reference's ``InvalidImageName`` message, ``None`` for one that parses
        (at most ``_IMAGE_MEMO_MAX``)."""
        self._shared: dict[tuple[str, Any, datetime], ContainerStatus] = {}
        """The running containers' statuses written this second, by (name, image, startedAt)."""
        self._shared_at: datetime | None = None
        self._unfit: set[Shape] = set()
        """Request shapes that fit no node, found since room last grew (see :meth:`_room_grew`)."""
        self._wake: simpy.Event | None = None
        self._retry = False
        self._started = False
        self._stall_gate = StallGate(self.ctx.faults, self.ctx.env)
        self._losses: dict[int, list[_Node]] = {}
        """The nodes each node_loss in force holds lost, by ``id(fault)``."""
        for spec in specs:
            self._add_node(spec)

    # -- public ---------------------------------------------------------------------

    @property
    def specs(self) -> list[NodeSpec]:
        """The nodes' specs, in the order they were added."""
        return [n.spec for n in self._nodes.values()]

    def start(self) -> None:
        """Launch the scheduler, watch pods, and subscribe to acting faults."""
        if self._started:
            return
        self._started = True
        self.cache.add_handler("Pod", self._on_pod)
        self.ctx.faults.add_validator(self._check_fault_node)
        self.ctx.faults.add_listener(self._on_fault)
        self.ctx.faults.add_clear_listener(self._on_faults_cleared)
        self.ctx.env.process(self._schedule_loop())
        for pod in self.cache.list("Pod"):
            self._on_pod("ADDED", None, pod)
        for fault in self.ctx.faults.faults:
            self._on_fault(fault)

    def _check_fault_node(self, fault: Fault) -> None:
        """Refuse a fault whose selector names no node the cluster has now (a typo, or a
        node not added yet: one added later can be targeted from then on)."""
        check_node_names(
            fault.selector,
            self._nodes,
            hint="; a node added later can be targeted once it is added",
        )

    def add(self, spec: NodeSpec | Mapping[str, Any]) -> None:
        """Add a node (a :class:`NodeSpec`, or a mapping of its fields); pending pods are
        retried on it, and its kubelet runs the pods already bound to it by name.

        Bad input raises :class:`~pytest_kruise_agents.api.errors.InvalidError` naming
        the field (``name`` for a node that exists already, ``nodes`` for one past
        :data:`MAX_NODES`) and adds nothing.
        """
        node_spec = node_spec_of(spec)
        if node_spec.name in self._nodes:
            raise InvalidError("name", f"node {node_spec.name!r} already exists")
        problem = too_many_nodes(len(self._nodes) + 1)
        if problem is not None:
            raise InvalidError("nodes", problem)
        self._add_node(node_spec)
        self.ctx.record("node.added", node_spec.name)
        if self._started:
            # A kubelet registering lists the pods bound to its node: those created with
            # its name in spec.nodeName before it existed start now.
            node = self._nodes[node_spec.name]
            for pod in self.cache.list("Pod"):
                if pod.spec.get("nodeName") == node.name:
                    self._kubelet_observe(node, pod)
        self._retry_unschedulable()

    def utilisation(self) -> dict[str, tuple[float, float]]:
        """Fraction of CPU and memory allocated, per node (a lost node has nothing allocated)."""
        return {
            n.name: (n.cpu_used / n.cpu_cap, n.mem_used / n.mem_cap) for n in self._nodes.values()
        }

    def pending_pods(self) -> int:
        """Pods the scheduler has not placed yet (waiting, or unschedulable)."""
        return len(self._queue) + len(self._unschedulable)

    def ready_nodes(self) -> list[str]:
        """Names of the nodes that take pods, in the order they were added."""
        return [n.name for n in self._nodes.values() if n.ready]

    # -- wiring -----------------------------------------------------------------------

    def _add_node(self, spec: NodeSpec) -> None:
        if spec.name in self._nodes:
            raise ValueError(f"node {spec.name!r} already exists")
        prof = self.ctx.profile
        client = self.api.client(
            f"kubelet/{spec.name}", prof.kubelet_qps, prof.kubelet_burst, stall_name="kubelet"
        )
        node = _Node(spec, len(self._nodes), client)
        self._nodes[spec.name] = node
        self._order.append(node)
        self._room_grew()

    def _on_pod(self, event_type: str, old: Any, new: Any) -> None:
        if event_type == "DELETED":
            self._on_pod_deleted(old)
            return
        pod: Pod = new
        key = _key(pod)
        node_name = pod.spec.get("nodeName")
        if not node_name:
            self._observe_unbound(key, pod)
            return
        self._queue.pop(key, None)
        self._unlist(key)
        node = self._nodes.get(str(node_name))
        if node is not None:
            self._kubelet_observe(node, pod)

    def _on_pod_deleted(self, pod: Pod) -> None:
        key = _key(pod)
        uid = pod.metadata.uid or ""
        self._queue.pop(key, None)
        self._unlist(key)
        self._marked.pop(uid, None)
        self._asks.pop(uid, None)
        node = self._nodes.get(str(pod.spec.get("nodeName") or ""))
        if node is not None:
            node.lost.pop(uid, None)
            node.forcing.pop(uid, None)
            node.deferred.pop(uid, None)
            run = node.runs.pop(uid, None)
            if run is not None:
                self._stop(run)
                node.release_ip(run.ip)
        self._release(uid)

    def _release(self, uid: str) -> None:
        self._reserved_from.pop(uid, None)
        name = self._placed.pop(uid, None)
        if name is None:
            return
        node = self._nodes.get(name)
        if node is not None and node.free(uid):
            self._room_freed(node)

    def _room_freed(self, node: _Node) -> None:
        """Resources came free on ``node``: retry deferred resizes, then unschedulable pods.

        The resizes go first, as the kubelet retries them before it admits new pods
        (the scheduler leaves their room alone anyway: it charges what they wait for).
        """
        if node.deferred:
            runs = list(node.deferred.values())
            node.deferred.clear()
            for run in runs:
                self._wake_run(run)
        self._room_grew()
        self._retry_unschedulable()

    @staticmethod
    def _wake_run(run: _PodRun) -> None:
        wake, run.wake = run.wake, None
        if wake is not None and not wake.triggered:
            wake.succeed()

    # -- scheduler ----------------------------------------------------------------------

    def _observe_unbound(self, key: ObjKey, pod: Pod) -> None:
        uid = pod.metadata.uid or ""
        if pod.metadata.deletion_timestamp is not None:
            # Held by someone else's finalizer: the API server took the kubelet's at
            # the delete (an unbound pod has none to wait for).
            self._queue.pop(key, None)
            self._unlist(key)
            return
        waiting = self._unschedulable.get(key)
        if waiting is not None:
            self._recheck(waiting, pod)
            return
        if _is_terminal(pod) or uid in self._placed:
            return
        scheduler = pod.spec.get("schedulerName")
        if scheduler and scheduler != DEFAULT_SCHEDULER:
            return  # another scheduler's pod: none runs here, so it stays Pending
        if key not in self._queue:
            self._queue[key] = None
            self._kick()

    def _kick(self) -> None:
        wake = self._wake
        if wake is not None and not wake.triggered:
            self._wake = None
            wake.succeed()

    def _room_grew(self) -> None:
        """A shape that fitted nowhere may fit now (room freed, a node added or back).

        Everything else the scheduler sees only takes room (a reservation, a
        resize up, a node lost), so a shape found unfit stays unfit until this.
        """
        self._unfit.clear()
        self._messages.clear()

    def _retry_unschedulable(self) -> None:
        if self._unschedulable:
            # Coalesced: the scheduler moves them back once when it next runs.
            self._retry = True
            self._kick()

    def _set_aside(
        self, key: ObjKey, uid: str, shape: Shape | None, selector: dict[str, Any] | None
    ) -> None:
        """Keep a pod that fits nowhere until room grows."""
        self._waiting_seq += 1
        waiting = _Waiting(self._waiting_seq, uid, shape, selector)
        self._unschedulable[key] = waiting
        if shape is None:
            self._stale = True  # no shape to stand for it: a retry must look at each pod
        else:
            self._by_shape.setdefault(shape, {})[key] = waiting

    def _unlist(self, key: ObjKey) -> None:
        waiting = self._unschedulable.pop(key, None)
        if waiting is None or waiting.shape is None:
            return
        bucket = self._by_shape[waiting.shape]
        del bucket[key]
        if not bucket:
            del self._by_shape[waiting.shape]

    def _recheck(self, waiting: _Waiting, pod: Pod) -> None:
        """An unschedulable pod changed: note whether a retry could now decide otherwise for it.

        A retry in place (:meth:`_retry_in_place`) trusts each pod to be what
        it was when it last failed: the same pod (uid), not terminal, asking
        for the same shape. Any other change (labels, a status write) is not
        looked at by the scheduler. A pod asking for another shape (resized) is
        tried again now, as kube-scheduler moves an unschedulable pod whose
        requests go down back to its active queue (``UpdatePodScaleDown``): it
        may fit where it did not, though no room grew.
        """
        if self._stale and self._retry:
            return  # every unschedulable pod is tried again anyway, as it is now
        if (pod.metadata.uid or "") != waiting.uid or _is_terminal(pod):
            self._stale = True
            return
        try:
            ask = self._asked(waiting.uid, pod)
        except ValueError:
            self._stale = True
            return
        selector = pod.spec.get("nodeSelector")
        if _shape(ask, selector if isinstance(selector, dict) else None) != waiting.shape:
            self._stale = True
            self._retry_unschedulable()

    def _requeue_all(self) -> None:
        """Move every unschedulable pod back to the end of the queue, in order."""
        for key in self._unschedulable:
            self._queue[key] = None
        self._unschedulable.clear()
        self._by_shape.clear()
        self._stale = False

    def _in_place_ok(self) -> bool:
        """Whether :meth:`_retry_in_place` decides as a full requeue would, now."""
        if self._stale or self._queue:
            # Queued pods go first, and those that fail would wait ahead of the retried ones.
            return False
        faults = self.ctx.faults
        # A stalled scheduler holds the pass (as ``_stall`` would, and counts it).
        return not (faults.injected and faults.stall_of("scheduler") is not None)

    def _retry_in_place(self) -> None:
        """Retry the unschedulable pods where they wait, looking only at those that may fit.

        The same decisions, in the same order, as moving them all back to the
        queue: in retry order, a pod whose shape was found unfit in this pass
        (room only gets taken in it) stays, as it would after a look at every
        node. So only the first pod of each shape is tried, and the next of
        that shape only once it was placed; those left keep their order.
        """
        by_shape = self._by_shape
        heap = [(next(iter(bucket.values())).seq, shape) for shape, bucket in by_shape.items()]
        heapq.heapify(heap)
        while heap:
            _, shape = heapq.heappop(heap)
            bucket = by_shape[shape]
            key, waiting = next(iter(bucket.items()))
            ask = PodRequests(shape[0], shape[1], shape[2], shape[3], shape[4])
            node = self._fit(ask, waiting.selector)
            if node is None:
                self._remark(bucket, ask, waiting.selector)
                continue  # the rest of its shape stays, as it would after failing
            self._unlist(key)
            self._place(key, waiting.uid, node, ask)
            if shape in by_shape:
                heapq.heappush(heap, (next(iter(by_shape[shape].values())).seq, shape))

    def _stall(self, name: str) -> Op:
        # Until the stall's window closes or it is cleared, whichever is first. A stalled
        # kubelet waits here before each step of a pod's start or stop, and its API client
        # before each request (ApiServer.held): what is under way (a timer, an image
        # download, which the container runtime does) finishes, the kubelet acts on it after.
        yield from self._stall_gate.wait(name)

    def _schedule_loop(self) -> Op:
        env = self.ctx.env
        while True:
            if self._retry:
                self._retry = False
                if self._unschedulable:
                    if self._in_place_ok():
                        self._retry_in_place()
                    else:
                        self._requeue_all()
            if not self._queue:
                self._wake = env.event()
                yield self._wake
                continue
            yield from self._stall("scheduler")
            if not self._queue:
                continue
            key = next(iter(self._queue))
            del self._queue[key]
            pod = self.cache.get("Pod", key[0], key[1])
            if (
                pod is None
                or pod.spec.get("nodeName")
                or pod.metadata.deletion_timestamp is not None
                or _is_terminal(pod)
                or (pod.metadata.uid or "") in self._placed
            ):
                continue
            self._schedule_one(key, pod)

    def _pick(self, ask: PodRequests, selector: dict[str, str] | None) -> _Node | None:
        """The best-scoring node among the first feasible ones found, as kube-scheduler's
        ``findNodesThatPassFilters`` and ``selectHost`` choose (ties: the smaller name).

        The search begins at :attr:`_next_start` and stops once it has
        :func:`feasible_nodes_to_find` nodes that fit; the start moves on by the nodes
        looked at, so the next pod's search goes on round the nodes. A search that looks
        at every node (a small cluster, or a pod that fits on too few) leaves it in place.
        """
        nodes = self._order
        count = len(nodes)
        if not count:
            return None
        want = (
            count  # feasible_nodes_to_find's first rule, without its call (every small cluster)
            if count < MIN_FEASIBLE_NODES_TO_FIND
            else feasible_nodes_to_find(self.ctx.profile.percentage_of_nodes_to_score, count)
        )
        start = self._next_start
        if want < count and start:
            order: Iterable[_Node] = chain(islice(nodes, start, None), islice(nodes, start))
        else:
            order = nodes  # searched whole (ties go by name): where it starts changes nothing
        best: _Node | None = None
        best_score = 0.0
        looked = count
        found = 0
        cpu, memory, scalars = ask.cpu, ask.memory, ask.scalars
        scored_cpu, scored_memory = ask.scored_cpu, ask.scored_memory
        for i, node in enumerate(order, 1):
            # Each node's filter and score, inline: this runs for every node looked at
            # for every pod placed (a method call per node was two calls in every 30 of
            # the model's). Fit charges each pod max(spec, allocated): a resize waiting
            # for room keeps it.
            if (
                not node.ready
                or len(node.alloc) >= node.pods_cap
                or node.cpu_used + node.cpu_held + cpu > node.cpu_cap
                or node.mem_used + node.mem_held + memory > node.mem_cap
                or (selector and any(node.labels.get(k) != v for k, v in selector.items()))
                or (scalars and node.short_of(scalars, admission=False))
            ):
                continue
            # LeastAllocated: the mean free fraction of CPU and memory after placing, on
            # the non-zero requests (so that pods asking nothing spread); none when over
            # capacity. (Comparisons, not max(): this runs for every node and pod placed.)
            free_cpu = node.cpu_cap - node.cpu_scored - node.cpu_held - scored_cpu
            free_mem = node.mem_cap - node.mem_scored - node.mem_held - scored_memory
            score = (
                (free_cpu / node.cpu_cap if free_cpu > 0 else 0.0)
                + (free_mem / node.mem_cap if free_mem > 0 else 0.0)
            ) / 2
            if (
                best is None
                or score > best_score
                or (score == best_score and node.name < best.name)
            ):
                best, best_score = node, score
            found += 1
            if found == want:
                looked = i
                break
        self._next_start = (start + looked) % count
        self.nodes_looked += looked
        return best

    def _asked(self, uid: str, pod: Pod) -> PodRequests:
        """The pod's requests; ``ValueError`` for a malformed quantity.

        Parsed once per containers list: a stored list is never changed in
        place, so a resize (or any spec update) brings a new one and is read again.
        """
        containers = pod.spec.get("containers")
        got = self._asks.get(uid)
        if got is not None and got[0] is containers:
            return got[1]
        ask = _requests(pod)
        self._asks[uid] = (containers, ask)
        return ask

    def _fit(self, ask: PodRequests, selector: dict[str, Any] | None) -> _Node | None:
        """:meth:`_pick`, skipped for a shape already found to fit nowhere since room last grew.

        A retry that takes every unschedulable pod back into the queue (see
        :meth:`_in_place_ok`) would otherwise cost each of them a look at every node.
        """
        shape = _shape(ask, selector)
        if shape is not None and shape in self._unfit:
            return None
        node = self._pick(ask, selector)
        if node is None and shape is not None:
            self._unfit.add(shape)
        return node

    def _schedule_one(self, key: ObjKey, pod: Pod) -> None:
        uid = pod.metadata.uid or ""
        try:
            ask = self._asked(uid, pod)
        except ValueError as err:
            # A malformed quantity: the pod can never be placed (kept aside, not retried).
            self.ctx.record("scheduler.invalid", f"{key[0]}/{key[1]} {err}")
            return
        found = pod.spec.get("nodeSelector")
        selector = found if isinstance(found, dict) else None
        node = self._fit(ask, selector)
        if node is None:
            self._set_aside(key, uid, _shape(ask, selector), selector)
            self._note_unschedulable(pod, self._diagnose(ask, selector))
            return
        self._place(key, uid, node, ask)

    def _diagnose(self, ask: PodRequests, selector: dict[str, Any] | None) -> str:
        """The PodScheduled message of a pod that fits no node: kube-scheduler's ``FitError``.

        ``0/N nodes are available:`` then each node's reasons counted and sorted, then
        what preemption found: every pod here has the same priority, so it finds no
        victim where evicting could make room, and is no help elsewhere.
        """
        shape = _shape(ask, selector)
        if shape is not None:
            known = self._messages.get(shape)
            if known is not None:
                return known
        nodes = self._nodes.values()
        if not nodes:
            return "no nodes available to schedule pods"
        reasons: Counter[str] = Counter()
        preemption: Counter[str] = Counter()
        for node in nodes:
            said, helps = node.reasons(ask, selector)
            reasons.update(said)
            preemption[_NO_VICTIMS if helps else _NOT_HELPFUL] += 1
        total = len(nodes)
        message = (
            f"0/{total} nodes are available: {_histogram(reasons)}. "
            # preemption's own FitError text, ending in ".", then FitError's " %v." around
            # it: real pod conditions end in "..".
            f"preemption: 0/{total} nodes are available: {_histogram(preemption)}.."
        )
        if shape is not None:
            self._messages[shape] = message
        return message

    def _note_unschedulable(self, pod: Pod, message: str) -> None:
        """Write the pod's ``PodScheduled=False/Unschedulable`` condition, unless it says so already."""
        uid = pod.metadata.uid or ""
        was = self._marked.get(uid)
        if was == message:
            return
        if was is None:
            self.ctx.record(
                "scheduler.unschedulable", f"{pod.metadata.namespace}/{pod.metadata.name}"
            )
        self._marked[uid] = message
        self.ctx.env.process(self._mark_unschedulable(pod, message))

    def _remark(
        self, bucket: dict[ObjKey, _Waiting], ask: PodRequests, selector: dict[str, Any] | None
    ) -> None:
        """A shape failed again where it waits: its pods' message is written anew if it changed.

        The first pod stands for the rest (they failed alike), so an unchanged
        message costs no look at each.
        """
        message = self._diagnose(ask, selector)
        if self._marked.get(next(iter(bucket.values())).uid) == message:
            return
        for key, waiting in list(bucket.items()):
            pod = self.cache.get("Pod", key[0], key[1])
            if pod is not None and pod.metadata.uid == waiting.uid:
                self._note_unschedulable(pod, message)

    def _place(self, key: ObjKey, uid: str, node: _Node, ask: PodRequests) -> None:
        """Reserve room for the pod on ``node`` (the assumed pod) and bind it in the background."""
        if self._messages:
            self._messages.clear()
        node.reserve(uid, ask)
        self._placed[uid] = node.name
        got = self._asks.pop(uid, None)
        self._reserved_from[uid] = None if got is None else got[0]
        self.ctx.env.process(self._bind(key, uid, node.name))

    def _bind(self, key: ObjKey, uid: str, node_name: str) -> Op:
        yield self.ctx.env.timeout(self.ctx.latency("scheduler.bind"))
        if self._placed.get(uid) != node_name:
            # The reservation was dropped meanwhile (node lost): place it again.
            self._requeue(key, uid)
            return

        def bind(p: Pod) -> None:
            # What the pods/binding subresource checks.
            if p.metadata.uid != uid:
                raise ApiError(404, "NotFound", f'pod "{key[1]}" was replaced')
            if p.metadata.deletion_timestamp is not None:
                raise ApiError(
                    409, "Conflict", f"pod {key[1]} is being deleted, cannot be assigned to a host"
                )
            if p.spec.get("nodeName"):
                raise ApiError(409, "Conflict", f"pod {key[1]} is already assigned to a node")
            p.spec["nodeName"] = node_name
            # The binding sets PodScheduled=True with nodeName (``setPodHostAndAnnotations``):
            # an Unschedulable condition from an earlier attempt does not outlive it.
            conditions = list(p.status.conditions)
            set_condition(
                conditions,
                Condition(type="PodScheduled", status="True", last_transition_time=now),
                intern=self.ctx.intern_condition,
            )
            p.status = p.status.model_copy(update={"conditions": conditions})

        now = self.ctx.now_dt().replace(microsecond=0)
        try:
            yield from self.api.patch(
                self.client, "Pod", key[0], key[1], bind, subresource="binding", shallow=True
            )
        except ApiError as err:
            self._release(uid)
            pod = self.cache.get("Pod", key[0], key[1])
            if pod is None or pod.metadata.uid != uid:
                return
            if err.is_conflict:
                self._observe_unbound(key, pod)
            else:
                retry = self.ctx.env.timeout(_API_RETRY_S)
                retry.callbacks.append(lambda _ev: self._requeue(key, uid))
            return
        self.ctx.record("scheduler.bound", f"{key[0]}/{key[1]} node={node_name}")

    def _requeue(self, key: ObjKey, uid: str) -> None:
        pod = self.cache.get("Pod", key[0], key[1])
        if pod is not None and pod.metadata.uid == uid and not pod.spec.get("nodeName"):
            self._observe_unbound(key, pod)

    def _mark_unschedulable(self, pod: Pod, message: str) -> Op:
        uid = pod.metadata.uid
        now = self.ctx.now_dt().replace(microsecond=0)

        def mark(p: Pod) -> None:
            if p.metadata.uid != uid or p.spec.get("nodeName"):
                raise _gone(p)
            set_condition(
                p.status.conditions,
                Condition(
                    type="PodScheduled",
                    status="False",
                    reason="Unschedulable",
                    message=message,
                    last_transition_time=now,
                ),
            )

        # Best effort: the condition is informational. A write that failed is made
        # again at the scheduler's next attempt, as kube-scheduler does (it writes the
        # condition on each failed attempt while the stored pod lacks it): at the latest
        # when its unschedulable queue is flushed, UNSCHEDULABLE_RETRY_S later.
        while True:
            try:
                yield from self.api.patch(
                    self.client,
                    "Pod",
                    pod.metadata.namespace,
                    pod.metadata.name,
                    mark,
                    subresource="status",
                )
                return
            except ApiError as err:
                if err.code == 404:
                    return  # bound, replaced or deleted meanwhile: nothing to say
            yield self.ctx.env.timeout(UNSCHEDULABLE_RETRY_S)
            if self._marked.get(uid or "") != message:
                return  # deleted, or a newer message is on its way

    def _remove_finalizer(self, client: Client, pod: Pod) -> Op:
        uid = pod.metadata.uid

        def drop(p: Pod) -> None:
            if p.metadata.uid != uid:
                raise _gone(p)
            p.metadata.finalizers = [f for f in p.metadata.finalizers if f != POD_FINALIZER]

        yield from self._patch_pod(client, pod, drop, shallow=True)

    def _patch_pod(
        self,
        client: Client,
        pod: Pod,
        mutate: Callable[[Pod], None],
        *,
        subresource: str | None = None,
        shallow: bool = False,
    ) -> Op:
        """Patch ``pod`` until it lands (``True``) or the pod is gone (``False``): a kubelet
        or node controller retries any other API error every ``_API_RETRY_S``."""
        ns, name = pod.metadata.namespace, pod.metadata.name
        while True:
            try:
                yield from self.api.patch(
                    client, "Pod", ns, name, mutate, subresource=subresource, shallow=shallow
                )
            except ApiError as err:
                if err.is_not_found:
                    return False
                yield self.ctx.env.timeout(_API_RETRY_S)
                continue
            return True

    # -- kubelet ------------------------------------------------------------------------

    def _kubelet_observe(self, node: _Node, pod: Pod) -> None:
        uid = pod.metadata.uid or ""
        terminating = pod.metadata.deletion_timestamp is not None
        run = node.runs.get(uid)
        if run is not None:
            run.pod = pod
            if terminating and not run.terminating:
                self._begin_termination(node, run)
                return
            resized = False
            if not run.dead and not run.terminating:
                # A resize asked for, or one not carried out that was withdrawn.
                resized = run.resources_changed() or run.held_for != run.resources
                if resized:
                    self._hold(node, run)
            if run.wake is not None and (_first_image(pod.spec) != run.image or resized):
                self._wake_run(run)
            return
        if not node.ready or uid in node.lost:
            self._lost_node_pod(node, pod)
            return
        run = _PodRun(pod)
        node.runs[uid] = run
        if _is_terminal(pod):
            run.dead = True
        elif uid not in self._placed:
            # Bound by someone other than this scheduler (nodeName at creation): the
            # kubelet admits it only if it fits beside the pods the node holds.
            self._admit(node, run)
        else:
            self._readmit_if_resized(node, run)
        if terminating:
            self._begin_termination(node, run)
        elif not run.dead:
            run.process = self.ctx.env.process(self._run(node, run))

    def _admit(self, node: _Node, run: _PodRun) -> None:
        """Reserve room for a pod the scheduler did not place, or reject it (phase Failed,
        reason ``OutOfcpu``, ``OutOfmemory``, ``OutOfpods``, ``OutOf<resource>`` or
        ``NodeAffinity``) and charge nothing."""
        pod = run.pod
        try:
            ask = _requests(pod)
        except ValueError:
            ask = _NOTHING
        found = pod.spec.get("nodeSelector")
        problem = node.admission_problem(ask, found if isinstance(found, dict) else None)
        if problem is None:
            if self._messages:
                self._messages.clear()
            node.reserve(run.uid, ask)
            self._placed[run.uid] = node.name
            return
        reason, message = problem
        run.dead = True
        ns, name = pod.metadata.namespace, pod.metadata.name
        self.ctx.record("kubelet.rejected", f"{ns}/{name} node={node.name} reason={reason}")
        if pod.metadata.deletion_timestamp is None:
            self.ctx.env.process(self._fail_pod(node.client, pod, reason, message))

    def _readmit_if_resized(self, node: _Node, run: _PodRun) -> None:
        """Admit again a pod the scheduler placed whose requests changed before its kubelet
        took it (resized between the scheduling and the binding's watch event).

        The scheduler reserved the requests it read; the kubelet admits the pod it is given
        (upstream's admits every pod, with its spec, and allocates it that) and the
        scheduler's cache takes the bound pod's spec: the reservation is given back and the
        pod admitted with its requests now, or refused (``OutOfcpu``...) if they no longer
        fit beside the node's other pods.
        """
        if self._reserved_from.pop(run.uid, None) is run.containers:
            return  # the containers list the reservation was read from (never changed in place)
        try:
            ask = _requests(run.pod)
        except ValueError:
            return
        if node.alloc.get(run.uid) == (ask.cpu, ask.memory) and (
            node.scalar_alloc.get(run.uid, ()) == ask.scalars
        ):
            return
        before = node.charge(run.uid)
        del self._placed[run.uid]
        node.free(run.uid)
        self._admit(node, run)
        after = node.charge(run.uid)
        if after[0] < before[0] or after[1] < before[1]:
            self._room_freed(node)

    def _hold(self, node: _Node, run: _PodRun) -> None:
        """Charge the pod's new requests to the scheduler until the kubelet carries them out.

        kube-scheduler charges a pod ``max(spec, allocated)`` while its resize is not
        Infeasible, so the room a resize needs is not given to new pods meanwhile.
        """
        want = _resources(run.pod.spec)
        if want == run.held_for:
            return  # charged already (or found Infeasible) for these resources
        run.held_for = want
        try:
            ask = _requests(run.pod)
        except ValueError:
            return
        cpu, mem = node.alloc.get(run.uid, (0, 0))
        if run.uid in node.alloc and node.hold(
            run.uid, max(ask.cpu - cpu, 0), max(ask.memory - mem, 0)
        ):
            self._room_freed(node)

    def _lost_node_pod(self, node: _Node, pod: Pod) -> None:
        uid = pod.metadata.uid or ""
        if pod.metadata.deletion_timestamp is not None:
            if uid not in node.forcing and POD_FINALIZER in pod.metadata.finalizers:
                node.forcing[uid] = None
                self.ctx.env.process(self._remove_finalizer(self._lifecycle, pod))
        elif not _is_terminal(pod) and uid not in node.lost:
            node.lost[uid] = None
            self.ctx.env.process(
                self._fail_pod(self._lifecycle, pod, "NodeLost", f"node {node.name} was lost")
            )

    def _stop(self, run: _PodRun) -> None:
        proc = run.process
        run.process = None
        if proc is not None and proc.is_alive and proc is not self.ctx.env.active_process:
            proc.interrupt()

    def _begin_termination(self, node: _Node, run: _PodRun) -> None:
        run.terminating = True
        self._stop(run)
        run.process = self.ctx.env.process(self._terminate(node, run))

    def _terminate(self, node: _Node, run: _PodRun) -> Op:
        pod = run.pod
        try:
            # A stalled kubelet stops no pod either: its slot and IP stay taken.
            yield from self._stall("kubelet")
            if not run.dead and not _is_terminal(pod):
                grace = _grace_seconds(pod, self.ctx.profile.pod_delete_grace_s)
                yield self.ctx.env.timeout(grace + self.ctx.latency("pod.stop"))
                if self.ctx.faults.injected:
                    yield from self._stall("kubelet")
            node.release_ip(run.ip)
            run.ip = None
            self._release(run.uid)
            self.ctx.record("kubelet.stopped", f"{pod.metadata.namespace}/{pod.metadata.name}")
            finalizers = run.pod.metadata.finalizers
            # (A list compare first: the usual pod, kept by the kubelet alone, costs no call.)
            if (
                finalizers
                and finalizers != _KUBELET_ONLY
                and _held(run.pod)
                and not run.dead
                and not _is_terminal(run.pod)
            ):
                # The kubelet writes the stopped containers before its final delete; the
                # model skips that write when the delete removes the pod at once (no
                # reader could see it), and makes it for a pod another finalizer keeps.
                yield from self._write_stopped(node.client, run.pod)
            yield from self._remove_finalizer(node.client, pod)
        except simpy.Interrupt:
            return

    def _run(self, node: _Node, run: _PodRun) -> Op:
        env = self.ctx.env
        ctx = self.ctx
        faults = ctx.faults
        pull_failures = 0
        start_failures = 0
        never_pulled = False
        try:
            yield from self._stall("kubelet")
            yield env.timeout(ctx.draw["pod.create"]())
            run.ip = node.allocate_ip()
            run.created = env.now
            unparsed = self._unparsed_images(run.pod.spec)
            if unparsed:
                yield from self._never_starts(node, run, unparsed)
                return
            while True:
                if faults.injected:  # each step of a stalled kubelet waits (see _stall)
                    yield from self._stall("kubelet")
                # No local keeps a version of the pod: this process lives as long
                # as the pod, and an old version held here would never be freed.
                want = _first_image(run.pod.spec)
                if run.started:
                    if run.resources_changed():
                        # An in-place resize: no restart, and before any new image.
                        resources = _resources(run.pod.spec)
                        yield from self._resize(node, run, resources)
                        if run.resources == resources:
                            continue
                    if want == run.image:
                        last = run.last_status
                        if (
                            last is not None
                            and last[-1] is not None
                            and not run.resources_changed()
                        ):
                            # The resize reported Deferred or Infeasible was withdrawn.
                            yield from self._write(
                                node, run, "Running", last[1], _ready_reason(last[1])
                            )
                        # Nothing to do, or a resize that waits for room (or never fits).
                        run.wake = env.event()
                        yield run.wake
                        continue
                inplace = run.started
                ns, name = run.pod.metadata.namespace, run.pod.metadata.name
                template = run.pod.metadata.labels.get(keys.LABEL_SANDBOX_TEMPLATE)
                phase: PodPhase = "Running" if run.started else "Pending"
                if inplace and run.last_status is not None and run.last_status[1]:
                    # The kubelet stops the container it is to create again.
                    _stop_main(run, self._stamp())
                    yield from self._write(node, run, phase, False, "ContainersNotReady")
                if want is not None and self._unparsed(want) is not None:
                    yield from self._invalid_image(node, run, want, phase)
                    continue
                if want is not None:
                    policy = _first_pull_policy(run.pod.spec)
                    if policy == "Never" and self._normal(want) not in node.images:
                        # ErrImageNeverPull: nothing is pulled. The pod worker syncs the
                        # pod again after its back-off period, and finds the image if
                        # another pod's pull has brought it meanwhile.
                        if not never_pulled:
                            ctx.record(
                                "kubelet.never_pull", f"{ns}/{name} image={want} node={node.name}"
                            )
                        never_pulled = True
                        message = (
                            f'Container image "{want}" is not present with pull policy of Never'
                        )
                        _main_waits(run, self._stamp(), "ErrImageNeverPull", message)
                        yield from self._write(
                            node,
                            run,
                            phase,
                            False,
                            "ContainersNotReady",
                            "ErrImageNeverPull",
                            message,
                        )
                        yield env.timeout(BACKOFF_INITIAL_S)
                        continue
                    never_pulled = False
                    error = yield from self._pull(
                        node, want, template, ns, always=policy == "Always"
                    )
                    if faults.injected:
                        yield from self._stall("kubelet")
                    if error is not None:
                        pull_failures += 1
                        ctx.record(
                            "kubelet.pull_failed", f"{ns}/{name} image={want} node={node.name}"
                        )
                        # The pull's own error the first time (ErrImagePull); the
                        # back-off's words while the kubelet waits to pull again.
                        if pull_failures == 1:
                            reason, message = "ErrImagePull", error
                        else:
                            reason, message = "ImagePullBackOff", f'Back-off pulling image "{want}"'
                        _main_waits(run, self._stamp(), reason, message)
                        yield from self._write(
                            node, run, phase, False, "ContainersNotReady", reason, message
                        )
                        yield env.timeout(backoff_delay(pull_failures))
                        continue
                    pull_failures = 0
                    if _first_image(run.pod.spec) != want:
                        continue
                yield env.timeout(ctx.draw["inplace.update" if inplace else "container.start"]())
                if faults.injected:
                    yield from self._stall("kubelet")
                if faults.injected and faults.check(
                    "pod_start_failure", node=node.name, template=template, namespace=ns, image=want
                ):
                    start_failures += 1
                    ctx.record("kubelet.start_failed", f"{ns}/{name} node={node.name}")
                    if not _restarts_on_failure(run.pod.spec):
                        yield from self._exited(node, run, want)
                        return
                    delay = backoff_delay(start_failures)
                    self._crashed(run, want, delay)
                    yield from self._write(
                        node,
                        run,
                        "Running",
                        False,
                        "StartContainerFailed",
                        "CrashLoopBackOff",
                        "back-off restarting failed container",
                    )
                    yield env.timeout(delay)
                    continue
                if not inplace:
                    yield env.timeout(ctx.draw["container.ready"]())
                    if faults.injected:
                        yield from self._stall("kubelet")
                start_failures = 0
                if _first_image(run.pod.spec) != want:
                    continue
                run.image = want
                run.started = True
                now = self._stamp()
                _main_started(run, now, want)
                ctx.record(
                    "kubelet.inplace_updated" if inplace else "kubelet.running",
                    f"{ns}/{name} node={node.name} ip={run.ip}",
                )
                yield from self._write(node, run, "Running", True, "PodReady", now=now)
        except simpy.Interrupt:
            return

    def _exited(self, node: _Node, run: _PodRun, image: str | None) -> Op:
        """The first container exited with an error and ``restartPolicy: Never`` keeps it so.

        It stays terminated (exit code 1, ``Error``) and is not started again. A pod
        with no other container is ``Failed`` (kubelet ``getPhase``: every container
        stopped, one failed): Ready False, ``PodFailed``; its room and IP are freed
        (the scheduler does not count a terminal pod). A pod whose other containers
        run stays ``Running``, not ready.
        """
        now = self._stamp()
        _main_exited(run, now, image)
        if (run.pod.spec.get("containers") or [])[1:]:
            yield from self._write(node, run, "Running", False, "ContainersNotReady", now=now)
            yield self.ctx.env.event()  # nothing more to do until the pod is deleted
            return
        yield from self._write(node, run, "Failed", False, "PodFailed", now=now)
        run.dead = True
        node.release_ip(run.ip)
        run.ip = None
        self._release(run.uid)

    def _unparsed(self, image: str) -> str | None:
        """The kubelet's ``InvalidImageName`` message for ``image``, or ``None`` (cached)."""
        if image in self._parsed:
            return self._parsed[image]
        if len(self._parsed) >= _IMAGE_MEMO_MAX:
            self._parsed.clear()
        message = self._parsed[image] = invalid_image_message(image)
        return message

    def _unparsed_images(self, spec: dict[str, Any]) -> dict[str, str]:
        """The containers but the first whose image the kubelet cannot parse, by name, with
        its message: the first such init container (the kubelet reaches no container
        after it), else every other container of the pod that has one."""
        for container in spec.get("initContainers") or ():
            message = self._unparsed(str(container.get("image", "")))
            if message is not None:
                return {str(container.get("name", "")): message}
        found: dict[str, str] = {}
        for container in (spec.get("containers") or ())[1:]:
            message = self._unparsed(str(container.get("image", "")))
            if message is not None:
                found[str(container.get("name", ""))] = message
        return found

    def _invalid_image(self, node: _Node, run: _PodRun, image: str, phase: PodPhase) -> Op:
        """The first container's ``image`` cannot be parsed: it waits ``InvalidImageName``
        (no pull, no back-off) until the pod names another image.

        A running instance (an in-place update) was stopped: no instance of the
        container runs now, so whatever image comes next is started.
        """
        ctx = self.ctx
        ns, name = run.pod.metadata.namespace, run.pod.metadata.name
        message = self._unparsed(image) or ""
        ctx.record("kubelet.invalid_image", f"{ns}/{name} image={image} node={node.name}")
        _main_waits(run, self._stamp(), INVALID_IMAGE_NAME, message)
        run.image = None
        yield from self._write(
            node, run, phase, False, "ContainersNotReady", INVALID_IMAGE_NAME, message
        )
        while _first_image(run.pod.spec) == image:
            run.wake = ctx.env.event()
            yield run.wake

    def _never_starts(self, node: _Node, run: _PodRun, unparsed: dict[str, str]) -> Op:
        """A container but the first has an image the kubelet cannot parse: it waits
        ``InvalidImageName``, and the pod is never Ready.

        The model runs a pod's containers as its first one's life, so it starts
        none of them (a real kubelet starts the others); and it follows only the
        first container's image, so the pod waits until it is deleted.
        """
        ctx = self.ctx
        pod = run.pod
        ns, name = pod.metadata.namespace, pod.metadata.name
        run.unparsed = unparsed
        containers = list(
            chain(pod.spec.get("initContainers") or (), pod.spec.get("containers") or ())
        )
        blocker = next(c for c in containers if str(c.get("name", "")) in unparsed)
        ctx.record(
            "kubelet.invalid_image", f"{ns}/{name} image={blocker.get('image')} node={node.name}"
        )
        main = _first_image(pod.spec)
        in_init = any(c is blocker for c in pod.spec.get("initContainers") or ())
        if not in_init and main is not None and self._unparsed(main) is not None:
            _main_waits(run, self._stamp(), INVALID_IMAGE_NAME, self._unparsed(main) or "")
        message = unparsed[str(blocker.get("name", ""))]
        yield from self._write(
            node, run, "Pending", False, "ContainersNotReady", INVALID_IMAGE_NAME, message
        )
        yield ctx.env.event()  # never triggered: the pod waits until it is deleted

    def _resize(self, node: _Node, run: _PodRun, resources: Resources) -> Op:
        """Carry out the pod's new CPU and memory in place, or report it ``Deferred`` / ``Infeasible``.

        As the kubelet admits a resize: the new requests must fit the node's
        allocatable beside the other pods' allocations; a resize that could
        never fit this node is ``Infeasible``, one that fits once others free
        room is ``Deferred`` and retried when they do. An accepted resize
        changes the node's allocation at once and takes ``inplace.resize``.
        Any container's CPU or memory counts; none is restarted.
        """
        ctx = self.ctx
        pod = run.pod
        ns, name = pod.metadata.namespace, pod.metadata.name
        old_cpu, old_mem = node.alloc.get(run.uid, (0, 0))
        try:
            ask = _requests(pod)
        except ValueError:
            cpu, mem = node.alloc.get(run.uid, (0, 0))
            ask = PodRequests(cpu, mem, *node.scored.get(run.uid, (0, 0)))
        new_cpu, new_mem = ask.cpu, ask.memory
        # The log names memory only when it changes (a CPU resize reads as it always has).
        what = f"cpu={new_cpu}m" + (f" memory={new_mem}" if new_mem != old_mem else "")
        verdict: Literal["Deferred", "Infeasible"] | None = None
        if new_cpu > node.cpu_cap or new_mem > node.mem_cap:
            verdict = "Infeasible"
        elif (
            node.cpu_used - old_cpu + new_cpu > node.cpu_cap
            or node.mem_used - old_mem + new_mem > node.mem_cap
        ):
            verdict = "Deferred"
        if verdict is not None:
            if verdict == "Deferred":
                node.deferred[run.uid] = run
            else:
                node.deferred.pop(run.uid, None)
                run.held_for = resources  # the scheduler charges the allocation alone
                if node.hold(run.uid, 0, 0):
                    self._room_freed(node)
            last = run.last_status
            if last is None or last[-1] != verdict:
                ctx.record(
                    "kubelet.resize_" + verdict.lower(), f"{ns}/{name} node={node.name} {what}"
                )
            ready = last is not None and last[1]
            yield from self._write(
                node, run, "Running", ready, _ready_reason(ready), resize=verdict
            )
            return
        node.deferred.pop(run.uid, None)
        if node.resize(run.uid, ask):
            self._room_freed(node)
        yield ctx.env.timeout(ctx.latency("inplace.resize"))
        if ctx.faults.injected:
            yield from self._stall("kubelet")
        run.resources = resources
        run.held_for = resources
        run.containers = None  # the lists seen so far asked for the old resources
        ctx.record("kubelet.resized", f"{ns}/{name} node={node.name} {what}")
        if _first_image(run.pod.spec) != run.image:
            # The same update asks for a new image: the kubelet creates the container
            # again for it, so the pod is not Ready for this generation until the new
            # image runs. Reported Ready now, the resize would pass for the whole update.
            return
        yield from self._write(node, run, "Running", True, "PodReady")

    def _pull(
        self,
        node: _Node,
        image: str,
        template: str | None,
        namespace: str,
        *,
        always: bool = False,
    ) -> Op:
        """Pull ``image`` for one pod: ``None`` once it is on the node, else the pull's error.

        An image on the node is used as it is (``IfNotPresent``), unless ``always``
        (``imagePullPolicy: Always``): the kubelet then asks the registry at every
        start, so an ``image_pull_failure`` fails it though the image is cached (the
        manifest check costs ``image.pull_cached``, as a cached pull does).

        Each pod's pull consults the faults with the pod's own attributes (the
        kubelet pulls per pod); the node's image store is shared, so a pod whose
        pull goes ahead joins a download of the same image under way (see :class:`_Pull`).
        With ``serialize_image_pulls`` a download of another image waits until the one
        under way has landed. An image is the same however its reference is written
        (``busybox``, ``docker.io/library/busybox:latest``): :func:`normalize_image`.
        """
        ctx = self.ctx
        env = ctx.env
        key = self._images.get(image)
        if key is None:
            if len(self._images) >= _IMAGE_MEMO_MAX:
                self._images.clear()
            key = self._images[image] = normalize_image(image)
        faults = ctx.faults
        cached = key in node.images
        if cached and not (always and faults.injected):
            yield env.timeout(ctx.latency("image.pull_cached"))
            return None
        attrs: dict[str, str | None] = {
            "node": node.name,
            "image": image,
            "template": template,
            "namespace": namespace,
        }
        fault = faults.check("image_pull_failure", **attrs) if faults.injected else None
        if fault is not None:
            # This pod's pull fails, whatever the others' do.
            failed = env.event()
            env.process(self._pull_failed(failed))
            yield failed
            # What the runtime's PullImage answers, as the kubelet passes it on.
            return (
                f'failed to pull and unpack image "{key}": failed to resolve reference '
                f'"{key}": registry unreachable ({fault.id})'
            )
        if cached:
            yield env.timeout(ctx.latency("image.pull_cached"))
            return None
        pull = node.pulls.get(key)
        if pull is None:
            pull = node.pulls[key] = _Pull(env.event(), node.epoch, image)
            if node.spec.serialize_image_pulls and node.pulling is not None:
                # The kubelet's serial puller is busy: this download waits its turn.
                pull.queued = [attrs]
                node.pull_queue.append((key, pull))
            else:
                self._begin_pull(node, key, pull, attrs)
        elif pull.queued is not None:
            pull.queued.append(attrs)
        else:
            self._join_pull(node, key, pull, attrs)
        yield pull.done
        return None

    def _begin_pull(self, node: _Node, key: str, pull: _Pull, attrs: dict[str, str | None]) -> None:
        """Start the download of ``key`` for the pod whose ``attrs`` are given."""
        if node.spec.serialize_image_pulls:
            node.pulling = pull
        self.ctx.env.process(self._pull_image(node, key, pull, attrs))

    def _next_pull(self, node: _Node, done: _Pull) -> None:
        """``done`` has landed: the serial puller takes the next download queued, if any."""
        if node.pulling is not done:
            return  # a download of before the node was lost: the puller has moved on
        node.pulling = None
        if not node.pull_queue:
            return
        key, pull = node.pull_queue.pop(0)
        waiting = pull.queued or []
        pull.queued = None
        # As if its pods had asked for it now: the first starts it, the others join.
        self._begin_pull(node, key, pull, waiting[0])
        for attrs in waiting[1:]:
            self._join_pull(node, key, pull, attrs)

    def _pull_failed(self, failed: simpy.Event) -> Op:
        # The registry answers quickly with an error.
        yield self.ctx.env.timeout(self.ctx.latency("image.pull_cached"))
        failed.succeed(False)

    def _pull_image(self, node: _Node, image: str, pull: _Pull, attrs: dict[str, str | None]) -> Op:
        """The first pod's pull of a download: it lands the image unless another lands it first."""
        ctx = self.ctx
        env = ctx.env
        faults = ctx.faults
        hit = faults.replacing_draw("image_pull_slow", **attrs) if faults.injected else None
        if hit is None:
            latency = ctx.latency("image.pull")
            self._add_part(node, image, pull, None, latency, timer=False)
        else:
            latency = hit[1]
            self._add_part(node, image, pull, hit[0], latency, timer=False)
            if pull.want_ordinary:
                # A pod the fault does not slow joined before this pull began.
                self._add_part(node, image, pull, None, ctx.latency("image.pull"))
        yield env.timeout(latency)
        while not pull.landed:
            if env.now >= pull.finish:
                self._land(node, image, pull)
                break
            yield env.timeout(pull.finish - env.now)  # a clear made the pull longer

    def _join_pull(
        self, node: _Node, image: str, pull: _Pull, attrs: dict[str, str | None]
    ) -> None:
        """One more pod needs an image being downloaded: its own pull, if it could land first."""
        faults = self.ctx.faults
        if not faults.injected:
            return  # no fault slows anything: the download under way is an ordinary pull
        hit = faults.replacing_draw("image_pull_slow", **attrs)
        if hit is not None:
            self._add_part(node, image, pull, hit[0], hit[1])
        elif any(part.fault is None for part in pull.parts):
            return  # an ordinary pull is under way: it serves this pod as soon as its own would
        elif not pull.parts:
            pull.want_ordinary = True  # the first pod's pull has not begun (see _pull_image)
        else:
            # Only pulls slowed by a fault that does not select this pod: its own
            # pull is an ordinary one.
            self._add_part(node, image, pull, None, self.ctx.latency("image.pull"))

    def _add_part(
        self,
        node: _Node,
        image: str,
        pull: _Pull,
        fault: Fault | None,
        latency: float,
        *,
        timer: bool = True,
    ) -> None:
        """Add one pod's pull (slowed by ``fault``, or ordinary) to a download under way."""
        env = self.ctx.env
        now = env.now
        part = _PullPart(fault, now, latency)
        pull.parts.append(part)
        if timer and part.finish < pull.finish:
            self._land_at(node, image, pull, part.finish)
        pull.finish = min(pull.finish, part.finish)
        if fault is not None and fault.duration is not None:
            end = (fault.start or 0.0) + fault.duration
            if end < part.finish:
                # The fault's window ends mid-pull: the rest comes at the ordinary rate.
                window = env.timeout(max(end - now, 0.0))
                window.callbacks.append(lambda _ev: self._unslow(node, image, pull))

    def _land_at(self, node: _Node, image: str, pull: _Pull, at: float) -> None:
        """Land the image at ``at`` if the download is still due then."""
        timer = self.ctx.env.timeout(max(at - self.ctx.env.now, 0.0))
        timer.callbacks.append(lambda _ev: self._land_if_due(node, image, pull))

    def _land_if_due(self, node: _Node, image: str, pull: _Pull) -> None:
        if not pull.landed and self.ctx.env.now >= pull.finish:
            self._land(node, image, pull)

    def _land(self, node: _Node, image: str, pull: _Pull) -> None:
        """The image is on the node: every pod waiting for it goes on."""
        pull.landed = True
        if node.epoch == pull.epoch:
            node.images[image] = None
            self.ctx.record("kubelet.pulled", f"{pull.name} node={node.name}")
        if node.pulls.get(image) is pull:
            del node.pulls[image]
        pull.done.succeed(True)
        self._next_pull(node, pull)

    def _unslow(self, node: _Node, image: str, pull: _Pull) -> None:
        """End the slowing of the pulls whose ``image_pull_slow`` has ended (cleared, or its
        window closed): the rest of each comes at the ordinary rate from now.

        The fault is a bandwidth limit (Chaos Mesh's NetworkChaos ``bandwidth``):
        lifting it keeps what was downloaded, so a pull that was a fraction
        ``f`` done takes ``(1 - f)`` of an ordinary pull's ``image.pull`` draw more.
        """
        if pull.landed:
            return
        ctx = self.ctx
        faults = ctx.faults
        now = ctx.env.now
        changed = False
        for part in pull.parts:
            f = part.fault
            if f is None or (faults.in_force(f) and not f.window_closed(now)):
                continue
            done = 1.0 if part.latency <= 0 else min((now - part.start) / part.latency, 1.0)
            part.fault = None
            # Never later than the fault would have made it: a draw faster than an
            # ordinary pull stays (lifting a limit cannot slow a download down).
            part.finish = min(part.finish, now + (1.0 - done) * ctx.latency("image.pull"))
            changed = True
        if changed:
            pull.finish = min(part.finish for part in pull.parts)
            self._land_at(node, image, pull, pull.finish)

    def _stamp(self) -> datetime:
        """Now, as a status timestamp (``metav1.Time`` keeps whole seconds)."""
        return self.ctx.now_dt().replace(microsecond=0)

    def _normal(self, image: str) -> str:
        """``image`` as the runtime names it (:func:`normalize_image`, cached)."""
        key = self._images.get(image)
        if key is None:
            if len(self._images) >= _IMAGE_MEMO_MAX:
                self._images.clear()
            key = self._images[image] = normalize_image(image)
        return key

    def _crashed(self, run: _PodRun, image: str | None, delay: float) -> None:
        """The first container failed to start; the kubelet backs off ``delay`` seconds."""
        pod = run.pod
        containers = pod.spec.get("containers") or [{}]
        meta = pod.metadata
        # The kubelet's own words (kuberuntime's doBackOff).
        message = (
            f"back-off {format_duration(timedelta(seconds=delay))} restarting failed "
            f"container={containers[0].get('name', '')} "
            f"pod={meta.name}_{meta.namespace}({run.uid})"
        )
        _main_crashed(run, self._stamp(), image, message)

    def _container_statuses(
        self, run: _PodRun, ready: bool, now: datetime
    ) -> tuple[list[ContainerStatus], list[ContainerStatus]]:
        """``(initContainerStatuses, containerStatuses)`` of a pod the kubelet runs.

        The first container as :class:`_PodRun` follows it; the others run
        from its first start on, ready; the init containers ran when the pod
        sandbox was made: completed, or running for a sidecar.
        """
        spec = run.pod.spec
        containers = spec.get("containers")
        if not containers:
            return [], []  # no pod the API server takes (validation wants one)
        init = spec.get("initContainers")
        since = run.running_since
        if (
            since is not None
            and ready
            and run.instances == 1
            and run.last_state is None
            and not init
            and not containers[1:]
        ):
            # The usual sandbox pod, running: its status is shared (see _running).
            return [], [self._running(containers[0].get("name", ""), run.main_image, since, now)]
        statuses = [self._main_status(run, containers[0], ready)]
        for c in containers[1:]:
            message = run.unparsed.get(c.get("name", "")) if run.unparsed else None
            if message is not None:
                statuses.append(_waiting(c, INVALID_IMAGE_NAME, message))
            elif run.first_start is None:
                statuses.append(_not_created(run, c))
            else:
                statuses.append(
                    self._running(c.get("name", ""), c.get("image"), run.first_start, now)
                )
        if not init:
            return [], statuses
        created = self.ctx.now() if run.created is None else run.created
        at = (self.ctx.epoch + timedelta(seconds=created)).replace(microsecond=0)
        if not run.unparsed:
            return [self._init_status(c, at, now) for c in init], statuses
        # An init container the kubelet cannot make: those before it ran, those after wait.
        init_statuses: list[ContainerStatus] = []
        reached = True
        for c in init:
            message = run.unparsed.get(c.get("name", ""))
            if not reached:
                init_statuses.append(_waiting(c, "PodInitializing"))
            elif message is not None:
                init_statuses.append(_waiting(c, INVALID_IMAGE_NAME, message))
                reached = False
            else:
                init_statuses.append(self._init_status(c, at, now))
        return init_statuses, statuses

    def _main_status(self, run: _PodRun, container: dict[str, Any], ready: bool) -> ContainerStatus:
        """The first container's status, as its latest instance left it."""
        since = run.running_since
        if since is None and run.state is None:
            return _not_created(run, container)
        state = run.state or ContainerState(running=ContainerStateRunning(started_at=since))
        image = run.main_image
        return ContainerStatus(
            name=container.get("name", ""),
            state=state,
            last_state=run.last_state or _NO_STATE,
            ready=ready and since is not None,
            restart_count=max(run.instances - 1, 0),
            image=container.get("image", "") if image is None else self._normal(image),
            started=since is not None,
        )

    def _running(self, name: str, image: Any, since: datetime, now: datetime) -> ContainerStatus:
        """A running, ready container that never restarted, ``image`` as the spec writes it.

        Shared by the pods that have one alike, as most pods of a pool do (a
        stored object is never changed in place): the kubelet's most frequent
        write then builds none.
        """
        if now != self._shared_at:
            self._shared_at = now
            self._shared.clear()  # started before this second: no later pod shares it
        key = (name, image, since)
        status = self._shared.get(key)
        if status is None:
            status = self._shared[key] = ContainerStatus(
                name=name,
                state=ContainerState(running=ContainerStateRunning(started_at=since)),
                last_state=_NO_STATE,
                ready=True,
                image=self._normal(str(image or "")),
                started=True,
            )
        return status

    def _init_status(
        self, container: dict[str, Any], at: datetime, now: datetime
    ) -> ContainerStatus:
        if is_sidecar(container):
            return self._running(container.get("name", ""), container.get("image"), at, now)
        # A completed init container reads ready (the prober manager's rule), not started.
        return ContainerStatus(
            name=container.get("name", ""),
            state=ContainerState(
                terminated=ContainerStateTerminated(
                    exit_code=0, reason="Completed", started_at=at, finished_at=at
                )
            ),
            last_state=_NO_STATE,
            ready=True,
            image=self._normal(str(container.get("image", ""))),
            started=False,
        )

    def _write(
        self,
        node: _Node,
        run: _PodRun,
        phase: PodPhase,
        ready: bool,
        ready_reason: str,
        reason: str | None = None,
        message: str | None = None,
        resize: Literal["Deferred", "Infeasible"] | None = None,
        now: datetime | None = None,
    ) -> Op:
        """Write the pod's status (skipped when it would write what it wrote last).

        ``Ready`` carries the generation realised: the pod's own, unless a CPU
        resize of it is not carried out yet (``resize`` says why; a verdict once
        written stands until the resize is carried out or withdrawn). ``reason`` and
        ``message`` say why the first container waits; its state, and the other
        containers', are the run's (see :meth:`_container_statuses`). ``now``
        is the timestamp of the write, if the caller has it already.
        """
        last = run.last_status
        verdict = None if resize is not None or last is None else last[-1]
        if verdict is not None and run.resources_changed():
            # Still not carried out: the kubelet goes on reporting the verdict
            # whatever else it writes (a restart and a pull for a new image).
            resize = verdict
        generation = run.pod.metadata.generation
        if run.resources_changed():
            generation = run.realised
        # The container statuses are not in it: a crash loop's failures after the
        # first are not written (docs/fidelity.md), so that runs with one make the
        # API calls, and draw the latencies, they always did.
        sig = (phase, ready, ready_reason, reason, message, generation, run.ip, resize)
        if run.last_status == sig:
            return
        uid = run.uid
        ip = run.ip
        if now is None:
            now = self._stamp()
        init_statuses, statuses = self._container_statuses(run, ready, now)
        ready_message = "" if ready else message or ""
        gates = _unmet_gates(run.pod) if ready else None
        if gates is not None:
            # The containers are ready, the pod is not: a readiness gate's condition is
            # not True (no controller here sets one, so it stays so).
            ready, ready_reason, ready_message = False, "ReadinessGatesNotReady", gates
        if not ready and ready_reason == "ContainersNotReady":
            # The kubelet's words (generateContainersReadyCondition), as Go prints a []string.
            unready = " ".join(c.name for c in statuses if not c.ready)
            ready_message = f"containers with unready status: [{unready}]"

        def status(p: Pod) -> None:
            if p.metadata.uid != uid:
                raise _gone(p)
            conds = list(p.status.conditions)
            # The status's fields in one copy (not seven assignments, which
            # pydantic makes four calls each): the kubelet's most frequent write.
            p.status = p.status.model_copy(
                update={
                    "phase": phase,
                    "host_ip": node.host_ip,
                    "pod_ip": ip,
                    # A container's waiting reason is in its status, not the pod's
                    # (the kubelet sets a pod's reason only when it fails the pod).
                    "reason": None,
                    "message": None,
                    "resize": resize,
                    "conditions": conds,
                    "init_container_statuses": init_statuses,
                    "container_statuses": statuses,
                }
            )
            intern = self.ctx.intern_condition
            set_condition(
                conds,
                Condition(type="PodScheduled", status="True", last_transition_time=now),
                intern=intern,
            )
            set_condition(
                conds,
                Condition(
                    type="Ready",
                    status="True" if ready else "False",
                    # The kubelet gives a Ready pod's condition no reason or message
                    # (generateContainersReadyCondition): only an unready one says why.
                    reason="" if ready else ready_reason,
                    message=ready_message,
                    last_transition_time=now,
                    observed_generation=generation,
                ),
                intern=intern,
            )

        written = yield from self._patch_pod(
            node.client, run.pod, status, subresource="status", shallow=True
        )
        if written:
            run.last_status = sig
            if ready and generation is not None:
                run.realised = max(run.realised, generation)

    def _write_stopped(self, client: Client, pod: Pod) -> Op:
        """Write the status of a deleted pod whose containers the kubelet stopped.

        What the kubelet's last sync of the pod writes: each container that ran
        is terminated, killed at the end of the grace period (exit code 137,
        ``Error``), no container is ready, and the pod is ``Failed`` (``getPhase``
        of a terminal pod whose containers did not all succeed): Ready False,
        ``PodFailed``. A container that never ran still waits, and one that had
        ended stays as it ended.
        """
        uid = pod.metadata.uid
        now = self._stamp()

        def stopped(p: Pod) -> None:
            if p.metadata.uid != uid:
                raise _gone(p)
            st = p.status
            cond = find_condition(st.conditions, "Ready")
            conditions = list(st.conditions)
            set_condition(
                conditions,
                Condition(
                    type="Ready",
                    status="False",
                    reason="PodFailed",
                    message="",
                    last_transition_time=now,
                    observed_generation=cond.observed_generation if cond else None,
                ),
            )
            p.status = st.model_copy(
                update={
                    "phase": "Failed",
                    "conditions": conditions,
                    "container_statuses": _stopped(st.container_statuses, now),
                    "init_container_statuses": _stopped(st.init_container_statuses, now),
                }
            )

        yield from self._patch_pod(client, pod, stopped, subresource="status", shallow=True)

    def _fail_pod(self, client: Client, pod: Pod, reason: str, message: str) -> Op:
        uid = pod.metadata.uid
        now = self.ctx.now_dt().replace(microsecond=0)

        def fail(p: Pod) -> None:
            if p.metadata.uid != uid:
                raise _gone(p)
            st = p.status
            st.phase = "Failed"
            st.reason = reason
            st.message = message
            # Its containers no longer run as the kubelet last reported them: none is ready.
            st.container_statuses = _unready(st.container_statuses)
            st.init_container_statuses = _unready(st.init_container_statuses)
            cond = find_condition(st.conditions, "Ready")
            set_condition(
                st.conditions,
                Condition(
                    type="Ready",
                    status="False",
                    reason=reason,
                    message=message,
                    last_transition_time=now,
                    observed_generation=cond.observed_generation if cond else None,
                ),
            )

        yield from self._patch_pod(client, pod, fail, subresource="status")

    # -- acting faults ----------------------------------------------------------------

    def _on_fault(self, fault: Fault) -> None:
        if fault.kind not in ("node_loss", "pod_kill"):
            return
        now = self.ctx.now()
        if fault.window_closed(now):
            # Its moment has passed: as a consulted fault never fires outside its window.
            self.ctx.record("fault.window_closed", f"{fault.id} kind={fault.kind}")
            return
        start = fault.start or 0.0
        timer = _boundary_timer(self.ctx.env, max(start - now, 0.0))
        timer.callbacks.append(lambda _ev: self._act(fault))
        if fault.kind == "node_loss" and fault.duration is not None:
            # The end of its window, timed now, as its start is: a timer set only when
            # the loss acts falls after the stop of an advance under way since before
            # the start, so one landing on the end (past the start) left the node lost.
            end = _boundary_timer(self.ctx.env, start + fault.duration - now)
            end.callbacks.append(lambda _ev: self._end_loss(fault))

    def _on_faults_cleared(self, removed: list[Fault]) -> None:
        # Clearing a node_loss ends it (deleting the chaos resource recovers the node).
        for fault in removed:
            self._end_loss(fault)
        # Clearing an image_pull_slow lifts its limit from the pulls under way.
        if any(f.kind == "image_pull_slow" for f in removed):
            for node in self._nodes.values():
                for image, pull in list(node.pulls.items()):
                    self._unslow(node, image, pull)

    def _act(self, fault: Fault) -> None:
        faults = self.ctx.faults
        if not faults.in_force(fault):
            return  # cleared before it started
        # Its probability is drawn only if it has something to act on, as a consulted
        # fault draws only when it matches: one aimed at nothing leaves the run as it was.
        if fault.kind == "node_loss":
            nodes = self._loss_candidates(fault)
            if nodes and fault.fires(self.ctx.rng):
                self._node_loss(fault, nodes)
                return
        else:
            pods = self._kill_candidates(fault)
            if pods and fault.fires(self.ctx.rng):
                self._pod_kill(fault, pods)
        # A pod kill acts once, at its start; a fault that did not act has had its moment.
        faults.retire(fault)

    def _node_loss(self, fault: Fault, candidates: list[_Node]) -> None:
        targets = self._loss_targets(fault, candidates)
        for node in targets:
            fault.fired += 1
            node.held_by[id(fault)] = None
            if node.ready:
                self._lose(node, fault)
            else:
                # Lost already, by another node_loss: this one holds it too, so
                # the node stays lost until neither is in force (Chaos Mesh
                # recovers a target when no experiment selects it).
                self.ctx.record("node.loss_held", f"{node.name} fault={fault.id}")
        # Its window's end was timed when it was injected (see _on_fault).
        self._losses[id(fault)] = targets

    def _loss_candidates(self, fault: Fault) -> list[_Node]:
        """The nodes a node_loss may take: the one its selector names, else the ready ones."""
        name = fault.selector.get("node")
        if name is not None:
            found = self._nodes.get(name)
            return [] if found is None else [found]
        return [n for n in self._nodes.values() if n.ready]

    def _loss_targets(self, fault: Fault, candidates: list[_Node]) -> list[_Node]:
        """The nodes a node_loss takes of its ``candidates``: the one its selector names, else
        ``count`` (1) ready nodes at random (Chaos Mesh's ``mode: one`` or ``mode: fixed``
        with ``value``)."""
        if "node" in fault.selector:
            return candidates
        count = fault.count or 1
        if count == 1:
            return [self.ctx.rng.choice(candidates)]
        return self.ctx.rng.sample(candidates, min(count, len(candidates)))

    def _lose(self, node: _Node, fault: Fault) -> None:
        """Take ``node`` down: NotReady, its pods failed (NodeLost), its state forgotten."""
        node.ready = False
        self._messages.clear()
        node.epoch += 1
        self.ctx.record("node.lost", f"{node.name} fault={fault.id}")
        runs = list(node.runs.values())
        for uid in node.alloc:
            self._placed.pop(uid, None)
            self._reserved_from.pop(uid, None)
        node.reset()
        for run in runs:
            self._stop(run)
            node.lost[run.uid] = None
            pod = run.pod
            if pod.metadata.deletion_timestamp is not None:
                node.forcing[run.uid] = None
                self.ctx.env.process(self._remove_finalizer(self._lifecycle, pod))
            elif not run.dead and not _is_terminal(pod):
                self.ctx.env.process(
                    self._fail_pod(self._lifecycle, pod, "NodeLost", f"node {node.name} was lost")
                )

    def _end_loss(self, fault: Fault) -> None:
        """End ``fault``'s hold on its nodes (its window ended or it was cleared)."""
        for node in self._losses.pop(id(fault), ()):
            node.held_by.pop(id(fault), None)
            if not node.held_by:
                self._recover(node)

    def _recover(self, node: _Node) -> None:
        if node.ready:
            return
        node.ready = True
        node.images = dict.fromkeys(map(normalize_image, node.spec.images))
        node.forget_pulls()
        self.ctx.record("node.recovered", node.name)
        # A returning node has room: retry even if nothing was freed.
        self._room_grew()
        self._retry = True
        self._kick()

    def _kill_candidates(self, fault: Fault) -> list[tuple[_Node, _PodRun]]:
        """The running pods a pod_kill's selector matches, node by node."""
        candidates: list[tuple[_Node, _PodRun]] = []
        for node in self._nodes.values():
            if not node.ready:
                continue
            for run in node.runs.values():
                pod = run.pod
                if run.dead or run.terminating or pod.status.phase != "Running":
                    continue
                attrs = {
                    "template": pod.metadata.labels.get(keys.LABEL_SANDBOX_TEMPLATE),
                    "namespace": pod.metadata.namespace,
                    "node": node.name,
                }
                if fault.matches(attrs):
                    candidates.append((node, run))
        return candidates

    def _pod_kill(self, fault: Fault, candidates: list[tuple[_Node, _PodRun]]) -> None:
        if fault.count is not None and fault.count < len(candidates):
            candidates = self.ctx.rng.sample(candidates, fault.count)
        for node, run in candidates:
            fault.fired += 1
            run.dead = True
            self._stop(run)
            node.release_ip(run.ip)
            run.ip = None
            self._release(run.uid)
            pod = run.pod
            self.ctx.record(
                "pod.killed", f"{pod.metadata.namespace}/{pod.metadata.name} fault={fault.id}"
            )
            self.ctx.env.process(
                self._fail_pod(node.client, pod, "Killed", f"killed by {fault.id}")
            )
