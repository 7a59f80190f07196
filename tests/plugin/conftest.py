"""Plugin tests drive inner pytest runs with ``pytester``; this prepares their directory.

The heavy modules are imported here, before any inner run: pytester restores
``sys.modules`` after each in-process run, and keeping them loaded spares
every inner run the import (a second or so each).
"""

from __future__ import annotations

import e2b  # noqa: F401
import pytest

import pytest_kruise_agents.delivery
import pytest_kruise_agents.e2b.app
import pytest_kruise_agents.plugin.benchmark
import pytest_kruise_agents.plugin.factories
import pytest_kruise_agents.plugin.faults
import pytest_kruise_agents.plugin.recipe
import pytest_kruise_agents.plugin.server  # noqa: F401

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
