"""Read-only dicts: the mapping fields of immutable values, whose edits raise :class:`InvalidError`.

A frozen pydantic model refuses ``model.field = x`` but not ``model.field[key] = x``:
a ``dict`` field stays editable in place. Immutable values are shared (one
:class:`~simulator.profile.Profile` by every cluster built from it, and by
every test of a plugin run; a :class:`~simulator.nodes.NodeSpec` by the
clusters built from it), so an edit in place of one would reach every run that
holds it. A :class:`ReadOnlyDict` is what such a field holds instead: a
``dict`` to everything that reads it (dumped, compared, copied and pickled as
one), whose edits raise :class:`InvalidError` naming the field and what to do
instead. ``dict(value)`` (or ``value.copy()``) is an editable copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, TypeVar

from pytest_kruise_agents.api.errors import InvalidError

__all__ = ["ReadOnlyDict"]

K = TypeVar("K")
V = TypeVar("V")


class ReadOnlyDict(dict[K, V]):
    """A ``dict`` whose edits raise :class:`InvalidError` naming ``field``, with ``reason``."""

    # No instance dict: two strings per table, and nothing else can be set on one.
    __slots__ = ("_field", "_reason")

    def __init__(
        self,
        items: Mapping[K, V] | Iterable[tuple[K, V]] = (),
        /,
        *,
        field: str,
        reason: str,
    ) -> None:
        # dict's own __init__ fills the table without calling __setitem__.
        super().__init__(items)
        self._field = field
        self._reason = reason

    @property
    def field(self) -> str:
        """The field the error of an edit names."""
        return self._field

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle would rebuild it item by item, through __setitem__.
        return _rebuild, (type(self), dict(self), self._field, self._reason)

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InvalidError(self._field, self._reason)

    def __setitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def __delitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def __ior__(self, *args: Any, **kwargs: Any) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def popitem(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def clear(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def setdefault(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()


def _rebuild(
    cls: type[ReadOnlyDict[Any, Any]], items: dict[Any, Any], field: str, reason: str
) -> ReadOnlyDict[Any, Any]:
    """``cls`` holding ``items``, built as :class:`ReadOnlyDict` builds it (for copy and pickle)."""
    table = dict.__new__(cls)
    dict.update(table, items)
    table._field = field
    table._reason = reason
    return table
