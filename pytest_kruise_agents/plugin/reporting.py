"""What the plugin tells the terminal at the end: sandboxes left behind, benchmark results.

Fixtures record facts in the test's ``user_properties`` (under the
:data:`LEAKS` and :data:`BENCHMARK` names), which travel with the test's
report, also from xdist workers to the controller; the controller's
:class:`ReportCollector` gathers them from the reports and prints one section
each in the terminal summary.

Only pytest and the standard library: this is loaded in every pytest run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

__all__ = ["BENCHMARK", "LEAKS", "Collected", "ReportCollector", "benchmark_lines", "leak_lines"]

LEAKS: Final = "kruise_agents.leaked_sandboxes"
"""``user_properties`` name: ``[[sandbox_id, state], ...]`` found at the end of a test.

An entry whose kill failed has a third item, the reason: ``[sandbox_id, state, reason]``.
"""

BENCHMARK: Final = "kruise_agents.delivery_benchmark"
"""``user_properties`` name: one delivery benchmark's JSON summary."""


@dataclass
class Collected:
    """Facts gathered from the reports of one session."""

    leaks: list[tuple[str, list[list[str]]]] = field(default_factory=list)
    benchmarks: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    def add(self, nodeid: str, properties: Sequence[tuple[str, object]]) -> None:
        """Take this plugin's entries from one report's ``user_properties``."""
        for name, value in properties:
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
    """A plugin object registered at configure time: collects from reports, prints the summary."""

    def __init__(self) -> None:
        self.collected = Collected()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the entries of teardown reports (they carry the whole test's properties)."""
        if report.when == "teardown" and report.user_properties:
            self.collected.add(report.nodeid, report.user_properties)

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
