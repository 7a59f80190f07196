"""A minimal ``v1`` ``Pod``: what the fake kubelet and scheduler need, and what users read."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pytest_kruise_agents.api.base import KubeModel
from pytest_kruise_agents.api.keys import BLACKLISTED_PREFIXES
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.quantity import cpu_millis, memory_bytes

__all__ = [
    "Pod",
    "PodStatus",
    "container_resources",
    "first_container_image",
    "set_first_container_image",
    "validate_pod_template",
]


class PodStatus(KubeModel):
    """The part of ``PodStatus`` the model keeps."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed"] = "Pending"
    pod_ip: str | None = Field(default=None, alias="podIP")
    host_ip: str | None = Field(default=None, alias="hostIP")
    conditions: list[Condition] = Field(default_factory=list)
    message: str | None = None
    reason: str | None = None


class Pod(KubeModel):
    """``v1`` ``Pod``; ``spec`` is the pod spec as a plain mapping (``nodeName`` set at bind)."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: dict[str, Any] = Field(default_factory=dict)
    status: PodStatus = Field(default_factory=PodStatus)


def first_container_image(template: dict[str, Any] | None) -> str | None:
    """Image of the first container of a pod template (or pod spec wrapped as a template)."""
    if not template:
        return None
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        return None
    image = containers[0].get("image")
    return str(image) if image is not None else None


def set_first_container_image(template: dict[str, Any], image: str) -> None:
    """Set the image of the first container, in place."""
    template["spec"]["containers"][0]["image"] = image


def container_resources(template: dict[str, Any] | None) -> tuple[int, int]:
    """Total requested (CPU millicores, memory bytes) of a pod template's containers.

    Falls back to limits where a request is missing, as the scheduler does.
    """
    if not template:
        return 0, 0
    cpu = 0
    mem = 0
    for c in (template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        if "cpu" in req or "cpu" in lim:
            cpu += cpu_millis(str(req.get("cpu", lim.get("cpu"))))
        if "memory" in req or "memory" in lim:
            mem += memory_bytes(str(req.get("memory", lim.get("memory"))))
    return cpu, mem


def validate_pod_template(template: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a pod template the webhooks refuse.

    Reserved (``e2b.agents.kruise.io/``) label or annotation keys, no ``spec``,
    no containers, or a container without a name or an image.
    """
    meta = template.get("metadata") or {}
    for where in ("labels", "annotations"):
        for key in meta.get(where) or {}:
            if key.startswith(BLACKLISTED_PREFIXES[1]):
                raise ValueError(f"template.metadata.{where}: key {key!r} uses reserved prefix")
    spec = template.get("spec")
    if not isinstance(spec, dict):
        raise ValueError("template.spec is required")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError("template.spec.containers must list at least one container")
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            raise ValueError(f"template.spec.containers[{i}] needs a name and an image")
