"""What every test process does first: load the whole project if Hypothesis will run.

Hypothesis draws some values from a pool of constants it reads from the
source of every *local* module loaded in the process (numbers and strings in
``simulator/`` and ``pytest_kruise_agents/``; not tests, not site-packages),
and the pool grows as modules load. A ``derandomize=True`` test then drew
different examples depending on which tests ran before it in the same
process (``tests/simulator/test_errors.py`` loads ``simulator.planning``,
whose ``1e-05`` took the place of a ``1e-06``): an order CI's xdist
``worksteal`` varies, so a failure came and went with the order and did not
come back when the test ran alone. Loading every module of the project
before the first test gives each process, whatever tests it was handed and
in whatever order, the same pool.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest
from hypothesis import is_hypothesis_test

import pytest_kruise_agents
import simulator

__all__ = ["load_project_modules", "project_modules"]

PACKAGES = (pytest_kruise_agents, simulator)


def project_modules() -> list[str]:
    """The names of the project's modules Hypothesis reads constants from, sorted.

    All but ``__main__`` (a command, run on import) and the conformance
    suite's ``test_*`` modules (Hypothesis skips test files). Listing them
    imports the packages (their ``__init__``), not the modules.
    """
    return sorted(
        info.name
        for package in PACKAGES
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        if not info.name.rpartition(".")[2].startswith(("__main__", "test_"))
    )


def load_project_modules() -> None:
    """Import every module of :func:`project_modules`, in that order."""
    for name in project_modules():
        importlib.import_module(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Load the project before the first test, when a Hypothesis test is among them."""
    if any(is_hypothesis_test(getattr(item, "obj", None)) for item in items):
        load_project_modules()


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    """``HTTP_PROXY`` and ``http_proxy`` set to a loopback port nothing listens on, ``NO_PROXY``
    and ``no_proxy`` unset: a client that sends a request to the proxy gets a connection
    refused. For this process and the processes it starts (the SDK reads them once per
    process, when it first connects: a test must look in a fresh process)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    proxy = f"http://127.0.0.1:{port}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return proxy


@pytest.fixture
def python_sigint_handler() -> Iterator[None]:
    """SIGINT has Python's own handler, as in a script, a notebook's cell or plain pytest
    (an xdist worker may have another): a Ctrl-C is a ``KeyboardInterrupt``."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
