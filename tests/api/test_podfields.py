"""A Pod's spec is decoded strictly, as ``v1.Pod``'s schema decodes it: an unknown field of
the spec, of a container or of its resources is refused, naming its path; every field
Kubernetes has is taken."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pytest_kruise_agents.api.pod import validate_pod_spec, validate_pod_template
from pytest_kruise_agents.api.podfields import (
    CONTAINER_FIELDS,
    POD_SPEC_FIELDS,
    check_pod_spec_fields,
    known_pod_spec,
)
from pytest_kruise_agents.api.problems import format_path
from pytest_kruise_agents.api.validation import FieldProblem


def _problem(spec: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(FieldProblem) as caught:
        validate_pod_spec(spec)
    return format_path(caught.value.loc), caught.value.reason


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        (
            {"nodeSelectr": {"disk": "ssd"}, "containers": [{"name": "m", "image": "x"}]},
            "spec.nodeSelectr",
            "unknown field (did you mean 'nodeSelector'?)",
        ),
        (
            {"containers": [{"name": "m", "image": "x", "imagePullPolice": "Never"}]},
            "spec.containers[0].imagePullPolice",
            "unknown field (did you mean 'imagePullPolicy'?)",
        ),
        (
            {"containers": [{"name": "m", "image": "x", "resourcs": {"limits": {"cpu": "1"}}}]},
            "spec.containers[0].resourcs",
            "unknown field (did you mean 'resources'?)",
        ),
        (
            {
                "containers": [{"name": "m", "image": "x"}],
                "initContainers": [{"name": "i", "image": "x", "xyzzy": 1}],
            },
            "spec.initContainers[0].xyzzy",
            "unknown field",
        ),
        (
            {"containers": [{"name": "m", "image": "x", "resources": {"limit": {"cpu": "1"}}}]},
            "spec.containers[0].resources.limit",
            "unknown field (did you mean 'limits'?)",
        ),
    ],
    ids=["spec", "container", "container resources", "init container", "resources part"],
)
def test_an_unknown_field_of_a_pod_spec_is_refused_naming_its_path(
    spec: dict[str, Any], path: str, reason: str
) -> None:
    """``kubectl apply``'s strict field validation: a typo is refused, not dropped."""
    assert _problem(spec) == (path, reason)


def test_the_specs_own_fields_are_checked_before_its_containers() -> None:
    """One error, the first in the order written: the spec, then each container."""
    spec = {"containers": [{"name": "m", "image": "x", "bad": 1}], "alsoBad": 1}
    assert _problem(spec)[0] == "spec.alsoBad"


def test_every_kubernetes_field_of_a_pod_spec_and_a_container_is_taken() -> None:
    """No field ``v1.PodSpec`` or ``v1.Container`` has is refused (values are not looked at
    below the levels the model reads)."""
    container = dict.fromkeys(CONTAINER_FIELDS, None)
    container.update(name="m", image="x", resources={"limits": {}, "requests": {}, "claims": []})
    spec: dict[str, Any] = dict.fromkeys(POD_SPEC_FIELDS, None)
    spec.update(containers=[container], initContainers=[{**container, "name": "i"}])
    check_pod_spec_fields(spec)


def test_a_well_formed_pod_of_common_fields_is_valid() -> None:
    """What a pod manifest usually holds passes the whole validation."""
    validate_pod_spec(
        {
            "serviceAccountName": "agent",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "volumes": [{"name": "w", "emptyDir": {}}],
            "containers": [
                {
                    "name": "m",
                    "image": "x",
                    "command": ["sleep"],
                    "args": ["1"],
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80}],
                    "volumeMounts": [{"name": "w", "mountPath": "/w"}],
                    "readinessProbe": {"exec": {"command": ["true"]}, "anyFieldBelow": 1},
                }
            ],
        }
    )


def test_a_pod_templates_spec_is_schemaless() -> None:
    """A Sandbox's or SandboxSet's ``template`` preserves unknown fields (its CRD says so)."""
    template = {"spec": {"nodeSelectr": {}, "containers": [{"name": "m", "image": "x", "y": 1}]}}
    validate_pod_template(template)


@pytest.mark.parametrize(
    "spec",
    [
        {"containers": "m", 7: 1},
        {"containers": ["m"]},
        {"containers": [{"name": "m", "image": "x", "resources": ["cpu"]}]},
    ],
    ids=["no string key", "container no object", "resources no object"],
)
def test_a_part_of_the_wrong_kind_is_left_to_the_pods_validation(spec: dict[Any, Any]) -> None:
    """Field names are looked at only in mappings, under string keys: the rest is named
    by :func:`validate_pod_spec` with what it got."""
    check_pod_spec_fields(spec)
    with pytest.raises(FieldProblem) as caught:
        validate_pod_spec(spec)
    assert "unknown field" not in caught.value.reason


def test_known_pod_spec_drops_what_core_v1_lacks_as_a_typed_decode_does() -> None:
    """A schemaless template's typo (``imagePullPolice``, ``resourcs``, a resources' ``limts``)
    never reaches the pod the controller creates; the template's dicts are left as they are."""
    spec: dict[str, Any] = {
        "nodeSelectr": {"a": "b"},
        "containers": [
            {"name": "c", "image": "i", "imagePullPolice": "Always", "resources": {"limts": {}}},
            {"name": "d", "image": "i"},
        ],
        "initContainers": [{"name": "init", "image": "i", "resourcs": {}}],
    }
    kept = known_pod_spec(spec)
    assert kept == {
        "containers": [{"name": "c", "image": "i", "resources": {}}, {"name": "d", "image": "i"}],
        "initContainers": [{"name": "init", "image": "i"}],
    }
    assert kept["containers"][1] is spec["containers"][1]
    assert "nodeSelectr" in spec and "imagePullPolice" in spec["containers"][0]
    check_pod_spec_fields(kept)


def test_known_pod_spec_of_a_spec_without_unknown_fields_is_that_spec() -> None:
    """The usual case costs no copy: pods share their template's spec."""
    spec = {"containers": [{"name": "c", "image": "i", "resources": {"requests": {}}}]}
    assert known_pod_spec(spec) is spec


def test_pruning_unknown_fields_leaves_the_template_it_reads_unchanged() -> None:
    """Every pod of a SandboxSet is made from the same template: pruning returns a copy of
    the parts it changes and never edits the template itself."""
    spec: dict[str, Any] = {
        "containers": [
            {"name": "main", "image": "python", "imagePullPolice": "Always"},
            {"name": "side", "image": "busybox", "resources": {"limit": {"cpu": "1"}}},
        ],
        "initContainers": [{"name": "init", "image": "busybox", "tyo": 1}],
    }
    before = copy.deepcopy(spec)
    pruned = known_pod_spec(spec)
    assert spec == before
    assert pruned["containers"] == [
        {"name": "main", "image": "python"},
        {"name": "side", "image": "busybox", "resources": {}},
    ]
    assert pruned["initContainers"] == [{"name": "init", "image": "busybox"}]
