"""The API server's name rules: qualified names, label values, DNS-1123 names."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.validation import (
    FieldProblem,
    check_annotations,
    check_finalizers,
    check_labels,
    dns_label_problem,
    dns_subdomain_problem,
    label_value_problem,
    qualified_name_problem,
)


@pytest.mark.parametrize(
    "key", ["app", "App_1.x", "example.com/team", "agents.kruise.io/sandbox-pool", "a" * 63]
)
def test_qualified_names_that_kubernetes_accepts(key: str) -> None:
    """A name part of up to 63 characters, with an optional DNS subdomain prefix."""
    assert qualified_name_problem(key) is None


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("bad key!", "the name part must consist of alphanumeric characters"),
        ("a/b/c", "one '/'"),
        ("", "the name part must not be empty"),
        ("/x", "the prefix before '/' must not be empty"),
        ("example.com/", "the name part must not be empty"),
        ("Example.com/x", "must be a lowercase DNS subdomain"),
        ("a" * 64, "at most 63 characters"),
        ("-a", "start and end with an alphanumeric character"),
    ],
)
def test_qualified_names_that_kubernetes_refuses(key: str, why: str) -> None:
    """Each refusal names the key and the rule it breaks."""
    problem = qualified_name_problem(key)
    assert problem is not None and why in problem and repr(key) in problem


def test_label_values_are_short_plain_names_or_empty() -> None:
    """Empty is a value; 64 characters, spaces or a leading '-' are not."""
    for value in ("", "x", "v1.2_3-a", "x" * 63):
        assert label_value_problem(value) is None
    assert "at most 63 characters, got 64" in (label_value_problem("x" * 64) or "")
    assert "must consist of alphanumeric" in (label_value_problem("has space") or "")
    assert label_value_problem("-x") is not None


def test_dns_names() -> None:
    """Labels (namespaces, container names) and subdomains (object names)."""
    assert dns_label_problem("team-1") is None
    assert dns_label_problem("a.b") is not None
    assert dns_label_problem("Main_X") is not None
    assert dns_subdomain_problem("a-b.c-1") is None
    assert dns_subdomain_problem("Bad_Name.") is not None
    assert dns_subdomain_problem("x" * 254) is not None


def test_a_problem_in_a_map_points_at_its_key() -> None:
    """``check_*`` raise a FieldProblem whose ``loc`` ends with the offending key or index."""
    with pytest.raises(FieldProblem) as info:
        check_labels({"ok": "1", "k": "x" * 64}, ("metadata", "labels"))
    assert info.value.loc == ("metadata", "labels", "k")
    assert str(info.value).startswith("metadata.labels.k: invalid value")
    with pytest.raises(FieldProblem) as info:
        check_annotations({"": "x"})
    assert info.value.loc == ("",)
    with pytest.raises(FieldProblem) as info:
        check_annotations({"big": "x" * (256 * 1024)})
    assert "256 KiB" in info.value.reason
    with pytest.raises(FieldProblem) as info:
        check_finalizers(["example.com/ok", "bad finalizer"])
    assert info.value.loc == (1,)
    assert info.value.reason.startswith("invalid finalizer 'bad finalizer'")


# What Go's strings.ToLower makes ASCII: the Kelvin sign and the dotted capital I.
CASE_FREE_KEYS = [
    "Example.COM/Owner",
    "EXAMPLE.com/x",
    "ex\u212aample.com/x",
    "example.com/\u0130d",
]


@pytest.mark.parametrize("key", CASE_FREE_KEYS)
def test_an_annotation_key_is_checked_in_lower_case(key: str) -> None:
    """apimachinery's ``ValidateAnnotations`` checks ``IsQualifiedName(strings.ToLower(k))``:
    the case of an annotation key does not matter, and the key is kept as written."""
    check_annotations({key: "x"})


@pytest.mark.parametrize("key", CASE_FREE_KEYS[:2])
def test_label_keys_and_finalizers_stay_case_sensitive(key: str) -> None:
    """Labels and finalizers are checked as written: an upper-case prefix is refused."""
    with pytest.raises(FieldProblem, match="lowercase DNS subdomain"):
        check_labels({key: "x"})
    with pytest.raises(FieldProblem, match="lowercase DNS subdomain"):
        check_finalizers([key])


def test_an_annotation_key_invalid_in_any_case_names_the_key_as_written() -> None:
    """The error quotes the user's key, not its lower-case form."""
    with pytest.raises(FieldProblem) as info:
        check_annotations({"Bad Key!": "x"})
    assert info.value.loc == ("Bad Key!",)
    assert "'Bad Key!'" in info.value.reason


def test_the_orphan_and_foreground_finalizers_exclude_each_other() -> None:
    """apimachinery's ``ValidateFinalizers``: one object cannot both orphan its dependents and
    wait for their deletion. The problem is the list's, not an item's."""
    check_finalizers(["orphan"])
    check_finalizers(["foregroundDeletion", "example.com/keep"])
    with pytest.raises(FieldProblem) as info:
        check_finalizers(["orphan", "example.com/keep", "foregroundDeletion"])
    assert info.value.loc == ()
    assert info.value.reason == "finalizer orphan and foregroundDeletion cannot be both set"
