"""Specification of ``csi-volume-config`` decoding: upstream's ``json.Unmarshal`` into
``[]CSIMountConfig`` (reference §5.5), then the model's own checks."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.claiming.csi import parse_csi_config


def refused(text: str) -> str:
    """The reason ``text`` is refused."""
    with pytest.raises(ValueError) as err:
        parse_csi_config(text)
    return str(err.value)


def test_a_list_of_configs_becomes_the_mounts() -> None:
    """Every field of a config is read under its JSON name."""
    text = (
        '[{"mountID": "m", "pvName": "pv", "mountPath": "/d", "subPath": "s",'
        ' "readOnly": true, "attributes": {"a": "1"}}, {"pvName": "pv2", "mountPath": "/e"}]'
    )
    assert parse_csi_config(text) == [
        CSIMountConfig(
            mount_id="m",
            pv_name="pv",
            mount_path="/d",
            sub_path="s",
            read_only=True,
            attributes={"a": "1"},
        ),
        CSIMountConfig(pv_name="pv2", mount_path="/e"),
    ]


@pytest.mark.parametrize("text", ["null", " null ", "[]"])
def test_null_or_an_empty_list_is_no_mounts(text: str) -> None:
    """Go decodes ``null`` into a nil slice: no mounts, as ``[]``."""
    assert parse_csi_config(text) == []


def test_a_key_that_names_no_field_is_ignored() -> None:
    """Go ignores an object key no field of the struct has."""
    text = '[{"pvName": "pv", "mountPath": "/d", "volumeHandle": "x", "extra": {"a": [1]}}]'
    assert parse_csi_config(text) == [CSIMountConfig(pv_name="pv", mount_path="/d")]


def test_keys_match_fields_whatever_their_case() -> None:
    """Go matches a key to a field's name case-insensitively (Unicode simple folding: the long s
    is an s), so a differently cased key sets the field rather than being ignored."""
    text = '[{"PVNAME": "pv", "mountpath": "/d", "ReadOnly": true, "\u017fubPath": "s"}]'
    assert parse_csi_config(text) == [
        CSIMountConfig(pv_name="pv", mount_path="/d", read_only=True, sub_path="s")
    ]


def test_an_exact_key_and_a_key_written_twice_are_read_in_order() -> None:
    """Later keys overwrite earlier ones, as Go decodes them in order; a null leaves a string or
    a bool as it was and clears a map; two attribute objects merge."""
    text = (
        '[{"pvName": "a", "pvname": "b", "mountPath": "/d", "mountPath": null,'
        ' "readOnly": true, "readOnly": null,'
        ' "attributes": {"x": "1"}, "attributes": {"y": "2", "z": null}}]'
    )
    assert parse_csi_config(text) == [
        CSIMountConfig(
            pv_name="b",
            mount_path="/d",
            read_only=True,
            attributes={"x": "1", "y": "2", "z": ""},
        )
    ]
    cleared = '[{"pvName": "a", "mountPath": "/d", "attributes": {"x": "1"}, "attributes": null}]'
    assert parse_csi_config(cleared) == [CSIMountConfig(pv_name="a", mount_path="/d")]


def test_a_null_field_is_unset() -> None:
    """A ``null`` field is Go's zero value: the optional fields stay unset."""
    text = '[{"pvName": "pv", "mountPath": "/d", "subPath": null, "readOnly": null}]'
    assert parse_csi_config(text) == [CSIMountConfig(pv_name="pv", mount_path="/d")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"pvName": "pv", "mountPath": "/d", "readOnly": "yes"}]', "[0].readOnly: must be"),
        ('[{"pvName": "pv", "mountPath": "/d", "readOnly": 1}]', "[0].readOnly: must be"),
        (
            '[{"pvName": 7, "mountPath": "/d"}]',
            "[0].pvName: must be a JSON string, not a JSON number",
        ),
        ('[{"pvName": "pv", "mountPath": ["/d"]}]', "[0].mountPath: must be a JSON string"),
        ('[{"pvName": "pv", "mountPath": "/d", "attributes": ["a"]}]', "[0].attributes: must"),
        ('[{"pvName": "pv", "mountPath": "/d", "attributes": {"a": 1}}]', '[0].attributes["a"]'),
        ('[{"pvName": "pv", "mountPath": "/d"}, "pv2"]', "[1]: must be a JSON object"),
        ('{"pvName": "pv", "mountPath": "/d"}', "must be a JSON list of CSI mount configs"),
    ],
)
def test_a_value_of_another_json_type_is_refused_naming_its_field(text: str, reason: str) -> None:
    """Go refuses a JSON value its field cannot hold: a string or a number is no bool (a typo
    must not become a read-only mount), a number no string."""
    assert reason in refused(text)


def test_the_first_value_of_a_wrong_type_is_the_one_named() -> None:
    """Go reports the earliest type error of the document."""
    text = '[{"pvName": "pv", "mountPath": "/d"}, {"readOnly": "no", "pvName": 1}]'
    assert refused(text).startswith("[1].readOnly:")


def test_a_type_error_comes_before_a_missing_field() -> None:
    """Decoding fails first; the model's checks run on what decoded."""
    assert refused('[{"readOnly": "yes"}]').startswith("[0].readOnly:")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"pvName": "pv"}]', "[0].mountPath: Field required"),
        (
            '[{"pvName": "", "mountPath": "/d"}]',
            "[0].pvName: String should have at least 1 character",
        ),
        ("[null]", "[0].pvName: Field required"),
    ],
)
def test_a_config_without_its_volume_or_path_is_refused(text: str, reason: str) -> None:
    """``pvName`` and ``mountPath`` must be given and non-empty (a deliberate difference:
    upstream decodes them as ``""`` and only the mount itself can fail)."""
    assert refused(text) == reason


@pytest.mark.parametrize("text", ["not json", "[", '[{"pvName": NaN}]', "[Infinity]", "[] []"])
def test_text_that_is_no_json_is_refused(text: str) -> None:
    """What Go's decoder calls a syntax error (``NaN`` and ``Infinity`` are not JSON)."""
    assert refused(text).startswith("invalid JSON: ")


def test_a_lone_surrogate_escape_becomes_the_replacement_character() -> None:
    """Go decodes ``"\\ud800"`` to U+FFFD, which any UTF-8 writer accepts."""
    text = '[{"pvName": "pv\\ud800", "mountPath": "/d", "attributes": {"k\\udc00": "v"}}]'
    assert parse_csi_config(text) == [
        CSIMountConfig(pv_name="pv\ufffd", mount_path="/d", attributes={"k\ufffd": "v"})
    ]
