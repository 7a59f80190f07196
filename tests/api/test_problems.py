"""Validation errors in plain words: one field path and one reason."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from pytest_kruise_agents.api.problems import (
    brief,
    expectation,
    format_path,
    reason,
    show,
    type_word,
)


class Volume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    size: int = Field(default=1, ge=1)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replicas: int = 1
    image: str = Field(default="x", min_length=3)
    mode: Literal["fast", "slow"] = "fast"
    volumes: list[Volume] = Field(default_factory=list)
    nodes: list[str] = Field(default_factory=lambda: ["a"], min_length=1)
    labels: dict[str, Volume] = Field(default_factory=dict)


def first_error(data: Any) -> ErrorDetails:
    with pytest.raises(ValidationError) as err:
        Spec.model_validate(data)
    return err.value.errors()[0]


def test_paths_read_like_kubernetes_field_paths() -> None:
    assert format_path(("spec", "volumes", 0, "name")) == "spec.volumes[0].name"
    assert format_path(("metadata", "labels", "agents.kruise.io/lock")) == (
        "metadata.labels[agents.kruise.io/lock]"
    )
    assert format_path(("labels", "a b"), quote_keys=True) == "labels['a b']"
    assert format_path(()) == ""


def test_a_missing_field_is_a_required_value() -> None:
    err = first_error({"volumes": [{}]})
    assert format_path(err["loc"]) == "volumes[0].name"
    assert reason(err) == "required value"


def test_an_unknown_field_suggests_the_known_one_meant() -> None:
    err = first_error({"replica": 2})
    assert reason(err) == "unknown field"
    assert reason(err, known=["replicas", "image"]) == "unknown field (did you mean 'replicas'?)"


def test_a_field_of_another_section_is_named_as_such() -> None:
    """``known`` spans the whole document: a field found there is misplaced, not misspelt."""
    err = first_error({"name": "x"})
    assert reason(err, known=["replicas", "name"]) == (
        "unknown field here ('name' is a field of another section)"
    )


def test_bounds_say_the_limit_and_the_value() -> None:
    assert reason(first_error({"volumes": [{"name": "v", "size": 0}]})) == "must be >= 1, got 0"


def test_too_short_strings_and_lists() -> None:
    assert reason(first_error({"volumes": [{"name": ""}]})) == "must not be empty"
    assert reason(first_error({"image": "ab"})) == "must be at least 3 characters long"
    assert reason(first_error({"nodes": []})) == "must have at least 1 item(s)"


def test_an_unsupported_value_lists_the_supported_ones() -> None:
    assert reason(first_error({"mode": "medium"})) == (
        "unsupported value 'medium': must be 'fast' or 'slow'"
    )


def test_type_errors_name_the_type_wanted_and_what_came() -> None:
    assert reason(first_error({"replicas": "many"})) == "must be an integer, got 'many'"
    err = first_error({"labels": {"a": 3}})
    assert reason(err) == "must be an object, got 3"
    assert reason(err, mapping_word="a mapping") == "must be a mapping, got 3"
    assert expectation(err) == "an object"
    assert type_word("list_type") == "a list"
    assert type_word("no_such_type") is None


def test_long_or_nested_values_are_shown_short() -> None:
    assert show({"a": 1}) == "an object"
    assert show({"a": 1}, mapping_word="a mapping") == "a mapping"
    assert show([1, 2]) == "a list"
    shown = show("x" * 100)
    assert len(shown) == 60 and shown.endswith("...")


def test_a_fractional_number_for_an_integer_says_so_plainly() -> None:
    """Lax decoding refuses ``2.5`` for an integer (``int_from_float``): "must be an integer"."""
    assert reason(first_error({"replicas": 2.5})) == "must be an integer, got 2.5"


def test_a_long_value_is_named_by_its_start_and_length() -> None:
    """A number of 400 digits stays one readable line: its first 40 characters and its length."""
    assert brief(10**399) == "1" + "0" * 39 + "... (400 characters)"
    assert brief("x" * 58) == repr("x" * 58)  # 60 characters: still whole
