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
        ({"annotations": {"a": True}}, "annotations.a", "must be a string, got True"),
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


def test_template_keys_are_not_checked_on_a_sandbox() -> None:
    """No webhook checks a Sandbox: only the value kinds of its template's metadata."""
    loaded = load_manifest(sandbox({"labels": {"a b": "c"}, "name": "Foo_Bar"}))
    assert isinstance(loaded, Sandbox)
    assert loaded.spec.template is not None
