"""The E2B control-plane wire models: what the SDKs send and what they parse.

Field names are the JSON names of the generated client in the ``e2b`` wheel
(``e2b/api/client/models/``): camelCase (``templateID``, ``envVars``,
``memoryMB``) except ``allow_internet_access``, which really is snake_case on
the wire. Requests tolerate unknown fields (the Go server ignores them) but
reject wrong types, as Go's JSON decoder does, and every string in them
(object keys included) has its lone UTF-16 surrogates (``"\\ud800"``, valid
JSON that Python decodes as is) replaced by U+FFFD, as Go's decoder does: such
a string cannot be encoded as UTF-8, so kept it would fail every answer that
shows it (:func:`replace_surrogates`). Responses are serialised with
:meth:`WireModel.to_wire`: optional fields are left out when unset, except the
nullable ones the SDK expects to see (``trafficAccessToken``, ``domain``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
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
    "replace_surrogates",
]

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time``: what upstream writes as ``endAt`` of a never-timeout sandbox."""


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def replace_surrogates(value: Any) -> Any:
    """``value`` with each lone UTF-16 surrogate of its strings replaced by U+FFFD.

    Walks dicts (keys too), lists and tuples; other values are returned as
    they are, and so is any container or string with nothing to replace (the
    same object). Python's ``json`` decodes ``"\\ud800"`` to a lone surrogate,
    which no UTF-8 encoder accepts; Go's ``encoding/json`` decodes it to
    U+FFFD (a pair of escapes forming one character is decoded to that
    character by both).
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
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


class WireRequest(WireModel):
    """Base of the request models: strings are read as Go reads them (lone surrogates: U+FFFD).

    Responses need no such pass (it would cost a list a third of its
    rendering time): they show what requests stored, and the server's JSON
    rendering repairs anything else.
    """

    @model_validator(mode="before")
    @classmethod
    def _go_strings(cls, data: Any) -> Any:
        # Before any field is read: a later error message quoting a key must be encodable.
        return replace_surrogates(data)


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
    timeout: int | None = None
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

    timeout: int
    memory: bool | None = None


class ConnectSandboxV2(WireRequest):
    """``POST /v2/sandboxes/{id}/connect``: ``timeout`` optional (server default 300 s)."""

    timeout: int | None = None
    memory: bool | None = None


class ResumedSandbox(WireRequest):
    """``POST /sandboxes/{id}/resume`` (deprecated, SDK ≤ 2.6)."""

    timeout: int | None = None
    auto_pause: bool | None = Field(default=None, alias="autoPause")
    memory: bool | None = None


class SandboxTimeoutRequest(WireRequest):
    """``POST /sandboxes/{id}/timeout``: seconds from now."""

    timeout: int


class SandboxPauseRequest(WireRequest):
    """``POST /sandboxes/{id}/pause`` (fields accepted, not modelled)."""

    memory: bool | None = None
    require_healthy_guest: bool | None = Field(default=None, alias="requireHealthyGuest")


# --------------------------------------------------------------------------- responses


class SandboxLifecycle(WireModel):
    """``lifecycle`` of :class:`SandboxDetail`: what happens at the timeout."""

    on_timeout: Literal["kill", "pause"] = Field(alias="onTimeout")
    auto_resume: bool = Field(alias="autoResume")


class SandboxResponse(WireModel):
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


class ListedSandbox(WireModel):
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


class SandboxNetwork(WireModel):
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


class TemplateBuild(WireModel):
    """One build of a template (a SandboxSet has exactly one, always ready)."""

    build_id: str = Field(alias="buildID")
    status: Literal["building", "error", "ready", "waiting"] = "ready"
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    envd_version: str = Field(alias="envdVersion")


class TemplateInfo(WireModel):
    """An item of ``GET /templates``: a SandboxSet the caller may claim from."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("createdBy", "lastSpawnedAt")

    template_id: str = Field(alias="templateID")
    build_id: str = Field(alias="buildID")
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


class Error(WireModel):
    """Every error body: ``{"code", "message"}`` plus upstream's ``request_id``."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", strict=True)

    code: int
    message: str
    request_id: str | None = None
