"""The API server's name rules: qualified names, label values, DNS-1123 names."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.validation import (
    ANNOTATIONS_MAX,
    FieldProblem,
    annotations_size,
    annotations_size_problem,
    check_annotations,
    check_env_vars,
    check_finalizers,
    check_labels,
    dns_label_problem,
    dns_subdomain_problem,
    generate_name_problem,
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


def test_the_annotation_size_rule_counts_keys_and_values_in_utf8() -> None:
    """256 KiB of keys and values in all, counted in UTF-8 bytes (a lone surrogate as 3):
    exactly the limit is fine, one byte more is not. The one rule of the API server's
    writes and of every check made before one."""
    at_limit = {"k": "x" * (ANNOTATIONS_MAX - 1)}
    assert annotations_size(at_limit) == ANNOTATIONS_MAX
    assert annotations_size_problem(at_limit) is None
    over = {"k": "x" * ANNOTATIONS_MAX}
    assert annotations_size_problem(over) == (
        f"may not be more than 256 KiB in total, got {ANNOTATIONS_MAX + 1} bytes"
    )
    # 'é' is 2 bytes, '€' 3, a lone surrogate 3: characters alone would pass.
    assert annotations_size({"é": "€", "s": "\ud800"}) == 2 + 3 + 1 + 3
    # 87,381 characters: far under the limit as characters, at it (or past it) in bytes.
    assert annotations_size_problem({"k": "€" * (ANNOTATIONS_MAX // 3)}) is None
    assert annotations_size_problem({"kk": "€" * (ANNOTATIONS_MAX // 3)}) is not None
    # Keys or values of another kind are the decoder's type errors: they weigh nothing here.
    assert annotations_size({1: "abc", "k": 2}) == 1


@pytest.mark.parametrize(
    ("env", "loc", "reason"),
    [
        ({"A=B": "1"}, ("envVars",), "invalid variable name 'A=B': a name must not contain '='"),
        ({"": "1"}, ("envVars",), "invalid variable name '': a name must not be empty"),
        (
            {"A\0B": "1"},
            ("envVars",),
            "invalid variable name 'A\\x00B': a name must not contain a NUL character",
        ),
        ({"A": "x\0y"}, ("envVars", "A"), "must not contain a NUL character"),
        ({1: "x"}, ("envVars",), "a variable name must be a string, got 1"),
        ({"A": 1}, ("envVars", "A"), "must be a string, got 1"),
    ],
)
def test_env_vars_no_process_can_carry_are_refused(
    env: dict[object, object], loc: tuple[str, ...], reason: str
) -> None:
    """A process gets NAME=value C strings: '=' in a name is read back as another name, NUL
    cannot travel, an empty name cannot be read. The first bad entry is reported: a bad name
    at the map, a bad value at its key."""
    with pytest.raises(FieldProblem) as info:
        check_env_vars(env, ("envVars",))
    assert info.value.loc == loc
    assert info.value.reason == reason


def test_env_vars_any_process_can_carry_pass() -> None:
    """Empty values, '=' in a value, blanks and any other character are fine."""
    check_env_vars({"A": "", "B": "x=y", "C": "\n\t é", "_x1": "1"})


def test_a_dns_label_has_at_most_63_characters() -> None:
    """Namespaces and container names: 63 characters pass, 64 are refused."""
    assert dns_label_problem("a" * 63) is None
    assert "at most 63 characters" in (dns_label_problem("a" * 64) or "")


def test_a_generate_name_prefix_is_cut_to_58_characters_before_the_name_is_checked() -> None:
    """``SimpleNameGenerator`` keeps 58 characters of the prefix and appends 5: what follows
    the cut (here ``-``, after a ``.``) never reaches the name."""
    assert generate_name_problem("a" * 57 + ".-") is None
    assert generate_name_problem("a" * 56 + ".-") is not None


def test_annotations_count_each_character_in_its_utf8_bytes() -> None:
    """65,537 four-byte characters are 262,148 bytes: over 256 KiB, though far fewer characters."""
    why = annotations_size_problem({"k": "\U0001f600" * 65_537})
    assert why == "may not be more than 256 KiB in total, got 262149 bytes"
    assert annotations_size_problem({"k": "\U0001f600" * 65_535}) is None
