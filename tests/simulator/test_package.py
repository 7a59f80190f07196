"""The simulator package's public surface."""

from __future__ import annotations

import pytest

import simulator


def test_all_names_exist() -> None:
    """Every name in ``simulator.__all__`` exists and is listed once (ruff keeps it sorted)."""
    for name in simulator.__all__:
        assert hasattr(simulator, name), name
    assert len(set(simulator.__all__)) == len(simulator.__all__)


def test_cluster_is_importable_from_the_package() -> None:
    """``from simulator import Cluster`` gives the fake cluster."""
    from simulator import Cluster
    from simulator.cluster import Cluster as Direct

    assert Cluster is Direct


def _loaded_by(code: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``code``."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    probe = f"import sys\nbefore = set(sys.modules)\n{code}\nprint(' '.join(set(sys.modules) - before))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": root, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_one_module_of_the_package_loads_without_the_cluster() -> None:
    """``from simulator.erlang import erlang_c`` costs that module (the package's names
    load when first used), not the cluster, pydantic, SimPy and YAML."""
    loaded = _loaded_by("from simulator.erlang import erlang_c")
    assert "simulator.erlang" in loaded
    heavy = ("simulator.cluster", "pydantic", "simpy", "yaml", "pytest_kruise_agents")
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_every_public_name_is_its_modules_object_and_listed_by_dir() -> None:
    import importlib

    for name in simulator.__all__:
        value = getattr(simulator, name)
        home = getattr(importlib.import_module(simulator._LAZY[name]), name)
        assert value is home, name
    assert set(simulator.__all__) <= set(dir(simulator))
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        simulator.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_every_error_the_cluster_raises_is_a_public_name() -> None:
    """A caller catches ``simulator.NoAnswerError`` (or any of ``simulator.errors``) from
    the package, as it catches ``simulator.NotFoundError``."""
    import simulator.errors

    assert set(simulator.errors.__all__) <= set(simulator.__all__)
    for name in simulator.errors.__all__:
        assert getattr(simulator, name) is getattr(simulator.errors, name)
