"""The field names of Kubernetes' ``core/v1`` pod spec and containers: a Pod's strict decoding.

A Pod's ``spec`` is a plain mapping in the model (:class:`~pytest_kruise_agents.api.pod.Pod`),
but ``v1.Pod`` has a full schema: ``kubectl apply`` (strict field validation, the default since
1.27) refuses ``spec.nodeSelectr`` or ``spec.containers[0].imagePullPolice`` rather than drop
it. The names are those of ``PodSpec``, ``Container`` and ``ResourceRequirements`` as of
Kubernetes 1.37 (the ``kubernetes`` Python client 37's models), alpha fields included: an
older cluster knows fewer, and refusing a field Kubernetes has would be worse than letting
through one an older cluster would refuse. Only the levels the model reads are checked (the
spec, its containers and init containers, their ``resources``); what lies below them
(probes, volumes, affinity...) is kept as written. A pod template inside a Sandbox or
SandboxSet is not checked: its CRD field is schemaless (``x-kubernetes-preserve-unknown-fields``).
"""

from __future__ import annotations

from typing import Any, Final

from pytest_kruise_agents.api.problems import unknown_field_reason
from pytest_kruise_agents.api.validation import FieldProblem

__all__ = [
    "CONTAINER_FIELDS",
    "POD_SPEC_FIELDS",
    "RESOURCE_REQUIREMENTS_FIELDS",
    "check_pod_spec_fields",
    "known_pod_spec",
]

POD_SPEC_FIELDS: Final = frozenset(
    {
        "activeDeadlineSeconds",
        "affinity",
        "automountServiceAccountToken",
        "containers",
        "dnsConfig",
        "dnsPolicy",
        "enableServiceLinks",
        "ephemeralContainers",
        "evictionResponders",
        "hostAliases",
        "hostIPC",
        "hostNetwork",
        "hostPID",
        "hostUsers",
        "hostname",
        "hostnameOverride",
        "imagePullSecrets",
        "initContainers",
        "nodeName",
        "nodeSelector",
        "os",
        "overhead",
        "preemptionPolicy",
        "priority",
        "priorityClassName",
        "readinessGates",
        "resourceClaims",
        "resources",
        "restartPolicy",
        "runtimeClassName",
        "schedulerName",
        "schedulingGates",
        "schedulingGroup",
        "securityContext",
        "serviceAccount",
        "serviceAccountName",
        "setHostnameAsFQDN",
        "shareProcessNamespace",
        "subdomain",
        "terminationGracePeriodSeconds",
        "tolerations",
        "topologySpreadConstraints",
        "volumes",
    }
)
"""``v1.PodSpec``'s fields (``serviceAccount`` is the deprecated alias of ``serviceAccountName``)."""

CONTAINER_FIELDS: Final = frozenset(
    {
        "args",
        "command",
        "env",
        "envFrom",
        "image",
        "imagePullPolicy",
        "lifecycle",
        "livenessProbe",
        "name",
        "ports",
        "readinessProbe",
        "resizePolicy",
        "resources",
        "restartPolicy",
        "restartPolicyRules",
        "securityContext",
        "startupProbe",
        "stdin",
        "stdinOnce",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "tty",
        "volumeDevices",
        "volumeMounts",
        "workingDir",
    }
)
"""``v1.Container``'s fields: those of a container and of an init container alike."""

RESOURCE_REQUIREMENTS_FIELDS: Final = frozenset({"claims", "limits", "requests"})
"""``v1.ResourceRequirements``' fields: a container's ``resources``."""

_SORTED_SPEC: Final = sorted(POD_SPEC_FIELDS)
_SORTED_CONTAINER: Final = sorted(CONTAINER_FIELDS)
_SORTED_RESOURCES: Final = sorted(RESOURCE_REQUIREMENTS_FIELDS)


def check_pod_spec_fields(spec: Any) -> None:
    """Raise :class:`FieldProblem` at the first field of a Pod's ``spec`` ``core/v1`` does not have.

    The spec's own fields first, then each container's and init container's
    (and their ``resources``'), in the order written; ``loc`` is relative to
    the Pod (``("spec", "containers", 0, "imagePullPolice")``). A part of the
    wrong kind (a list for a mapping), or a key that is no string, is left to
    the pod's validation, which names it so.
    """
    if not isinstance(spec, dict):
        return
    _check_keys(spec, _SORTED_SPEC, POD_SPEC_FIELDS, ("spec",))
    for part in ("containers", "initContainers"):
        items = spec.get(part)
        if not isinstance(items, list):
            continue
        for i, container in enumerate(items):
            if not isinstance(container, dict):
                continue
            loc = ("spec", part, i)
            _check_keys(container, _SORTED_CONTAINER, CONTAINER_FIELDS, loc)
            resources = container.get("resources")
            if isinstance(resources, dict):
                where = (*loc, "resources")
                _check_keys(resources, _SORTED_RESOURCES, RESOURCE_REQUIREMENTS_FIELDS, where)


def known_pod_spec(spec: Any) -> Any:
    """``spec`` without the fields ``core/v1`` does not have, as a typed client decodes it.

    A SandboxSet's template is schemaless (its CRD keeps unknown fields), but
    the controller reads it into ``corev1.PodTemplateSpec``: a field ``v1.PodSpec``,
    ``v1.Container`` or ``v1.ResourceRequirements`` lacks (a typo such as
    ``imagePullPolice``) never reaches the pod it creates. ``spec`` itself is
    returned when it has none (the usual case: pods share their template's
    spec); otherwise a copy of the parts that change.
    """
    if not isinstance(spec, dict):
        return spec
    pruned = _known(spec, POD_SPEC_FIELDS)
    for part in ("containers", "initContainers"):
        items = pruned.get(part)
        if not isinstance(items, list):
            continue
        kept = [_known_container(c) for c in items]
        if any(k is not c for k, c in zip(kept, items, strict=True)):
            pruned = pruned if pruned is not spec else dict(spec)
            pruned[part] = kept
    return pruned


def _known_container(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    kept = _known(container, CONTAINER_FIELDS)
    resources = kept.get("resources")
    if isinstance(resources, dict):
        known = _known(resources, RESOURCE_REQUIREMENTS_FIELDS)
        if known is not resources:
            kept = kept if kept is not container else dict(container)
            kept["resources"] = known
    return kept


def _known(mapping: dict[Any, Any], known: frozenset[str]) -> dict[Any, Any]:
    """``mapping``, or a copy without its string keys outside ``known``."""
    if mapping.keys() <= known:
        return mapping
    return {k: v for k, v in mapping.items() if not isinstance(k, str) or k in known}


def _check_keys(
    mapping: dict[Any, Any],
    ordered: list[str],
    known: frozenset[str],
    loc: tuple[int | str, ...],
) -> None:
    for key in mapping:
        if isinstance(key, str) and key not in known:
            raise FieldProblem((*loc, key), unknown_field_reason(key, ordered))
