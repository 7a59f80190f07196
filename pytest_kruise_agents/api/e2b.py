"""The E2B control-plane wire models: what the SDKs send and what they parse.

Field names are the JSON names of the generated client in the ``e2b`` wheel
(``e2b/api/client/models/``): camelCase (``templateID``, ``envVars``,
``memoryMB``) except ``allow_internet_access``, which really is snake_case on
the wire. Requests tolerate unknown fields (the Go server ignores them) but
reject wrong types, as Go's JSON decoder does, read a ``null`` as it does (the
zero value of a field that is no pointer there: :func:`_go_nulls`), and every string in them
(object keys included) has its lone UTF-16 surrogates (``"\\ud800"``, valid
JSON that Python decodes as is) replaced by U+FFFD, as Go's decoder does: such
a string cannot be encoded as UTF-8, so kept it would fail every answer that
shows it (:func:`replace_surrogates`). Responses are serialised with
:meth:`WireModel.to_wire`: optional fields are left out when unset, except the
nullable ones the SDK expects to see (``trafficAccessToken``, ``domain``).

The response models publish (``GET /openapi.json``) what :meth:`WireModel.to_wire`
really writes, which is what the SDK's generated ``from_dict`` needs: every
field written on every answer is ``required``, only the ``NULLABLE`` ones may
be ``null``, and the others, left out when unset, are never ``null``
(:class:`WireResponse`). The request models publish the bounds the server
enforces (``timeout``) without enforcing them here: the server checks them
itself, with its own messages and codes (reference §6.5).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from types import NoneType
from typing import Annotated, Any, ClassVar, Final, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

__all__ = [
    "CREATE_TIMEOUT_BOUNDS",
    "MAX_TIMEOUT_S",
    "MIN_CREATE_TIMEOUT_S",
    "PAUSE_RETENTION_PATTERN",
    "RESUME_TIMEOUT_BOUNDS",
    "TIMEOUT_BOUNDS",
    "ZERO_TIME",
    "ConnectSandbox",
    "ConnectSandboxV2",
    "Error",
    "ListedSandbox",
    "NewSandbox",
    "NewSandboxV2",
    "ResumedSandbox",
    "SandboxAutoResumeConfig",
    "SandboxDetail",
    "SandboxIam",
    "SandboxIamToken",
    "SandboxLifecycle",
    "SandboxNetwork",
    "SandboxNetworkConfig",
    "SandboxPauseRequest",
    "SandboxResponse",
    "SandboxTimeoutRequest",
    "SandboxVolumeMount",
    "TemplateBuild",
    "TemplateDetail",
    "TemplateInfo",
    "WireModel",
    "WireRequest",
    "WireResponse",
    "replace_surrogates",
]

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time``: what upstream writes as ``endAt`` of a never-timeout sandbox."""

# The bounds of the wire's timeouts (reference §6.5): published here, enforced by
# claiming.timeouts, which takes the numbers from here (api is the layer both can read).
MIN_CREATE_TIMEOUT_S: Final = 30
"""Smallest ``timeout`` ``POST /sandboxes`` accepts (seconds)."""
MAX_TIMEOUT_S: Final = 2_592_000
"""``--e2b-max-timeout`` default: 30 days (seconds)."""

CREATE_TIMEOUT_BOUNDS: Final = (MIN_CREATE_TIMEOUT_S, MAX_TIMEOUT_S)
"""``timeout`` of a create, in seconds (``--e2b-max-timeout`` default: 30 days)."""
TIMEOUT_BOUNDS: Final = (1, MAX_TIMEOUT_S)
"""``timeout`` of ``/timeout`` and connect, in seconds."""
RESUME_TIMEOUT_BOUNDS: Final = (0, MAX_TIMEOUT_S)
"""``timeout`` of ``/resume``: 0 means "none given" (Go decodes an absent one as 0), else 1…max."""

_WS: Final = r"[\t \x85\xa0]*"
"""Blanks the server strips around a header value (those an HTTP header may carry)."""
_ANY_PART: Final = r"(?:0*[0-9]{1,5}(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|ms|s|m|h)"
_POSITIVE_PART: Final = (
    r"(?:0*[1-9][0-9]{0,4}(?:\.[0-9]*)?(?:ns|us|ms|s|m|h)"
    # A fraction alone (0.5h, .25m, 0.000000001s): a nanosecond at least in s, m and h.
    r"|0*\.0{0,8}[1-9][0-9]*(?:s|m|h))"
)

PAUSE_RETENTION_PATTERN: Final = (
    rf"^{_WS}(?:forever|\+?(?:{_ANY_PART}){{0,2}}{_POSITIVE_PART}(?:{_ANY_PART}){{0,3}})?{_WS}$"
)
"""The published pattern of the pause header ``x-e2b-kruise-reserve-paused-sandbox-duration``.

``forever``, a positive Go duration, or blank (the header not given). The
server takes any positive Go duration (``parse_retention``); the pattern
is the part of them it can state exactly, every value of which the server
takes: at most six parts of at most five whole digits each (a sum that
cannot overflow Go's 2562047h), one with a whole number above zero or, in
seconds, minutes or hours, a fraction with a non-zero digit among its first
nine (a positive sum), ASCII digits and units. Longer spellings (``604800s``) are
taken but not published.
"""


def _published_bounds(bounds: tuple[int, int]) -> FieldInfo:
    """An ``int`` field's published ``minimum``/``maximum``, not enforced by the model.

    The server checks the bound itself and answers with its own message and
    code (400, or 500 on ``/timeout`` and ``/resume``); a pydantic bound would
    answer pydantic's message instead.
    """
    low, high = bounds
    info: FieldInfo = Field(json_schema_extra={"minimum": low, "maximum": high})
    return info


_CreateSeconds = Annotated[int, _published_bounds(CREATE_TIMEOUT_BOUNDS)]
_Seconds = Annotated[int, _published_bounds(TIMEOUT_BOUNDS)]
_ResumeSeconds = Annotated[int, _published_bounds(RESUME_TIMEOUT_BOUNDS)]


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def replace_surrogates(value: Any) -> Any:
    """``value`` with each lone UTF-16 surrogate of its strings replaced by U+FFFD.

    Walks dicts (keys too), lists and tuples; other values are returned as
    they are, and so is any container or string with nothing to replace (the
    same object). Python's ``json`` decodes ``"\\ud800"`` to a lone surrogate,
    which no UTF-8 encoder accepts; Go's ``encoding/json`` decodes it to
    U+FFFD. A pair of surrogates forming one character (which PyYAML leaves
    as two, where ``json`` joins them) becomes that character.
    """
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return value
        # UTF-16 joins each high-low pair; "replace" makes each lone one U+FFFD.
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key, new_item = replace_surrogates(key), replace_surrogates(item)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [replace_surrogates(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


class WireModel(BaseModel):
    """Base of the wire models: JSON names as aliases, unknown request fields ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=True)

    NULLABLE: ClassVar[tuple[str, ...]] = ()
    """JSON names written even when ``None`` (the SDK models them as nullable), in this order.

    A tuple, not a set: a set's order follows the string hash seed, and the
    same run must answer the same bytes.
    """

    def to_wire(self) -> dict[str, Any]:
        """The JSON object: aliases, RFC 3339 times, ``None`` left out unless nullable here."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for key in self.NULLABLE:
            data.setdefault(key, None)
        return data


# --------------------------------------------------------------------------- requests


def _go_fold(key: str) -> str:
    """``key`` as Go's ``encoding/json`` folds a name to match it to a field: upper case.

    Each letter's simple upper case (``unicode.ToUpper``: a dotless i, U+0131, is
    ``I``), so two names match when they differ in case only. A letter whose
    upper case is several (``ß``: ``SS``) has no simple one and stays.
    """
    if key.isascii():
        return key.upper()
    return "".join(up if len(up := c.upper()) == 1 else c for c in key)


@cache
def _fields_by_fold(model: type[BaseModel]) -> dict[str, str]:
    """The JSON name of each field of ``model``, under its :func:`_go_fold`."""
    names = (field.alias or name for name, field in model.model_fields.items())
    return {_go_fold(name): name for name in names}


_KEEP: Final = object()
"""A field (or element) whose ``null`` is read as it is: a pointer in Go, ``None`` here."""
_DROP: Final = object()
"""A field whose ``null`` leaves it as if absent: Go leaves a non-pointer field unset on ``null``."""

_GO_ZERO: Final[dict[Any, Any]] = {bool: False, int: 0, float: 0.0, str: ""}
"""The zero value Go's decoder leaves in a field of each scalar type on a JSON ``null``."""


def _bare(annotation: Any) -> Any:
    """``annotation`` without its ``Annotated[...]`` wrappers."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


@cache
def _null_rules(model: type[BaseModel]) -> dict[str, tuple[Any, Any]]:
    """``{JSON name: (field zero, element zero)}`` of the fields whose ``null`` Go reads as a value.

    The field zero is what a ``null`` of the field becomes (:data:`_DROP`: as if
    absent), the element zero what a ``null`` item of its list or map of scalars
    becomes (:data:`_KEEP`: left as it is). Fields that admit ``None`` (Go's
    pointers) keep a ``null`` of their own; only their elements may have a rule.
    """
    rules: dict[str, tuple[Any, Any]] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = get_args(annotation)
        admits_none = NoneType in args
        base = _bare(annotation)
        if admits_none:
            others = [a for a in args if a is not NoneType]
            base = _bare(others[0]) if len(others) == 1 else Any
        zero = _KEEP if admits_none else _GO_ZERO.get(base, _DROP)
        element = _KEEP
        if get_origin(base) in (list, dict):
            element = _GO_ZERO.get(_bare(get_args(base)[-1]), _KEEP)
        if zero is not _KEEP or element is not _KEEP:
            rules[field.alias or name] = (zero, element)
    return rules


def _go_nulls(model: type[BaseModel], data: dict[Any, Any]) -> dict[Any, Any]:
    """``data`` with each ``null`` read as Go's ``encoding/json`` reads it into ``model``.

    A ``null`` leaves a non-pointer field at its zero value (``false``, ``0``,
    ``""``; a slice, map or struct unset) and puts the zero value in a map entry
    or slice item of a scalar type (``{"a": null}`` is ``{"a": ""}``). Returns
    ``data`` itself when no ``null`` needs it (what every SDK sends).
    """
    rules = _null_rules(model)
    out: dict[Any, Any] | None = None
    for key, value in data.items():
        rule = rules.get(key) if isinstance(key, str) else None
        if rule is None:
            continue
        zero, element = rule
        if value is None:
            if zero is _KEEP:
                continue
            new = zero
        elif element is not _KEEP and isinstance(value, dict) and None in value.values():
            new = {k: element if v is None else v for k, v in value.items()}
        elif element is not _KEEP and isinstance(value, list) and None in value:
            new = [element if v is None else v for v in value]
        else:
            continue
        if out is None:
            out = dict(data)
        if new is _DROP:
            del out[key]
        else:
            out[key] = new
    return data if out is None else out


def _or_null(schema: dict[str, Any]) -> None:
    """Let ``schema`` (a property's, or its items') also be ``null``."""
    branches = schema.get("anyOf")
    if branches is not None:
        if {"type": "null"} not in branches:
            branches.append({"type": "null"})
        return
    moved = {k: schema.pop(k) for k in list(schema) if k not in ("title", "description", "default")}
    schema["anyOf"] = [moved, {"type": "null"}]


def _published_nulls(schema: dict[str, Any], cls: type[Any]) -> None:
    """Publish the ``null`` a request takes where Go's decoder takes it (:func:`_go_nulls`).

    A bool or string field, and the items of a list or map of scalars, may be
    ``null`` (read as the zero value). Not an integer field: its zero, 0, is
    below every published minimum (a ``timeout``), so its ``null`` is refused.
    """
    assert issubclass(cls, BaseModel)
    props: dict[str, Any] = schema.get("properties", {})
    for key, (zero, element) in _null_rules(cls).items():
        prop = props.get(key)
        if prop is None:
            continue
        if zero is not _KEEP and zero is not _DROP and type(zero) is not int:
            _or_null(prop)
        if element is _KEEP:
            continue
        for branch in prop.get("anyOf", [prop]):
            for part in ("items", "additionalProperties"):
                inner = branch.get(part)
                if isinstance(inner, dict):
                    _or_null(inner)


class WireRequest(WireModel):
    """Base of the request models: keys and strings are read as Go reads them.

    A key matches a field whatever its case (``Timeout``, ``templateid``), as
    ``encoding/json`` matches keys to struct fields, and of two keys matching
    the same field the later one's value stays; the keys of a map
    (``metadata``, ``envVars``) are data, and are kept as sent. Lone
    surrogates in strings read as U+FFFD. A ``null`` is read as Go reads it
    (:func:`_go_nulls`): a non-pointer field keeps its zero value, a map entry
    or slice item of a scalar type gets it.

    Responses need no such pass (it would cost a list a third of its
    rendering time): they show what requests stored, and the server's JSON
    rendering repairs anything else.
    """

    model_config = ConfigDict(json_schema_extra=_published_nulls)

    @model_validator(mode="before")
    @classmethod
    def _go_strings(cls, data: Any) -> Any:
        # Before any field is read: a later error message quoting a key must be encodable.
        data = replace_surrogates(data)
        if not isinstance(data, dict):
            return data
        fields = _fields_by_fold(cls)
        if not all(isinstance(key, str) and fields.get(_go_fold(key)) == key for key in data):
            # Not as every SDK sends it (each key as the field spells it): fold the keys.
            folded: dict[Any, Any] = {}
            for key, value in data.items():
                # In order: a later key of the same field replaces the earlier one's value.
                name = fields.get(_go_fold(key), key) if isinstance(key, str) else key
                folded[name] = value
            data = folded
        return _go_nulls(cls, data)


class SandboxVolumeMount(WireRequest):
    """``{"name", "path"}``: a volume to mount (kruise turns it into a CSI mount)."""

    name: str
    path: str


class SandboxAutoResumeConfig(WireRequest):
    """``autoResume``: whether traffic resumes a paused sandbox (accepted, not modelled)."""

    enabled: bool


class SandboxNetworkConfig(WireRequest):
    """``network``: egress rules (``allowOut``/``denyOut`` reported in the detail, none enforced)."""

    allow_public_traffic: bool | None = Field(default=None, alias="allowPublicTraffic")
    allow_out: list[str] | None = Field(default=None, alias="allowOut")
    deny_out: list[str] | None = Field(default=None, alias="denyOut")
    dns_servers: list[str] | None = Field(default=None, alias="dnsServers")
    egress_proxy: dict[str, Any] | None = Field(default=None, alias="egressProxy")
    mask_request_host: str | None = Field(default=None, alias="maskRequestHost")
    https_ports: list[int] | None = Field(default=None, alias="httpsPorts")
    rules: dict[str, Any] | None = None


class SandboxIamToken(WireRequest):
    """One workload-token definition of ``iam.tokens``."""

    audience: str
    token_type: str = Field(alias="tokenType")


class SandboxIam(WireRequest):
    """``iam``: workload identity (accepted and ignored)."""

    tokens: dict[str, SandboxIamToken] | None = None


class NewSandboxV2(WireRequest):
    """``POST /v2/sandboxes`` (SDK ≥ 2.51). ``timeout`` omitted means the server default (300 s)."""

    template_id: str = Field(alias="templateID")
    timeout: _CreateSeconds | None = None
    auto_pause: bool = Field(default=False, alias="autoPause")
    auto_pause_memory: bool | None = Field(default=None, alias="autoPauseMemory")
    auto_resume: SandboxAutoResumeConfig | None = Field(default=None, alias="autoResume")
    # snake_case on the wire, unlike every other field.
    allow_internet_access: bool | None = Field(default=None, alias="allow_internet_access")
    network: SandboxNetworkConfig | None = None
    metadata: dict[str, str] | None = None
    env_vars: dict[str, str] | None = Field(default=None, alias="envVars")
    mcp: dict[str, Any] | None = None
    iam: SandboxIam | None = None
    volume_mounts: list[SandboxVolumeMount] | None = Field(default=None, alias="volumeMounts")


class NewSandbox(NewSandboxV2):
    """``POST /sandboxes`` (SDK ≤ 2.50): the v2 fields plus ``secure`` (ignored)."""

    secure: bool | None = None


class ConnectSandbox(WireRequest):
    """``POST /sandboxes/{id}/connect`` (v1): ``timeout`` is required."""

    timeout: _Seconds
    memory: bool | None = None


class ConnectSandboxV2(WireRequest):
    """``POST /v2/sandboxes/{id}/connect``: ``timeout`` optional (server default 300 s)."""

    timeout: _Seconds | None = None
    memory: bool | None = None


class ResumedSandbox(WireRequest):
    """``POST /sandboxes/{id}/resume`` (deprecated, SDK ≤ 2.6)."""

    timeout: _ResumeSeconds | None = None
    auto_pause: bool | None = Field(default=None, alias="autoPause")
    memory: bool | None = None


class SandboxTimeoutRequest(WireRequest):
    """``POST /sandboxes/{id}/timeout``: seconds from now."""

    timeout: _Seconds


class SandboxPauseRequest(WireRequest):
    """The SDK's ``POST /sandboxes/{id}/pause`` body: the server ignores it, as upstream does."""

    memory: bool | None = None
    require_healthy_guest: bool | None = Field(default=None, alias="requireHealthyGuest")


# --------------------------------------------------------------------------- responses


def _admits_none(field: FieldInfo) -> bool:
    return NoneType in get_args(field.annotation)


def _without_null(prop: dict[str, Any]) -> None:
    """Drop the ``null`` branch (and the ``null`` default) of a property's schema."""
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" in prop and len(branches) == 1:
        del prop["anyOf"]
        prop.update(branches[0])
    elif "anyOf" in prop:
        prop["anyOf"] = branches
    if "default" in prop and prop["default"] is None:
        del prop["default"]


def _as_written(schema: dict[str, Any], cls: type[Any]) -> None:
    """Make a response model's JSON schema say what :meth:`WireModel.to_wire` writes.

    ``to_wire`` writes every field that cannot be ``None`` and every
    ``NULLABLE`` one on every answer (so they are ``required``), and leaves a
    ``None`` out otherwise (so no other field is ever ``null``). The SDK's
    ``from_dict`` relies on both: it raises on a missing ``clientID`` and
    on a ``null`` ``lifecycle``.
    """
    assert issubclass(cls, WireModel)
    props: dict[str, Any] = schema.get("properties", {})
    required: list[str] = list(schema.get("required", []))
    for name, field in cls.model_fields.items():
        key = field.alias or name
        prop = props.get(key)
        if prop is None:
            continue
        nullable = key in cls.NULLABLE
        if (nullable or not _admits_none(field)) and key not in required:
            required.append(key)
        if not nullable:
            _without_null(prop)
    schema["required"] = required


class WireResponse(WireModel):
    """Base of the response models: the published schema is what :meth:`to_wire` writes."""

    model_config = ConfigDict(json_schema_extra=_as_written)


class SandboxLifecycle(WireResponse):
    """``lifecycle`` of :class:`SandboxDetail`: what happens at the timeout."""

    on_timeout: Literal["kill", "pause"] = Field(alias="onTimeout")
    auto_resume: bool = Field(alias="autoResume")


class SandboxResponse(WireResponse):
    """The ``Sandbox`` of create and connect (201 / 200).

    The SDK requires ``templateID``, ``sandboxID``, ``clientID`` and
    ``envdVersion``; the rest are the sandbox-manager's extras (§6.3).
    """

    NULLABLE: ClassVar[tuple[str, ...]] = ("trafficAccessToken", "domain")

    template_id: str = Field(alias="templateID")
    sandbox_id: str = Field(alias="sandboxID")
    client_id: str = Field(default="", alias="clientID")
    envd_version: str = Field(alias="envdVersion")
    envd_access_token: str | None = Field(default=None, alias="envdAccessToken")
    traffic_access_token: str | None = Field(default=None, alias="trafficAccessToken")
    domain: str | None = None
    started_at: datetime | None = Field(default=None, alias="startedAt")
    end_at: datetime | None = Field(default=None, alias="endAt")
    cpu_count: int | None = Field(default=None, alias="cpuCount")
    memory_mb: int | None = Field(default=None, alias="memoryMB")
    disk_size_mb: int | None = Field(default=None, alias="diskSizeMB")
    alias: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    state: Literal["running", "paused"] | None = None


class ListedSandbox(WireResponse):
    """One item of ``GET /v2/sandboxes``."""

    template_id: str = Field(alias="templateID")
    sandbox_id: str = Field(alias="sandboxID")
    client_id: str = Field(default="", alias="clientID")
    started_at: datetime = Field(alias="startedAt")
    end_at: datetime = Field(alias="endAt")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    state: Literal["running", "paused"]
    envd_version: str = Field(alias="envdVersion")
    alias: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


class SandboxNetwork(WireResponse):
    """``network`` of :class:`SandboxDetail`: the sandbox-manager's model, egress rules only.

    Upstream's create model has ``allowOut`` and ``denyOut`` and nothing else
    of E2B's ``SandboxNetworkConfig`` (reference §6.3); an unset list is left
    out, not ``null``, which the SDK could not read.
    """

    allow_out: list[str] | None = Field(default=None, alias="allowOut")
    deny_out: list[str] | None = Field(default=None, alias="denyOut")


class SandboxDetail(ListedSandbox):
    """``GET /sandboxes/{id}``: a listed sandbox plus token, domain, lifecycle and network."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("domain", "allowInternetAccess")

    envd_access_token: str | None = Field(default=None, alias="envdAccessToken")
    domain: str | None = None
    allow_internet_access: bool | None = Field(default=None, alias="allowInternetAccess")
    lifecycle: SandboxLifecycle | None = None
    network: SandboxNetwork | None = None


class TemplateBuild(WireResponse):
    """One build of a template (a SandboxSet has exactly one, always ready)."""

    build_id: str = Field(alias="buildID", json_schema_extra={"format": "uuid"})
    status: Literal["building", "error", "ready", "waiting"] = "ready"
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    envd_version: str = Field(alias="envdVersion")


class TemplateInfo(WireResponse):
    """An item of ``GET /templates``: a SandboxSet the caller may claim from."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("createdBy", "lastSpawnedAt")

    template_id: str = Field(alias="templateID")
    # A uuid5 of the SandboxSet (control._build_id): the SDK parses a build's as a UUID.
    build_id: str = Field(alias="buildID", json_schema_extra={"format": "uuid"})
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    public: bool = True
    aliases: list[str]
    names: list[str]
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    created_by: dict[str, Any] | None = Field(default=None, alias="createdBy")
    last_spawned_at: datetime | None = Field(default=None, alias="lastSpawnedAt")
    spawn_count: int = Field(default=0, alias="spawnCount")
    build_count: int = Field(default=1, alias="buildCount")
    envd_version: str = Field(alias="envdVersion")
    # Upstream answers "deleting" for a SandboxSet being deleted, a value the
    # SDK's TemplateBuildStatus does not know.
    build_status: Literal["building", "error", "ready", "waiting", "deleting"] = Field(
        default="ready", alias="buildStatus"
    )


class TemplateDetail(TemplateInfo):
    """``GET /templates/{id}``: the template and its builds."""

    builds: list[TemplateBuild]


class Error(WireResponse):
    """Every error body: ``{"code", "message"}`` plus upstream's ``request_id``."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", strict=True)

    code: int
    message: str
    request_id: str | None = None
