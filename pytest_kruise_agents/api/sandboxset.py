"""``SandboxSet`` (short name ``sbs``): a warm pool of ready sandboxes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pytest_kruise_agents.api.base import KubeModel
from pytest_kruise_agents.api.keys import API_VERSION, BLACKLISTED_PREFIXES
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.pod import validate_pod_template
from pytest_kruise_agents.api.sandbox import PauseStrategy, RuntimeRef, TemplateRef

__all__ = [
    "IntOrString",
    "SandboxSet",
    "SandboxSetSpec",
    "SandboxSetStatus",
    "ScaleStrategy",
    "UpdateStrategy",
    "scaled_value",
]

IntOrString = int | str


def scaled_value(value: IntOrString | None, total: int, *, round_up: bool = True) -> int | None:
    """Resolve an IntOrString (``3`` or ``"20%"``) against ``total``; ``None`` stays ``None``.

    Percentages round up, as upstream's code does (its CRD comment says down).
    """
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.endswith("%"):
        pct = int(text[:-1])
        num = pct * total
        return -(-num // 100) if round_up else num // 100
    return int(text)


def _validate_int_or_percent(value: IntOrString | None) -> IntOrString | None:
    if value is None or isinstance(value, int):
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0")
        return value
    text = value.strip()
    body = text[:-1] if text.endswith("%") else text
    if not body.isdigit():
        raise ValueError(f"invalid value {value!r}: expected an integer or a percentage like '20%'")
    return text if text.endswith("%") else int(body)


class ScaleStrategy(KubeModel):
    """``scaleStrategy``: ``maxUnavailable`` bounds the sandboxes creating during scale-up."""

    max_unavailable: IntOrString | None = None

    _check = field_validator("max_unavailable")(_validate_int_or_percent)


class UpdateStrategy(KubeModel):
    """``updateStrategy``: rolling update budget (defaulted to ``"20%"`` by the webhook)."""

    max_unavailable: IntOrString | None = "20%"

    _check = field_validator("max_unavailable")(_validate_int_or_percent)


class SandboxSetSpec(KubeModel):
    """``SandboxSetSpec``."""

    replicas: int = Field(ge=0, le=2**31 - 1)  # an int32 in the CRD
    pause_strategy: PauseStrategy | None = None
    persistent_contents: list[str] | None = None
    runtimes: list[RuntimeRef] | None = None
    template_ref: TemplateRef | None = None
    template: dict[str, Any] | None = None
    volume_claim_templates: list[dict[str, Any]] | None = None
    scale_strategy: ScaleStrategy | None = None
    update_strategy: UpdateStrategy = Field(default_factory=UpdateStrategy)

    @model_validator(mode="after")
    def _template_xor_ref(self) -> SandboxSetSpec:
        if self.template is not None and self.template_ref is not None:
            raise ValueError("templateRef and template are mutually exclusive")
        if self.template is None and self.template_ref is None:
            raise ValueError("one of template or templateRef is required")
        if self.template is not None:
            validate_pod_template(self.template)
        return self


class SandboxSetStatus(KubeModel):
    """``SandboxSetStatus``."""

    observed_generation: int | None = None
    replicas: int = 0
    available_replicas: int = 0
    update_revision: str | None = None
    current_revision: str | None = None
    updated_replicas: int | None = None
    updated_available_replicas: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    selector: str | None = None


class SandboxSet(KubeModel):
    """``agents.kruise.io/v1alpha1`` ``SandboxSet``."""

    api_version: Literal["agents.kruise.io/v1alpha1"] = API_VERSION
    kind: Literal["SandboxSet"] = "SandboxSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SandboxSetSpec
    status: SandboxSetStatus = Field(default_factory=SandboxSetStatus)

    @model_validator(mode="after")
    def _no_reserved_metadata(self) -> SandboxSet:
        for where, values in (
            ("labels", self.metadata.labels),
            ("annotations", self.metadata.annotations),
        ):
            for key in values:
                if key.startswith(BLACKLISTED_PREFIXES[1]):
                    raise ValueError(f"metadata.{where}: key {key!r} uses reserved prefix")
        return self
