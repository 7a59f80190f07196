"""Error messages of scenario validation: pydantic errors and YAML positions to path and reason.

pydantic reports a location tuple with union members in it and a message
written for programmers; :func:`first_problem` picks the one problem to show,
writes its location as a field path (``workloads[0].arrivals.rate``) and its
reason in plain words; :func:`line_of` finds the YAML line of a path.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from pytest_kruise_agents.api.problems import format_path as api_format_path
from pytest_kruise_agents.api.problems import (
    kind_and_value,
    reason,
    type_word,
    unknown_field_reason,
)
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


def _members(annotation: Any) -> list[Any]:
    """The types an annotation allows: ``Annotated`` unwrapped, a union split."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tag_of(model: type[BaseModel]) -> object:
    """The ``kind`` a member of a tagged union answers to (``poisson``), if it has one."""
    kind = model.model_fields.get("kind")
    if kind is None or typing.get_origin(kind.annotation) is not Literal:
        return None
    return typing.get_args(kind.annotation)[0]


def section_fields(model: type[BaseModel], loc: Sequence[int | str]) -> list[str] | None:
    """The field names of the section at pydantic location ``loc`` under ``model``.

    ``None`` when ``loc`` leads to no model (a mapping of free keys, say):
    a typo's suggestion is then taken from every field name.
    """
    current: list[Any] = [model]
    for part in loc:
        found: list[Any] = []
        for annotation in current:
            for member in _members(annotation):
                origin = typing.get_origin(member)
                if _is_model(member):
                    fields = member.model_fields
                    if isinstance(part, str) and part in fields:
                        found.append(fields[part].annotation)
                    elif _tag_of(member) == part:
                        found.append(member)  # the arrival kind pydantic puts in the location
                elif origin is list and isinstance(part, int):
                    found.append(typing.get_args(member)[0])
                elif origin is dict and isinstance(part, str):
                    found.append(typing.get_args(member)[1])
        if not found and isinstance(part, str) and _UNION_PARTS.match(part):
            continue  # a union member's label (``list[NodeGroup]``): the same section
        if not found:
            return None
        current = found
    models = [m for a in current for m in _members(a) if _is_model(m)]
    if not models:
        return None
    return sorted({name for m in models for name in m.model_fields})


def _reason(error: ErrorDetails, known: Sequence[str], model: type[BaseModel] | None = None) -> str:
    if error["type"] == "extra_forbidden" and model is not None:
        name = str(error["loc"][-1]) if error["loc"] else ""
        here = section_fields(model, error["loc"][:-1])
        if here is not None and name not in known:
            # Suggest a field of this section: one of another section would be
            # refused here too ("did you mean 'replicas'?" in a workload).
            return unknown_field_reason(name, here)
    if error["type"] == "union_tag_not_found":
        return f"required value: 'kind' (one of {', '.join(sorted(_ARRIVAL_KINDS))})"
    word = type_word(error["type"], mapping_word=_MAPPING)
    if word is not None:
        return f"must be {word}, got {kind_and_value(error['input'], mapping_word=_MAPPING)}"
    return reason(error, mapping_word=_MAPPING, known=known)


def first_problem(
    errors: list[ErrorDetails],
    known: Sequence[str] = (),
    model: type[BaseModel] | None = None,
) -> tuple[str, str]:
    """The one problem to report, as (path, reason): a typo first, else the most specific location.

    ``known`` lists every field name: a typo of one of another section is said
    to be there. ``model``, the model validated, gives the fields of the typo's
    own section, among which its suggestion is found (among ``known`` without it).
    """
    for e in errors:
        err = (e.get("ctx") or {}).get("error")
        if isinstance(err, PathError):
            return err.path, err.reason
        if isinstance(err, FieldError):
            return format_path([*_clean_loc(e["loc"]), *err.field]), err.reason
    typos = [e for e in errors if e["type"] == "extra_forbidden"]
    if typos:
        return format_path(_clean_loc(typos[0]["loc"])), _reason(typos[0], known, model)
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
