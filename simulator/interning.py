"""Sharing of equal immutable parts between stored objects.

Objects in the simulated store are never changed in place, so two sandboxes
whose ``Ready`` conditions are equal may hold the same :class:`Condition`.
A pool of 100,000 sandboxes carries about half a million conditions with a
few hundred distinct values; sharing them is what keeps such a pool within a
reasonable memory budget.

Every pydantic model also carries the set of its explicitly set field names
(``__pydantic_fields_set__``, 200-700 bytes each); a pooled sandbox with its
pod is about nine models, so those sets were a third of its memory. A stored
object is never changed, so its models can share one set per distinct value
(:class:`FieldsSetInterner`); a copy made to write gets a set of its own
(:mod:`pytest_kruise_agents.api.copying` copies it).
"""

from __future__ import annotations

from typing import Any, Final, get_args

from pydantic import BaseModel

from pytest_kruise_agents.api.meta import Condition

__all__ = ["ConditionInterner", "FieldsSetInterner"]

_MAX_ENTRIES: Final = 8192
"""The table is cleared when it grows past this: interning only saves memory."""


class ConditionInterner:
    """Give back an equal, already seen condition instead of a new one (a callable)."""

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table: dict[tuple[Any, ...], Condition] = {}

    def __call__(self, cond: Condition) -> Condition:
        """``cond``, or an equal condition seen before."""
        key = (
            cond.type,
            cond.status,
            cond.reason,
            cond.message,
            cond.last_transition_time,
            cond.observed_generation,
        )
        seen = self._table.get(key)
        if seen is not None:
            return seen
        if len(self._table) >= _MAX_ENTRIES:
            self._table.clear()
        self._table[key] = cond
        return cond

    def __len__(self) -> int:
        return len(self._table)


class FieldsSetInterner:
    """Make the models of an object about to be stored share equal fields-sets (a callable).

    Call it on an object as the store takes it, after its last change. It
    walks the object's models (the fields whose type mentions a model) and
    stops at any model whose set is already a shared one: such a model was
    stored before, and so was everything under it.
    """

    __slots__ = ("_ids", "_table", "_types")

    def __init__(self) -> None:
        self._table: dict[frozenset[str], set[str]] = {}
        self._ids: set[int] = set()
        self._types: dict[type, list[Any]] = {}
        """Per model type: the names of its fields that may hold models, and the
        shared set it had last (most often it has it again)."""

    def __call__(self, obj: BaseModel) -> None:
        """Replace the fields-sets of ``obj``'s not yet shared models by shared equal ones."""
        ids = self._ids
        if id(obj.__pydantic_fields_set__) in ids:
            return
        types = self._types
        # Only models whose set is not shared yet are queued: a write shares
        # most of its parts with the object it replaces (checked once here,
        # every call on every write of the simulator). The queue is read as it
        # grows (a list iterates over what is appended meanwhile): no pop per model.
        todo: list[Any] = [obj]
        for model in todo:
            t = type(model)
            seen = types.get(t)
            if seen is None:
                seen = types[t] = [_model_fields(t), None]
            nested, shared = seen
            fields_set: set[str] = model.__pydantic_fields_set__
            if shared is None or shared != fields_set:
                key = frozenset(fields_set)
                shared = self._table.get(key)
                if shared is None:
                    # A copy: the model's own set may be shared with a model not stored.
                    shared = self._table[key] = set(key)
                    ids.add(id(shared))
                seen[1] = shared
            object.__setattr__(model, "__pydantic_fields_set__", shared)
            values = model.__dict__
            for name in nested:
                value = values[name]
                if value is None:
                    continue
                if type(value) is list:
                    children: Any = value
                elif type(value) is dict:
                    children = value.values()
                else:
                    children = (value,)
                for child in children:
                    # A type met before is a model type: isinstance only for new ones.
                    if (type(child) in types or isinstance(child, BaseModel)) and id(
                        child.__pydantic_fields_set__
                    ) not in ids:
                        todo.append(child)

    def __len__(self) -> int:
        return len(self._table)


def _model_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of ``model``'s fields whose declared type mentions a model."""
    return tuple(
        name for name, info in model.model_fields.items() if _mentions_model(info.annotation)
    )


def _mentions_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in get_args(annotation))
