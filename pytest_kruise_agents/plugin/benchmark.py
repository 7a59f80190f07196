"""``delivery_benchmark``: run a delivery workload, write its CSV and JSON, feed the terminal summary.

Without ``url`` the workload runs on the test's own fake cluster (the
``kruise_backend`` fixture, requested only then) and measures virtual
latencies; with ``url`` it runs against that E2B server with the real SDK and
measures wall-clock time. Either way the per-claim CSV and the JSON summary
go to the report directory as ``<test>-<run>.csv|json``, with names unique
in the session (see :func:`file_stem`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from pytest_kruise_agents.delivery import (
    DeliveryResult,
    Workload,
    run_on_backend,
    run_on_server,
)
from pytest_kruise_agents.plugin.reporting import BENCHMARK

if TYPE_CHECKING:
    from pytest_kruise_agents.plugin.server import FactoryMade

__all__ = ["STEMS_KEY", "DeliveryBenchmark", "file_stem"]

STEMS_KEY: pytest.StashKey[set[str]] = pytest.StashKey()
"""On the config: every file stem written in this session (this process)."""

MAX_SLUG: Final = 120
"""Longest readable part of a file stem."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:MAX_SLUG] or "run"


def file_stem(nodeid: str) -> str:
    """The file-name part for a test: its node id made safe, told apart from every other node id.

    ``tests/test_a.py::test_b`` gives ``tests_test_a.py_test_b``. When more was
    lost than the separators (parameters like ``[a/b]`` and ``[a:b]``, which
    both read ``a_b``, or a name cut at 120 characters) a short hash of the
    whole node id follows, so two tests never share a name, not even across
    xdist workers writing to one report directory.
    """
    path, sep, rest = nodeid.partition("::")
    plain = path.replace("/", "_") + ("_" + rest.replace("::", "_") if sep else "")
    slug = _slug(nodeid)
    if slug == plain:
        return slug
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return f"{slug[: MAX_SLUG - 9]}-{digest}"


class DeliveryBenchmark:
    """The ``delivery_benchmark`` fixture's value: call it with a workload."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        report_dir: Callable[[], Path],
        made: FactoryMade | None = None,
    ) -> None:
        self._request = request
        self._report_dir = report_dir
        self._made = made
        # Session-wide: a stem taken by another test's run is not reused.
        self._stems = request.config.stash.setdefault(STEMS_KEY, set())
        self.results: list[DeliveryResult] = []
        """Every result of this test, in run order."""

    def __call__(
        self,
        workload: Workload,
        *,
        url: str | None = None,
        api_key: str | None = None,
        sandbox_url: str | None = None,
        name: str | None = None,
    ) -> DeliveryResult:
        """Run ``workload`` and return its :class:`~pytest_kruise_agents.delivery.DeliveryResult`.

        :param url: an E2B server to measure instead of the test's fake cluster.
        :param api_key: the key for ``url`` (default: ``E2B_API_KEY``).
        :param sandbox_url: one URL for all sandbox traffic, e.g. a proxy such as our fake
            server's (default: where the SDK sends it; see ``run_on_server``).
        :param name: the run's label in file names and the summary (default: the workload's).
        """
        __tracebackhide__ = True
        if url is None:
            backend = self._request.getfixturevalue("kruise_backend")
            result = run_on_backend(backend, workload, name=name)
            if self._made is not None:
                # The SandboxClaim path's sandboxes stay claimed: the run's, not the test's leftovers.
                self._made.sandbox_ids.update(
                    d.sandbox_id for d in result.deliveries if d.sandbox_id
                )
        else:
            key = api_key or os.environ.get("E2B_API_KEY")
            if not key:
                raise ValueError("api_key: required with url (or set E2B_API_KEY)")
            result = run_on_server(
                workload, url=url, api_key=key, sandbox_url=sandbox_url, name=name
            )
        result = self._write(result)
        self._request.node.user_properties.append((BENCHMARK, result.summary()))
        self.results.append(result)
        return result

    def _write(self, result: DeliveryResult) -> DeliveryResult:
        base = file_stem(self._request.node.nodeid)
        stem = f"{base}-{_slug(result.name)}"
        n = 2
        while stem in self._stems:
            stem = f"{base}-{_slug(result.name)}-{n}"
            n += 1
        self._stems.add(stem)
        directory = self._report_dir()
        csv_path = result.write_csv(directory / f"{stem}.csv")
        result = replace(result, files=(csv_path, directory / f"{stem}.json"))
        result.write_json(directory / f"{stem}.json")
        return result
