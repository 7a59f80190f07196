"""Run the suite in this process: what ``kruise-agents conformance`` does.

It is ``pytest --pyargs pytest_kruise_agents.conformance`` with the options
of :mod:`~pytest_kruise_agents.conformance.plugin`, quiet pytest output (the
plugin prints the pass/fail/skip table and its summary line, pytest none of
its own), no other pytest plugin, no pytest configuration file of the current
directory and no ``PYTEST_*`` environment variable of the caller
(``PYTEST_ADDOPTS``, ``PYTEST_PLUGINS``, ...): the suite behaves the same
wherever it is started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from pytest_kruise_agents.conformance.plugin import INTERRUPTED_CODE
from pytest_kruise_agents.conformance.registry import parse_levels
from pytest_kruise_agents.conformance.report import unwritable
from pytest_kruise_agents.conformance.target import url_problem

__all__ = ["PLUGIN", "USAGE_CODE", "RunOptions", "pytest_args", "run"]

PLUGIN: Final = "pytest_kruise_agents.conformance.plugin"
_NO_AUTOLOAD: Final = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
_PYTEST_ENV: Final = "PYTEST_"


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
    # -qq: pytest prints no summary line of its own, which would count differently (its
    # "deselected", a blocked check's setup "error") from the suite's line under the table.
    args += ["-qq"]
    args += ["-o", "verbosity_test_cases=1", "--tb=short"] if opts.verbose else ["--tb=no"]
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


@contextmanager
def _suite_environ() -> Iterator[None]:
    """The process environment without the caller's ``PYTEST_*`` variables, and with plugin
    autoload off, for as long as the block runs; the caller's afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(_PYTEST_ENV)}
    # PYTEST_ADDOPTS=-x or -k, PYTEST_PLUGINS=... would change what the suite runs: they
    # are the caller's settings for their own tests, not for this command.
    for key in saved:
        del os.environ[key]
    os.environ[_NO_AUTOLOAD] = "1"
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(_PYTEST_ENV)]:
            del os.environ[key]
        os.environ.update(saved)


USAGE_CODE: Final = 2
"""Exit code for a bad option (the suite does not start)."""


def run(opts: RunOptions) -> int:
    """Run the suite; 0 if every selected check passed or was skipped, 1 if one failed,
    2 for a bad option (one ``error:`` line on stderr), 3 if a report could not be written
    at the end, 130 if the run was interrupted (Ctrl-C).

    Other installed pytest plugins are not loaded: the suite needs none, and
    loading every plugin of a large environment costs seconds.
    """
    for option, url in (("--api-url", opts.api_url), ("--sandbox-url", opts.sandbox_url)):
        problem = url_problem(url) if url else None
        if problem is not None:
            # Otherwise every check would fail on it, one by one.
            print(f"error: {option}: {problem}", file=sys.stderr)
            return USAGE_CODE
    for option, path in (("--junit", opts.junit), ("--report", opts.report)):
        problem = unwritable(path) if path else None
        if problem is not None:
            # Found before the run, not after minutes of checks.
            print(f"error: {option}: {problem}", file=sys.stderr)
            return USAGE_CODE
    with _suite_environ():
        code = pytest.main(pytest_args(opts))
    if code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return 0
    if code == pytest.ExitCode.INTERRUPTED:
        return INTERRUPTED_CODE
    if code == pytest.ExitCode.USAGE_ERROR:
        return USAGE_CODE
    return 1 if code == pytest.ExitCode.TESTS_FAILED else int(code)
