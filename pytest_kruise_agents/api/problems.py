"""Plain words for pydantic validation errors: a field path and a reason.

pydantic reports each problem as a location tuple, an error type and a message
written for programmers (``Input should be a valid integer, unable to parse
string as an integer``). Bad input is answered here with one field path
(``spec.volumes[0].name``) and one reason (``must be an integer, got 'x'``);
the manifest loader and the scenario loader both word their errors this way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic_core import ErrorDetails

__all__ = [
    "brief",
    "expectation",
    "format_path",
    "kind_and_value",
    "reason",
    "show",
    "type_word",
    "unknown_field_reason",
]

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_TYPE_WORDS: Final = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "a list",
    "datetime_type": "an RFC 3339 time",
    "datetime_parsing": "an RFC 3339 time",
    "none_required": "null",
}
_MAPPING_TYPES: Final = frozenset({"dict_type", "model_type", "model_attributes_type"})

_BOUNDS: Final = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def format_path(loc: Sequence[int | str], *, quote_keys: bool = False) -> str:
    """``('spec', 'volumes', 0, 'name')`` → ``spec.volumes[0].name``.

    Map keys that are not identifiers (label keys such as
    ``agents.kruise.io/lock``) are written in brackets, as Kubernetes does,
    and quoted (``['a b']``) with ``quote_keys``.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]" if quote_keys else f"[{part}]"
    return path


def show(value: Any, *, mapping_word: str = "an object") -> str:
    """A short rendering of an offending value for an error message."""
    if isinstance(value, Mapping):
        return mapping_word
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)``, or its start and length when longer than ``limit`` characters.

    A number of 400 digits, or a mapping holding one, is named rather than
    printed in full: an error message stays one readable line.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text)} characters)"


def kind_and_value(value: Any, *, mapping_word: str = "an object") -> str:
    """An offending value with its kind, as a YAML file wrote it: ``the boolean true``,
    ``the text '3'``, ``null``, ``2.5``.

    For strict models, which never convert a value to another kind: a type
    error says which kind it got (``true`` is no number, ``'3'`` no integer).
    """
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the text {show(value)}"
    return show(value, mapping_word=mapping_word)


def unknown_field_reason(name: str, known: Sequence[str]) -> str:
    """``"unknown field"``, with the field of ``known`` that ``name`` misspells if one is close
    (``"unknown field (did you mean 'replicas'?)"``)."""
    close = difflib.get_close_matches(name, list(known), n=1) if known else []
    return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")


def type_word(kind: str, *, mapping_word: str = "an object") -> str | None:
    """What a type error of pydantic type ``kind`` wanted (``"an integer"``), or ``None``."""
    if kind in _MAPPING_TYPES:
        return mapping_word
    return _TYPE_WORDS.get(kind)


def expectation(error: ErrorDetails, *, mapping_word: str = "an object") -> str:
    """What ``error``'s location wanted, for joining the members of a union with "or"."""
    word = type_word(error["type"], mapping_word=mapping_word)
    return word if word is not None else error["msg"].removeprefix("Input should be ")


def reason(
    error: ErrorDetails, *, mapping_word: str = "an object", known: Sequence[str] = ()
) -> str:
    """The reason ``error`` gives, in plain words (``"must be >= 1, got 0"``).

    An unknown field's name is compared with ``known`` (the valid field
    names) to suggest the one meant.
    """
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required value"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1]) if error["loc"] else ""
        if name in known:
            # A real field, of another part of the document: "did you mean" itself helps no one.
            return f"unknown field here ({name!r} is a field of another section)"
        return unknown_field_reason(name, known)
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"must be {op} {ctx[key]}, got {show(error['input'], mapping_word=mapping_word)}"
    if kind == "string_too_short":
        if ctx.get("min_length", 1) == 1:
            return "must not be empty"
        return f"must be at least {ctx['min_length']} characters long"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx['tag']!r}: expected one of {ctx['expected_tags']}"
    if kind in ("literal_error", "enum"):
        value = show(error["input"], mapping_word=mapping_word)
        return f"unsupported value {value}: must be {ctx['expected']}"
    word = type_word(kind, mapping_word=mapping_word)
    if word is not None:
        return f"must be {word}, got {show(error['input'], mapping_word=mapping_word)}"
    return error["msg"].replace("Input should be", "must be").replace("Value error, ", "")
