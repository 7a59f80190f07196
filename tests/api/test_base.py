"""KubeModel: copies, the plain-dict form, and durations given from Python or a manifest."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_kruise_agents.api import (
    InvalidError,
    ObjectMeta,
    SandboxClaim,
    load_manifest,
    load_manifests,
)
from pytest_kruise_agents.api.sandboxclaim import SandboxClaimSpec


def claim(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": "c"},
        "spec": {"templateName": "base", **spec},
    }


@pytest.mark.parametrize("deep", [False, True])
def test_a_copy_refuses_an_update_of_no_field(deep: bool) -> None:
    """``extra="forbid"``: a misspelt field in ``update`` is an error naming it, not a new key."""
    meta = ObjectMeta(name="a")
    with pytest.raises(ValueError, match="ObjectMeta has no field 'lables'"):
        meta.model_copy(update={"lables": {"k": "v"}}, deep=deep)


@pytest.mark.parametrize("deep", [False, True])
def test_a_copys_updated_fields_count_as_set(deep: bool) -> None:
    """As pydantic's own ``model_copy``: what ``update`` writes is an explicitly set field
    (a model that states ``finalizers: []`` removes the stored ones when applied)."""
    meta = ObjectMeta(name="a")
    copied = meta.model_copy(update={"finalizers": []}, deep=deep)
    assert "finalizers" in copied.model_fields_set
    assert "finalizers" not in meta.model_fields_set


def test_to_dict_leaves_unset_optional_fields_out() -> None:
    """The form a user would apply: camelCase keys and no nulls at any level."""
    loaded = load_manifest(claim())
    data = loaded.to_dict()
    assert "shutdownTime" not in data["spec"] and "labels" not in data["spec"]
    assert data["status"] == {"claimedReplicas": 0, "conditions": []}

    def nulls(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [k for k, v in value.items() if v is None] + [
                n for v in value.values() for n in nulls(v)
            ]
        return [n for v in value for n in nulls(v)] if isinstance(value, list) else []

    assert nulls(data) == []


def test_a_boolean_is_no_duration_even_from_python() -> None:
    """A number is seconds from Python, but ``True`` is no number of seconds."""
    assert SandboxClaimSpec(template_name="b", claim_timeout=5).claim_timeout == timedelta(
        seconds=5
    )
    with pytest.raises(
        ValidationError, match=r"claim_timeout\n.*expected a duration string.*got True"
    ):
        SandboxClaimSpec(template_name="b", claim_timeout=True)


def test_a_manifest_duration_must_be_text() -> None:
    """A manifest holds what JSON holds: a ``timedelta`` in one is refused, naming the field,
    as a number of seconds is (a Python caller builds the model itself instead)."""
    with pytest.raises(InvalidError) as info:
        load_manifest(claim(claimTimeout=timedelta(seconds=5)))
    assert info.value.field == "SandboxClaim/c spec.claimTimeout"
    assert "expected a duration string" in info.value.reason
    built = SandboxClaim(spec=SandboxClaimSpec(template_name="b", claim_timeout=timedelta(5)))
    assert built.spec.claim_timeout == timedelta(days=5)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("attr", "key"),
    [
        ("replicas", "replicas"),
        ("claim_timeout", "claimTimeout"),
        ("shutdown_time", "shutdownTime"),
    ],
)
def test_a_nan_or_an_infinity_set_on_a_model_is_refused_naming_its_field(
    attr: str, key: str, value: float
) -> None:
    """A field set by attribute is checked when the model is applied: a NaN is no number of
    replicas nor of seconds, and no time. It is refused naming the field; it was written as
    ``null``, which the load read as unset, so ``replicas`` silently became 1."""
    loaded = load_manifest(claim(replicas=3))
    setattr(loaded.spec, attr, value)
    with pytest.raises(InvalidError) as info:
        load_manifests(loaded)
    assert info.value.field == f"SandboxClaim/c spec.{key}"
