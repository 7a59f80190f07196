"""``Sandbox`` (short name ``sbx``): one agent sandbox, backed by a pod of the same name."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from pytest_kruise_agents.api.base import KubeModel, Time, enum_from_text, from_manifest
from pytest_kruise_agents.api.keys import API_VERSION
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.pod import validate_pod_template
from pytest_kruise_agents.api.validation import dns_subdomain_problem

__all__ = [
    "ConditionType",
    "PauseStrategy",
    "PodInfo",
    "RuntimeRef",
    "Sandbox",
    "SandboxPhase",
    "SandboxSpec",
    "SandboxState",
    "SandboxStatus",
    "TemplateRef",
]


class SandboxPhase(StrEnum):
    """``SandboxPhase`` values (reference §1.2)."""

    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    RESUMING = "Resuming"
    UPGRADING = "Upgrading"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    RECYCLING = "Recycling"
    TERMINATING = "Terminating"


class SandboxState(StrEnum):
    """The derived state the claim logic uses (reference §1.3)."""

    CREATING = "creating"
    AVAILABLE = "available"
    RUNNING = "running"
    PAUSED = "paused"
    DEAD = "dead"


class ConditionType(StrEnum):
    """Sandbox condition types."""

    READY = "Ready"
    SANDBOX_PAUSED = "SandboxPaused"
    SANDBOX_RESUMED = "SandboxResumed"
    INPLACE_UPDATE = "InplaceUpdate"
    RUNTIME_INITIALIZED = "RuntimeInitialized"
    RECYCLING = "Recycling"


class RuntimeRef(KubeModel):
    """A sidecar runtime to inject: ``agent-runtime``, ``csi`` or ``traffic-proxy``."""

    name: str


class PauseStrategy(KubeModel):
    """How a pause is carried out; the open-source controller implements only ``Stop``."""

    type: Literal["Stop", "Hibernate"] = "Stop"
    hibernate_strategy: dict[str, Any] | None = None


class TemplateRef(KubeModel):
    """Reference to a ``SandboxTemplate``."""

    name: str
    kind: str | None = None
    api_version: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # It names a SandboxTemplate, so it must be one's name (upstream's
        # validator refuses an empty one).
        if not value:
            raise ValueError("required value: the name of a SandboxTemplate")
        why = dns_subdomain_problem(value)
        if why is not None:
            raise ValueError(why)
        return value


class SandboxSpec(KubeModel):
    """``SandboxSpec``: desired state of one sandbox."""

    paused: bool | None = None
    pause_strategy: PauseStrategy | None = None
    persistent_contents: list[str] | None = None
    shutdown_time: Time | None = None
    pause_time: Time | None = None
    runtimes: list[RuntimeRef] | None = None
    lifecycle: dict[str, Any] | None = None
    upgrade_policy: dict[str, Any] | None = None
    template_ref: TemplateRef | None = None
    template: dict[str, Any] | None = None
    volume_claim_templates: list[dict[str, Any]] | None = None

    @field_validator("template")
    @classmethod
    def _valid_pod_template(
        cls, template: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        # Upstream has no Sandbox webhook: a bad template there is accepted and
        # its pod is refused at every reconcile. The pod is made from it as
        # from a SandboxSet's, so it is checked as one (a deliberate
        # difference, as for a SandboxSet's name), but for the reserved
        # ``e2b.agents.kruise.io/`` keys, a SandboxSet webhook rule that a
        # pod does not have, and for a request above its limit, which a
        # claim's in-place resize writes here. Manifests only: the
        # controllers build sandboxes from templates already checked.
        if template is not None and from_manifest(info):
            validate_pod_template(template, reserved_keys=False, request_limits=False)
        return template

    @model_validator(mode="after")
    def _template_xor_ref(self, info: ValidationInfo) -> SandboxSpec:
        # Mutually exclusive (reference §1.2), as on a SandboxSet: with both, the
        # pod was made from the inline template and the reference silently
        # ignored. Manifests only: the controllers never build a sandbox with both.
        if self.template is not None and self.template_ref is not None and from_manifest(info):
            raise ValueError("templateRef and template are mutually exclusive")
        return self


class PodInfo(KubeModel):
    """What the sandbox knows of its pod."""

    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    node_name: str | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_uid: str | None = Field(default=None, alias="podUID")


class SandboxStatus(KubeModel):
    """``SandboxStatus``."""

    observed_generation: int | None = None
    phase: Annotated[SandboxPhase | None, BeforeValidator(enum_from_text(SandboxPhase))] = None
    message: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    pod_info: PodInfo | None = None
    node_name: str | None = None
    sandbox_ip: str | None = None
    update_revision: str | None = None
    recycled_count: int | None = None


class Sandbox(KubeModel):
    """``agents.kruise.io/v1alpha1`` ``Sandbox``."""

    api_version: Literal["agents.kruise.io/v1alpha1"] = API_VERSION
    kind: Literal["Sandbox"] = "Sandbox"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SandboxSpec = Field(default_factory=SandboxSpec)
    status: SandboxStatus = Field(default_factory=SandboxStatus)
