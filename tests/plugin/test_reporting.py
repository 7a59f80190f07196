"""The summary's facts per attempt of a test, and as JUnit XML properties (JSON, or none)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

RERUN_CONFTEST = """
import pytest
from _pytest.runner import runtestprotocol


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # What pytest-rerunfailures does with --reruns 1: the protocol of the same
    # item again after a failure, each report marked with its attempt.
    for attempt in range(2):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        again = attempt == 0 and any(r.failed for r in reports)
        for report in reports:
            report.rerun = attempt
            if again and report.failed:
                report.outcome = "rerun"
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if not again:
            return True
    return True


def pytest_report_teststatus(report):
    if report.outcome == "rerun":
        return "rerun", "R", "RERUN"
"""


def test_a_rerun_reports_only_its_own_leftovers_and_benchmarks(suite: pytest.Pytester) -> None:
    """pytest-rerunfailures runs the same item again: each attempt's rows once, the rerun's
    labelled, and the first attempt's benchmark sandboxes do not hide the rerun's leftover
    (the same seed gives it the same id)."""
    suite.makeconftest(RERUN_CONFTEST)
    suite.makepyfile(
        """
        from e2b import Sandbox
        from pytest_kruise_agents.delivery import Burst

        ATTEMPTS = []

        def test_flaky(kruise_e2b, delivery_benchmark):
            ATTEMPTS.append(1)
            if len(ATTEMPTS) == 1:
                delivery_benchmark(Burst(2))
                Sandbox.create()
                assert False, "the first attempt fails"
            Sandbox.create()
            delivery_benchmark(Burst(1))
        """
    )
    result = suite.runpytest()
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    lines = result.stdout.lines
    leaks = [line for line in lines if " killed: " in line]
    assert len(leaks) == 2, lines
    assert leaks[0].startswith("test_a_rerun_reports_only_its_own_leftovers_and_benchmarks.py::")
    assert leaks[0].split("::")[1].startswith("test_flaky: 1 killed: default--base-")
    assert "test_flaky (rerun 1): 1 killed: default--base-" in leaks[1]
    rows = [line for line in lines if "[burst-" in line]
    assert len(rows) == 2, lines
    assert "[burst-2-e2b]" in rows[0] and "(rerun 1) [burst-1-e2b]" in rows[1]


def test_junit_properties_are_json_and_can_be_turned_off(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        from e2b import Sandbox
        from pytest_kruise_agents.delivery import Burst

        def test_leaves_one(kruise_e2b, delivery_benchmark):
            Sandbox.create()
            delivery_benchmark(Burst(1))
        """
    )
    result = suite.runpytest("--junitxml=on.xml")
    result.assert_outcomes(passed=1)
    props = {
        p.get("name"): p.get("value") for p in ET.parse(suite.path / "on.xml").iter("property")
    }
    leaked_text = props["kruise_agents.leaked_sandboxes"]
    summary_text = props["kruise_agents.delivery_benchmark"]
    assert leaked_text is not None and summary_text is not None
    leaked = json.loads(leaked_text)
    assert [state for _, state in leaked] == ["running"]
    summary = json.loads(summary_text)
    assert summary["claims"] == 1 and summary["name"] == "burst-1-e2b"

    off = suite.runpytest("--junitxml=off.xml", "-o", "kruise_junit_properties=false")
    off.assert_outcomes(passed=1)
    assert list(ET.parse(suite.path / "off.xml").iter("property")) == []
    # The terminal summary does not depend on them.
    off.stdout.fnmatch_lines(["*test_leaves_one: 1 killed: default--base-*", "*[[]burst-1-e2b]*"])


def test_a_benchmark_row_keeps_its_columns_whatever_the_tests_name() -> None:
    """A label longer than its column keeps its end (the test's name and the run's), after
    ``...``, so the figures stay under their headings; a figure that is no number reads ``-``."""
    from pytest_kruise_agents.plugin.reporting import benchmark_lines

    summary = {
        "name": "burst-1-e2b",
        "claims": 1,
        "warm": 1,
        "cold": 0,
        "failed": 0,
        "latency_s": {
            "warm": {"p50": 0.09, "p90": float("nan"), "p99": None, "max": 0.09},
            "all": {"p99": 0.09},
        },
        "zones": {"all": {"green": 1, "grey": 0, "cold": 0}},
        "clock": "virtual",
        "target": "sim seed=0",
    }
    nodeid = "tests/" + "deep/" * 12 + "test_app.py::test_drain"
    header, row, where = benchmark_lines([(nodeid, summary)])
    label = f"{nodeid} [burst-1-e2b]"
    assert row.startswith("..." + label[-45:] + " ")
    assert row.split()[2:] == ["1", "1", "0", "0", "90", "-", "-", "90", "90", "1/0/0"]
    assert row.index(" 90 ") + len(" 90") == header.index("w.p50") + len("w.p50")
    assert where == "    sim seed=0 (virtual time)"
