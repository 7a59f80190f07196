"""Specification of the claiming package's public surface and purity."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import pytest_kruise_agents.claiming as claiming

MODULES = sorted(m.name for m in pkgutil.iter_modules(claiming.__path__))
FORBIDDEN = {"random", "time", "simpy", "socket", "httpx", "simulator"}


def test_expected_modules() -> None:
    """The package has one module per rule concept."""
    assert MODULES == [
        "csi",
        "errors",
        "extensions",
        "listing",
        "modification",
        "ownership",
        "recycle",
        "retry",
        "rng",
        "sandboxclaim",
        "sandboxset",
        "selection",
        "state",
        "timeouts",
        "view",
    ]


@pytest.mark.parametrize("name", MODULES)
def test_module_has_docstring_and_all(name: str) -> None:
    """Every module says what it does and lists its public names, all of which exist."""
    module = importlib.import_module(f"pytest_kruise_agents.claiming.{name}")
    assert module.__doc__ and module.__doc__.strip()
    assert module.__all__
    for public in module.__all__:
        assert hasattr(module, public), public


def test_package_reexports_every_public_name() -> None:
    """The package re-exports exactly the union of its modules' public names."""
    union: set[str] = set()
    for name in MODULES:
        union |= set(importlib.import_module(f"pytest_kruise_agents.claiming.{name}").__all__)
    assert set(claiming.__all__) == union
    assert len(claiming.__all__) == len(union)
    for public in claiming.__all__:
        assert getattr(claiming, public) is not None


@pytest.mark.parametrize("name", MODULES)
def test_no_clock_io_or_randomness_imports(name: str) -> None:
    """No rule module imports a clock, a random generator, SimPy or I/O."""
    source = Path(claiming.__path__[0], f"{name}.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        assert not roots & FORBIDDEN, (name, roots)
