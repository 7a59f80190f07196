"""Request bodies: ``null`` means "not given", and a bad field is one clear 400."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_kruise_agents.e2b.interpreter.contexts import normalize_language
from pytest_kruise_agents.e2b.interpreter.errors import InterpreterError
from pytest_kruise_agents.e2b.interpreter.requests import (
    ContextRequest,
    ExecuteRequest,
    parse_context_request,
    parse_execute_request,
)


def test_the_sdk_execute_body_with_nulls() -> None:
    """The SDK sends every field, unset ones as null."""
    body = b'{"code": "1+1", "context_id": null, "language": null, "env_vars": null}'
    assert parse_execute_request(body) == ExecuteRequest("1+1", None, None, None)


def test_env_vars_are_kept() -> None:
    body = b'{"code": "", "env_vars": {"A": "1", "B": ""}}'
    assert parse_execute_request(body).env_vars == {"A": "1", "B": ""}


def test_lone_surrogates_are_read_as_u_fffd() -> None:
    """``"\\ud800"`` is valid JSON but no kernel can take it: every string gets U+FFFD instead."""
    body = b'{"code": "print(\\"\\ud800\\")", "env_vars": {"A": "\\udc00"}}'
    assert parse_execute_request(body) == ExecuteRequest(
        'print("\ufffd")', None, None, {"A": "\ufffd"}
    )
    assert parse_context_request(b'{"cwd": "/tmp/\\ud800"}') == ContextRequest(None, "/tmp/\ufffd")


def test_context_and_language_are_exclusive() -> None:
    with pytest.raises(InterpreterError) as caught:
        parse_execute_request(b'{"code": "1", "context_id": "c", "language": "python"}')
    assert (caught.value.code, caught.value.message) == (
        400,
        "Only one of context_id or language can be provided",
    )


def test_a_context_body_may_be_empty() -> None:
    """The SDK posts ``{}`` when neither cwd nor language is given; an empty body is the same."""
    assert parse_context_request(b"{}") == ContextRequest(None, None)
    assert parse_context_request(b"") == ContextRequest(None, None)
    assert parse_context_request(b'{"cwd": "/tmp", "language": "python"}') == ContextRequest(
        "python", "/tmp"
    )


@pytest.mark.parametrize("language", [None, "", "python", "Python", " python "])
def test_python_in_any_spelling_is_python(language: str | None) -> None:
    assert normalize_language(language) == "python"


@pytest.mark.parametrize("language", ["javascript", "typescript", "r", "java", "bash", "ruby"])
def test_other_languages_are_refused(language: str) -> None:
    with pytest.raises(InterpreterError, match="not supported") as caught:
        normalize_language(language)
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code": true}', "code: must be a string, got a boolean"),
        (
            b'{"code": "1", "context_id": false}',
            "context_id: must be a string or null, got a boolean",
        ),
        (b'{"code": "1", "env_vars": []}', "env_vars: must be an object or null, got an array"),
        (b'{"code": "1", "env_vars": ""}', "env_vars: must be an object or null, got a string"),
        (b'{"code": "1", "env_vars": 0}', "env_vars: must be an object or null, got a number"),
        (b'{"code": "1", "env_vars": false}', "env_vars: must be an object or null, got a boolean"),
    ],
)
def test_a_wrong_type_is_named_even_when_it_is_empty_or_false(body: bytes, message: str) -> None:
    """An empty array, string, zero or false is no "not given": only null is."""
    with pytest.raises(InterpreterError) as caught:
        parse_execute_request(body)
    assert (caught.value.code, caught.value.message) == (400, message)


@pytest.mark.parametrize("parse", [parse_execute_request, parse_context_request])
def test_a_body_that_is_not_utf8_is_malformed_json(parse: Callable[[bytes], object]) -> None:
    """Bytes that decode as no JSON text answer the malformed-JSON 400, not a 500."""
    with pytest.raises(InterpreterError, match="body: malformed JSON") as caught:
        parse(b'{"code": "\xff\xfe", "cwd": "\xff"}')
    assert caught.value.code == 400


def test_an_empty_language_beside_a_context_is_not_given() -> None:
    """Only a language that names one conflicts with a context (the SDK's own rule: ``if
    language and context``); an empty one or an empty context id means "not given"."""
    assert parse_execute_request(b'{"code": "1", "context_id": "c", "language": ""}') == (
        ExecuteRequest("1", "c", "", None)
    )
    assert parse_execute_request(b'{"code": "1", "context_id": "", "language": "python"}') == (
        ExecuteRequest("1", "", "python", None)
    )
