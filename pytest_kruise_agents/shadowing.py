"""Whether ``import simulator`` gives this distribution's ``simulator`` package.

The fake cluster is the top-level package ``simulator``, installed beside
``pytest_kruise_agents``. A process imports one top-level module by a name: a
project's own ``simulator.py`` (or ``simulator/`` package) that comes first on
``sys.path`` hides ours, and every fixture and command would fail deep inside
with ``No module named 'simulator.cluster'``. The plugin and the command ask
:func:`shadowing_simulator` first and stop with its one clear message.

Standard library only, and nothing imported: ``simulator`` is found, not loaded
(a project's module is not run by the question).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Final

__all__ = ["NAME", "our_simulator", "shadowing_simulator"]

NAME: Final = "simulator"


def our_simulator() -> Path:
    """The directory of this distribution's ``simulator`` package (beside ``pytest_kruise_agents``)."""
    return Path(__file__).resolve().parent.parent / NAME


def _found() -> tuple[str | None, list[str]] | None:
    """Where ``simulator`` is (or would be) imported from: its origin and package directories."""
    module = sys.modules.get(NAME)
    if module is not None:
        origin = getattr(module, "__file__", None)
        paths = getattr(module, "__path__", None)
        return origin, list(paths) if paths is not None else []
    try:
        spec = importlib.util.find_spec(NAME)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None  # not installed at all: the import's own error says so
    locations = spec.submodule_search_locations
    return spec.origin, list(locations) if locations is not None else []


def shadowing_simulator() -> str | None:
    """``None`` when ``simulator`` is ours (or absent); else why not, naming what hides it.

    The message names the module found, says why it wins and what to do.
    """
    found = _found()
    if found is None:
        return None
    origin, paths = found
    ours = our_simulator()
    if origin is not None and Path(origin).resolve() == ours / "__init__.py":
        return None
    if paths:  # a package (a namespace package has no origin)
        shown, kind = f"{Path(paths[0])}{os.sep}", "package"
    else:
        shown, kind = str(origin), "module"  # simulator.py, or a compiled module
    return (
        f"the top-level name 'simulator' is taken by the {kind} {shown}, which hides "
        f"pytest-kruise-agents' own simulator package ({ours}): a Python process imports "
        "one module by a top-level name, the first found on sys.path (pytest puts a test's "
        "directory first, python -m the current one). Rename yours (for example into a "
        "package of your project: myproject/simulator.py); --import-mode=importlib does "
        "not help, as your own 'import simulator' would then find ours"
    )
