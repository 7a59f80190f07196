"""The E2B control-plane wire models: what the SDKs send and what they parse.

Field names are the JSON names of the generated client in the ``e2b`` wheel
(``e2b/api/client/models/``): camelCase (``templateID``, ``envVars``,
``memoryMB``) except ``allow_internet_access``, which really is snake_case on
the wire. Requests tolerate unknown fields (the Go server ignores them) but
reject wrong types, as Go's JSON decoder does. Responses are serialised with
:meth:`WireModel.to_wire`: optional fields are left out when unset, except the
nullable ones the SDK expects to see (``trafficAccessToken``, ``domain``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    "SandboxNetworkConfig",
    "SandboxPauseRequest",
    "SandboxResponse",
    "SandboxTimeoutRequest",
    "SandboxVolumeMount",
    "TemplateBuild",
    "TemplateDetail",
    "TemplateInfo",
    "WireModel",
]

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time``: what upstream writes as ``endAt`` of a never-timeout sandbox."""


class WireModel(BaseModel):
    """Base of the wire models: JSON names as aliases, unknown request fields ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", strict=True)

    NULLABLE: ClassVar[frozenset[str]] = frozenset()
    """JSON names written even when ``None`` (the SDK models them as nullable)."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object: aliases, RFC 3339 times, ``None`` left out unless nullable here."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for key in self.NULLABLE:
            data.setdefault(key, None)
        return data


# --------------------------------------------------------------------------- requests


class SandboxVolumeMount(WireModel):
    """``{"name", "path"}``: a volume to mount (kruise turns it into a CSI mount)."""

    name: str
    path: str


class SandboxAutoResumeConfig(WireModel):
    """``autoResume``: whether traffic resumes a paused sandbox (accepted, not modelled)."""

    enabled: bool


class SandboxNetworkConfig(WireModel):
    """``network``: egress rules (accepted and ignored by the fake cluster)."""

    allow_public_traffic: bool | None = Field(default=None, alias="allowPublicTraffic")
    allow_out: list[str] | None = Field(default=None, alias="allowOut")
    deny_out: list[str] | None = Field(default=None, alias="denyOut")
    dns_servers: list[str] | None = Field(default=None, alias="dnsServers")
    egress_proxy: dict[str, Any] | None = Field(default=None, alias="egressProxy")
    mask_request_host: str | None = Field(default=None, alias="maskRequestHost")
    https_ports: list[int] | None = Field(default=None, alias="httpsPorts")
    rules: dict[str, Any] | None = None


class SandboxIamToken(WireModel):
    """One workload-token definition of ``iam.tokens``."""

    audience: str
    token_type: str = Field(alias="tokenType")


class SandboxIam(WireModel):
    """``iam``: workload identity (accepted and ignored)."""

    tokens: dict[str, SandboxIamToken] | None = None


class NewSandboxV2(WireModel):
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


class ConnectSandbox(WireModel):
    """``POST /sandboxes/{id}/connect`` (v1): ``timeout`` is required."""

    timeout: int
    memory: bool | None = None


class ConnectSandboxV2(WireModel):
    """``POST /v2/sandboxes/{id}/connect``: ``timeout`` optional (server default 300 s)."""

    timeout: int | None = None
    memory: bool | None = None


class ResumedSandbox(WireModel):
    """``POST /sandboxes/{id}/resume`` (deprecated, SDK ≤ 2.6)."""

    timeout: int | None = None
    auto_pause: bool | None = Field(default=None, alias="autoPause")
    memory: bool | None = None


class SandboxTimeoutRequest(WireModel):
    """``POST /sandboxes/{id}/timeout``: seconds from now."""

    timeout: int


class SandboxPauseRequest(WireModel):
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

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"trafficAccessToken", "domain"})

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


class SandboxDetail(ListedSandbox):
    """``GET /sandboxes/{id}``: a listed sandbox plus token, domain and lifecycle."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"domain", "allowInternetAccess"})

    envd_access_token: str | None = Field(default=None, alias="envdAccessToken")
    domain: str | None = None
    allow_internet_access: bool | None = Field(default=None, alias="allowInternetAccess")
    lifecycle: SandboxLifecycle | None = None


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

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"createdBy", "lastSpawnedAt"})

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
    build_status: Literal["building", "error", "ready", "waiting"] = Field(
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
