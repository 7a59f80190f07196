"""Kubernetes object metadata, owner references and conditions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator

from pytest_kruise_agents.api.base import KubeModel, Time

__all__ = ["Condition", "ObjectMeta", "OwnerReference", "find_condition", "set_condition"]

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_REASON = (
    "invalid value {value!r}: a lowercase RFC 1123 {what} must consist of lower case "
    "alphanumeric characters{chars}, start and end with an alphanumeric character, "
    "and have at most {most} characters"
)


class OwnerReference(KubeModel):
    """``metav1.OwnerReference``."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # A DNS-1123 subdomain, as the API server requires of these kinds'
        # names (empty: to be generated from ``generateName``).
        if value and (len(value) > 253 or _SUBDOMAIN.fullmatch(value) is None):
            raise ValueError(
                _DNS_REASON.format(what="subdomain", value=value, chars=", '-' or '.'", most=253)
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or _LABEL.fullmatch(value) is None:
            raise ValueError(
                _DNS_REASON.format(what="label", value=value, chars=" or '-'", most=63)
            )
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
