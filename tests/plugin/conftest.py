"""Plugin tests drive inner pytest runs with ``pytester``; this prepares their directory.

The heavy modules are imported here, before any inner run: pytester restores
``sys.modules`` after each in-process run, and keeping them loaded spares
every inner run the import (a second or so each). NumPy must be among them: an
inner run that loads it (the delivery benchmark's figures) would have it taken out of
``sys.modules`` again, and its C extension cannot be loaded twice in a process, so any
later test of the same worker importing NumPy (the demo's capacity plan) would fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import e2b  # noqa: F401
import numpy  # noqa: F401
import pytest

import pytest_kruise_agents.delivery
import pytest_kruise_agents.e2b.app
import pytest_kruise_agents.plugin.benchmark
import pytest_kruise_agents.plugin.factories
import pytest_kruise_agents.plugin.faults
import pytest_kruise_agents.plugin.recipe
import pytest_kruise_agents.plugin.server  # noqa: F401
from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.backends import SimBackend

INNER_INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory with a strict ini, and no ``PYTEST_KRUISE_*`` or ``E2B_*`` leaking in."""
    import os

    for name in list(os.environ):
        if name.startswith(("PYTEST_KRUISE_", "E2B_")):
            monkeypatch.delenv(name)
    pytester.makeini(INNER_INI)
    return pytester


@pytest.fixture
def sim_backend() -> Iterator[SimBackend]:
    """A default backend (pools ``base`` and ``code-interpreter-v1``, 3 ready each), closed after."""
    backend = SimBackend.default(seed=3, replicas=3)
    yield backend
    backend.close()


@pytest.fixture
def model_copies(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every object the cluster copies for a caller from now on (``Cluster.get``/``list``/``apply``)."""
    made: list[Any] = []

    def counting(obj: Any) -> Any:
        made.append(obj)
        return deep_copy(obj)

    monkeypatch.setattr("simulator.cluster.deep_copy", counting)
    return made


@pytest.fixture
def stop_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[SimBackend], None]:
    """Stop a realtime backend's clock driver from moving the model (it stays alive and
    "caught up"): the model's clock stands still from then on, as a dead driver's would."""

    def stop(backend: SimBackend) -> None:
        def stands_still(target: float) -> bool:
            return True

        monkeypatch.setattr(backend, "_run_slice", stands_still)
        time.sleep(0.1)  # a few of its ticks: one already running ends

    return stop
