"""``SandboxTemplate`` (short name ``sbt``): a pod template that SandboxSets refer to by name.

A SandboxSet either embeds its pod template (``spec.template``) or names a
SandboxTemplate (``spec.templateRef``); its sandboxes then carry the same
reference, and the Sandbox controller builds each pod from the template it
names. The template's ``runtimes``, ``persistentContents`` and
``pauseStrategy`` are informational: the SandboxSet's own values win
(reference §1.6). The kind has no status and no printer columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator

from pytest_kruise_agents.api.base import KubeModel
from pytest_kruise_agents.api.keys import API_VERSION
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import validate_pod_template
from pytest_kruise_agents.api.sandbox import PauseStrategy, RuntimeRef, Sandbox
from pytest_kruise_agents.api.sandboxset import SandboxSet

__all__ = ["SandboxTemplate", "SandboxTemplateSpec", "TemplateFinder", "resolve_pod_template"]


class SandboxTemplateSpec(KubeModel):
    """``SandboxTemplateSpec``: the pod template, and what a SandboxSet's own spec overrides."""

    template: dict[str, Any]
    volume_claim_templates: list[dict[str, Any]] | None = None
    persistent_contents: list[str] | None = None
    runtimes: list[RuntimeRef] | None = None
    pause_strategy: PauseStrategy | None = None

    @field_validator("template")
    @classmethod
    def _valid_pod_template(cls, template: dict[str, Any]) -> dict[str, Any]:
        validate_pod_template(template)
        return template


class SandboxTemplate(KubeModel):
    """``agents.kruise.io/v1alpha1`` ``SandboxTemplate``."""

    api_version: Literal["agents.kruise.io/v1alpha1"] = API_VERSION
    kind: Literal["SandboxTemplate"] = "SandboxTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SandboxTemplateSpec


TemplateFinder = Callable[[str, str], SandboxTemplate | None]
"""``find(namespace, name)``: the SandboxTemplate of that name, or ``None``."""


def resolve_pod_template(obj: Sandbox | SandboxSet, find: TemplateFinder) -> dict[str, Any] | None:
    """The pod template of ``obj``: its own, or that of the SandboxTemplate its ``templateRef`` names.

    ``None`` when ``obj`` has neither, or names a template ``find`` does not
    know (in ``obj``'s namespace).
    """
    spec = obj.spec
    if spec.template is not None:
        return spec.template
    if spec.template_ref is None:
        return None
    found = find(obj.metadata.namespace, spec.template_ref.name)
    return found.spec.template if found is not None else None
