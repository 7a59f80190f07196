"""The catalogue of checks: ids, levels, dependency order, and one test per check."""

from __future__ import annotations

import importlib
import inspect

import pytest

from pytest_kruise_agents.conformance.plugin import MARKER
from pytest_kruise_agents.conformance.registry import (
    CHECKS,
    LEVELS,
    by_id,
    dependents,
    parse_levels,
    select,
)


def _implemented() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for level in LEVELS:
        module = importlib.import_module(f"pytest_kruise_agents.conformance.test_{level}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            for mark in getattr(fn, "pytestmark", []):
                if mark.name == MARKER:
                    found.setdefault(mark.args[0], []).append(f"{level}:{name}")
    return found


def test_every_check_is_implemented_by_exactly_one_test_in_its_level_module() -> None:
    implemented = _implemented()
    assert set(implemented) == {c.id for c in CHECKS}
    for cid, where in implemented.items():
        assert len(where) == 1, (cid, where)
        assert where[0].startswith(by_id(cid).level + ":"), (cid, where)


def test_checks_are_described_and_depend_only_on_earlier_checks() -> None:
    seen: set[str] = set()
    for check in CHECKS:
        assert check.id.startswith(check.level + "."), check.id
        assert check.statement.endswith("."), check.id
        assert check.section, check.id
        assert set(check.depends) <= seen, check.id
        seen.add(check.id)
    assert len(CHECKS) >= 50


def test_dependents_are_transitive() -> None:
    assert dependents("code.state") == {"code.contexts"}
    assert {"envd.health", "envd.commands.signal", "code.contexts"} <= dependents("core.create")
    assert "core.auth" not in dependents("core.create")
    assert dependents("kruise.no-stock") == set()


def test_levels_parse_in_catalogue_order_and_unknown_ones_are_refused() -> None:
    assert parse_levels("envd, core") == ("core", "envd")
    # Every level, backwards and one twice: a set's order would match by chance 1 time in 120.
    assert parse_levels("kruise,code,envd,lifecycle,core,code") == LEVELS
    assert parse_levels(None) == LEVELS
    with pytest.raises(ValueError, match="unknown level 'cores'"):
        parse_levels("core,cores")
    with pytest.raises(ValueError, match="unknown level 'aa'"):  # the first in sorted order
        parse_levels("zz,core,aa")
    assert {c.level for c in select(("kruise",))} == {"kruise"}


@pytest.mark.parametrize("text", ["", ",", " ", " , ", []])
def test_a_value_naming_no_level_is_refused_not_read_as_every_level(
    text: str | list[str],
) -> None:
    with pytest.raises(ValueError, match=r"^levels: must not be empty$"):
        parse_levels(text)


def test_an_unknown_check_id_is_named() -> None:
    with pytest.raises(KeyError, match=r"core\.nope"):
        by_id("core.nope")
