"""Pydantic models of ``agents.kruise.io/v1alpha1`` and the Kubernetes objects around them."""

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.base import Duration, KubeModel, Time, format_time, parse_time
from pytest_kruise_agents.api.durations import format_duration, parse_duration
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.meta import (
    Condition,
    ObjectMeta,
    OwnerReference,
    find_condition,
    set_condition,
)
from pytest_kruise_agents.api.pod import Pod, PodStatus
from pytest_kruise_agents.api.sandbox import (
    ConditionType,
    PauseStrategy,
    PodInfo,
    RuntimeRef,
    Sandbox,
    SandboxPhase,
    SandboxSpec,
    SandboxState,
    SandboxStatus,
    TemplateRef,
)
from pytest_kruise_agents.api.sandboxclaim import (
    ClaimPhase,
    CSIMountConfig,
    InplaceUpdate,
    ResourceRequirements,
    SandboxClaim,
    SandboxClaimSpec,
    SandboxClaimStatus,
)
from pytest_kruise_agents.api.sandboxset import (
    SandboxSet,
    SandboxSetSpec,
    SandboxSetStatus,
    ScaleStrategy,
    UpdateStrategy,
    scaled_value,
)

__all__ = [
    "CSIMountConfig",
    "ClaimPhase",
    "Condition",
    "ConditionType",
    "Duration",
    "InplaceUpdate",
    "InvalidError",
    "KubeModel",
    "ObjectMeta",
    "OwnerReference",
    "PauseStrategy",
    "Pod",
    "PodInfo",
    "PodStatus",
    "ResourceRequirements",
    "RuntimeRef",
    "Sandbox",
    "SandboxClaim",
    "SandboxClaimSpec",
    "SandboxClaimStatus",
    "SandboxPhase",
    "SandboxSet",
    "SandboxSetSpec",
    "SandboxSetStatus",
    "SandboxSpec",
    "SandboxState",
    "SandboxStatus",
    "ScaleStrategy",
    "TemplateRef",
    "Time",
    "UpdateStrategy",
    "find_condition",
    "format_duration",
    "format_time",
    "keys",
    "parse_duration",
    "parse_time",
    "scaled_value",
    "set_condition",
]
