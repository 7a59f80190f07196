"""Run the suite in this process: what ``kruise-agents conformance`` does.

It is ``pytest --pyargs pytest_kruise_agents.conformance`` with the options
of :mod:`~pytest_kruise_agents.conformance.plugin`, quiet pytest output (the
plugin prints the pass/fail/skip table), no other pytest plugin and no pytest
configuration file of the current directory: the suite behaves the same
wherever it is started.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from pytest_kruise_agents.conformance.plugin import INTERRUPTED_CODE
from pytest_kruise_agents.conformance.registry import parse_levels
from pytest_kruise_agents.conformance.report import unwritable

__all__ = ["PLUGIN", "USAGE_CODE", "RunOptions", "pytest_args", "run"]

PLUGIN: Final = "pytest_kruise_agents.conformance.plugin"
_NO_AUTOLOAD: Final = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class RunOptions:
    """The options of ``kruise-agents conformance`` (see the plugin for each one)."""

    api_url: str
    api_key: str = ""
    template: str = "base"
    sandbox_url: str | None = None
    domain: str | None = None
    code_template: str = "code-interpreter-v1"
    no_stock_template: str | None = None
    admin_key: str | None = None
    levels: str | None = None
    junit: Path | None = None
    report: Path | None = None
    verbose: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)


def pytest_args(opts: RunOptions) -> list[str]:
    """The pytest command line for ``opts`` (``ValueError`` naming a bad level)."""
    parse_levels(opts.levels)
    args = [
        "--pyargs",
        "pytest_kruise_agents.conformance",
        "-p",
        PLUGIN,
        "-c",
        os.devnull,  # no pytest.ini / pyproject of the current directory
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",  # the CLI imported the package first
        "--no-header",
        "-rN",
    ]
    args += ["-v", "--tb=short"] if opts.verbose else ["-q", "--tb=no"]
    given: dict[str, str | Path | None] = {
        "--e2b-api-url": opts.api_url,
        "--e2b-api-key": opts.api_key,
        "--e2b-sandbox-url": opts.sandbox_url,
        "--e2b-domain": opts.domain,
        "--e2b-template": opts.template,
        "--e2b-code-template": opts.code_template,
        "--e2b-no-stock-template": opts.no_stock_template,
        "--e2b-admin-key": opts.admin_key,
        "--e2b-levels": opts.levels,
        "--e2b-junit": opts.junit,
        "--e2b-report": opts.report,
    }
    for flag, value in given.items():
        if value:
            args += [flag, str(value)]
    return args + list(opts.extra)


USAGE_CODE: Final = 2
"""Exit code for a bad option (the suite does not start)."""


def run(opts: RunOptions) -> int:
    """Run the suite; 0 if every selected check passed or was skipped, 1 if one failed,
    2 for a bad option (one ``error:`` line on stderr), 3 if a report could not be written
    at the end, 130 if the run was interrupted (Ctrl-C).

    Other installed pytest plugins are not loaded: the suite needs none, and
    loading every plugin of a large environment costs seconds.
    """
    for option, path in (("--junit", opts.junit), ("--report", opts.report)):
        problem = unwritable(path) if path else None
        if problem is not None:
            # Found before the run, not after minutes of checks.
            print(f"error: {option}: {problem}", file=sys.stderr)
            return USAGE_CODE
    saved = os.environ.get(_NO_AUTOLOAD)
    os.environ[_NO_AUTOLOAD] = "1"
    try:
        code = pytest.main(pytest_args(opts))
    finally:
        if saved is None:
            os.environ.pop(_NO_AUTOLOAD, None)
        else:
            os.environ[_NO_AUTOLOAD] = saved
    if code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return 0
    if code == pytest.ExitCode.INTERRUPTED:
        return INTERRUPTED_CODE
    if code == pytest.ExitCode.USAGE_ERROR:
        return USAGE_CODE
    return 1 if code == pytest.ExitCode.TESTS_FAILED else int(code)
