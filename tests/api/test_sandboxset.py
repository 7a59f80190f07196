"""SandboxSet: what its webhooks check (maxUnavailable, the template, templateRef) and default."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_kruise_agents.api import InvalidError, SandboxSet, load_manifest
from pytest_kruise_agents.api.sandboxset import ScaleStrategy, UpdateStrategy, scaled_value
from pytest_kruise_agents.claiming.modification import sandboxset_revision


def pool(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "main", "image": "python:3.12"}]}},
    }
    body.update(spec)
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": "base"},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def problem(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(InvalidError) as info:
        load_manifest(doc)
    return info.value.field, info.value.reason


# --------------------------------------------------------------------------- maxUnavailable


@pytest.mark.parametrize("strategy", ["updateStrategy", "scaleStrategy"])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("120%", "must not be greater than 100%"),
        ("99999999999999999999%", "must not be greater than 100%"),
        (2**40, "must be <= 2147483647"),
        (2**31, "must be <= 2147483647 (an int32), got 2147483648"),
        ("101%", "must not be greater than 100%"),
        (
            "\u0663%",
            "expected an integer or a percentage",
        ),  # an Arabic-Indic 3: Go reads ASCII digits
        (-1, "must be >= 0"),
        ("3", "expected an integer or a percentage"),
        ("abc", "expected an integer or a percentage"),
    ],
)
def test_max_unavailable_is_an_int32_or_a_percentage_up_to_100(
    strategy: str, value: Any, why: str
) -> None:
    """Upstream's validator: a non-negative int32, or a percentage from 0% to 100%."""
    field, reason = problem(pool(**{strategy: {"maxUnavailable": value}}))
    assert field == f"SandboxSet/base spec.{strategy}.maxUnavailable"
    assert why in reason


def test_max_unavailable_in_range_loads() -> None:
    """0, 100%, a large int32 and 0% are all fine, from a manifest and from Python."""
    for value in (0, "0%", "100%", 2**31 - 1, "25%"):
        loaded = load_manifest(pool(scaleStrategy={"maxUnavailable": value}))
        assert isinstance(loaded, SandboxSet)
        assert loaded.spec.scale_strategy is not None
        assert loaded.spec.scale_strategy.max_unavailable == value
    assert UpdateStrategy(max_unavailable=3).max_unavailable == 3
    with pytest.raises(ValueError, match="greater than 100%"):
        ScaleStrategy(max_unavailable="150%")


# --------------------------------------------------------------------------- the template


def test_an_invalid_pod_template_is_refused_at_its_field() -> None:
    """The validator names the part of the template that is wrong (reference §1.4)."""
    containers = [{"name": "m", "image": "i"}, {"name": "m", "image": "j"}]
    assert problem(pool(template={"spec": {"containers": containers}})) == (
        "SandboxSet/base spec.template.spec.containers[1].name",
        "duplicate value 'm'",
    )
    field, _ = problem(pool(template={"spec": {"containers": [{"name": "Main_X", "image": "i"}]}}))
    assert field == "SandboxSet/base spec.template.spec.containers[0].name"
    spec = {"containers": [{"name": "m", "image": "i"}], "restartPolicy": "Sometimes"}
    field, _ = problem(pool(template={"spec": spec}))
    assert field == "SandboxSet/base spec.template.spec.restartPolicy"
    template = {
        "metadata": {"labels": {"a": "has space"}},
        "spec": spec | {"restartPolicy": "Never"},
    }
    field, _ = problem(pool(template=template))
    assert field == "SandboxSet/base spec.template.metadata.labels.a"


@pytest.mark.parametrize("part", ["labels", "annotations"])
@pytest.mark.parametrize("key", [1, True, None, 1.5])
def test_a_template_key_that_is_no_string_is_a_validation_error(part: str, key: Any) -> None:
    """From a manifest or from Python, one error naming the map, never a raw AttributeError."""
    template = {
        "metadata": {part: {key: "a"}},
        "spec": {"containers": [{"name": "m", "image": "i"}]},
    }
    field, why = problem(pool(template=template))
    assert field == f"SandboxSet/base spec.template.metadata.{part}"
    assert why.startswith("a key must be a string, got ")
    with pytest.raises(ValidationError, match="a key must be a string"):
        SandboxSet.model_validate(pool(template=template))


@pytest.mark.parametrize(
    "yaml_metadata",
    [
        "metadata: {name: base, annotations: {a: n}}\nspec:\n  template:\n",
        "metadata: {name: base}\nspec:\n  template:\n    metadata: {annotations: {a: n}}\n",
    ],
    ids=["set", "template"],
)
def test_yaml_11_booleans_read_the_same_in_the_set_and_in_its_template(
    yaml_metadata: str,
) -> None:
    """YAML 1.1 reads ``n`` as false: one apply words that mistake once, as the boolean false,
    whether it sits in the set's own annotations or in its pod template's."""
    text = (
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxSet\n"
        + yaml_metadata.replace("  template:\n", "  replicas: 1\n  template:\n", 1)
        + "    spec: {containers: [{name: main, image: python:3.12}]}\n"
    )
    with pytest.raises(InvalidError) as info:
        load_manifest(text)
    assert info.value.field.endswith("metadata.annotations.a")
    assert info.value.reason == "must be a string, got the boolean false"


def test_a_template_ref_needs_a_template_name() -> None:
    """``templateRef: {name: ""}`` names nothing: refused."""
    field, reason = problem(pool(template=None, templateRef={"name": ""}))
    assert field == "SandboxSet/base spec.templateRef.name"
    assert reason.startswith("required value")
    field, _ = problem(pool(template=None, templateRef={"name": "Bad_Name"}))
    assert field == "SandboxSet/base spec.templateRef.name"


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_reserved_metadata_is_refused_at_its_key(where: str) -> None:
    """``e2b.agents.kruise.io/`` keys on the set itself, labels or annotations, are named with
    their key."""
    doc = pool()
    doc["metadata"][where] = {"e2b.agents.kruise.io/x": "1"}
    assert problem(doc) == (
        f"SandboxSet/base metadata.{where}[e2b.agents.kruise.io/x]",
        "key uses reserved prefix 'e2b.agents.kruise.io/'",
    )


# --------------------------------------------------------------------------- defaults


def test_the_webhook_defaults_are_applied() -> None:
    """No service account token in sandboxes; PVC templates ReadWriteOnce and Filesystem."""
    claims = [
        {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    ]
    doc = pool(volumeClaimTemplates=claims)
    original = copy.deepcopy(doc)
    loaded = load_manifest(doc)
    assert isinstance(loaded, SandboxSet)
    assert loaded.spec.template is not None
    assert loaded.spec.template["spec"]["automountServiceAccountToken"] is False
    assert loaded.spec.volume_claim_templates == [
        {
            "metadata": {"name": "data"},
            "spec": {
                "resources": {"requests": {"storage": "1Gi"}},
                "accessModes": ["ReadWriteOnce"],
                "volumeMode": "Filesystem",
            },
        }
    ]
    assert loaded.spec.update_strategy.max_unavailable == "20%"
    assert doc == original  # the caller's manifest is not changed


def test_defaults_keep_what_the_template_sets() -> None:
    """An explicit token mount, access modes or volume mode stay as written."""
    template = {
        "spec": {
            "automountServiceAccountToken": True,
            "containers": [{"name": "main", "image": "python:3.12"}],
        }
    }
    claims = [{"spec": {"accessModes": ["ReadWriteMany"], "volumeMode": "Block"}}]
    loaded = load_manifest(pool(template=template, volumeClaimTemplates=claims))
    assert isinstance(loaded, SandboxSet)
    assert loaded.spec.template == template
    assert loaded.spec.volume_claim_templates == claims


def test_pvc_defaults_fill_what_is_missing_as_the_webhook_does() -> None:
    """No access modes (absent, ``null`` or ``[]``) default to ReadWriteOnce; the volume mode
    defaults only when missing or ``null`` (Go's pointer is nil), not when written ``""``."""
    claims = [
        {"spec": {"accessModes": [], "volumeMode": ""}},
        {"spec": {"accessModes": None, "volumeMode": None}},
    ]
    loaded = load_manifest(pool(volumeClaimTemplates=claims))
    assert isinstance(loaded, SandboxSet)
    assert loaded.spec.volume_claim_templates == [
        {"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": ""}},
        {"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}},
    ]


def test_the_revision_hashes_the_defaulted_template() -> None:
    """A set written with or without the default has one revision, and loading is idempotent."""
    plain = load_manifest(pool())
    explicit_template = {
        "spec": {
            "containers": [{"name": "main", "image": "python:3.12"}],
            "automountServiceAccountToken": False,
        }
    }
    explicit = load_manifest(pool(template=explicit_template))
    assert isinstance(plain, SandboxSet) and isinstance(explicit, SandboxSet)
    assert sandboxset_revision(plain) == sandboxset_revision(explicit)
    again = SandboxSet.model_validate(plain.model_dump(by_alias=True))
    assert again.spec.template == plain.spec.template
    assert sandboxset_revision(again) == sandboxset_revision(plain)


# --------------------------------------------------------------------------- name


def test_a_name_longer_than_a_label_value_is_refused() -> None:
    """Each sandbox carries the set's name as its ``sandbox-pool`` label, at most 63 characters.

    A deliberate difference: upstream accepts the set and its API server then
    refuses every sandbox the set creates, so the pool never fills.
    """
    doc = pool()
    doc["metadata"]["name"] = "p" * 64
    field, reason = problem(doc)
    assert field == f"SandboxSet/{'p' * 64} metadata.name"
    assert "at most 63 characters" in reason and "sandbox-pool" in reason
    doc["metadata"]["name"] = "p" * 63
    assert load_manifest(doc).metadata.name == "p" * 63


@pytest.mark.parametrize(
    ("value", "total", "round_up", "scaled"),
    [
        (None, 10, True, None),
        (3, 10, True, 3),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("0%", 10, True, 0),
        ("100%", 7, True, 7),
    ],
)
def test_scaled_value_resolves_a_count_or_a_percentage_of_the_total(
    value: Any, total: int, round_up: bool, scaled: int | None
) -> None:
    assert scaled_value(value, total, round_up=round_up) == scaled


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("3", "invalid value '3': expected an integer or a percentage like '20%'"),
        ("-5%", "invalid value '-5%': expected an integer or a percentage like '20%'"),
        ("20 %", "invalid value '20 %': expected an integer or a percentage like '20%'"),
        ("150%", "invalid value '150%': must not be greater than 100%"),
        (-3, "must be >= 0"),
        (True, "must be an integer or a percentage like '20%', got True"),
        (2.5, "must be an integer or a percentage like '20%', got 2.5"),
    ],
)
def test_scaled_value_refuses_what_the_validator_refuses_naming_value(
    value: Any, reason: str
) -> None:
    """The public function reads values as the SandboxSet's validator does (a string is
    always a percentage, as Kubernetes reads it): it read ``"3"`` as 3, ``"150%"`` as 1.5
    times the total, and answered others with a bare ``ValueError`` or ``AttributeError``."""
    with pytest.raises(InvalidError) as caught:
        scaled_value(value, 10)
    assert (caught.value.field, caught.value.reason) == ("value", reason)
