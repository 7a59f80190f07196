"""What the plugin tells the terminal at the end: sandboxes left behind, benchmark results.

Fixtures record facts on the test item (:func:`record`, under the :data:`LEAKS`
and :data:`BENCHMARK` names), for the attempt that runs: a rerun of the same
item (pytest-rerunfailures) starts with none (:func:`fresh_attempt`). The
teardown report carries them as its :data:`REPORT_ATTR` attribute, which
travels with the report, also from xdist workers to the controller; the
controller's :class:`ReportCollector` gathers them and prints one section each
in the terminal summary. They are also the report's ``user_properties`` (so
JUnit XML ``<property>`` elements), values as JSON, unless the ini option
``kruise_junit_properties`` is false.

Only pytest and the standard library: this is loaded in every pytest run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

__all__ = [
    "BENCHMARK",
    "FACTS_KEY",
    "JUNIT_INI",
    "LEAKS",
    "REPORT_ATTR",
    "Collected",
    "ReportCollector",
    "benchmark_lines",
    "fresh_attempt",
    "leak_lines",
    "record",
]

LEAKS: Final = "kruise_agents.leaked_sandboxes"
"""Fact name: ``[[sandbox_id, state], ...]`` found at the end of a test.

An entry whose kill failed has a third item, the reason: ``[sandbox_id, state, reason]``.
"""

BENCHMARK: Final = "kruise_agents.delivery_benchmark"
"""Fact name: one delivery benchmark's JSON summary."""

REPORT_ATTR: Final = "kruise_agents"
"""The teardown report's attribute with the attempt's facts: ``[[name, value], ...]``."""

JUNIT_INI: Final = "kruise_junit_properties"
"""Ini option (bool, default true): also write the facts as JUnit XML properties."""

FACTS_KEY: pytest.StashKey[list[tuple[str, Any]]] = pytest.StashKey()
"""On a test item: the facts recorded in its current attempt, JSON-ready values."""


def record(item: pytest.Item, name: str, value: Any) -> None:
    """Record a fact of the running attempt of ``item`` (``value`` JSON-ready)."""
    item.stash.setdefault(FACTS_KEY, []).append((name, value))


def fresh_attempt(item: pytest.Item) -> None:
    """Forget the facts of an earlier attempt of ``item`` (a rerun runs the same item again)."""
    if FACTS_KEY in item.stash:
        del item.stash[FACTS_KEY]


@dataclass
class Collected:
    """Facts gathered from the reports of one session."""

    leaks: list[tuple[str, list[list[str]]]] = field(default_factory=list)
    benchmarks: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    def add(self, nodeid: str, facts: Sequence[Sequence[Any]]) -> None:
        """Take the facts one teardown report carries (``[name, value]`` pairs)."""
        for name, value in facts:
            if name == LEAKS and isinstance(value, list):
                self.leaks.append((nodeid, value))
            elif name == BENCHMARK and isinstance(value, Mapping):
                self.benchmarks.append((nodeid, value))


def leak_lines(leaks: Sequence[tuple[str, list[list[str]]]]) -> list[str]:
    """One line per test: the sandboxes it left behind, killed or (with the reason) not."""
    lines = []
    for nodeid, items in leaks:
        killed = [f"{item[0]} ({item[1]})" for item in items if len(item) < 3]
        failed = [f"{item[0]} ({item[1]}; {item[2]})" for item in items if len(item) >= 3]
        parts = []
        if killed:
            parts.append(f"{len(killed)} killed: {', '.join(killed)}")
        if failed:
            parts.append(f"{len(failed)} NOT killed: {', '.join(failed)}")
        lines.append(f"{nodeid}: {'; '.join(parts)}")
    return lines


def _ms(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value * 1000:.0f}"


def benchmark_lines(benchmarks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """A small table: one row per benchmark run, latencies in milliseconds."""
    if not benchmarks:
        return []
    header = (
        f"{'test / run':<48} {'claims':>6} {'warm':>5} {'cold':>5} {'fail':>5} "
        f"{'w.p50':>6} {'w.p90':>6} {'w.p99':>6} {'w.max':>6} {'all.p99':>7}  zones g/g/c"
    )
    lines = [header + "   (ms; warm = w.)"]
    for nodeid, s in benchmarks:
        lat = s.get("latency_s", {})
        warm = lat.get("warm", {})
        zones = s.get("zones", {}).get("all", {})
        label = f"{nodeid} [{s.get('name', '?')}]"
        if len(label) > 48:
            label = "..." + label[-45:]
        lines.append(
            f"{label:<48} {s.get('claims', 0):>6} {s.get('warm', 0):>5} {s.get('cold', 0):>5} "
            f"{s.get('failed', 0):>5} {_ms(warm.get('p50')):>6} {_ms(warm.get('p90')):>6} "
            f"{_ms(warm.get('p99')):>6} {_ms(warm.get('max')):>6} "
            f"{_ms(lat.get('all', {}).get('p99')):>7}  "
            f"{zones.get('green', 0)}/{zones.get('grey', 0)}/{zones.get('cold', 0)}"
        )
        clock = s.get("clock", "?")
        # As delivery.result.clock_words says it, without importing the simulator here.
        words = "realtime clock" if clock == "realtime" else f"{clock} time"
        where = f"    {s.get('target', '?')} ({words})"
        files = s.get("files") or []
        if files:
            where += ": " + " ".join(str(f) for f in files)
        lines.append(where)
    return lines


class ReportCollector:
    """A plugin object registered at configure time: collects from reports, prints the summary.

    :param junit_properties: also put the facts in the teardown report's
        ``user_properties`` (JUnit XML ``<property>`` elements), as JSON.
    """

    def __init__(self, junit_properties: bool = True) -> None:
        self.collected = Collected()
        self.junit_properties = junit_properties

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Give the teardown report the attempt's facts (the teardown has recorded its own)."""
        report = yield
        facts = item.stash.get(FACTS_KEY, None) if call.when == "teardown" else None
        if facts:
            setattr(report, REPORT_ATTR, [[name, value] for name, value in facts])
            if self.junit_properties:
                # The report's own list (a copy of the item's): nothing piles up on the item.
                report.user_properties.extend((name, json.dumps(value)) for name, value in facts)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the facts of teardown reports, an attempt after the first labelled as a rerun."""
        facts = getattr(report, REPORT_ATTR, None) if report.when == "teardown" else None
        if not facts:
            return
        nodeid = report.nodeid
        rerun = getattr(report, "rerun", 0)  # pytest-rerunfailures: the attempt, from 0
        if isinstance(rerun, int) and rerun > 0:
            nodeid += f" (rerun {rerun})"
        self.collected.add(nodeid, facts)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """A section for sandboxes left behind, one for delivery benchmarks; none if empty."""
        if self.collected.leaks:
            terminalreporter.write_sep(
                "-", "kruise-agents: sandboxes left behind, killed at teardown"
            )
            for line in leak_lines(self.collected.leaks):
                terminalreporter.write_line(line)
        if self.collected.benchmarks:
            terminalreporter.write_sep("-", "kruise-agents: delivery benchmarks")
            for line in benchmark_lines(self.collected.benchmarks):
                terminalreporter.write_line(line)
