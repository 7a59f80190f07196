"""A minimal ``v1`` ``Pod``: what the fake kubelet and scheduler need, and what users read."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import Field, ValidationInfo, model_validator

from pytest_kruise_agents.api.base import KubeModel, Time, from_manifest
from pytest_kruise_agents.api.keys import BLACKLISTED_PREFIXES
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.podfields import check_pod_spec_fields
from pytest_kruise_agents.api.problems import format_path, kind_and_value, show
from pytest_kruise_agents.api.quantity import cpu_millis, decode_quantity, memory_bytes
from pytest_kruise_agents.api.resources import (
    amount,
    container_resource_problem,
    is_hugepages,
    overcommit_allowed,
    quantity_value_problem,
)
from pytest_kruise_agents.api.validation import (
    FieldProblem,
    check_annotations,
    check_labels,
    check_string_keys,
    dns_label_problem,
)

__all__ = [
    "DEFAULT_CPU_REQUEST_MILLIS",
    "DEFAULT_MEMORY_REQUEST_BYTES",
    "IP",
    "ContainerState",
    "ContainerStateRunning",
    "ContainerStateTerminated",
    "ContainerStateWaiting",
    "ContainerStatus",
    "Pod",
    "PodRequests",
    "PodStatus",
    "check_template_metadata_kinds",
    "container_resources",
    "default_requests",
    "first_container_cpu",
    "first_container_image",
    "first_sync_statuses",
    "image_problem",
    "image_pull_policy",
    "is_sidecar",
    "normalize_image",
    "pod_create_error",
    "pod_requests",
    "pod_spec_change_problem",
    "pod_update_error",
    "qos_class",
    "set_first_container_cpu",
    "set_first_container_image",
    "validate_pod_spec",
    "validate_pod_template",
]


class ContainerStateWaiting(KubeModel):
    """``v1.ContainerStateWaiting``: why a container is not running (``ContainerCreating``,
    ``ErrImagePull``, ``ImagePullBackOff``, ``CrashLoopBackOff``...)."""

    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(KubeModel):
    """``v1.ContainerStateRunning``."""

    started_at: Time | None = None


class ContainerStateTerminated(KubeModel):
    """``v1.ContainerStateTerminated``: how a container ended (``exitCode`` is always written)."""

    exit_code: int = 0
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: Time | None = None
    finished_at: Time | None = None
    container_id: str | None = Field(default=None, alias="containerID")


class ContainerState(KubeModel):
    """``v1.ContainerState``: at most one of ``waiting``, ``running`` and ``terminated``."""

    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(KubeModel):
    """``v1.ContainerStatus``.

    The model's kubelet writes ``name``, ``state``, ``lastState``, ``ready``,
    ``restartCount``, ``image`` and ``started``; the other fields (runtime
    ids, image digests, allocated resources, mounts, the user) are read from
    a manifest (``kubectl get pod -o yaml`` of a real cluster) and kept as
    written. ``restartCount`` is the number of times the container was
    created again (a crash, an in-place image update); ``lastState`` the one
    before ``state``, whose ``terminated.finishedAt`` kubectl's RESTARTS
    column reads.
    """

    name: str
    state: ContainerState = Field(default_factory=ContainerState)
    last_state: ContainerState = Field(default_factory=ContainerState)
    ready: bool = False
    restart_count: int = Field(default=0, ge=0)
    image: str = ""
    started: bool | None = None
    container_id: str | None = Field(default=None, alias="containerID")
    image_id: str | None = Field(default=None, alias="imageID")
    allocated_resources: dict[str, Any] | None = None
    allocated_resources_status: list[dict[str, Any]] | None = None
    resources: dict[str, Any] | None = None
    volume_mounts: list[dict[str, Any]] | None = None
    user: dict[str, Any] | None = None
    stop_signal: str | None = None


class IP(KubeModel):
    """``v1.PodIP`` / ``v1.HostIP``: one address of a pod or of its node."""

    ip: str


class PodStatus(KubeModel):
    """``v1.PodStatus``.

    The model's kubelet writes ``phase``, ``podIP``, ``hostIP``, the
    conditions ``PodScheduled`` and ``Ready``, ``reason``, ``message``, the
    container statuses and ``resize``; the other fields are read from a
    manifest and kept as written. (A Pod's status is the API server's: an
    apply replaces it on a create and keeps the stored one on an update.)
    A pod condition's ``lastProbeTime`` is read and dropped: the model's
    pod conditions are ``metav1.Condition``, which has none, and no
    kubelet sets it.
    """

    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = "Pending"
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[IP] | None = Field(default=None, alias="podIPs")
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_ips: list[IP] | None = Field(default=None, alias="hostIPs")
    nominated_node_name: str | None = None
    qos_class: Literal["Guaranteed", "Burstable", "BestEffort"] | None = None
    start_time: Time | None = None
    observed_generation: int | None = None
    ephemeral_container_statuses: list[ContainerStatus] | None = None
    resource_claim_statuses: list[dict[str, Any]] | None = None
    conditions: list[Condition] = Field(default_factory=list)
    message: str | None = None
    reason: str | None = None
    """Why the pod as a whole is as it is (``NodeLost``, ``Killed``, ``OutOfcpu``); a
    container's waiting reason (``ImagePullBackOff``...) is in its status, not here."""
    init_container_statuses: list[ContainerStatus] = Field(default_factory=list)
    container_statuses: list[ContainerStatus] = Field(default_factory=list)
    resize: Literal["Proposed", "InProgress", "Deferred", "Infeasible"] | None = None
    """An in-place resize the kubelet has not carried out (``status.resize``, Kubernetes 1.27-1.32)."""

    @model_validator(mode="before")
    @classmethod
    def _drop_last_probe_times(cls, data: Any, info: ValidationInfo) -> Any:
        # ``v1.PodCondition`` has a ``lastProbeTime`` that ``kubectl get -o yaml``
        # prints (null from every kubelet); an apply of that output is accepted.
        if from_manifest(info) and isinstance(data, dict):
            conditions = data.get("conditions")
            if isinstance(conditions, list) and any(
                isinstance(c, dict) and "lastProbeTime" in c for c in conditions
            ):
                data = {
                    **data,
                    "conditions": [
                        {k: v for k, v in c.items() if k != "lastProbeTime"}
                        if isinstance(c, dict)
                        else c
                        for c in conditions
                    ],
                }
        return data


class Pod(KubeModel):
    """``v1`` ``Pod``; ``spec`` is the pod spec as a plain mapping (``nodeName`` set at bind)."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: dict[str, Any] = Field(default_factory=dict)
    status: PodStatus = Field(default_factory=PodStatus)


def is_sidecar(container: Any) -> bool:
    """Whether an init container is a sidecar (``restartPolicy: Always``): it keeps running."""
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


def first_sync_statuses(
    spec: dict[str, Any],
) -> tuple[list[ContainerStatus], list[ContainerStatus]]:
    """``(initContainerStatuses, containerStatuses)`` of a pod none of whose containers was created.

    What the kubelet's first sync of a pod writes (``convertToAPIContainerStatuses``'
    defaults): every container waiting, ``ContainerCreating``, or ``PodInitializing``
    (init containers too) when the pod has init containers; not started, not ready,
    its image as the spec writes it.
    """
    init = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    reason = "PodInitializing" if init else "ContainerCreating"
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return [_waiting(c, "PodInitializing") for c in init], [_waiting(c, reason) for c in containers]


def _waiting(container: dict[str, Any], reason: str) -> ContainerStatus:
    return ContainerStatus(
        name=str(container.get("name") or ""),
        state=ContainerState(waiting=ContainerStateWaiting(reason=reason)),
        image=str(container.get("image") or ""),
        started=False,
    )


def first_container_image(template: dict[str, Any] | None) -> str | None:
    """Image of the first container of a pod template (or pod spec wrapped as a template)."""
    if not template:
        return None
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        return None
    image = containers[0].get("image")
    return str(image) if image is not None else None


def set_first_container_image(template: dict[str, Any], image: str) -> None:
    """Set the image of the first container, in place."""
    template["spec"]["containers"][0]["image"] = image


def first_container_cpu(template: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The CPU ``(request, limit)`` of a pod template's first container, as written; None where unset."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    if not containers or not isinstance(containers[0], dict):
        return None, None
    res = containers[0].get("resources")
    if not isinstance(res, dict):
        return None, None
    req = res.get("requests")
    lim = res.get("limits")
    request = req.get("cpu") if isinstance(req, dict) else None
    limit = lim.get("cpu") if isinstance(lim, dict) else None
    return (
        str(request) if request is not None else None,
        str(limit) if limit is not None else None,
    )


def set_first_container_cpu(
    template: dict[str, Any], request: str | None, limit: str | None
) -> None:
    """Set the first container's CPU request and limit, in place (``None`` leaves one as it is)."""
    container = template["spec"]["containers"][0]
    res = container.setdefault("resources", {})
    for part, value in (("requests", request), ("limits", limit)):
        if value is not None:
            res[part] = {**(res.get(part) or {}), "cpu": value}


def default_requests(spec: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes' pod defaulting (``SetDefaults_Pod``): a limit with no request requests it,
    for every resource (CPU, memory, ``ephemeral-storage``, ``nvidia.com/gpu``...).

    Returns ``spec`` itself when nothing is missing, else a copy sharing all it
    does not change (a stored pod may share its spec with its sandbox's template).
    """
    out = spec
    for part in ("initContainers", "containers"):
        containers = spec.get(part)
        if not isinstance(containers, list):
            continue
        changed = list(containers)
        for i, c in enumerate(containers):
            res = c.get("resources") if isinstance(c, dict) else None
            limits = res.get("limits") if isinstance(res, dict) else None
            if not isinstance(res, dict) or not isinstance(limits, dict):
                continue
            requests = res.get("requests")
            have = requests if isinstance(requests, dict) else {}
            missing = {k: v for k, v in limits.items() if k not in have}
            if missing:
                changed[i] = {**c, "resources": {**res, "requests": {**have, **missing}}}
        if changed != containers:
            if out is spec:
                out = dict(spec)
            out[part] = changed
    return out


def qos_class(template: dict[str, Any] | None) -> Literal["Guaranteed", "Burstable", "BestEffort"]:
    """The pod's QoS class, from its containers' (and init containers') requests and limits.

    Kubernetes' rule: no request or limit anywhere is ``BestEffort``; every
    container limiting both CPU and memory, with any request equal to its
    limit, is ``Guaranteed``; anything else is ``Burstable``.
    """
    spec = (template or {}).get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = (c.get("resources") if isinstance(c, dict) else None) or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for name, parse in (("cpu", cpu_millis), ("memory", memory_bytes)):
            r, li = req.get(name), lim.get(name)
            if r is not None or li is not None:
                any_set = True
            if li is None or (r is not None and parse(str(r)) != parse(str(li))):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _request_over_limit(spec: dict[str, Any]) -> tuple[tuple[int | str, ...], str] | None:
    """Where and why a container's request is above its limit, or ``None``."""
    for i, c in enumerate(spec.get("containers") or []):
        res = (c.get("resources") if isinstance(c, dict) else None) or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for name, parse in (("cpu", cpu_millis), ("memory", memory_bytes)):
            r, li = req.get(name), lim.get(name)
            if r is not None and li is not None and parse(str(r)) > parse(str(li)):
                return (
                    ("containers", i, "resources", "requests"),
                    f'Invalid value: "{r}": must be less than or equal to {name} limit of {li}',
                )
    return None


def pod_create_error(spec: dict[str, Any]) -> str | None:
    """Why the API server refuses to create a pod of (defaulted) ``spec``, or ``None``.

    The resource rule a pod's creator can break where its template passed:
    a request above its limit (a claim's in-place CPU written into a
    sandbox's template, ``ValidatePodCreate``'s resource check). The answer
    is ``"<field>: <reason>"``, as :func:`pod_update_error`'s.
    """
    try:
        over = _request_over_limit(spec)
    except ValueError as err:
        return f"spec.containers: {err}"
    if over is None:
        return None
    loc, why = over
    return f"{format_path(('spec', *loc))}: {why}"


def pod_update_error(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why the API server refuses to change pod spec ``old`` into ``new``, or ``None``.

    The resource rules of an in-place resize: a request may not exceed its
    limit, and the QoS class may not change (``Pod QoS is immutable``).
    """
    try:
        over = _request_over_limit(new)
        if over is not None:
            loc, why = over
            return f"{format_path(('spec', *loc))}: {why}"
        was, now = qos_class({"spec": old}), qos_class({"spec": new})
    except ValueError as err:
        return f"spec.containers: {err}"
    if was != now:
        return f'spec: Invalid value: "{now}": Pod QoS is immutable (was {was})'
    return None


DEFAULT_CPU_REQUEST_MILLIS = 100
"""CPU kube-scheduler's scoring counts for a container that requests none (``DefaultMilliCPURequest``)."""
DEFAULT_MEMORY_REQUEST_BYTES = 200 * 1024 * 1024
"""Memory kube-scheduler's scoring counts for a container that requests none (``DefaultMemoryRequest``)."""


Scalars = tuple[tuple[str, int], ...]
"""Requests of resources other than CPU and memory, by name in name order, each a whole
number of its unit (see :func:`~pytest_kruise_agents.api.resources.amount`); none of zero."""


class PodRequests(NamedTuple):
    """What a pod asks of a node: its requests, and the larger figures scoring counts."""

    cpu: int
    """Millicores, for fit (kube-scheduler's ``calculateResource``)."""
    memory: int
    """Bytes, for fit."""
    scored_cpu: int
    """Millicores for scoring: a container with no CPU request counts 100m (``NonZeroRequested``)."""
    scored_memory: int
    """Bytes for scoring: a container with no memory request counts 200Mi."""
    scalars: Scalars = ()
    """Every other resource asked for (``ephemeral-storage``, ``hugepages-2Mi``, extended
    resources such as ``nvidia.com/gpu``), aggregated as CPU is; for fit only."""


def _container_ask(container: Any) -> tuple[int | None, int | None, bool]:
    """One container's (CPU millicores, memory bytes) requests, ``None`` where it asks none,
    and whether it asks for any other resource.

    A limit stands in for a missing request, as the API server's defaulting makes it.
    """
    res = (container.get("resources") if isinstance(container, dict) else None) or {}
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    cpu = mem = None
    known = 0
    if "cpu" in req or "cpu" in lim:
        cpu = cpu_millis(str(req.get("cpu", lim.get("cpu"))))
        known += ("cpu" in req) + ("cpu" in lim)
    if "memory" in req or "memory" in lim:
        mem = memory_bytes(str(req.get("memory", lim.get("memory"))))
        known += ("memory" in req) + ("memory" in lim)
    return cpu, mem, len(req) + len(lim) > known


def _aggregate(
    asks: list[tuple[int, int, bool]], init: list[tuple[int, int, bool]]
) -> tuple[int, int]:
    """kube-scheduler's ``AggregateContainerRequests`` over (cpu, memory, sidecar) asks.

    Init containers run one at a time before the containers, so the pod needs the
    largest of them or the containers' sum, whichever is more, per resource. A
    sidecar (an init container with ``restartPolicy: Always``) keeps running: it
    adds to the containers' sum and to every init container started after it.
    """
    cpu = sum(a[0] for a in asks)
    mem = sum(a[1] for a in asks)
    side_cpu = side_mem = init_cpu = init_mem = 0
    for c, m, sidecar in init:
        if sidecar:
            cpu, mem = cpu + c, mem + m
            side_cpu, side_mem = side_cpu + c, side_mem + m
            c, m = side_cpu, side_mem
        else:
            c, m = c + side_cpu, m + side_mem
        init_cpu, init_mem = max(init_cpu, c), max(init_mem, m)
    return max(cpu, init_cpu), max(mem, init_mem)


def pod_requests(template: dict[str, Any] | None) -> PodRequests:
    """What a pod template (or a pod spec wrapped as one) asks of a node; ``ValueError`` for a
    malformed quantity.

    ``cpu`` and ``memory`` decide fit (kube-scheduler's and the kubelet's admission
    alike): the containers' summed requests, or the largest init container (beside
    the sidecars started before it) where that is more. ``scored_cpu`` and
    ``scored_memory`` are the same sum with a container's missing request counted
    as 100m CPU or 200Mi memory: LeastAllocated scoring uses them so that pods
    asking nothing still spread (a request set to zero stays zero).
    """
    spec = (template or {}).get("spec") or {}
    fit: list[tuple[int, int, bool]] = []
    scored: list[tuple[int, int, bool]] = []
    init_fit: list[tuple[int, int, bool]] = []
    init_scored: list[tuple[int, int, bool]] = []
    others = False
    for part, into, into_scored in (
        ("containers", fit, scored),
        ("initContainers", init_fit, init_scored),
    ):
        for container in spec.get(part) or []:
            cpu, mem, other = _container_ask(container)
            others = others or other
            sidecar = (
                part == "initContainers"
                and isinstance(container, dict)
                and container.get("restartPolicy") == "Always"
            )
            into.append((cpu or 0, mem or 0, sidecar))
            into_scored.append(
                (
                    DEFAULT_CPU_REQUEST_MILLIS if cpu is None else cpu,
                    DEFAULT_MEMORY_REQUEST_BYTES if mem is None else mem,
                    sidecar,
                )
            )
    return PodRequests(
        *_aggregate(fit, init_fit),
        *_aggregate(scored, init_scored),
        _scalars(spec) if others else (),
    )


def _scalar_asks(container: Any) -> dict[str, int]:
    """One container's requests of resources other than CPU and memory (a limit standing in)."""
    res = (container.get("resources") if isinstance(container, dict) else None) or {}
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    out: dict[str, int] = {}
    for values in (lim, req):  # a request overrides its limit
        for name, value in values.items():
            if name not in ("cpu", "memory"):
                out[name] = amount(value)
    return out


def _scalars(spec: dict[str, Any]) -> Scalars:
    """The pod's :attr:`PodRequests.scalars`: ``_aggregate`` per resource."""
    asks = [_scalar_asks(c) for c in spec.get("containers") or []]
    init = [(_scalar_asks(c), is_sidecar(c)) for c in spec.get("initContainers") or []]
    names = {n for a in asks for n in a} | {n for a, _ in init for n in a}
    if not names:
        return ()
    out = []
    for name in sorted(names):
        total, _ = _aggregate(
            [(a.get(name, 0), 0, False) for a in asks],
            [(a.get(name, 0), 0, sidecar) for a, sidecar in init],
        )
        if total:
            out.append((name, total))
    return tuple(out)


def container_resources(template: dict[str, Any] | None) -> tuple[int, int]:
    """The (CPU millicores, memory bytes) a pod template asks of a node, for fit.

    The ``cpu`` and ``memory`` of :func:`pod_requests`: the containers' summed
    requests (a limit standing in for a missing request), or the largest init
    container where that is more.
    """
    asks = pod_requests(template)
    return asks.cpu, asks.memory


_RESTART_POLICIES = ("Always", "OnFailure", "Never")


def validate_pod_template(
    template: dict[str, Any], *, reserved_keys: bool = True, request_limits: bool = True
) -> None:
    """Raise :class:`FieldProblem` (a ``ValueError``) for a pod template the API server refuses.

    The checks of Kubernetes' pod template validation that matter here:
    string keys throughout (JSON has no other), label and annotation keys,
    label values, a ``spec`` with at least one container, containers (and
    init containers) with a unique DNS-1123 label as name and an image, a
    known ``restartPolicy``, resource quantities that parse and are not
    negative, and no request above its limit. ``loc`` is relative to the
    template.

    ``reserved_keys`` also refuses ``e2b.agents.kruise.io/`` label and
    annotation keys, as the SandboxSet and SandboxTemplate webhooks do (a
    Sandbox has no webhook, and its pod may carry such a key).
    ``request_limits`` refuses a request above its limit; a Sandbox's
    template may hold one (a claim's in-place resize writes it there, and
    the API server refuses the pod's resize, not the Sandbox).
    """
    check_string_keys(template)
    _check_template_metadata(template.get("metadata"), reserved_keys=reserved_keys)
    spec = template.get("spec")
    if not isinstance(spec, dict):
        why = "required value" if spec is None else f"must be an object, got {show(spec)}"
        raise FieldProblem(("spec",), why)
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in _RESTART_POLICIES:
        raise FieldProblem(
            ("spec", "restartPolicy"),
            f"unsupported value {show(policy)}: must be 'Always', 'OnFailure' or 'Never'",
        )
    containers = spec.get("containers")
    if containers is not None and not isinstance(containers, list):
        raise FieldProblem(("spec", "containers"), f"must be a list, got {show(containers)}")
    if not containers:
        raise FieldProblem(("spec", "containers"), "must list at least one container")
    init = spec.get("initContainers")
    if init is not None and not isinstance(init, list):
        raise FieldProblem(("spec", "initContainers"), f"must be a list, got {show(init)}")
    _check_node_selector(spec.get("nodeSelector"))
    seen: set[str] = set()
    # Containers first, as ``ValidatePodSpec`` does: a name an init container
    # shares with a container is the init container's error (validateInitContainers).
    for part, items in (("containers", containers), ("initContainers", init or [])):
        for i, container in enumerate(items):
            _check_container(container, ("spec", part, i), seen)
    over = _request_over_limit(spec) if request_limits else None
    if over is not None:
        loc, why = over
        raise FieldProblem(("spec", *loc), why)


def _check_node_selector(selector: Any) -> None:
    """``spec.nodeSelector``: a map of label keys to label values, strings all
    (``ValidatePodSpec``'s ``ValidateLabels``; a ``true`` or ``1`` is refused at decoding)."""
    if selector is None:
        return
    loc = ("spec", "nodeSelector")
    if not isinstance(selector, dict):
        raise FieldProblem(loc, f"must be an object, got {show(selector)}")
    for key, value in selector.items():
        if not isinstance(value, str):
            raise FieldProblem((*loc, key), f"must be a string, got {kind_and_value(value)}")
    check_labels(selector, loc)


def validate_pod_spec(spec: dict[str, Any]) -> None:
    """Raise :class:`FieldProblem` for a Pod's ``spec`` the API server refuses (``ValidatePodSpec``).

    A Pod's spec is a pod template's spec: the same checks, with ``loc``
    relative to the Pod (``("spec", "containers", 0, "image")``), after the
    strict decoding of ``v1.Pod``'s schema, which refuses an unknown field of
    the spec, a container or its resources (a template's spec is schemaless).
    """
    check_pod_spec_fields(spec)
    validate_pod_template({"spec": spec}, reserved_keys=False)


_UPDATABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative),"
    "`spec.containers[*].resources` (for CPU/memory only)"
)


def pod_spec_change_problem(
    old: dict[str, Any], new: dict[str, Any], *, bind: bool = False
) -> tuple[str, str] | None:
    """``(field, reason)`` if pod spec ``old`` may not become ``new`` (``ValidatePodUpdate``), else ``None``.

    A pod's spec is immutable but for container images, a shorter
    ``activeDeadlineSeconds``, added tolerations, a negative
    ``terminationGracePeriodSeconds`` set to 1, and the CPU and memory of
    its containers (the in-place resize the model follows, whose own rules
    are :func:`pod_update_error`'s). ``spec.nodeName`` is set by binding
    only: ``bind`` lets an unset one be set (the model's scheduler binds
    with a plain write).
    """
    if bind and not old.get("nodeName") and _only_bound(old, new):
        return None  # the scheduler's bind, the pod update of every pod: checked cheaply
    deadline = _deadline_problem(old.get("activeDeadlineSeconds"), new.get("activeDeadlineSeconds"))
    if deadline is not None:
        return "spec.activeDeadlineSeconds", deadline
    kept = [t for t in old.get("tolerations") or [] if t not in (new.get("tolerations") or [])]
    if kept:
        return "spec.tolerations", "Forbidden: existing toleration can not be modified"
    before, after = _immutable_part(old), _immutable_part(new)
    grace_old, grace_new = (
        old.get("terminationGracePeriodSeconds"),
        new.get("terminationGracePeriodSeconds"),
    )
    if isinstance(grace_old, int) and grace_old < 0 and grace_new == 1:
        after["terminationGracePeriodSeconds"] = grace_old
    if bind and not old.get("nodeName"):
        after.pop("nodeName", None)
        before.pop("nodeName", None)
    if before == after:
        return None
    changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    return "spec", (
        f"Forbidden: pod updates may not change fields other than {_UPDATABLE} "
        f"(changed: {', '.join('spec.' + k for k in changed)})"
    )


def _only_bound(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` is ``old`` with ``nodeName`` set and nothing else changed."""
    if len(new) != len(old) + ("nodeName" not in old):
        return False
    for key, value in new.items():
        if key != "nodeName" and (key not in old or (old[key] is not value and old[key] != value)):
            return False
    return True


def _deadline_problem(old: Any, new: Any) -> str | None:
    if new is None:
        return (
            None
            if old is None
            else "Invalid value: must not update from a positive integer to nil value"
        )
    if isinstance(new, int) and not isinstance(new, bool) and not 0 <= new <= 2**31 - 1:
        return f"Invalid value: {new}: must be between 0 and {2**31 - 1}, inclusive"
    if old is not None and isinstance(new, int) and isinstance(old, int) and old < new:
        return f"Invalid value: {new}: must be less than or equal to previous value"
    return None


def _immutable_part(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` without what an update may change (compared, not stored)."""
    out = {
        k: v
        for k, v in spec.items()
        if k not in ("activeDeadlineSeconds", "tolerations", "containers", "initContainers")
    }
    for part, resizable in (("containers", True), ("initContainers", False)):
        items = spec.get(part)
        if not isinstance(items, list):
            if items is not None:
                out[part] = items
            continue
        out[part] = [_immutable_container(c, resizable) for c in items]
    return out


def _immutable_container(container: Any, resizable: bool) -> Any:
    if not isinstance(container, dict):
        return container
    out = {k: v for k, v in container.items() if k not in ("image", "resources")}
    res = container.get("resources")
    if not resizable or not isinstance(res, dict):
        if res is not None:
            out["resources"] = res
        return out
    kept: dict[str, Any] = {}
    for part, values in res.items():
        if part in ("requests", "limits") and isinstance(values, dict):
            rest = {k: v for k, v in values.items() if k not in ("cpu", "memory")}
            if rest:
                kept[part] = rest
        else:
            kept[part] = values
    if kept:
        out["resources"] = kept
    return out


def check_template_metadata_kinds(meta: Any) -> None:
    """Raise :class:`FieldProblem` unless a pod template's ``metadata`` labels and annotations are maps of strings.

    The pod made from the template carries them: a number there is refused
    when the pod is created (and would stop the simulated controller).
    ``loc`` is relative to the template.
    """
    # Offending values are named with their kind, as the object's own metadata names them:
    # YAML 1.1 reads `n` as false, which "got False" would not explain to its writer.
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise FieldProblem(("metadata",), f"must be an object, got {kind_and_value(meta)}")
    check_string_keys(meta, ("metadata",))
    for where in ("labels", "annotations"):
        values = meta.get(where)
        if values is None:
            continue
        loc = ("metadata", where)
        if not isinstance(values, dict):
            raise FieldProblem(loc, f"must be an object, got {kind_and_value(values)}")
        for key, value in values.items():
            if not isinstance(value, str):
                raise FieldProblem((*loc, key), f"must be a string, got {kind_and_value(value)}")


def _check_template_metadata(meta: Any, *, reserved_keys: bool) -> None:
    check_template_metadata_kinds(meta)
    if meta is None:
        return
    for where, check in (("labels", check_labels), ("annotations", check_annotations)):
        values = meta.get(where)
        if values is None:
            continue
        loc = ("metadata", where)
        reserved = [key for key in values if key.startswith(BLACKLISTED_PREFIXES[1])]
        if reserved and reserved_keys:
            raise FieldProblem(
                (*loc, reserved[0]), f"key uses reserved prefix {BLACKLISTED_PREFIXES[1]!r}"
            )
        check(values, loc)


def _check_container(container: Any, loc: tuple[int | str, ...], seen: set[str]) -> None:
    """One container: a unique DNS-1123 label as name, an image, and sound resources."""
    if not isinstance(container, dict):
        raise FieldProblem(loc, f"must be an object, got {show(container)}")
    name = container.get("name")
    if not name or not isinstance(name, str):
        raise FieldProblem((*loc, "name"), "required value" if not name else "must be a string")
    why = dns_label_problem(name, what="label (a container name)")
    if why is not None:
        raise FieldProblem((*loc, "name"), why)
    if name in seen:
        # Names are unique across containers and init containers, as in Kubernetes.
        raise FieldProblem((*loc, "name"), f"duplicate value {name!r}")
    seen.add(name)
    why = image_problem(container.get("image"))
    if why is not None:
        raise FieldProblem((*loc, "image"), why)
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in _PULL_POLICIES:
        # The kubelet reads it (see image_pull_policy): a value it cannot act on is refused,
        # as ValidatePodSpec does.
        raise FieldProblem(
            (*loc, "imagePullPolicy"),
            f"unsupported value {show(policy)}: must be 'Always', 'IfNotPresent' or 'Never'",
        )
    res = container.get("resources")
    if res is None:
        return
    if not isinstance(res, dict):
        raise FieldProblem((*loc, "resources"), f"must be a mapping, got {show(res)}")
    for part in ("limits", "requests"):
        values = res.get(part)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise FieldProblem((*loc, "resources", part), f"must be a mapping, got {show(values)}")
        for resource, value in values.items():
            where = (*loc, "resources", part, resource)
            why = container_resource_problem(resource)
            if why is not None:
                raise FieldProblem(where, why)
            _check_quantity(value, where)
            why = quantity_value_problem(resource, value)
            if why is not None:
                raise FieldProblem(where, why)
    _check_not_overcommitted(res, (*loc, "resources"))


def _check_not_overcommitted(res: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    """Extended resources and huge pages: a request needs a limit, and equals it; huge pages
    need a CPU or memory request or limit beside them."""
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    for name, value in req.items():
        if overcommit_allowed(name):
            continue
        if name not in lim:
            raise FieldProblem(
                (*loc, "limits"),
                "Required value: Limit must be set for non overcommitable resources",
            )
        if decode_quantity(str(value)) != decode_quantity(str(lim[name])):
            raise FieldProblem(
                (*loc, "requests"),
                f'Invalid value: "{value}": must be equal to {name} limit of {lim[name]}',
            )
    names = {*req, *lim}
    if any(is_hugepages(n) for n in names) and not names & {"cpu", "memory"}:
        raise FieldProblem(loc, "Forbidden: HugePages require cpu or memory")


def image_problem(image: Any) -> str | None:
    """Why ``image`` is no container image reference Kubernetes takes, or ``None``.

    A non-empty string without leading or trailing blanks, as pod validation
    wants; what the string names is the kubelet's business (a wrong name is
    an image pull failure, not a refused object).
    """
    if image is None or image == "":
        return "required value"
    if not isinstance(image, str):
        return f"must be a string, got {kind_and_value(image)}"
    if image != image.strip():
        return f"must not have leading or trailing whitespace, got {show(image)}"
    return None


_DEFAULT_DOMAIN = "docker.io"

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
_PULL_POLICIES: tuple[PullPolicy, ...] = ("Always", "IfNotPresent", "Never")


def image_pull_policy(container: dict[str, Any]) -> PullPolicy:
    """The container's ``imagePullPolicy``, defaulted as the API server defaults it.

    ``SetDefaults_Container``: a policy given is kept; else an image whose tag
    is ``latest``, or that has neither tag nor digest, is ``Always``, and any
    other ``IfNotPresent`` (a digest alone names one image for good).
    """
    policy = container.get("imagePullPolicy")
    for known in _PULL_POLICIES:
        if policy == known:
            return known
    image = str(container.get("image") or "")
    name, at, _digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = name[colon + 1 :] if colon > slash else ""
    return "Always" if tag == "latest" or (not tag and not at) else "IfNotPresent"


def normalize_image(image: str) -> str:
    """The image an image reference names, as the container runtime's image store keys it.

    What ``docker.io/distribution``'s ``ParseNormalizedNamed`` and the kubelet's
    default tag make of it: a name whose first part is no registry (no ``.`` or
    ``:``, not ``localhost``, lower case) is on ``docker.io``, an official image
    there is under ``library/``, and a reference with neither tag nor digest is
    ``:latest``. A digest names the image by itself: no tag is added, and one
    given beside it is dropped. A reference this cannot read comes back as it is
    (its pull fails, which the model does not tell apart).
    """
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    if not name:
        return image
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(ch in first for ch in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, path = _DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = _DEFAULT_DOMAIN
    if domain == _DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if at:
        return f"{domain}/{path}@{digest}"
    return f"{domain}/{path}:{tag or 'latest'}"


def _check_quantity(value: Any, loc: tuple[int | str, ...]) -> None:
    # A negative request would let the scheduler overcommit a node: the API
    # server refuses it (ValidateResourceQuantityValue), and so do we.
    try:
        amount = decode_quantity(str(value)) if not isinstance(value, bool) else None
    except ValueError as err:
        raise FieldProblem(loc, str(err)) from None
    if amount is None:
        raise FieldProblem(loc, f"invalid quantity {show(value)}")
    if amount < 0:
        raise FieldProblem(loc, f"must be greater than or equal to 0, got {show(value)}")
