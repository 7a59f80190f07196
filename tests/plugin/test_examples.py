"""The example downstream suite (``examples/agent_app``) passes, run as its own pytest session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_app"


def test_the_agent_app_example_suite_passes(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(
        str(EXAMPLE),
        f"--rootdir={EXAMPLE}",
        "-c",
        str(EXAMPLE / "pytest.ini"),
        "-p",
        "no:cacheprovider",
        f"--kruise-report-dir={suite.path / 'reports'}",
    )
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim seed=7 clock=virtual report-dir=*"])
    assert sorted(p.suffix for p in (suite.path / "reports").iterdir()) == [".csv", ".json"]
