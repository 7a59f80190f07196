"""Kubernetes object metadata, owner references and conditions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pytest_kruise_agents.api.base import KubeModel, Time, from_manifest
from pytest_kruise_agents.api.validation import (
    FieldProblem,
    check_annotations,
    check_finalizers,
    check_labels,
    dns_label_problem,
    dns_subdomain_problem,
    generate_name_problem,
)

__all__ = [
    "Condition",
    "ObjectMeta",
    "OwnerReference",
    "check_owner_references",
    "find_condition",
    "set_condition",
]


_SERVER_SET_FIELDS: Final = frozenset({"managedFields", "selfLink", "deletionGracePeriodSeconds"})
"""Metadata the API server writes and ignores on a write; the model does not keep them."""


class OwnerReference(KubeModel):
    """``metav1.OwnerReference``."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


_BANNED_OWNERS: Final = frozenset({("", "v1", "Event")})
"""apimachinery's ``BannedOwners``: kinds that may not own anything."""


def _group_version(api_version: str) -> tuple[str, str]:
    """``(group, version)`` as ``schema.ParseGroupVersion`` reads them (``("", "")`` if malformed)."""
    if api_version.count("/") > 1:
        return "", ""
    group, slash, version = api_version.partition("/")
    return (group, version) if slash else ("", group)


def check_owner_references(refs: list[OwnerReference]) -> None:
    """Raise :class:`FieldProblem` for owner references the API server refuses.

    apimachinery's ``ValidateOwnerReferences``: each names a version, a
    kind, a name and a uid (an owner that cannot be found would have the
    garbage collector delete the object), no banned owner kind, and at most
    one reference is the controller. ``loc`` is relative to ``ownerReferences``.
    """
    controller: str | None = None
    for i, ref in enumerate(refs):
        group, version = _group_version(ref.api_version)
        if not version:
            raise FieldProblem(
                (i, "apiVersion"), f"invalid value {ref.api_version!r}: version must not be empty"
            )
        for field, value in (("kind", ref.kind), ("name", ref.name), ("uid", ref.uid)):
            if not value:
                raise FieldProblem((i, field), f"{field} must not be empty")
        if (group, version, ref.kind) in _BANNED_OWNERS:
            raise FieldProblem((i,), f"{ref.kind} ({ref.api_version}) may not be an owner")
        if ref.controller:
            name = f"{ref.kind}/{ref.name}"
            if controller is not None:
                raise FieldProblem(
                    (i, "controller"),
                    "only one reference can have controller set to true, "
                    f"found true in references for {controller} and {name}",
                )
            controller = name


_STATED_WHEN_NULL: Final = ("finalizers", "ownerReferences")
"""Metadata lists that ``null`` in a manifest states empty (an apply removes the stored ones)."""


class ObjectMeta(KubeModel):
    """``metav1.ObjectMeta`` (the fields the claim system reads and writes)."""

    name: str = ""
    generate_name: str | None = None
    namespace: str = "default"
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list)
    finalizers: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _drop_server_set_fields(cls, data: Any, info: ValidationInfo) -> Any:
        # ``kubectl get -o yaml`` prints fields only the API server sets; an
        # apply of that output is accepted and they are ignored, as there.
        if isinstance(data, dict) and not _SERVER_SET_FIELDS.isdisjoint(data):
            data = {key: value for key, value in data.items() if key not in _SERVER_SET_FIELDS}
        # ``finalizers: null`` and ``ownerReferences: null`` state "none", as
        # ``labels: null`` does (a PUT decodes them as empty, kubectl apply
        # deletes the field): unlike other null fields, they are kept as set,
        # so that an apply removes the stored ones. (This runs before the base
        # class's pruning of null fields.)
        if (
            from_manifest(info)
            and isinstance(data, dict)
            and (data.get("finalizers", ()) is None or data.get("ownerReferences", ()) is None)
        ):
            stated: dict[str, list[Any]] = {
                key: [] for key in _STATED_WHEN_NULL if key in data and data[key] is None
            }
            data = {**data, **stated}
        return data

    # The API server checks metadata it is sent; the simulator's controllers
    # build metadata themselves (a pod named after its sandbox, a sandbox
    # labelled with its pool's name), so the checks run on manifests only
    # (MANIFEST context). A check raised inside a SimPy process would stop
    # the simulation, and it would cost every object the model builds.

    @field_validator("name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        # A DNS-1123 subdomain, as the API server requires of these kinds'
        # names (empty: to be generated from ``generateName``).
        why = dns_subdomain_problem(value) if value and from_manifest(info) else None
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("generate_name")
    @classmethod
    def _generate_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The API server checks a prefix as the names made from it will be:
        # a trailing '-' is fine since a suffix follows ("base-" -> "base-x7k2p").
        # Refused here, before any write, what it would refuse once it made the name.
        why = generate_name_problem(value) if value and from_manifest(info) else None
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str, info: ValidationInfo) -> str:
        if value == "":
            return "default"  # the API server reads an empty namespace as the default one
        why = dns_label_problem(value) if from_manifest(info) else None
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if from_manifest(info):
            check_labels(value)
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if from_manifest(info):
            check_annotations(value)
        return value

    @field_validator("owner_references")
    @classmethod
    def _owner_references(
        cls, value: list[OwnerReference], info: ValidationInfo
    ) -> list[OwnerReference]:
        if from_manifest(info):
            check_owner_references(value)
        return value

    @field_validator("finalizers")
    @classmethod
    def _finalizers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if from_manifest(info):
            check_finalizers(value)
        return value

    def controller_ref(self) -> OwnerReference | None:
        """The owner reference with ``controller: true``, if any."""
        for ref in self.owner_references:
            if ref.controller:
                return ref
        return None


class Condition(KubeModel):
    """``metav1.Condition``."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: Time | None = None
    observed_generation: int | None = None


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of the given type, or ``None``."""
    for cond in conditions:
        if cond.type == type_:
            return cond
    return None


def set_condition(
    conditions: list[Condition],
    new: Condition,
    *,
    intern: Callable[[Condition], Condition] | None = None,
) -> None:
    """Insert or replace a condition by type, keeping the transition time when status holds.

    ``intern`` may swap the condition that goes in for an equal one already
    held elsewhere (conditions are never changed in place, so equal ones can
    be shared).
    """
    for i, cond in enumerate(conditions):
        if cond.type == new.type:
            if cond.status == new.status and cond.last_transition_time is not None:
                new = new.model_copy(update={"last_transition_time": cond.last_transition_time})
            conditions[i] = intern(new) if intern is not None else new
            return
    conditions.append(intern(new) if intern is not None else new)
