"""Read-only dicts: read as a dict everywhere, edited nowhere."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator.readonly import ReadOnlyDict

EDITS: dict[str, Callable[[Any], object]] = {
    "setitem": lambda t: t.__setitem__("a", 9),
    "delitem": lambda t: t.__delitem__("a"),
    "update": lambda t: t.update(a=9),
    "pop": lambda t: t.pop("a"),
    "popitem": lambda t: t.popitem(),
    "clear": lambda t: t.clear(),
    "setdefault": lambda t: t.setdefault("c", 3),
    "ior": lambda t: t.__ior__({"a": 9}),
}


def table() -> ReadOnlyDict[str, int]:
    return ReadOnlyDict({"a": 1, "b": 2}, field="things", reason="read-only: edit a copy")


@pytest.mark.parametrize("edit", list(EDITS.values()), ids=list(EDITS))
def test_every_edit_raises_invalid_error_naming_the_field(edit: Callable[[Any], object]) -> None:
    """Each way to edit a dict in place raises InvalidError with the field and reason given,
    and leaves the table as it was."""
    things = table()
    with pytest.raises(InvalidError) as err:
        edit(things)
    assert (err.value.field, err.value.reason) == ("things", "read-only: edit a copy")
    assert things == {"a": 1, "b": 2}


def test_it_reads_dumps_and_copies_as_a_dict() -> None:
    """It is a dict to every reader: equal to one, JSON-dumped as one; ``dict(...)``,
    ``.copy()`` and ``|`` give editable plain dicts; copy, deepcopy and pickle give a
    read-only table again, with the same field."""
    things = table()
    assert isinstance(things, dict) and things == {"a": 1, "b": 2} and things.field == "things"
    assert json.dumps(things) == '{"a": 1, "b": 2}'
    for mine in (dict(things), things.copy(), things | {"c": 3}):
        assert type(mine) is dict
        mine["a"] = 9
    assert things["a"] == 1
    for again in (copy.copy(things), copy.deepcopy(things), pickle.loads(pickle.dumps(things))):
        assert type(again) is ReadOnlyDict and again == things and again.field == "things"
        with pytest.raises(InvalidError):
            again["a"] = 9
