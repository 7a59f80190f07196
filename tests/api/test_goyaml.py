"""Reading YAML as kubectl does: go-yaml v2's plain scalars, explicit tags, merge keys, syntax.

Every expectation here was checked against kubectl's reader (apimachinery v0.31
``NewYAMLOrJSONDecoder`` over ``sigs.k8s.io/yaml`` v1.4, i.e. go-yaml v2).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from pytest_kruise_agents.api.goyaml import YamlLoader, resolve_scalar


def read(text: str) -> Any:
    return yaml.load(text, Loader=YamlLoader)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # No base-60 numbers in go-yaml: a time of day or an aspect ratio is text.
        ("12:30", "12:30"),
        ("1:30", "1:30"),
        ("16:9", "16:9"),
        ("1:20:30.5", "1:20:30.5"),
        # YAML 1.1 booleans, the one-letter ones too; other spellings are text.
        ("y", True),
        ("Y", True),
        ("n", False),
        ("N", False),
        ("Off", False),
        ("oN", "oN"),
        ("nULL", "nULL"),
        ("~", None),
        # Go's strconv rules for numbers.
        ("1e3", 1000.0),
        ("1e-3", 0.001),
        ("1.5e3", 1500.0),
        ("08", 8.0),
        ("09", 9.0),
        ("0755", 493),
        ("0o17", 15),
        ("0x1F", 31),
        ("-0b11", -3),
        ("+0x10", 16),
        ("1_000", 1000),
        ("5.", 5.0),
        ("+.5", 0.5),
        ("18446744073709551615", 18446744073709551615),
        ("18446744073709551616", 18446744073709551616.0),
        # Past what a float64 holds: Go's ParseFloat fails, so it is text.
        ("1e309", "1e309"),
        ("0o8", "0o8"),
        ("0x", "0x"),
        ("1e", "1e"),
        ("_1", "_1"),
        ("=", "="),
        # A timestamp is the text written.
        ("2024-05-01", "2024-05-01"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
    ],
)
def test_plain_scalars_resolve_as_go_yaml_v2_resolves_them(text: str, value: Any) -> None:
    """PyYAML's YAML 1.1 resolver read ``12:30`` as 750 and ``y``, ``1e3``, ``0o17`` as text."""
    got = read(f"x: {text}\n")["x"]
    assert got == value and type(got) is type(value)


def test_special_floats_are_floats() -> None:
    """``.inf`` and ``.nan`` are floats to go-yaml (a manifest refuses them later)."""
    assert read("x: -.Inf\n")["x"] == -math.inf
    assert math.isnan(read("x: .NaN\n")["x"])
    assert resolve_scalar(".5e3") == ("float", 500.0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('!!int "3"', 3),
        ("!!float 3", 3.0),
        ("!!bool y", True),
        ("!!str 3", "3"),
        ('!!null ""', None),
        ("!!timestamp 2024-05-01", "2024-05-01"),
        ("!!binary cGxhdGZvcm0=", "platform"),
    ],
)
def test_an_explicit_tag_reads_its_text_as_go_yaml_does(text: str, value: Any) -> None:
    """``!!binary`` is its decoded text (go-yaml gives a string, which kubectl sends)."""
    got = read(f"x: {text}\n")["x"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("!!int 3.5", "cannot decode !!float `3.5` as a !!int"),
        ('!!bool "1"', "cannot decode !!int `1` as a !!bool"),
        ("!!timestamp foo", "cannot decode !!str `foo` as a !!timestamp"),
        ("!!binary cGxhdGZvcm0", "!!binary value contains invalid base64 data"),
    ],
)
def test_an_explicit_tag_its_text_does_not_fit_is_refused(text: str, problem: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as info:
        read(f"x: {text}\n")
    assert info.value.problem == problem


ANCHORS = "a: &a {t: a1, u: a2}\nb: &b {t: b1, v: b2}\n"


@pytest.mark.parametrize(
    ("mapping", "value"),
    [
        # Earlier maps of a list take precedence (the merge spec; PyYAML took the later).
        ("{<<: [*a, *b]}", {"t": "a1", "u": "a2", "v": "b2"}),
        ("{<<: [*b, *a]}", {"t": "b1", "u": "a2", "v": "b2"}),
        # go-yaml sets merged keys where the ``<<`` stands: over the keys before it.
        ("{t: e, <<: *a}", {"t": "a1", "u": "a2"}),
        ("{<<: *a, t: e}", {"t": "e", "u": "a2"}),
        ("{<<: *a, <<: *b}", {"t": "b1", "u": "a2", "v": "b2"}),
        ('{"<<": 1}', {"<<": 1}),
    ],
)
def test_merge_keys_apply_in_go_yaml_order(mapping: str, value: dict[str, str]) -> None:
    assert read(ANCHORS + f"x: {mapping}\n")["x"] == value


def test_a_merge_of_no_map_is_refused() -> None:
    with pytest.raises(yaml.MarkedYAMLError) as info:
        read(ANCHORS + "x: {<<: [*a, 1]}\n")
    assert info.value.problem == "map merge requires map or sequence of maps as the value"


def test_an_alias_of_a_list_of_maps_is_merged_where_go_yaml_refuses_it() -> None:
    """``docs/fidelity.md`` (a deliberate difference): go-yaml refuses ``<<: *l`` where ``l``
    names a list of maps (an alias in a merge must name a map); here the list's maps are
    merged, earlier first, as ``<<: [*a, *b]`` is (PyYAML's composer does not keep an alias
    apart from the node it names)."""
    merged = read(ANCHORS + "l: &l [*a, *b]\nx: {<<: *l, w: x}\n")["x"]
    assert merged == {"t": "a1", "u": "a2", "v": "b2", "w": "x"}


def test_a_key_given_twice_is_still_refused_next_to_a_merge() -> None:
    """Only keys written twice are duplicates, not keys a ``<<`` brings in."""
    with pytest.raises(yaml.MarkedYAMLError) as info:
        read(ANCHORS + "x: {<<: *a, t: 1, t: 2}\n")
    assert info.value.problem == "duplicate key 't'"


def test_a_tab_separates_a_value_from_its_key() -> None:
    """libyaml skips a tab where no key may start; PyYAML refused it."""
    assert read("team:\tplatform\n") == {"team": "platform"}
    for text in ("a:\n\tb: c\n", "list:\n-\tx\n"):
        with pytest.raises(yaml.YAMLError):  # where go-yaml refuses it too
            read(text)


def test_only_yaml_1_1_is_read() -> None:
    """go-yaml v2 refuses a ``%YAML 1.2`` document ("found incompatible YAML document")."""
    assert read("%YAML 1.1\n---\nx: y\n") == {"x": True}
    with pytest.raises(yaml.YAMLError, match="incompatible YAML document"):
        read("%YAML 1.2\n---\nx: 1\n")


@pytest.mark.parametrize(
    ("text", "tag", "value"),
    [
        ("18446744073709551615", "int", 2**64 - 1),
        ("+18446744073709551615", "float", float(2**64 - 1)),
        ("-9223372036854775808", "int", -(2**63)),
        ("-9223372036854775809", "float", float(-(2**63) - 1)),
    ],
)
def test_integers_past_int64_are_what_go_yaml_makes_of_them(
    text: str, tag: str, value: Any
) -> None:
    """go-yaml tries ``ParseInt``, then ``ParseUint`` (which takes no sign), then a float."""
    assert resolve_scalar(text) == (tag, value)
    assert type(yaml.load(f"a: {text}", Loader=YamlLoader)["a"]) is type(value)


def test_a_date_under_an_explicit_tag_is_no_timestamp() -> None:
    """go-yaml tries a timestamp only for a plain scalar or under ``!!timestamp``: under
    ``!!int`` a date is text (``cannot decode !!str``)."""
    assert yaml.load("a: !!timestamp 2001-12-14", Loader=YamlLoader) == {"a": "2001-12-14"}
    with pytest.raises(
        yaml.constructor.ConstructorError, match=r"cannot decode !!str `2001-12-14`"
    ):
        yaml.load("a: !!int 2001-12-14", Loader=YamlLoader)


def _aliasing(written: int, anchored: int, aliases: int) -> str:
    """A document of ``written`` plain scalars, a list of ``anchored`` ones, and that list
    aliased ``aliases`` times."""
    return (
        f"a: [{','.join(['0'] * written)}]\n"
        f"b: &x [{','.join(['0'] * anchored)}]\n"
        f"c: [{','.join(['*x'] * aliases)}]\n"
    )


def test_past_400000_decoded_nodes_the_allowed_aliased_share_falls() -> None:
    """go-yaml's ``allowedAliasRatio``: 0.99 up to 400,000 decoded nodes, then less. About
    490,000 aliased of 499,000 decoded (98%) is refused there; of 520,000 (94%), taken."""
    with pytest.raises(yaml.constructor.ConstructorError, match="excessive aliasing"):
        yaml.load(_aliasing(9_000, 99, 4_900), Loader=YamlLoader)
    assert len(yaml.load(_aliasing(30_000, 99, 4_900), Loader=YamlLoader)["c"]) == 4_900
