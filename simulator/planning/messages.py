"""Error messages of scenario validation: pydantic errors and YAML positions to path and reason.

pydantic reports a location tuple with union members in it and a message
written for programmers; :func:`first_problem` picks the one problem to show,
writes its location as a field path (``workloads[0].arrivals.rate``) and its
reason in plain words; :func:`line_of` finds the YAML line of a path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml
from pydantic_core import ErrorDetails

from pytest_kruise_agents.api.problems import format_path as api_format_path
from pytest_kruise_agents.api.problems import kind_and_value, reason, type_word
from simulator.planning.errors import FieldError, PathError

__all__ = ["first_problem", "format_path", "line_of"]

_UNION_PARTS = re.compile(r"^(int|float|str|bool|none|dict|list|function-.*|.*\[.*\])$")
_ARRIVAL_KINDS = {"poisson", "constant", "bursts", "diurnal", "trace"}
_MAPPING = "a mapping"
"""Scenario files are YAML: what Kubernetes calls an object is a mapping there."""


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
    """A location as a scenario field path, map keys quoted: ``pools[0].labels['a b']``."""
    return api_format_path(loc, quote_keys=True)


def _reason(error: ErrorDetails, known: Sequence[str]) -> str:
    if error["type"] == "union_tag_not_found":
        return f"required value: 'kind' (one of {', '.join(sorted(_ARRIVAL_KINDS))})"
    word = type_word(error["type"], mapping_word=_MAPPING)
    if word is not None:
        return f"must be {word}, got {kind_and_value(error['input'], mapping_word=_MAPPING)}"
    return reason(error, mapping_word=_MAPPING, known=known)


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
    words = [type_word(e["type"], mapping_word=_MAPPING) for e in same]
    if len(same) > 1 and all(words):
        wanted = " or ".join(dict.fromkeys(w for w in words if w))
        return format_path(
            loc
        ), f"must be {wanted}, got {kind_and_value(first['input'], mapping_word=_MAPPING)}"
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
