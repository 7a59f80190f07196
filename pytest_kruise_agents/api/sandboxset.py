"""``SandboxSet`` (short name ``sbs``): a warm pool of ready sandboxes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pytest_kruise_agents.api.base import KubeModel, from_manifest
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.keys import (
    API_VERSION,
    BLACKLISTED_PREFIXES,
    LABEL_SANDBOX_POOL,
    LABEL_SANDBOX_TEMPLATE,
)
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.pod import validate_pod_template
from pytest_kruise_agents.api.sandbox import PauseStrategy, RuntimeRef, TemplateRef
from pytest_kruise_agents.api.validation import FieldProblem, name_as_label_problem

__all__ = [
    "IntOrString",
    "SandboxSet",
    "SandboxSetSpec",
    "SandboxSetStatus",
    "ScaleStrategy",
    "UpdateStrategy",
    "default_pod_template",
    "default_volume_claim",
    "scaled_value",
]

IntOrString = int | str


def scaled_value(value: IntOrString | None, total: int, *, round_up: bool = True) -> int | None:
    """Resolve an IntOrString (``3`` or ``"20%"``) against ``total``; ``None`` stays ``None``.

    Percentages round up, as upstream's code does (its CRD comment says down).
    ``value`` is what the validator accepts (an int32 >= 0, or ``"0%"`` to
    ``"100%"``: a string is always a percentage, so ``"3"`` is refused); anything
    else raises :class:`InvalidError` naming ``value``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidError("value", f"must be an integer or a percentage like '20%', got {value!r}")
    try:
        _validate_int_or_percent(value)
    except ValueError as exc:
        raise InvalidError("value", str(exc)) from None
    if isinstance(value, int):
        return value
    num = int(value[:-1]) * total
    return -(-num // 100) if round_up else num // 100


_INT32_MAX = 2**31 - 1


def _validate_int_or_percent(value: IntOrString | None) -> IntOrString | None:
    """An int32 ``>= 0`` or a percentage from ``"0%"`` to ``"100%"``, as upstream's validator wants.

    A string is always a percentage: Kubernetes reads ``"3"`` as a malformed
    one, not as the number 3.
    """
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must be >= 0")
        if value > _INT32_MAX:
            raise ValueError(f"must be <= {_INT32_MAX} (an int32), got {value}")
        return value
    body = value.removesuffix("%")
    if body == value or not body.isdigit() or not body.isascii():
        raise ValueError(f"invalid value {value!r}: expected an integer or a percentage like '20%'")
    if int(body) > 100:
        raise ValueError(f"invalid value {value!r}: must not be greater than 100%")
    return value


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

    @field_validator("template")
    @classmethod
    def _valid_pod_template(cls, template: dict[str, Any] | None) -> dict[str, Any] | None:
        if template is None:
            return None
        validate_pod_template(template)
        return default_pod_template(template)

    @field_validator("volume_claim_templates")
    @classmethod
    def _default_claims(cls, claims: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if claims is None else [default_volume_claim(c) for c in claims]

    @model_validator(mode="after")
    def _template_xor_ref(self) -> SandboxSetSpec:
        if self.template is not None and self.template_ref is not None:
            raise ValueError("templateRef and template are mutually exclusive")
        if self.template is None and self.template_ref is None:
            raise ValueError("one of template or templateRef is required")
        return self


def default_pod_template(template: dict[str, Any]) -> dict[str, Any]:
    """The SandboxSet webhook's pod default: ``automountServiceAccountToken: false``.

    Sandboxes run untrusted agent code, so they get no API token unless the
    template asks for one. Returns ``template`` itself when nothing is missing,
    else a copy (never changes the caller's mapping).
    """
    spec = template.get("spec")
    if not isinstance(spec, dict) or "automountServiceAccountToken" in spec:
        return template
    return {**template, "spec": {**spec, "automountServiceAccountToken": False}}


def default_volume_claim(claim: dict[str, Any]) -> dict[str, Any]:
    """The webhook's PVC template defaults: ``accessModes: [ReadWriteOnce]``, ``volumeMode: Filesystem``.

    Returns ``claim`` itself when nothing is missing, else a copy.
    """
    spec = claim.get("spec") if isinstance(claim, dict) else None
    if not isinstance(spec, dict):
        return claim
    missing: dict[str, Any] = {}
    if not spec.get("accessModes"):
        missing["accessModes"] = ["ReadWriteOnce"]
    if spec.get("volumeMode") is None:
        missing["volumeMode"] = "Filesystem"
    return {**claim, "spec": {**spec, **missing}} if missing else claim


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
    def _name_fits_a_label(self, info: ValidationInfo) -> SandboxSet:
        # A deliberate difference from upstream, which accepts the set and
        # then has every sandbox write refused: the pool would never fill.
        why = name_as_label_problem(self.metadata.name, LABEL_SANDBOX_POOL)
        if why is not None and from_manifest(info):
            raise FieldProblem(("metadata", "name"), why)
        ref = self.spec.template_ref
        # The same for templateRef.name: it is each sandbox's sandbox-template label.
        why = None if ref is None else name_as_label_problem(ref.name, LABEL_SANDBOX_TEMPLATE)
        if why is not None and from_manifest(info):
            raise FieldProblem(("spec", "templateRef", "name"), why)
        return self

    @model_validator(mode="after")
    def _no_reserved_metadata(self) -> SandboxSet:
        prefix = BLACKLISTED_PREFIXES[1]
        for where, values in (
            ("labels", self.metadata.labels),
            ("annotations", self.metadata.annotations),
        ):
            for key in values:
                if key.startswith(prefix):
                    raise FieldProblem(
                        ("metadata", where, key), f"key uses reserved prefix {prefix!r}"
                    )
        return self
