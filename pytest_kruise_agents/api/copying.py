"""Fast deep copies of models made of models, dicts, lists and immutable scalars.

``model_copy(deep=True)`` goes through :func:`copy.deepcopy`, whose memo and
dispatch dominate a simulation that copies an object on every write. The
models here hold only trees (no shared references, no cycles) of models,
dicts, lists and immutable values (str, int, float, bool, None, datetime,
timedelta, enums), so a direct recursive copy, dispatching on the exact type,
is both correct and several times faster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["deep_copy", "same_fields", "shallow_copy", "with_parts"]

T = TypeVar("T")

_set = object.__setattr__
_IMMUTABLE: set[type] = {str, int, float, bool, type(None)}
_MODELS: set[type] = set()


def _copy(value: Any) -> Any:
    t = type(value)
    if t in _IMMUTABLE:
        return value
    # Immutable items (most of them: names, labels, numbers) are kept without
    # a call each; the rest is copied by recursion.
    if t is dict:
        return {k: v if type(v) in _IMMUTABLE else _copy(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _IMMUTABLE else _copy(v) for v in value]
    if t not in _MODELS and isinstance(value, BaseModel):
        _MODELS.add(t)
    if t in _MODELS:
        # What ``BaseModel.__copy__`` does, minus its generality: these models
        # have no extra fields and no private attributes to deep-copy.
        new = object.__new__(t)
        fields = {k: v if type(v) in _IMMUTABLE else _copy(v) for k, v in value.__dict__.items()}
        _set(new, "__dict__", fields)
        _set(new, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
        _set(new, "__pydantic_extra__", value.__pydantic_extra__)
        _set(new, "__pydantic_private__", value.__pydantic_private__)
        return new
    if t is tuple:
        return tuple(_copy(v) for v in value)
    # A dict or list of another type (an OrderedDict a caller's JSON hook made) is
    # copied as the plain container the models hold, never shared.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset | bytearray):
        return [_copy(v) for v in value] if isinstance(value, list) else copy.deepcopy(value)
    # datetimes, timedeltas, enums, Decimals: immutable; remember the type.
    _IMMUTABLE.add(t)
    return value


def deep_copy(value: T) -> T:
    """A deep copy of a model tree (or a dict/list of them), sharing only immutable leaves."""
    result: T = _copy(value)
    return result


def shallow_copy(value: T, changes: Mapping[str, Any] | None = None) -> T:
    """A new model sharing the field values of ``value`` (``model_copy()`` without its overhead).

    ``changes`` (field name -> value) replaces fields in the copy and marks
    them set, as ``model_copy(update=...)`` does; its names are not checked.
    """
    t = type(value)
    new = object.__new__(t)
    fields_set: set[str] = value.__pydantic_fields_set__  # type: ignore[attr-defined]
    if changes:
        _set(new, "__dict__", {**value.__dict__, **changes})
        _set(new, "__pydantic_fields_set__", {*fields_set, *changes})
    else:
        _set(new, "__dict__", dict(value.__dict__))
        _set(new, "__pydantic_fields_set__", set(fields_set))
    _set(new, "__pydantic_extra__", value.__pydantic_extra__)  # type: ignore[attr-defined]
    _set(new, "__pydantic_private__", value.__pydantic_private__)  # type: ignore[attr-defined]
    return new


def with_parts(value: T, **parts: Any) -> T:
    """A shallow copy of the model ``value`` with the fields ``parts`` replaced.

    Unlike ``model_copy(update=...)``, which marks its fields explicitly set,
    the copy keeps ``value``'s set fields: a part stands in for the part it
    replaces (typically a copy of it about to be changed).
    """
    new = shallow_copy(value)
    new.__dict__.update(parts)
    return new


def same_fields(a: BaseModel, b: BaseModel) -> bool:
    """``a == b`` for models without private attributes or extra fields (every KubeModel).

    Such a model's ``__dict__`` holds its fields and nothing else, so one
    comparison of the two dicts is pydantic's ``__eq__`` (its checks of the
    private attributes and extras, about eight calls, more when the models
    differ, cost more than the comparison on the simulator's hottest paths).
    """
    return type(a) is type(b) and a.__dict__ == b.__dict__
