"""``SandboxClaim`` (short name ``sbc``): claim one or more sandboxes from a pool."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from pytest_kruise_agents.api.base import Duration, KubeModel, Time, enum_from_text, from_manifest
from pytest_kruise_agents.api.keys import API_VERSION, LABEL_CLAIM_NAME
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.pod import image_problem
from pytest_kruise_agents.api.quantity import parse_quantity, quantity_text
from pytest_kruise_agents.api.sandbox import RuntimeRef
from pytest_kruise_agents.api.validation import (
    FieldProblem,
    check_annotations,
    check_env_vars,
    check_labels,
    name_as_label_problem,
)

__all__ = [
    "CSIMountConfig",
    "ClaimPhase",
    "InplaceUpdate",
    "ResourceRequirements",
    "SandboxClaim",
    "SandboxClaimSpec",
    "SandboxClaimStatus",
]


class ClaimPhase(StrEnum):
    """SandboxClaim phases that exist in code (no ``Pending``)."""

    CLAIMING = "Claiming"
    COMPLETED = "Completed"


class CSIMountConfig(KubeModel):
    """A dynamic CSI volume mount done at claim time."""

    mount_id: str | None = Field(default=None, alias="mountID")
    pv_name: str = Field(min_length=1)
    mount_path: str = Field(min_length=1)
    sub_path: str | None = None
    read_only: bool | None = None
    attributes: dict[str, str] | None = None


def _quantity(value: Any) -> Any:
    # A YAML number (``cpu: 1``) is a quantity, as in a pod template; one
    # that does not parse is refused at apply (the CRD's Quantity type), not
    # at every claim attempt.
    value = quantity_text(value)
    if isinstance(value, str):
        value = value.strip()  # Quantity.UnmarshalJSON trims blanks before it parses
        parse_quantity(value)
    return value


Quantity = Annotated[str, BeforeValidator(_quantity)]


class ResourceRequirements(KubeModel):
    """Container resource requests and limits (quantities: ``"500m"``, ``1``)."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class InplaceUpdate(KubeModel):
    """In-place image or CPU change of the first container at claim time."""

    image: str | None = None
    resources: ResourceRequirements | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The image goes into each claimed sandbox's pod template, which must
        # stay a template a pod can be made from: refused here rather than at
        # every claim attempt (a deliberate difference, upstream has no webhook).
        if value is None or not from_manifest(info):
            return value
        if value == "":
            raise ValueError("must not be empty (leave the field out to keep the image)")
        why = image_problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("resources")
    @classmethod
    def _cpu_only(
        cls, value: ResourceRequirements | None, info: ValidationInfo
    ) -> ResourceRequirements | None:
        # Only CPU is resized (reference §1: "CPU only"); another resource was
        # dropped at every claim, where the E2B path's memory-request is a 400:
        # refused here, naming it (a deliberate difference, upstream ignores it).
        if value is None or not from_manifest(info):
            return value
        for part, section in (("requests", value.requests), ("limits", value.limits)):
            for name, quantity in (section or {}).items():
                if name != "cpu":
                    raise FieldProblem((part, name), f"{name} resize is not supported, only cpu")
                # Each claim attempt refuses a CPU of zero or less (a 400, as the
                # E2B path's cpu-request): refused here, naming the field, rather
                # than timing the claim out with no word of why.
                if parse_quantity(quantity) <= 0:
                    raise FieldProblem((part, name), f"must be greater than 0, got {quantity!r}")
        return value


class SandboxClaimSpec(KubeModel):
    """``SandboxClaimSpec`` with the CRD's defaults and validation."""

    template_name: str = Field(min_length=1)
    replicas: int = Field(default=1, ge=1, le=2**31 - 1)  # an int32 in the CRD
    shutdown_time: Time | None = None
    claim_timeout: Duration = timedelta(minutes=1)
    ttl_after_completed: Duration = timedelta(minutes=60)
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    env_vars: dict[str, str] | None = None
    inplace_update: InplaceUpdate | None = None
    dynamic_volumes_mount: list[CSIMountConfig] | None = None
    runtimes: list[RuntimeRef] | None = None
    reserve_failed_sandbox: bool = False
    create_on_no_stock: bool = True
    wait_ready_timeout: Duration = timedelta(seconds=30)
    skip_init_runtime: bool = False

    @field_validator("claim_timeout", "wait_ready_timeout")
    @classmethod
    def _at_least_one_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("labels")
    @classmethod
    def _sandbox_labels(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        # Written onto each claimed sandbox: refused here rather than by the
        # API server at every claim attempt (a deliberate difference).
        if value is not None and from_manifest(info):
            check_labels(value)
        return value

    @field_validator("annotations")
    @classmethod
    def _sandbox_annotations(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        if value is not None and from_manifest(info):
            check_annotations(value)
        return value

    @field_validator("env_vars")
    @classmethod
    def _env_vars_a_process_can_carry(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        # Passed to each claimed sandbox's runtime (/init) for its commands: a
        # name with '=' or NUL would fail every command the sandbox runs. Refused
        # here (a deliberate difference: upstream has no SandboxClaim webhook).
        # Their size with the annotations is the claim system's rule, checked at
        # apply (claiming.sandboxclaim.sandboxclaim_annotations_problem).
        if value is not None and from_manifest(info):
            check_env_vars(value)
        return value

    @field_validator("dynamic_volumes_mount")
    @classmethod
    def _one_mount_per_path(cls, value: list[CSIMountConfig] | None) -> list[CSIMountConfig] | None:
        # A map-list keyed by mountPath: the API server refuses a repeated key.
        seen: set[str] = set()
        for i, mount in enumerate(value or []):
            if mount.mount_path in seen:
                raise FieldProblem((i, "mountPath"), f"duplicate value {mount.mount_path!r}")
            seen.add(mount.mount_path)
        return value

    @model_validator(mode="after")
    def _csi_mounts_need_the_runtime_init(self, info: ValidationInfo) -> SandboxClaimSpec:
        # The runtime's /init makes the mounts: every claim attempt refuses them
        # without it (ValidateAndInitClaimOptions), whatever the pool, as the
        # E2B path's skip-init-runtime with CSI mounts is a 400. Refused here (a
        # deliberate difference: upstream has no SandboxClaim webhook). A pool
        # without the agent runtime is the claim's own 400, at each attempt.
        if self.skip_init_runtime and self.dynamic_volumes_mount and from_manifest(info):
            raise FieldProblem(
                ("dynamicVolumesMount",),
                "CSI mounts are made by the runtime init, which spec.skipInitRuntime: true skips",
            )
        return self


class SandboxClaimStatus(KubeModel):
    """``SandboxClaimStatus``."""

    observed_generation: int | None = None
    phase: Annotated[ClaimPhase | None, BeforeValidator(enum_from_text(ClaimPhase))] = None
    message: str | None = None
    claimed_replicas: int = 0
    claim_start_time: Time | None = None
    completion_time: Time | None = None
    conditions: list[Condition] = Field(default_factory=list)


class SandboxClaim(KubeModel):
    """``agents.kruise.io/v1alpha1`` ``SandboxClaim``."""

    api_version: Literal["agents.kruise.io/v1alpha1"] = API_VERSION
    kind: Literal["SandboxClaim"] = "SandboxClaim"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SandboxClaimSpec
    status: SandboxClaimStatus = Field(default_factory=SandboxClaimStatus)

    @model_validator(mode="after")
    def _name_fits_a_label(self, info: ValidationInfo) -> SandboxClaim:
        # A deliberate difference from upstream, which accepts the claim and
        # then has every claim write refused: the claim could never succeed.
        why = name_as_label_problem(self.metadata.name, LABEL_CLAIM_NAME)
        if why is not None and from_manifest(info):
            raise FieldProblem(("metadata", "name"), why)
        return self
