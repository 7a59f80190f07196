"""Error messages of scenario validation: pydantic errors and YAML positions to path and reason.

pydantic reports a location tuple with union members in it and a message
written for programmers; :func:`first_problem` picks the one problem to show,
writes its location as a field path (``workloads[0].arrivals.rate``) and its
reason in plain words; :func:`line_of` finds the YAML line of a path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic_core import ErrorDetails

from simulator.planning.errors import FieldError, PathError

__all__ = ["first_problem", "format_path", "line_of"]

_UNION_PARTS = re.compile(r"^(int|float|str|bool|none|dict|list|function-.*|.*\[.*\])$")
_ARRIVAL_KINDS = {"poisson", "constant", "bursts", "diurnal", "trace"}
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}


def _clean_loc(loc: tuple[int | str, ...]) -> list[int | str]:
    out: list[int | str] = []
    prev: int | str | None = None
    for part in loc:
        tag = prev == "arrivals" and part in _ARRIVAL_KINDS
        prev = part
        # pydantic names union members (and the arrival kind) in the location.
        if isinstance(part, str) and (tag or _UNION_PARTS.match(part)):
            continue
        out.append(part)
    return out


def format_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(error: ErrorDetails, known: Sequence[str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required value"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1]) if error["loc"] else ""
        close = difflib.get_close_matches(name, list(known), n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, key = bounds[kind]
        return f"must be {op} {ctx[key]}, got {_show(error['input'])}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx['tag']!r}: expected one of {ctx['expected_tags']}"
    if kind == "union_tag_not_found":
        return f"required value: 'kind' (one of {', '.join(sorted(_ARRIVAL_KINDS))})"
    if kind in ("literal_error", "enum"):
        return f"unsupported value {_show(error['input'])}: must be {ctx['expected']}"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {_show(error['input'])}"
    return error["msg"].replace("Input should be", "must be").replace("Value error, ", "")


def first_problem(errors: list[ErrorDetails], known: Sequence[str] = ()) -> tuple[str, str]:
    """The one problem to report, as (path, reason): a typo first, else the most specific location.

    ``known`` lists the field names a typo is compared with for a suggestion.
    """
    for e in errors:
        err = (e.get("ctx") or {}).get("error")
        if isinstance(err, PathError):
            return err.path, err.reason
        if isinstance(err, FieldError):
            return format_path([*_clean_loc(e["loc"]), *err.field]), err.reason
    typos = [e for e in errors if e["type"] == "extra_forbidden"]
    if typos:
        return format_path(_clean_loc(typos[0]["loc"])), _reason(typos[0], known)
    cleaned = [(_clean_loc(e["loc"]), e) for e in errors]
    depth = max(len(loc) for loc, _ in cleaned)
    deepest = [(loc, e) for loc, e in cleaned if len(loc) == depth]
    loc, first = deepest[0]
    same = [e for l2, e in deepest if l2 == loc]
    if len(same) > 1 and all(e["type"] in _TYPE_WORDS for e in same):
        wanted = " or ".join(dict.fromkeys(_TYPE_WORDS[e["type"]] for e in same))
        return format_path(loc), f"must be {wanted}, got {_show(first['input'])}"
    return format_path(loc), _reason(first, known)


def line_of(root: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of the node at ``path`` (or of its nearest existing parent)."""
    if root is None or not path:
        return None
    parts: list[int | str] = []
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]", path):
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(m.group(3))
    node = root
    for part in parts:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == part:
                    child = v
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1
