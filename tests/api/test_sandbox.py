"""Sandbox: what a manifest's inline pod template must hold for the controller to build its pod."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api import InvalidError, Sandbox, load_manifest


def sandbox(template_metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "Sandbox",
        "metadata": {"name": "mine"},
        "spec": {
            "template": {
                "metadata": template_metadata,
                "spec": {"containers": [{"name": "main", "image": "python:3.12"}]},
            }
        },
    }


@pytest.mark.parametrize(
    ("metadata", "field", "why"),
    [
        ({"labels": {"version": 2}}, "labels.version", "must be a string, got 2"),
        ({"annotations": {"a": True}}, "annotations.a", "must be a string, got the boolean true"),
        ({"labels": ["a"]}, "labels", "must be an object"),
        ("x", "", "must be an object"),
    ],
)
def test_template_labels_and_annotations_are_maps_of_strings(
    metadata: Any, field: str, why: str
) -> None:
    """The pod's labels are strings: a number there would be refused when the pod is made."""
    with pytest.raises(InvalidError) as info:
        load_manifest(sandbox(metadata))
    where = "spec.template.metadata" + (f".{field}" if field else "")
    assert info.value.field == f"Sandbox/mine {where}"
    assert why in info.value.reason


def with_template(template: Any) -> dict[str, Any]:
    doc = sandbox(None)
    doc["spec"]["template"] = template
    return doc


_MAIN = {"name": "main", "image": "python:3.12"}


@pytest.mark.parametrize(
    ("template", "field", "why"),
    [
        ({"spec": {"containers": ["main"]}}, "spec.containers[0]", "must be an object, got 'main'"),
        (
            {"spec": {"containers": {"name": "m"}}},
            "spec.containers",
            "must be a list, got an object",
        ),
        ({"spec": {"containers": 3}}, "spec.containers", "must be a list, got 3"),
        ({"spec": {}}, "spec.containers", "must list at least one container"),
        ({"spec": ["x"]}, "spec", "must be an object, got a list"),
        (
            {"metadata": {"labels": {1: "a"}}, "spec": {"containers": [_MAIN]}},
            "metadata.labels",
            "a key must be a string, got 1",
        ),
        (
            {"metadata": {"labels": {"a": "x" * 64}}, "spec": {"containers": [_MAIN]}},
            "metadata.labels.a",
            "must be at most 63 characters, got 64",
        ),
        (
            {"metadata": {"labels": {"a b": "c"}}, "spec": {"containers": [_MAIN]}},
            "metadata.labels[a b]",
            "invalid key 'a b'",
        ),
        (
            {"spec": {"containers": [{"name": "main", "image": 5}]}},
            "spec.containers[0].image",
            "must be a string, got 5",
        ),
    ],
)
def test_the_template_is_checked_as_a_pool_template_is(template: Any, field: str, why: str) -> None:
    """The pod is made from a Sandbox's template as from a SandboxSet's: a template the pod
    could not be made from is refused at apply, naming the field, not left to stop the
    controller (upstream has no Sandbox webhook: a deliberate difference)."""
    with pytest.raises(InvalidError) as info:
        load_manifest(with_template(template))
    assert info.value.field == f"Sandbox/mine spec.template.{field}"
    assert why in info.value.reason


def test_reserved_keys_and_the_template_name_are_not_checked_on_a_sandbox() -> None:
    """The ``e2b.agents.kruise.io/`` prefix is a SandboxSet webhook rule, not a pod rule (a claim
    may write such a label onto its sandbox's pod), and a pod template's name is ignored."""
    metadata = {"labels": {"e2b.agents.kruise.io/x": "c"}, "name": "Foo_Bar"}
    loaded = load_manifest(sandbox(metadata))
    assert isinstance(loaded, Sandbox)
    assert loaded.spec.template is not None


def test_a_request_above_its_limit_is_not_checked_on_a_sandbox() -> None:
    """A claim's in-place resize writes the new request into the sandbox's template, whatever
    the limit (the API server refuses the pod's resize, not the Sandbox): its dump loads back."""
    manifest = sandbox(None)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2"},
        "limits": {"cpu": "1"},
    }
    loaded = load_manifest(manifest)
    assert isinstance(loaded, Sandbox)


def test_a_pause_strategy_stated_without_a_type_is_stop() -> None:
    """``pauseStrategy: {}`` is a Stop pause, the only one the open-source controller makes."""
    doc = sandbox({})
    doc["spec"]["pauseStrategy"] = {}
    loaded = load_manifest(doc)
    assert isinstance(loaded, Sandbox)
    assert loaded.spec.pause_strategy is not None
    assert loaded.spec.pause_strategy.type == "Stop"


def test_pod_info_keeps_the_crds_spelling_of_ip_and_uid() -> None:
    """``status.podInfo.podIP`` and ``podUID``, as the CRD writes them (not ``podIp``)."""
    doc = sandbox({})
    doc["status"] = {"podInfo": {"podIP": "10.0.0.7", "podUID": "u-1", "nodeName": "n1"}}
    loaded = load_manifest(doc)
    assert isinstance(loaded, Sandbox)
    assert loaded.status.pod_info is not None
    assert (loaded.status.pod_info.pod_ip, loaded.status.pod_info.pod_uid) == ("10.0.0.7", "u-1")
    assert loaded.to_dict()["status"]["podInfo"] == doc["status"]["podInfo"]


def test_a_sandbox_with_both_a_template_and_a_template_ref_is_refused() -> None:
    """``templateRef`` and ``template`` are mutually exclusive (reference §1.2), as on a
    SandboxSet: one typed error naming ``spec``, not a sandbox whose pod is made from the
    inline template, the reference silently ignored. Nothing is stored."""
    doc = sandbox({})
    doc["spec"]["templateRef"] = {"name": "tpl"}
    with pytest.raises(InvalidError) as info:
        load_manifest(doc)
    assert info.value.field == "Sandbox/mine spec"
    assert info.value.reason == "templateRef and template are mutually exclusive"
