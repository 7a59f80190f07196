"""The scenario file: cluster, pools, workloads, faults, duration, seed and replications.

A scenario is YAML validated by the pydantic models below
(:mod:`simulator.planning.loading` reads files). Every problem is one
:class:`~simulator.planning.errors.ScenarioError` that names the file (and
line, when known), the field path (``workloads[0].arrivals.rate``) and the
reason. Durations accept seconds or Go-style strings (``90s``, ``5m``,
``1h30m``); rates accept numbers per second or ``"300/min"``.

A minimal scenario::

    name: steady
    duration: 10m
    cluster: {nodes: 8}
    pools:
      - {name: base, replicas: 20}
    workloads:
      - template: base
        arrivals: {kind: poisson, rate: 2}
        hold: exp(2m)

Times inside a scenario (bursts, faults) count from the start of the
workload, which begins once every pool is full; the first ``warmup`` seconds
are simulated but left out of the statistics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pytest_kruise_agents.api.e2b import CREATE_TIMEOUT_BOUNDS
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import load_manifest
from pytest_kruise_agents.api.quantity import (
    cpu_millis,
    positive_cpu,
    positive_memory,
    quantity_text,
)
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.validation import dns_subdomain_problem
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.extensions import (
    CreateRequest,
    check_create_request,
    is_image_reference,
    parse_create_metadata,
)
from pytest_kruise_agents.claiming.modification import (
    ClaimOptions,
    InitRuntimeRequest,
    RuntimeInitNames,
    validate_claim_options,
)
from simulator.cluster import DEFAULT_USER, default_nodes
from simulator.context import CLOCK_END, DEFAULT_EPOCH, check_fault_window
from simulator.faults import (
    Fault,
    FaultCode,
    FaultKind,
    Probability,
    Selector,
    check_latency,
    check_node_names,
    check_window_opens,
)
from simulator.latency import Seconds, parse_latency
from simulator.nodes import MAX_NODES, NodeSpec, too_many_nodes
from simulator.planning.arrivals import MAX_ARRIVALS_PER_RUN, Arrivals, TraceArrivals
from simulator.planning.errors import FieldError, PathError
from simulator.planning.holds import Hold, parse_hold
from simulator.planning.messages import first_problem, format_path
from simulator.profile import DEFAULT_PROFILE, PROFILES, Profile, get_profile

__all__ = [
    "MAX_DEFAULT_SAMPLE_INTERVAL_S",
    "MAX_DRAIN_SAMPLES",
    "MAX_SAMPLES_PER_RUN",
    "POOL_FILL_TIMEOUT_S",
    "SAMPLES_PER_RUN",
    "ClaimSpec",
    "ClusterSpec",
    "FaultSpec",
    "Goals",
    "NodeGroup",
    "PoolSpec",
    "Scenario",
    "WorkloadSpec",
]


SAMPLES_PER_RUN = 600
"""The samples a run takes by default (warm-up and duration), at most one a minute."""

MAX_DEFAULT_SAMPLE_INTERVAL_S = 60.0
"""The longest default ``sample_interval``: past 10 h of warm-up and duration, one sample a minute.

A SandboxClaim sandbox is released, and a claim's end noticed, at the first
sample step after it is due (the run reaps between steps), and the drain is
checked at the steps: a coarser default would keep sandboxes past their hold,
and so fill the pools of a long run with sandboxes that should be gone.
"""

MAX_SAMPLES_PER_RUN = 100_000
"""The most samples a run may take in its warm-up and duration.

The drain adds the steps until the claims in flight settle (a few, as a rule;
at most ``drain / sample_interval``): it is the longest the run waits, not how
long it runs.

About 70 days at one a minute; a sample costs about 60 µs and 850 bytes (for
the run, and again in its result): 100,000 take some 6 s and 85 MB per run, a
``plan`` holds every run's. More would make a long, nearly idle run cost what
its virtual time costs, not what its claims do (20,000 h at one a minute: 1 GB
and 2.5 minutes for 55 claims).
"""

MAX_DRAIN_SAMPLES = 1_000_000
"""The most sample steps the drain may take (``drain / sample_interval``).

The drain ends at the first step after the claims in flight settle, so it is
short as a rule; a run whose claims never settle takes all of it, and a drain of
30 days at 10 ms (259 million steps, over 200 GB of samples) would never end.
"""


_ROUND_OFF = 1e-9
"""Relative slack of the sample count's check: ``57700 / 0.577`` is 100000.00000000001."""

POOL_FILL_TIMEOUT_S = 6 * 3600.0
"""Virtual time a pool may take to fill before the run gives up (a capacity problem)."""

_CLOCK_END_S = (CLOCK_END - DEFAULT_EPOCH).total_seconds()
"""Where a run's clock stops, in its virtual seconds: the runner's clusters start at the
default epoch."""


def _round_down(x: float) -> float:
    """``x`` rounded down to 3 significant digits (a bound that, shown, still holds)."""
    scale = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.floor(x / scale) * scale


def _round_up(x: float) -> float:
    """``x`` rounded up to 3 significant digits (a bound that, shown, still holds)."""
    scale = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.ceil(x / scale) * scale


class _Model(BaseModel):
    # Strict: a value keeps the kind YAML gave it. pydantic would otherwise read
    # ``true`` as 1 replica, ``1`` as a true switch and the text ``'3'`` as 3.
    # Durations, rates, shares, quantities and latencies still take text: their
    # own parsers read it.
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


def _check_knob_kind(knob: str, value: Any) -> None:
    """Refuse a knob value of the wrong kind (the profile itself would read ``true`` as 1)."""
    field = Profile.model_fields.get(knob)
    if field is None or field.annotation is None or Profile.knob_problem(knob) is not None:
        return  # no knob (unknown, or the profile's name): the profile says why
    try:
        TypeAdapter(field.annotation).validate_python(value, strict=True)
    except ValidationError as exc:
        raise FieldError(("knobs", knob), first_problem(exc.errors())[1]) from None


class NodeGroup(_Model):
    """``count`` identical nodes named ``<name>-1`` ... ``<name>-<count>``."""

    name: str = Field(default="node", min_length=1)
    count: int = Field(default=1, ge=1, le=MAX_NODES)
    cpu: str = "64"
    memory: str = "256Gi"
    max_pods: int = Field(default=250, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of these nodes, beside the kubelet's own (``kubernetes.io/hostname``,
    ``kubernetes.io/os: linux``, ``kubernetes.io/arch: amd64``): what a pool's
    ``nodeSelector`` matches."""
    allocatable: dict[str, str] = Field(default_factory=dict)
    """Other resources of each node: extended resources (``nvidia.com/gpu: 8``),
    ``ephemeral-storage``."""
    images: list[str] = Field(default_factory=list)
    """Images already present on these nodes (no pull for them)."""

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        return quantity_text(value)

    @field_validator("allocatable", mode="before")
    @classmethod
    def _quantities(cls, value: Any) -> Any:
        return {k: quantity_text(v) for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check(self) -> NodeGroup:
        # Node names are DNS-1123 subdomains (ValidateNodeName); a group's nodes
        # differ only in their number, so the last (the longest) speaks for all.
        last = f"{self.name}-{self.count}"
        why = dns_subdomain_problem(last)
        if why is not None:
            raise FieldError("name", f"{why} (its nodes are named {self.name}-1 ... {last})")
        NodeSpec(
            name=self.name,
            cpu=self.cpu,
            memory=self.memory,
            max_pods=self.max_pods,
            labels=dict(self.labels),
            allocatable=dict(self.allocatable),
            images=tuple(self.images),
        )
        return self


class ClusterSpec(_Model):
    """The simulated cluster: profile, nodes, and latency or knob overrides."""

    profile: str = DEFAULT_PROFILE
    """A built-in profile: ``openkruise-head`` or ``openkruise-v0.3.0``."""
    nodes: int | list[NodeGroup] = 8
    """A node count (64 CPU, 256Gi, 250 pods each) or a list of node groups."""
    latencies: dict[str, Any] = Field(default_factory=dict)
    """Latency overrides by name, e.g. ``image.pull: lognormal(median=5s, p99=30s)``."""
    knobs: dict[str, Any] = Field(default_factory=dict)
    """Profile knob overrides, e.g. ``create_qps: 100``."""

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            get_profile(value)  # raises the ValueError that lists the names
        return value

    @field_validator("nodes")
    @classmethod
    def _some_nodes(cls, value: int | list[NodeGroup]) -> int | list[NodeGroup]:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        if isinstance(value, int):
            problem = too_many_nodes(value)
            if problem is not None:
                raise ValueError(problem)
        if isinstance(value, list):
            if not value:
                raise ValueError("must list at least one node group")
            names = [g.name for g in value]
            if len(set(names)) != len(names):
                raise ValueError("node group names must be unique")
            problem = too_many_nodes(sum(g.count for g in value), listed=True)
            if problem is not None:
                raise ValueError(f"{problem} (the groups' counts added up)")
        return value

    @model_validator(mode="after")
    def _valid_overrides(self) -> ClusterSpec:
        prof = get_profile(self.profile)
        for name, spec in self.latencies.items():
            try:
                prof.with_overrides(latencies={name: spec})
            except ValueError as exc:
                raise FieldError(("latencies", name), str(exc)) from None
        for knob, value in self.knobs.items():
            _check_knob_kind(knob, value)
            try:
                prof.with_overrides(**{knob: value})
            except ValueError as exc:
                raise FieldError(("knobs", knob), str(exc)) from None
        self.build_profile()
        return self

    def build_profile(self) -> Profile:
        """The profile with this scenario's overrides (ValueError names a bad one)."""
        prof = get_profile(self.profile)
        if self.latencies or self.knobs:
            prof = prof.with_overrides(latencies=self.latencies, **self.knobs)
        return prof

    def node_names(self) -> dict[str, None]:
        """The nodes' names, in order (a dict: ordered, and quick to look up)."""
        if isinstance(self.nodes, int):
            return {f"node-{i}": None for i in range(1, self.nodes + 1)}
        return {f"{g.name}-{i}": None for g in self.nodes for i in range(1, g.count + 1)}

    def node_specs(self) -> list[NodeSpec]:
        """The nodes, one :class:`NodeSpec` each."""
        if isinstance(self.nodes, int):
            return default_nodes(self.nodes)
        return [
            NodeSpec(
                name=f"{g.name}-{i}",
                cpu=g.cpu,
                memory=g.memory,
                max_pods=g.max_pods,
                labels=dict(g.labels),
                allocatable=dict(g.allocatable),
                images=tuple(g.images),
            )
            for g in self.nodes
            for i in range(1, g.count + 1)
        ]


_POOL_TEMPLATE = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  runtimes: [{runtimes}]
  template:
    spec:
      containers:
        - name: sandbox
          image: {image}
          resources: {{requests: {{cpu: {cpu}, memory: {memory}}}{limits}}}
"""
"""A shorthand pool as YAML; every string goes in as a JSON string (:func:`_yaml_str`)."""


def _yaml_str(value: str) -> str:
    """``value`` as a YAML scalar that stays a string: ``"007"``, not the number 7.

    A JSON string is valid YAML, with the escapes any text needs.
    """
    return json.dumps(value)


def _positive_cpu(value: str | None) -> str | None:
    return None if value is None else positive_cpu(value)


class PoolSpec(_Model):
    """A warm pool (SandboxSet): shorthand fields, or a Kubernetes ``manifest``.

    With a manifest, ``name`` and ``namespace`` come from it and ``replicas``
    (if given) overrides ``spec.replicas``.
    """

    name: str | None = Field(default=None, min_length=1)
    namespace: str = Field(default="default", min_length=1)
    replicas: int | None = Field(default=None, ge=0)
    image: str = "registry.example.com/sandbox:v1"
    cpu: str = "500m"
    """CPU request of the pool's container."""
    cpu_limit: str | None = None
    """CPU limit of the pool's container (none: no limit, so a claim's ``cpu_limit`` is ignored)."""
    memory: str = "512Mi"
    runtimes: list[str] = Field(default_factory=lambda: ["agent-runtime"])
    """Sidecar runtimes: ``agent-runtime`` (``/init`` at claim), ``csi``."""
    manifest: str | dict[str, Any] | None = None
    """A SandboxSet as Kubernetes YAML text or a mapping."""

    @field_validator("cpu", "cpu_limit", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        return quantity_text(value)

    @field_validator("cpu", "cpu_limit")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        return _positive_cpu(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        return positive_memory(value)

    @model_validator(mode="after")
    def _complete(self) -> PoolSpec:
        if self.manifest is None:
            if self.cpu_limit is not None and cpu_millis(self.cpu_limit) < cpu_millis(self.cpu):
                raise FieldError("cpu_limit", f"below the CPU request {self.cpu!r}")
            if self.name is None:
                raise FieldError("name", "required value (or give a manifest)")
            if self.replicas is None:
                raise FieldError("replicas", "required value")
            if not is_image_reference(self.image):
                raise FieldError("image", f"not a valid image reference: {self.image!r}")
        sbs = self.sandboxset()
        self.name = sbs.metadata.name
        self.namespace = sbs.metadata.namespace
        self.replicas = sbs.spec.replicas
        return self

    def sandboxset(self) -> SandboxSet:
        """The SandboxSet this pool applies."""
        if self.manifest is None:
            limit = self.cpu_limit
            text = _POOL_TEMPLATE.format(
                name=_yaml_str(self.name or ""),
                namespace=_yaml_str(self.namespace),
                replicas=self.replicas,
                runtimes=", ".join(f"{{name: {_yaml_str(r)}}}" for r in self.runtimes),
                image=_yaml_str(self.image),
                cpu=_yaml_str(self.cpu),
                memory=_yaml_str(self.memory),
                limits="" if limit is None else f", limits: {{cpu: {_yaml_str(limit)}}}",
            )
            source: Any = text
        else:
            source = self.manifest
        try:
            obj = load_manifest(source)
        except InvalidError as exc:
            raise FieldError("manifest", str(exc)) from None
        if not isinstance(obj, SandboxSet):
            raise FieldError("manifest", f"must be a SandboxSet, got {obj.kind}")
        if obj.spec.template_ref is not None:
            # A scenario applies only its pools: the referenced template would never exist.
            raise FieldError(
                "manifest",
                f"spec.templateRef ({obj.spec.template_ref.name!r}) is not supported in "
                "scenarios: give the pod template inline as spec.template",
            )
        if self.manifest is not None and self.replicas is not None:
            obj.spec.replicas = self.replicas
        return obj

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


class ClaimSpec(_Model):
    """How a workload claims: the E2B create or a SandboxClaim, and the options of the claim."""

    path: Literal["e2b", "sandboxclaim"] = "e2b"
    """``e2b``: ``Sandbox.create`` through the sandbox-manager; ``sandboxclaim``: a SandboxClaim object."""
    create_on_no_stock: bool = True
    """Create a sandbox when the pool is empty (cold) instead of waiting for a refill."""
    claim_timeout: Seconds | None = Field(default=None, ge=1)
    """How long a claim may search for a sandbox (E2B: ``claim-timeout-seconds``)."""
    wait_ready_timeout: Seconds | None = Field(default=None, ge=1)
    """How long a claim waits for its sandbox to become ready."""
    image: str | None = None
    """In-place image replacement: the claimed sandbox restarts with this image."""
    cpu_request: str | None = None
    """In-place CPU resize: the claimed sandbox's CPU request (the pool's container must set one)."""
    cpu_limit: str | None = None
    """In-place CPU resize: the claimed sandbox's CPU limit (the pool's container must set one)."""
    csi_mounts: int = Field(default=0, ge=0, le=16)
    """Dynamic CSI volumes mounted into each claimed sandbox."""
    auto_pause: bool = False
    """E2B auto-pause: the sandbox is paused instead of deleted at its timeout."""
    timeout: Seconds | None = Field(
        default=None, ge=CREATE_TIMEOUT_BOUNDS[0], le=CREATE_TIMEOUT_BOUNDS[1]
    )
    """E2B sandbox timeout, whole seconds; default: the hold plus 30 s (the client's kill ends it)."""
    replicas: int = Field(default=1, ge=1, le=1000)
    """Sandboxes per SandboxClaim (``sandboxclaim`` path only)."""
    skip_init_runtime: bool = False
    """Skip the agent-runtime ``/init`` call."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Extra E2B metadata (``e2b.agents.kruise.io/*`` keys included) on each create."""

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not is_image_reference(value):
            raise ValueError(f"not a valid image reference: {value!r}")
        return value

    @field_validator("timeout")
    @classmethod
    def _whole_seconds(cls, value: float | None) -> float | None:
        # The create's timeout is an integer on the wire: 45.2 would be refused there.
        if value is not None and value != int(value):
            raise ValueError(f"must be a whole number of seconds, got {value:g}")
        return value

    @field_validator("cpu_request", "cpu_limit", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        return quantity_text(value)

    @field_validator("cpu_request", "cpu_limit")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        return _positive_cpu(value)

    @model_validator(mode="after")
    def _path_options(self) -> ClaimSpec:
        if self.path == "e2b" and self.replicas != 1:
            raise FieldError("replicas", "only the sandboxclaim path claims several at once")
        if self.path == "sandboxclaim" and self.auto_pause:
            raise FieldError("auto_pause", "an E2B option (needs path: e2b)")
        if self.path == "sandboxclaim" and self.metadata:
            raise FieldError("metadata", "an E2B option (needs path: e2b)")
        try:
            # The sandbox-manager's own rules for the metadata of a create: a bad
            # key would fail every claim of the run as a 400 naming no field here.
            parse_create_metadata(self.metadata)
        except BadRequestError as exc:
            raise FieldError("metadata", str(exc)) from None
        self._check_runtime_init()
        return self

    def _check_runtime_init(self) -> None:
        """Refuse CSI mounts with the runtime init skipped, by the rule both claim paths apply.

        A mount is made by the runtime's ``/init``: upstream's
        ``ValidateAndInitClaimOptions`` refuses every such claim (400).
        """
        mounts = [
            CSIMountConfig(pv_name=f"pv-{k}", mount_path=f"/mnt/{k}")
            for k in range(self.csi_mounts)
        ]
        opts = ClaimOptions(
            namespace="default",
            user=DEFAULT_USER,
            template="t",
            lock_string="",
            csi_mounts=mounts,
            init_runtime=None if self.skip_init_runtime else InitRuntimeRequest(),
            runtime_init_names=RuntimeInitNames("csi_mounts", "skip_init_runtime is true"),
        )
        try:
            validate_claim_options(opts)
        except BadRequestError as exc:
            reason = str(exc).removeprefix(f"{exc.field}: ")
            raise FieldError("csi_mounts", reason) from None


class WorkloadSpec(_Model):
    """Claims for one template and namespace: arrivals, hold time, and the claim options."""

    name: str | None = None
    """The workload's label in ``claims.csv`` (default: :attr:`label`, the template)."""
    template: str | None = None
    """The pool (SandboxSet name) claimed from; a trace may name it per row instead."""
    namespace: str = "default"
    user: str = DEFAULT_USER
    """The API key id that owns the sandboxes (E2B path)."""
    arrivals: Arrivals
    hold: str | float | None = "exp(5m)"
    """How long a claimed sandbox lives before it is killed; ``forever``: until its timeout."""
    claim: ClaimSpec = Field(default_factory=ClaimSpec)

    @field_validator("hold", mode="before")
    @classmethod
    def _hold(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        parse_hold(value)
        return value

    @model_validator(mode="after")
    def _template(self) -> WorkloadSpec:
        if self.template is None and not isinstance(self.arrivals, TraceArrivals):
            raise FieldError("template", "required value")
        return self

    @model_validator(mode="after")
    def _caller(self) -> WorkloadSpec:
        """Refuse what every claim's create would: the checks of ``Cluster.create_sandbox``.

        The user becomes each sandbox's owner label: one that is no label
        value would run as if upstream's lock write could store it.
        """
        try:
            check_create_request(self.namespace, self.user, CreateRequest(self.template or ""))
        except InvalidError as exc:
            raise FieldError(exc.field, exc.reason) from None
        return self

    @property
    def label(self) -> str:
        """The workload's label: its ``name``, else its template (``trace`` for a trace without one).

        Derived, not stored in ``name``: an override of ``template`` must
        change the default label too, and an override dumps and validates
        the scenario again.
        """
        return self.name or self.template or "trace"

    @property
    def hold_dist(self) -> Hold:
        """The hold-time distribution."""
        return parse_hold(self.hold)


class FaultSpec(_Model):
    """A fault of :mod:`simulator.faults`, with ``start`` counted from the workload's start."""

    kind: FaultKind
    probability: Probability = 1.0
    start: Seconds = Field(default=0.0, ge=0)
    duration: Seconds | None = Field(default=None, gt=0)
    selector: Selector = Field(default_factory=dict)
    latency: str | float | dict[str, Any] | None = Field(default=None, validate_default=True)
    """Any form :func:`~simulator.latency.parse_latency` reads: text, seconds, or a mapping
    with ``kind``."""
    code: FaultCode = 500
    count: int | None = Field(default=None, ge=1)
    """Checked against ``kind`` and ``selector`` with the rest of the :class:`Fault` the
    fault becomes (see ``Scenario._check_faults``)."""

    @field_validator("latency", mode="before")
    @classmethod
    def _latency(cls, value: Any, info: ValidationInfo) -> Any:
        check_latency(info.data.get("kind"), value)
        if value is not None:
            parse_latency(value)
        return value

    def to_fault(self, origin: float) -> Fault:
        """The :class:`Fault` to inject, its window moved to absolute virtual time.

        Validated as the server config and the marker validate theirs, by
        ``Fault`` itself (its latency parsed there): :class:`ValidationError`
        says what it refuses.
        """
        return Fault.model_validate(
            {
                "kind": self.kind,
                "probability": self.probability,
                "start": origin + self.start,
                "duration": self.duration,
                "selector": dict(self.selector),
                "latency": self.latency,
                "code": self.code,
                "count": self.count,
            }
        )


class Goals(_Model):
    """What the scenario is expected to deliver; ``simulate`` reports whether it does."""

    slo: str | None = None
    """A latency goal such as ``p99<1s``."""
    max_cold: str | float | None = None
    """The largest cold share, e.g. ``1%``."""
    max_failed: str | float | None = None
    """The largest share of claims that may fail, e.g. ``0.1%``."""

    @model_validator(mode="after")
    def _parse(self) -> Goals:
        from simulator.planning.analytic import parse_max_share, parse_slo
        from simulator.planning.errors import PlanningError

        for name in ("max_cold", "max_failed"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_max_share(str(value), name)
                except PlanningError as exc:
                    raise FieldError(name, str(exc).split(": ", 1)[-1]) from None
        if self.slo is not None:
            try:
                parse_slo(self.slo)
            except PlanningError as exc:
                raise FieldError("slo", str(exc).split(": ", 1)[-1]) from None
        return self


class Scenario(_Model):
    """A whole capacity-planning scenario (see the module docstring)."""

    name: str = Field(default="scenario", min_length=1)
    description: str = ""
    seed: int = Field(default=1, ge=0)
    replications: int = Field(default=3, ge=1, le=10_000)
    duration: Seconds = Field(gt=0)
    """Measured time after the warm-up."""
    warmup: Seconds = Field(default=0.0, ge=0)
    """Simulated first, left out of the statistics."""
    drain: Seconds = Field(default=600.0, ge=0)
    """After the last arrival, how long claims in flight may take to finish."""
    sample_interval: Seconds | None = Field(default=None, gt=0)
    """How often pool levels and node use are sampled; default: about 600 samples per run,
    at most one a minute (:attr:`sampling_interval`)."""
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    pools: list[PoolSpec] = Field(min_length=1)
    workloads: list[WorkloadSpec] = Field(min_length=1)
    faults: list[FaultSpec] = Field(default_factory=list)
    claims_csv: bool = False
    """Write ``claims.csv`` (one row per claim with its phases)."""
    goals: Goals | None = None
    """Goals ``simulate`` checks (and ``plan`` uses without ``--slo`` and ``--max-cold``)."""
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    """What ``sweep`` varies when no ``--set`` is given: field path → values."""
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path | None:
        """The folder relative trace files are read from: the scenario file's (None: the working directory).

        Kept with the scenario (copies and overrides included) so that an
        override of a trace ``file`` reads it where the scenario file would.
        """
        return self._base_dir

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        seen: set[str] = set()
        for i, pool in enumerate(self.pools):
            if pool.key in seen:
                raise PathError(f"pools[{i}].name", f"pool {pool.key} is defined twice")
            seen.add(pool.key)
        for i, wl in enumerate(self.workloads):
            if wl.template is not None and f"{wl.namespace}/{wl.template}" not in seen:
                raise PathError(
                    f"workloads[{i}].template",
                    f"no pool {wl.namespace}/{wl.template} (pools: {', '.join(sorted(seen))})",
                )
            if isinstance(wl.arrivals, TraceArrivals):
                for row in wl.arrivals.rows:
                    ns = row.namespace or wl.namespace
                    tpl = row.template or wl.template
                    if tpl is None:
                        # A template set to null after loading (an override).
                        raise PathError(
                            f"workloads[{i}].template",
                            f"required: the trace row at {row.time:g}s names no template",
                        )
                    if f"{ns}/{tpl}" not in seen:
                        raise PathError(
                            f"workloads[{i}].arrivals.file",
                            f"trace row at {row.time:g}s claims from {ns}/{tpl}, which is no pool",
                        )
        self._check_arrival_counts()
        self._check_sample_count()
        self._check_faults()
        return self

    def _check_arrival_counts(self) -> None:
        """Refuse a workload that would draw more arrivals than a run can take.

        Checked on the whole scenario, since the count is the rate times the
        horizon: a ``--set duration=...`` can push an accepted rate over it.
        """
        horizon = self.horizon
        for i, wl in enumerate(self.workloads):
            field, count = wl.arrivals.draws(horizon)
            if count > MAX_ARRIVALS_PER_RUN:
                raise PathError(
                    f"workloads[{i}].arrivals.{field}",
                    f"about {count:.3g} arrivals in the run's {horizon:g}s (warm-up + duration), "
                    f"more than the {MAX_ARRIVALS_PER_RUN:,} a run takes per workload",
                )

    def _check_sample_count(self) -> None:
        """Refuse a run that would take more than :data:`MAX_SAMPLES_PER_RUN` samples,
        or a drain of more than :data:`MAX_DRAIN_SAMPLES` steps.

        Checked on the whole scenario, as the arrivals are: a ``--set
        duration=...`` can make the default interval's count absurd. Counted
        over what every run samples, warm-up and duration: ``drain`` is only
        the longest the run waits for claims in flight, and it stops at the
        first step they have settled. Round-off is allowed for, so that the
        interval the error suggests is accepted.
        """
        interval = self.sampling_interval
        span = self.horizon
        count = span / interval
        if count > MAX_SAMPLES_PER_RUN * (1 + _ROUND_OFF):
            given = "" if self.sample_interval is not None else " (the default, at most 1m)"
            raise PathError(
                "sample_interval",
                f"about {count:.3g} samples in the run's {span:g}s of warm-up and duration "
                f"at one every {interval:g}s{given}, more than the {MAX_SAMPLES_PER_RUN:,} a run "
                f"takes: set a sample_interval of at least {_round_up(span / MAX_SAMPLES_PER_RUN):g}s "
                f"(SandboxClaim sandboxes are released at a sample step)",
            )
        steps = self.drain / interval
        if steps > MAX_DRAIN_SAMPLES * (1 + _ROUND_OFF):
            raise PathError(
                "drain",
                f"{self.drain:g}s at one sample every {interval:g}s is about {steps:.3g} steps "
                f"if the claims in flight never settle, more than the {MAX_DRAIN_SAMPLES:,} a "
                f"drain may take: set a drain of at most "
                f"{_round_down(interval * MAX_DRAIN_SAMPLES):g}s, or a longer sample_interval",
            )

    def _check_faults(self) -> None:
        """Refuse a fault its run would refuse at injection, before any run starts.

        Each is checked as the :class:`Fault` it becomes, by that model's own
        rules (those the server config and the plugin marker apply), then
        against the cluster's nodes (a fault naming another could never fire)
        and the clock's end. ``start`` counts from the workload's start, which the
        pools' fill puts a few minutes past 0: the window is checked from 0,
        and one that ends within the fill of the clock's end is left to the
        run's own check.
        """
        names: dict[str, None] | None = None
        for i, spec in enumerate(self.faults):
            try:
                fault = spec.to_fault(0.0)
            except ValidationError as exc:
                error = exc.errors()[0]
                raise PathError(
                    f"faults[{i}].{format_path(error['loc'])}", first_problem([error])[1]
                ) from None
            try:
                if "node" in fault.selector or "client" in fault.selector:
                    if names is None:
                        names = self.cluster.node_names()
                    check_node_names(fault.selector, names)
                check_fault_window(fault, now=0.0, end=_CLOCK_END_S)
                # The run injects it once the pools are full: a duration under the
                # clock's step at the latest such start would close its window as it opens.
                latest = len(self.pools) * POOL_FILL_TIMEOUT_S + (fault.start or 0.0)
                try:
                    check_window_opens(latest, fault.duration)
                except InvalidError as exc:
                    raise InvalidError(
                        exc.field,
                        f"{exc.reason} (a start the run may give it: it injects the faults "
                        f"once the pools are full, which may take up to "
                        f"{POOL_FILL_TIMEOUT_S:g} s a pool)",
                    ) from None
            except InvalidError as exc:
                raise PathError(f"faults[{i}].{exc.field}", exc.reason) from None

    @property
    def horizon(self) -> float:
        """Seconds of arrivals: warm-up plus the measured duration."""
        return self.warmup + self.duration

    @property
    def sampling_interval(self) -> float:
        """The seconds between two samples: ``sample_interval``, or by default the
        horizon over :data:`SAMPLES_PER_RUN`, within 0.05 s and
        :data:`MAX_DEFAULT_SAMPLE_INTERVAL_S` (which says why)."""
        if self.sample_interval is not None:
            return self.sample_interval
        return min(MAX_DEFAULT_SAMPLE_INTERVAL_S, max(0.05, self.horizon / SAMPLES_PER_RUN))

    def pool(self, name: str, namespace: str | None = None) -> PoolSpec:
        """The pool called ``name`` (in ``namespace``, if given); KeyError lists the names."""
        for p in self.pools:
            if p.name == name and (namespace is None or p.namespace == namespace):
                return p
        raise KeyError(f"no pool {name!r} (pools: {', '.join(p.key for p in self.pools)})")

    def shortened(self, factor: float) -> Scenario:
        """A copy with times, burst counts and pool sizes scaled by ``factor`` (for quick runs).

        Durations, warm-up, fault windows, burst times and the diurnal day
        shrink; burst counts and pool replicas shrink with them (at least 1)
        so a burst still meets a pool of the same relative size; rates and
        the drain (claims in flight may still finish) stay.
        """
        if not 0 < factor <= 1:
            raise ValueError("factor: must be in (0, 1]")
        data = self.model_copy(deep=True)
        data.duration = max(1.0, self.duration * factor)
        data.warmup = self.warmup * factor
        if self.sample_interval is not None:
            data.sample_interval = max(0.05, self.sample_interval * factor)
        for pool in data.pools:
            pool.replicas = max(1, round((pool.replicas or 0) * factor))
        for wl in data.workloads:
            wl.arrivals = wl.arrivals.shortened(factor)
        for fault in data.faults:
            fault.start *= factor
            if fault.duration is not None:
                fault.duration = max(1.0, fault.duration * factor)
        return data
