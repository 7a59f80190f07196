"""ObjectMeta: names, generateName, namespaces, labels, annotations and finalizers as the API server checks them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_kruise_agents.api import InvalidError, ObjectMeta, load_manifest
from pytest_kruise_agents.api.base import MANIFEST
from pytest_kruise_agents.api.meta import Condition, OwnerReference, set_condition


def claim(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": metadata,
        "spec": {"templateName": "base"},
    }


def problem(**metadata: Any) -> tuple[str, str]:
    with pytest.raises(InvalidError) as info:
        load_manifest(claim(**metadata))
    return info.value.field, info.value.reason


@pytest.mark.parametrize(
    ("metadata", "field", "why"),
    [
        ({"labels": {"bad key!": "x"}}, "metadata.labels[bad key!]", "invalid key 'bad key!'"),
        ({"labels": {"a/b/c": "x"}}, "metadata.labels[a/b/c]", "one '/'"),
        ({"labels": {"k": "x" * 64}}, "metadata.labels.k", "at most 63 characters"),
        ({"labels": {"k": "has space"}}, "metadata.labels.k", "invalid value 'has space'"),
        ({"annotations": {"": "x"}}, "metadata.annotations[]", "must not be empty"),
        ({"finalizers": ["bad finalizer"]}, "metadata.finalizers[0]", "invalid finalizer"),
        (
            {"finalizers": ["orphan", "foregroundDeletion"]},
            "metadata.finalizers",
            "finalizer orphan and foregroundDeletion cannot be both set",
        ),
        ({"finalizers": ["Example.com/x"]}, "metadata.finalizers[0]", "lowercase DNS subdomain"),
        ({"labels": {"Example.com/x": "1"}}, "metadata.labels[Example.com/x]", "lowercase DNS"),
    ],
)
def test_label_and_annotation_keys_label_values_and_finalizers_are_checked(
    metadata: dict[str, Any], field: str, why: str
) -> None:
    """Keys and finalizers are qualified names, label values at most 63 plain characters."""
    where, reason = problem(name="c", **metadata)
    assert where == f"SandboxClaim/c {field}"
    assert why in reason


def test_good_keys_values_and_finalizers_load() -> None:
    """Prefixed keys, empty label values and prefixed finalizers are all fine."""
    meta = ObjectMeta(
        name="c",
        labels={"example.com/team": "", "app": "v1.2_3"},
        annotations={"agents.kruise.io/anything": "free text: with spaces!"},
        finalizers=["agents.kruise.io/sandbox"],
    )
    assert meta.labels["example.com/team"] == ""


@pytest.mark.parametrize(
    "prefix",
    [
        "-",  # the trailing '-' is masked only after another character
        "a.-",  # masked as upstream does ("aa"), but "a.-x7k2p" is no subdomain
        "x.-",
        "ab.",  # no mask for a trailing '.', although "ab.x7k2p" would do
        "a" * 56 + ".--",  # cut to 58 characters, the prefix ends in ".-"
        "a" * 254 + "-",
    ],
)
def test_a_generate_name_that_makes_no_valid_name_is_refused(prefix: str) -> None:
    """As ``ValidateObjectMeta`` checks the prefix (``NameIsDNSSubdomain(prefix=true)``) and
    the generic registry validates the generated name: either refusal names generateName."""
    where, reason = problem(generateName=prefix)
    assert where == "document[0] metadata.generateName"
    assert f"invalid prefix {prefix!r}" in reason


@pytest.mark.parametrize("prefix", ["a-", "base-", "a--", "a.b-", "x", "a" * 100 + "-"])
def test_a_generate_name_that_makes_valid_names_loads(prefix: str) -> None:
    """A prefix is cut to 58 characters, and the 5-character suffix follows it."""
    assert load_manifest(claim(generateName=prefix)).metadata.generate_name == prefix


def test_a_generate_name_must_make_valid_names() -> None:
    """``Bad_Name.`` would make ``Bad_Name.x7k2p``, which no later load accepts: refused."""
    where, reason = problem(generateName="Bad_Name.")
    assert where == "document[0] metadata.generateName"
    assert "invalid prefix 'Bad_Name.'" in reason
    # A trailing '-' is the usual form: the generated suffix follows it.
    assert load_manifest(claim(generateName="base-")).metadata.generate_name == "base-"


def test_annotation_keys_are_checked_in_lower_case_wherever_they_are_written() -> None:
    """Object annotations, a pod template's and a claim's ``spec.annotations`` alike."""
    key = "Example.COM/Owner"
    assert load_manifest(claim(name="c", annotations={key: "x"})).metadata.annotations == {key: "x"}
    doc = claim(name="c")
    doc["spec"]["annotations"] = {key: "x"}
    loaded: Any = load_manifest(doc)
    assert loaded.spec.annotations == {key: "x"}
    pool = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": "base"},
        "spec": {
            "replicas": 0,
            "template": {
                "metadata": {"annotations": {key: "x"}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
            },
        },
    }
    loaded = load_manifest(pool)
    assert loaded.spec.template["metadata"]["annotations"] == {key: "x"}


@pytest.mark.parametrize(
    ("key", "field"), [("finalizers", "finalizers"), ("ownerReferences", "owner_references")]
)
@pytest.mark.parametrize(("value", "stated"), [(None, True), ([], True), ("absent", False)])
def test_finalizers_and_owner_references_null_are_stated_empty(
    key: str, field: str, value: Any, stated: bool
) -> None:
    """``finalizers: null`` states "no finalizers" (a PUT decodes it as empty, kubectl apply
    deletes the field), as ``[]`` does, and so does ``ownerReferences: null``; only a manifest
    without the field leaves it unstated."""
    meta = {"name": "c"} if value == "absent" else {"name": "c", key: value}
    loaded = load_manifest(claim(**meta)).metadata
    assert getattr(loaded, field) == []
    assert (field in loaded.model_fields_set) is stated


def test_an_empty_namespace_is_the_default_namespace() -> None:
    """As the API server reads it (``kubectl apply`` of ``namespace: ""``)."""
    assert load_manifest(claim(name="c", namespace="")).metadata.namespace == "default"
    assert ObjectMeta(name="c", namespace="").namespace == "default"
    where, _ = problem(name="c", namespace="Team")
    assert where == "SandboxClaim/c metadata.namespace"


def test_metadata_built_in_python_is_not_checked() -> None:
    """The rules are the API server's checks of what it is sent: manifests only.

    The simulator builds metadata itself (a pod named after its sandbox, a
    sandbox labelled with its pool's name); a check there would raise inside
    a controller and stop the simulation instead of refusing the input.
    """
    meta = ObjectMeta(
        name="x" * 300,
        generate_name="Bad_Name.",
        namespace="Team",
        labels={"a b": "c", "k": "x" * 64},
        annotations={"not/a/key": "1", "big": "x" * 300_000},
        finalizers=["bad finalizer"],
    )
    assert meta.labels["a b"] == "c"
    assert ObjectMeta.model_validate({"labels": {"a b": "c"}}).labels == {"a b": "c"}


def test_metadata_from_a_manifest_context_is_checked() -> None:
    """``context=MANIFEST`` is what makes the checks apply, whatever the entry point."""
    with pytest.raises(ValidationError, match="invalid key 'a b'"):
        ObjectMeta.model_validate({"labels": {"a b": "c"}}, context=MANIFEST)
    with pytest.raises(ValidationError, match="lowercase RFC 1123 subdomain"):
        ObjectMeta.model_validate({"name": "x" * 254}, context=MANIFEST)


def test_read_only_fields_kubectl_prints_are_accepted_and_dropped() -> None:
    """``kubectl get -o yaml`` output applies back: managedFields, selfLink, deletionGracePeriodSeconds.

    The API server sets them itself; an apply that carries them changes nothing.
    """
    meta = {
        "name": "c",
        "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {}}],
        "selfLink": "/apis/agents.kruise.io/v1alpha1/namespaces/default/sandboxclaims/c",
        "deletionGracePeriodSeconds": 0,
    }
    loaded = load_manifest(claim(**meta))
    assert loaded.metadata == ObjectMeta(name="c")
    assert "managedFields" not in loaded.metadata.to_dict()
    where, _ = problem(name="c", managedFieldz=[])
    assert where == "SandboxClaim/c metadata.managedFieldz"


def owner(**fields: Any) -> dict[str, Any]:
    """An owner reference with every field set, then ``fields``."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u-1", **fields}


_SET = owner(apiVersion="agents.kruise.io/v1alpha1", kind="SandboxSet", name="base")


@pytest.mark.parametrize(
    ("refs", "field", "why"),
    [
        ([owner(uid="")], "[0].uid", "uid must not be empty"),
        ([owner(name="")], "[0].name", "name must not be empty"),
        ([owner(kind="")], "[0].kind", "kind must not be empty"),
        ([owner(apiVersion="")], "[0].apiVersion", "invalid value '': version must not be empty"),
        ([owner(apiVersion="apps/")], "[0].apiVersion", "version must not be empty"),
        ([owner(apiVersion="a/b/c")], "[0].apiVersion", "version must not be empty"),
        ([owner(kind="Event")], "[0]", "Event (v1) may not be an owner"),
        (
            [{**_SET, "controller": True}, owner(controller=True)],
            "[1].controller",
            "only one reference can have controller set to true, "
            "found true in references for SandboxSet/base and ConfigMap/cm",
        ),
    ],
)
def test_owner_references_are_checked_as_the_api_server_checks_them(
    refs: list[dict[str, Any]], field: str, why: str
) -> None:
    """apimachinery's ValidateOwnerReferences: a version, kind, name and uid each, no Event as
    owner, and at most one controller (two would leave two controllers fighting over it)."""
    got_field, got_why = problem(name="c", ownerReferences=refs)
    assert got_field == f"SandboxClaim/c metadata.ownerReferences{field}"
    assert why in got_why


def test_good_owner_references_load() -> None:
    """Several owners, one controller among them, a core and a grouped apiVersion."""
    refs = [{**_SET, "controller": True}, owner(controller=False), owner(name="other")]
    loaded = load_manifest(claim(name="c", ownerReferences=refs))
    assert [ref.name for ref in loaded.metadata.owner_references] == ["base", "cm", "other"]


def test_the_controller_reference_is_the_one_with_controller_true() -> None:
    """An owner with ``controller: false`` (or unset) is no controller."""
    owners = [
        OwnerReference(api_version="v1", kind="A", name="a", uid="1", controller=False),
        OwnerReference(api_version="v1", kind="B", name="b", uid="2"),
        OwnerReference(api_version="v1", kind="C", name="c", uid="3", controller=True),
    ]
    assert ObjectMeta(owner_references=owners).controller_ref() is owners[2]
    assert ObjectMeta(owner_references=owners[:2]).controller_ref() is None


def test_a_condition_keeps_its_transition_time_only_while_its_status_holds() -> None:
    """``meta.SetStatusCondition``: the same status keeps the first transition time, a new
    status takes the new one."""
    first = datetime(2026, 1, 1, tzinfo=UTC)
    later = first + timedelta(minutes=5)
    conditions = [Condition(type="Ready", status="False", last_transition_time=first)]
    set_condition(
        conditions,
        Condition(type="Ready", status="False", reason="Again", last_transition_time=later),
    )
    assert (conditions[0].reason, conditions[0].last_transition_time) == ("Again", first)
    set_condition(conditions, Condition(type="Ready", status="True", last_transition_time=later))
    assert (conditions[0].status, conditions[0].last_transition_time) == ("True", later)
    assert len(conditions) == 1
