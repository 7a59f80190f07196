"""The cluster config file of ``kruise-agents serve``: nodes, pools, API keys, profile, faults.

.. code-block:: yaml

    seed: 42
    profile: openkruise-head
    clock: {mode: virtual}        # default: realtime, speed 1.0, start: the wall clock's now
    nodes: 4                      # or a list of {name, cpu, memory, maxPods, labels, allocatable, images}
    sandboxsets: |                # Kubernetes YAML (one multi-document string or a list)
      apiVersion: agents.kruise.io/v1alpha1
      kind: SandboxSet
      ...
    apiKeys:
      - {key: e2b_alice, id: alice, team: default}
      - {key: e2b_admin, admin: true}
    faults: [{kind: image_pull_slow, latency: 5s}]
    latencies: {pod.create: exp(2s)}
    knobs: {claim_workers: 100}
    domain: null
    auth: true
    recordsLimit: 10000           # claim records kept for /_kruise/records; null keeps all

Every problem is one :class:`ConfigError` naming the file, the field path
(``sandboxsets[0]: SandboxSet/base spec.replicas``, ``apiKeys[1].team``) and
the reason. Omitted ``sandboxsets`` and ``apiKeys`` get the defaults (pools
``base`` and ``code-interpreter-v1`` in namespace ``default``; one key of
team ``default`` and one admin key, freshly generated); an explicit empty
list means none.
"""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import KubeObject, YamlLoader, load_manifests
from pytest_kruise_agents.api.problems import kind_and_value, type_word
from pytest_kruise_agents.api.quantity import positive_cpu, positive_memory, quantity_text
from pytest_kruise_agents.api.validation import dns_label_problem, label_value_problem
from pytest_kruise_agents.backends.sim import (
    MAX_SPEED,
    UNIX_EPOCH,
    SimBackend,
    default_pools_yaml,
    opened,
)
from pytest_kruise_agents.e2b.settings import ApiKey, Settings, api_key_problem, generate_key
from pytest_kruise_agents.rfc3339 import parse_rfc3339
from simulator.cluster import DEFAULT_USER, Cluster, default_nodes
from simulator.context import CLOCK_END
from simulator.errors import PoolTimeoutError
from simulator.faults import Fault, check_node_names
from simulator.latency import parse_seconds
from simulator.nodes import (
    NodeSpec,
    node_allocatable,
    node_image,
    node_labels,
    node_name,
    too_many_nodes,
)
from simulator.profile import get_profile

__all__ = [
    "RECORDS_LIMIT",
    "ApiKeyConfig",
    "ClockConfig",
    "ClusterConfig",
    "ConfigError",
    "NodeConfig",
    "build",
    "default_config",
    "from_opening",
    "load_config",
    "parse_config",
    "unfilled",
]

_EARLIEST_START: Final = UNIX_EPOCH
"""The earliest ``clock.start``: the Unix epoch (Kubernetes timestamps are Unix times).

The pools are made before the opening, so :func:`build` refuses a start less than
their fill after it too (:func:`~pytest_kruise_agents.backends.sim.opening_at`)."""

POOL_READY_TIMEOUT_S = 600.0
"""Virtual seconds a configured pool may take to fill before the config is refused."""


class ConfigError(ValueError):
    """A config file problem: ``<file>: <field>: <reason>``, or ``<file>:<line>: <reason>``
    when the line is known (a YAML syntax error), as ``simulate`` says it of a scenario."""

    def __init__(self, source: str, field: str, reason: str, *, line: int | None = None) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        self.line = line
        at = f"{source}:{line}" if line is not None else source
        where = f"{field}: " if field else ""
        super().__init__(f"{at}: {where}{reason}")


RECORDS_LIMIT = 10_000
"""Claim records a server keeps by default: the latest ones (a few MB)."""


class _Strict(BaseModel):
    # strict: a value of the wrong kind is refused, not converted (``seed: true`` is no seed,
    # ``nodes: "2"`` no node count), as in scenario files.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class ClockConfig(_Strict):
    """``clock``: ``realtime`` times ``speed`` (the server's default: clients see timeouts
    happen) or ``virtual`` (time moves only when a request must wait or the admin API says).

    ``start`` is the date the clock reads when the server opens (RFC 3339 with
    an offset). Omitted, a realtime clock opens at the wall clock's now (its
    clients compare ``endAt`` with their own clocks) and a virtual one at
    2026-01-01 plus the time its pools took to fill (the same dates every run).
    """

    mode: Literal["virtual", "realtime"] = "realtime"
    speed: float = Field(default=1.0, gt=0, le=MAX_SPEED, allow_inf_nan=False)
    start: datetime | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        # YAML reads an unquoted timestamp as a datetime (naive without an offset);
        # a quoted one stays text. Either must name one instant.
        if isinstance(value, str):
            try:
                value = parse_rfc3339(value)
            except ValueError as exc:
                raise ValueError(f"not an RFC 3339 date-time ({exc}), got {value!r}") from None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(
                    f"not an RFC 3339 date-time: no offset (add Z or +hh:mm), got {value}"
                )
            if not _EARLIEST_START <= value < CLOCK_END:
                # The bounds to the second: the day alone read as if 9900-01-24 itself
                # were refused, and most of it is allowed.
                raise ValueError(
                    f"must be from {format_time(_EARLIEST_START)} and before "
                    f"{format_time(CLOCK_END)}, got {value.isoformat()}"
                )
            return value.astimezone(UTC)
        return value


class NodeConfig(_Strict):
    """One node of ``nodes``."""

    name: str = Field(min_length=1)
    cpu: str = "16"
    memory: str = "64Gi"
    max_pods: int = Field(default=110, ge=1, alias="maxPods")
    labels: dict[str, str] = Field(default_factory=dict)
    allocatable: dict[str, str] = Field(default_factory=dict)
    """Other resources: extended resources (``nvidia.com/gpu: 8``), ``ephemeral-storage``."""
    # The simulator's own rule (NodeSpec), reported on each image.
    images: list[Annotated[str, AfterValidator(node_image)]] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The simulator's own rules (NodeSpec), reported on these fields.
        return node_name(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return node_labels(value)

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        return quantity_text(value)

    @field_validator("allocatable", mode="before")
    @classmethod
    def _quantities(cls, value: Any) -> Any:
        return {k: quantity_text(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("allocatable")
    @classmethod
    def _allocatable(cls, value: dict[str, str]) -> dict[str, str]:
        return node_allocatable(value)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        # The simulator's own rule (NodeSpec), reported on this field.
        positive_cpu(value)
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        return positive_memory(value)

    def spec(self) -> NodeSpec:
        """The simulator's node spec."""
        return NodeSpec(
            name=self.name,
            cpu=self.cpu,
            memory=self.memory,
            max_pods=self.max_pods,
            labels=self.labels,
            allocatable=self.allocatable,
            images=tuple(self.images),
        )


class ApiKeyConfig(_Strict):
    """One entry of ``apiKeys``: the secret, its id (sandbox owner), its team (namespace)."""

    key: str = Field(min_length=1)
    id: str = ""
    team: str = "default"
    admin: bool = False

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        problem = api_key_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("team")
    @classmethod
    def _team(cls, value: str) -> str:
        if "--" in value:
            raise ValueError("must not contain '--' (sandbox ids are <namespace>--<name>)")
        # The team is the namespace its sandboxes are claimed in.
        problem = dns_label_problem(value, what="namespace") if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        # The id becomes each claimed sandbox's owner label (upstream's are UUIDs).
        problem = label_value_problem(value)
        if problem is not None:
            raise ValueError(f"{problem} (it becomes the owner label of its sandboxes)")
        return value

    def api_key(self) -> ApiKey:
        """The settings' key."""
        return ApiKey(key=self.key, id=self.id, team=self.team, admin=self.admin)


class ClusterConfig(_Strict):
    """The whole config file (see the module docstring)."""

    seed: int = Field(default=0, ge=0)
    profile: str = "openkruise-head"
    clock: ClockConfig = Field(default_factory=ClockConfig)
    nodes: int | list[NodeConfig] = 4
    sandboxsets: str | list[str | dict[str, Any]] | None = None
    api_keys: list[ApiKeyConfig] | None = Field(default=None, alias="apiKeys")
    faults: list[dict[str, Any]] = Field(default_factory=list)
    latencies: dict[str, Any] = Field(default_factory=dict)
    knobs: dict[str, Any] = Field(default_factory=dict)
    domain: str | None = None
    auth: bool = True
    # At most what a sequence can hold (ClaimRecords' bound).
    records_limit: int | None = Field(
        default=RECORDS_LIMIT, ge=1, le=sys.maxsize, alias="recordsLimit"
    )

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: int | list[NodeConfig]) -> int | list[NodeConfig]:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1")
        problem = (
            too_many_nodes(value)
            if isinstance(value, int)
            else too_many_nodes(len(value), listed=True)
        )
        if problem is not None:
            raise ValueError(problem)
        if isinstance(value, list):
            if not value:
                raise ValueError("must list at least one node")
            seen: set[str] = set()
            for node in value:
                if node.name in seen:
                    raise ValueError(f"node name {node.name!r} is listed twice")
                seen.add(node.name)
        return value

    def pools_source(self) -> Sequence[str | Mapping[str, Any]]:
        """The SandboxSet manifests to apply, one entry per configured document or string."""
        if self.sandboxsets is None:
            return [default_pools_yaml()]
        if isinstance(self.sandboxsets, str):
            return [self.sandboxsets]
        return list(self.sandboxsets)

    def keys(self) -> list[ApiKey]:
        """The API keys (the generated defaults if ``apiKeys`` was omitted).

        The default user key's id is :data:`~simulator.cluster.DEFAULT_USER`, the
        owner :class:`~simulator.cluster.Cluster`'s calls use when given none: a
        sandbox made in Python and one made through the SDK with this key are
        the same owner's (the plugin's ``kruise_cluster`` and ``kruise_e2b``).
        """
        if self.api_keys is None:
            return [
                ApiKey(key=generate_key(), id=DEFAULT_USER, team="default"),
                ApiKey(key=generate_key(), id="admin", admin=True),
            ]
        return [k.api_key() for k in self.api_keys]


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_TAGS = frozenset({"int", "str", "float", "bool", "dict", "list", "none"})


def _is_branch(part: int | str) -> bool:
    # Union errors name the branch in the path ("nodes.list[NodeConfig][0].cpu"): not a field.
    return isinstance(part, str) and (
        "[" in part or part in _TYPE_TAGS or part.startswith("function-")
    )


def _field_loc(err: ErrorDetails) -> list[int | str]:
    return [p for p in err["loc"] if not _is_branch(p)]


def _first(exc: ValidationError) -> tuple[str, str]:
    """``(field path, reason)`` of the most specific error (the deepest, for unions)."""
    errors = exc.errors()
    err = max(errors, key=lambda e: len(_field_loc(e)))
    loc = _field_loc(err)
    # A value of the wrong kind: what each accepted kind is (both branches of a union,
    # ``nodes`` takes a count or a list) and what it got.
    words = [type_word(e["type"], mapping_word="a mapping") for e in errors if _field_loc(e) == loc]
    if all(words):
        wanted = " or ".join(dict.fromkeys(w for w in words if w))
        return _loc(
            loc
        ), f"must be {wanted}, got {kind_and_value(err['input'], mapping_word='a mapping')}"
    ctx = err.get("ctx") or {}
    reason = str(ctx.get("error") or err["msg"])
    if err["type"] == "extra_forbidden":
        reason = "unknown field"
    return _loc(loc), reason


def parse_config(data: Any, *, source: str = "<config>") -> ClusterConfig:
    """Validate a parsed config mapping; :class:`ConfigError` on the first problem.

    Besides the structure, checks what the cluster would refuse later: the
    profile name, every latency and knob, every fault, and every SandboxSet
    manifest. Nothing is built.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", f"expected a mapping at the top, got {type(data).__name__}")
    try:
        cfg = ClusterConfig.model_validate(dict(data))
    except ValidationError as exc:
        field, reason = _first(exc)
        raise ConfigError(source, field, reason) from None
    if cfg.auth and cfg.api_keys == []:
        # Every request would answer 401, the admin API's too: a server nobody can use.
        raise ConfigError(
            source, "apiKeys", "no key can call the server: give at least one, or set auth: false"
        )
    try:
        profile = get_profile(cfg.profile)
    except ValueError as exc:
        raise ConfigError(source, "profile", str(exc)) from None
    for name, value in cfg.latencies.items():
        try:
            profile.with_overrides(latencies={name: value})
        except ValueError as exc:
            raise ConfigError(source, f"latencies.{name}", str(exc)) from None
    for knob, value in cfg.knobs.items():
        # Checked before with_overrides, whose own latencies argument a knob called
        # latencies would be taken for (and which the cluster's would clash with).
        problem = profile.knob_problem(knob)
        if problem is not None:
            raise ConfigError(source, f"knobs.{knob}", problem)
        try:
            profile.with_overrides(**{knob: value})
        except ValueError as exc:
            raise ConfigError(source, f"knobs.{knob}", str(exc)) from None
    node_names = _node_names(cfg)
    for i, fault in enumerate(cfg.faults):
        try:
            checked = Fault.model_validate(fault)
        except ValidationError as exc:
            field, reason = _first(exc)
            raise ConfigError(source, f"faults[{i}].{field}", reason) from None
        try:
            # Refused now, not once the pools have filled.
            check_node_names(checked.selector, node_names)
        except InvalidError as exc:
            raise ConfigError(source, f"faults[{i}].{exc.field}", exc.reason) from None
    _pools(cfg, source)
    keys = cfg.api_keys or []
    seen: set[str] = set()
    for i, key in enumerate(keys):
        try:
            # The settings' own rules (a non-admin key's team, ...), checked now: build()
            # makes the settings only once the pools are filled.
            key.api_key()
        except ValueError as exc:
            field, _, reason = str(exc).partition(": ")
            raise ConfigError(source, f"apiKeys[{i}].{field}", reason) from None
        if key.key in seen:
            raise ConfigError(source, f"apiKeys[{i}].key", "the same key is listed twice")
        seen.add(key.key)
    return cfg


def _pools(cfg: ClusterConfig, source: str) -> list[tuple[str, KubeObject]]:
    """Each SandboxSet of ``cfg`` with the field that states it (``sandboxsets[i]``)."""
    objs: list[tuple[str, KubeObject]] = []
    named: dict[tuple[str, str], int] = {}
    for i, doc in enumerate(cfg.pools_source()):
        where = "sandboxsets" if isinstance(cfg.sandboxsets, str) else f"sandboxsets[{i}]"
        try:
            loaded = load_manifests(doc)
        except InvalidError as exc:
            raise ConfigError(source, where, str(exc)) from None
        for obj in loaded:
            if obj.kind != "SandboxSet":
                raise ConfigError(
                    source,
                    where,
                    f"{obj.kind}/{obj.metadata.name}: only SandboxSets belong here "
                    "(apply other objects with POST /_kruise/apply)",
                )
            name, namespace = obj.metadata.name, obj.metadata.namespace or "default"
            if name and (namespace, name) in named:
                # The apply refuses it too, but only once the cluster is built.
                raise ConfigError(
                    source,
                    where,
                    f"SandboxSet/{name} metadata.name: {name!r} is given twice in namespace "
                    f"{namespace} (SandboxSets {named[namespace, name] + 1} and {len(objs) + 1})",
                )
            named[namespace, name] = len(objs)
            objs.append((where, obj))
    return objs


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate a YAML (or JSON) config file."""
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, "", f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        ) from None
    try:
        # As kubectl reads YAML: a timestamp stays its text (so that a bad clock.start is
        # the field's error, not PyYAML's), and a key given twice is refused.
        data = yaml.load(text, Loader=YamlLoader)
        return parse_config(data, source=source)
    except yaml.MarkedYAMLError as exc:
        # PyYAML's own text is several lines (a quoted copy of the line and a caret):
        # the problem and its line say the same in the one line of every other error.
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        line = mark.line + 1 if mark else None
        raise ConfigError(source, "", f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    except RecursionError:
        # PyYAML's composer and the validation recurse once per level: a few hundred
        # nested brackets or mappings end in Python's recursion limit, not in a field.
        raise ConfigError(source, "", "nested too deeply to be a config file") from None


def default_config() -> ClusterConfig:
    """The config without a file: 4 nodes, the default pools, a fresh user key and admin key,
    a realtime clock."""
    return ClusterConfig()


def build(cfg: ClusterConfig, *, source: str = "<config>") -> tuple[SimBackend, Settings]:
    """A ready backend (pools filled, faults injected) and the server settings of ``cfg``.

    Its clock reads ``clock.start``, else the wall clock's now (realtime) or the
    fixed epoch (virtual) once built (see :class:`ClockConfig`).
    """
    fill = partial(_filled, cfg, source)
    try:
        cluster = opened(fill, start=cfg.clock.start, realtime=cfg.clock.mode == "realtime")
    except InvalidError as exc:
        if exc.field != "start":
            raise
        # Known only once the fill is measured: a start too near 1970 for it.
        raise ConfigError(source, "clock.start", exc.reason) from None
    for i, fault in enumerate(cfg.faults):
        fields = from_opening(fault, cluster.now)
        kind = fields.pop("kind")
        try:
            cluster.inject(kind, **fields)
        except InvalidError as exc:
            raise ConfigError(source, f"faults[{i}].{exc.field}", exc.reason) from None
    backend = SimBackend(cluster, clock=cfg.clock.mode, speed=cfg.clock.speed)
    settings = Settings(api_keys=cfg.keys(), auth_enabled=cfg.auth, domain=cfg.domain)
    return backend, settings


def from_opening(fault: Mapping[str, Any], opening: float) -> dict[str, Any]:
    """The fields to inject ``fault`` with, its ``start`` counted from ``opening``.

    A configured fault's ``start`` counts from when the server (or the test)
    opens, once its pools are filled, as a scenario's counts from its
    workload's start; the cluster's own clock has run for the fill by then
    (``opening``, in virtual seconds), and :meth:`Cluster.inject` takes
    absolute virtual time. A ``start`` that is no valid start is passed on
    unchanged, for the cluster to refuse with its own reason.
    """
    fields = dict(fault)
    start = fields.get("start")
    if start is None:
        return fields  # starts now: at the opening
    try:
        seconds = parse_seconds(start)
    except ValueError:
        return fields
    if seconds >= 0:
        fields["start"] = opening + seconds
    return fields


def _secret_token() -> str:
    """An envd access token nobody can predict: a random UUID (as upstream's), from ``secrets``."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


def _node_names(cfg: ClusterConfig) -> list[str]:
    """The names of the nodes ``cfg`` makes."""
    if isinstance(cfg.nodes, int):
        return [spec.name for spec in default_nodes(cfg.nodes)]
    return [node.name for node in cfg.nodes]


def _filled(cfg: ClusterConfig, source: str, epoch: datetime) -> Cluster:
    """The cluster of ``cfg`` from ``epoch`` (virtual time 0), its pools filled."""
    nodes: int | list[NodeSpec] = (
        cfg.nodes if isinstance(cfg.nodes, int) else [n.spec() for n in cfg.nodes]
    )
    cluster = Cluster(
        seed=cfg.seed,
        profile=cfg.profile,
        nodes=nodes,
        latencies=cfg.latencies or None,
        epoch=epoch,
        # No route reads the event log, and a server that stays up for days would
        # keep about 1 KB of it per claim: the claim records are what it serves.
        log=False,
        # The records are served, but not all of them for ever (about 1 KB each).
        records_limit=cfg.records_limit,
        # Tokens guard each sandbox's envd: a served cluster's must not follow
        # from its seed, which anyone with the same config knows.
        token_source=_secret_token,
        **cfg.knobs,
    )
    entries = _pools(cfg, source)
    try:
        # The cluster is new: the pools are created (as kubectl create, which takes a
        # generateName), and the stored ones waited for: a generateName one has its
        # name only once created.
        pools = cluster.create([obj for _, obj in entries])
    except InvalidError as exc:
        # parse_config checks what the apply does; should a check be missed, the
        # user still gets one line naming the field.
        raise ConfigError(source, "sandboxsets", str(exc)) from None
    for (where, _), pool in zip(entries, pools, strict=True):
        ns = pool.metadata.namespace or "default"
        try:
            cluster.wait_for_pool(pool.metadata.name, ns, timeout=POOL_READY_TIMEOUT_S)
        except TimeoutError as exc:
            raise ConfigError(source, where, unfilled(exc)) from None
    return cluster


def unfilled(exc: TimeoutError) -> str:
    """The reason a pool did not fill: ``wait_for_pool``'s, with a guess only if it has none.

    A pool says why when it can (the scheduler's reason for an unschedulable
    pod, a container's waiting reason, a blocked rollout): another cause is
    then no more than a guess, and a wrong one.
    """
    explained = isinstance(exc, PoolTimeoutError) and exc.explained
    return str(exc) if explained else f"{exc} (too few nodes?)"
