"""``delivery_benchmark``: run a delivery workload, write its CSV and JSON, feed the terminal summary.

Without ``url`` the workload runs on the test's own fake cluster (the
``kruise_backend`` fixture, requested only then) and measures virtual
latencies; with ``url`` it runs against that E2B server with the real SDK and
measures wall-clock time. Either way the per-claim CSV and the JSON summary
go to the report directory as ``<test>-<run>.csv|json`` (``<test>-<run>-<worker>``
under xdist, e.g. ``-gw0``), with names unique in the session (see :func:`file_stem`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Container, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from pytest_kruise_agents.delivery import (
    DeliveryResult,
    Workload,
    run_on_backend,
    run_on_server,
)
from pytest_kruise_agents.delivery.live import check_url
from pytest_kruise_agents.delivery.result import check_name
from pytest_kruise_agents.delivery.sim import check_on_cluster
from pytest_kruise_agents.delivery.workload import check_workload
from pytest_kruise_agents.plugin.reporting import BENCHMARK, record

if TYPE_CHECKING:
    from pytest_kruise_agents.plugin.server import FactoryMade

__all__ = ["CLASHES_KEY", "STEMS_KEY", "DeliveryBenchmark", "clashing_stems", "file_stem"]

STEMS_KEY: pytest.StashKey[set[str]] = pytest.StashKey()
"""On the config: every file stem written in this session (this process)."""

CLASHES_KEY: pytest.StashKey[frozenset[str]] = pytest.StashKey()
"""On the config: the readable stems two of the session's tests share (:func:`clashing_stems`)."""

MAX_SLUG: Final = 120
"""Longest readable part of a file stem."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:MAX_SLUG] or "run"


def _plain(nodeid: str) -> str:
    """The node id with its separators (``/``, ``::``) made ``_``: ``tests_test_a.py_test_b``."""
    path, sep, rest = nodeid.partition("::")
    return path.replace("/", "_") + ("_" + rest.replace("::", "_") if sep else "")


def clashing_stems(nodeids: Iterable[str]) -> frozenset[str]:
    """The readable stems that more than one of ``nodeids`` reads as (see :func:`file_stem`)."""
    counts = Counter(_plain(nodeid) for nodeid in set(nodeids))
    return frozenset(plain for plain, n in counts.items() if n > 1)


def file_stem(nodeid: str, clashes: Container[str] = frozenset()) -> str:
    """The file-name part for a test: its node id made safe, told apart from every other node id.

    ``tests/test_a.py::test_b`` gives ``tests_test_a.py_test_b``. A short hash
    of the whole node id follows when that name is not the node id's alone:
    when more was lost than the separators (parameters like ``[a/b]`` and
    ``[a:b]``, which both read ``a_b``, or a name cut at 120 characters), or
    when it is one of ``clashes``, the names other tests of the run read as
    too (``a/test_b.py::test_x`` and ``a_test_b.py::test_x``, a method
    ``TestA::test_x`` and a function ``TestA_test_x``; see
    :func:`clashing_stems`). So two tests never share a name, not even across
    xdist workers writing to one report directory: every worker collects the
    same tests, so each names them alike.
    """
    plain = _plain(nodeid)
    slug = _slug(nodeid)
    if slug == plain and plain not in clashes:
        return slug
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return f"{slug[: MAX_SLUG - 9]}-{digest}"


def _check_live_only(**given: object) -> None:
    """Refuse a live-server argument given for a run on the fake cluster, naming it."""
    for name, value in given.items():
        if value is not None:
            raise ValueError(
                f"{name}: only with url= (a live E2B server); a run on the test's fake "
                f"cluster has no use for it, got {value!r}"
            )


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
        domain: str | None = None,
        deadline_s: float | None = None,
        name: str | None = None,
    ) -> DeliveryResult:
        """Run ``workload`` and return its :class:`~pytest_kruise_agents.delivery.DeliveryResult`.

        :param url: an E2B server to measure instead of the test's fake cluster.
        :param api_key: the key for ``url`` (default: ``E2B_API_KEY``).
        :param sandbox_url: with ``url``: one URL for all sandbox traffic, e.g. a proxy such
            as our fake server's (default: where the SDK sends it; see ``run_on_server``).
        :param domain: with ``url``: the sandboxes' domain when the server names none
            (see ``run_on_server``).
        :param deadline_s: with ``url``: how long each claim may take from its create
            to its first successful command (default: ``run_on_server``'s, 120 s).
        :param name: the run's label in file names and the summary (default: the workload's).

        ``api_key``, ``sandbox_url``, ``domain`` and ``deadline_s`` without ``url`` raise
        ``ValueError``: the fake cluster's run has no key, no sandbox traffic and no deadline.
        """
        __tracebackhide__ = True
        # Refused before the cluster is made or a key looked for: nothing runs.
        check_workload(workload)
        check_name(name)
        if url is not None:
            check_url("url", url)
        else:
            _check_live_only(
                api_key=api_key, sandbox_url=sandbox_url, domain=domain, deadline_s=deadline_s
            )
            check_on_cluster(workload)
        if url is None:
            backend = self._request.getfixturevalue("kruise_backend")
            if self._made is not None:
                # What the run leaves (a claim that completes after its time limit, or every
                # claim in flight when a timeout or Ctrl-C stops it): the run's, not the test's
                # leftovers. Told by their names, known before the run (see FactoryMade).
                self._made.benchmarked = True
            result = run_on_backend(backend, workload, name=name)
        else:
            key = api_key
            if key is None:
                # The variable only when no key is given: an empty key given is refused (by
                # run_on_server), not replaced by it.
                key = os.environ.get("E2B_API_KEY") or None
                if key is None:
                    raise ValueError("api_key: required with url (or set E2B_API_KEY)")
            run = partial(
                run_on_server,
                workload,
                url=url,
                api_key=key,
                sandbox_url=sandbox_url,
                domain=domain,
                name=name,
            )
            # Not given: run_on_server's own default deadline, not a copy of it here.
            result = run() if deadline_s is None else run(deadline_s=deadline_s)
        try:
            written = self._write(result)
        except OSError as exc:
            # Checked at start, the directory can still fail (a full disk, a file put in its
            # place): the run is not lost for it, only its files.
            self._keep(result)
            where = exc.filename if exc.filename is not None else self._report_dir()
            raise OSError(
                "the report directory (--kruise-report-dir): cannot write the benchmark's "
                f"files in {str(where)!r}: {exc.strerror or exc}",
            ) from exc
        self._keep(written)
        return written

    def _keep(self, result: DeliveryResult) -> None:
        """Add ``result`` to the terminal summary and to :attr:`results`."""
        record(self._request.node, BENCHMARK, result.summary())
        self.results.append(result)

    def _clashes(self) -> frozenset[str]:
        """The readable stems the session's tests share, worked out at the first benchmark."""
        config = self._request.config
        clashes = config.stash.get(CLASHES_KEY, None)
        if clashes is None:
            # Every xdist worker collects every test of the run: all see the same clashes.
            items = self._request.session.items
            clashes = config.stash[CLASHES_KEY] = clashing_stems(i.nodeid for i in items)
        return clashes

    def _write(self, result: DeliveryResult) -> DeliveryResult:
        base = f"{file_stem(self._request.node.nodeid, self._clashes())}-{_slug(result.name)}"
        # An xdist worker's id: under --dist each every worker runs every test, and the
        # stems, taken per process, would be the same in all of them.
        worker = getattr(self._request.config, "workerinput", {}).get("workerid")
        if isinstance(worker, str):
            base += f"-{_slug(worker)}"
        stem = base
        n = 2
        while stem in self._stems:
            stem = f"{base}-{n}"
            n += 1
        self._stems.add(stem)
        directory = self._report_dir()
        csv_path = result.write_csv(directory / f"{stem}.csv")
        result = replace(result, files=(csv_path, directory / f"{stem}.json"))
        result.write_json(directory / f"{stem}.json")
        return result
