"""Run by ``tests/test_conftest.py`` in a pytest of its own: what a derandomized test draws.

Not a ``test_*.py`` file, so the suite does not collect it. The first test
loads a module of the project at run time when ``PROBE_LOAD`` names one, as
an earlier test in the same process would; the second writes every float it
is handed to the file ``PROBE_OUT`` names.
"""

from __future__ import annotations

import importlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st


def test_loads_a_module_as_an_earlier_test_would() -> None:
    name = os.environ.get("PROBE_LOAD")
    if name:
        importlib.import_module(name)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.0, 20.0), max_size=8))
def test_draws(values: list[float]) -> None:
    with open(os.environ["PROBE_OUT"], "a", encoding="utf-8") as out:
        out.write(f"{values!r}\n")
