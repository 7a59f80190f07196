"""Run the suite in this process: what ``kruise-agents conformance`` does.

It is ``pytest --pyargs pytest_kruise_agents.conformance`` with the options
of :mod:`~pytest_kruise_agents.conformance.plugin`, quiet pytest output (the
plugin prints the pass/fail/skip table and its summary line, pytest none of
its own), no other pytest plugin, no pytest configuration file of the current
directory, no ``conftest.py`` of it either, and no ``PYTEST_*``
environment variable of the caller (``PYTEST_ADDOPTS``, ``PYTEST_PLUGINS``,
...): the suite behaves the same wherever it is started.

The ``--report`` and ``--junit`` files are written when the run starts, saying
it has not ended, and again when it ends: a run stopped before its first
check, or killed, leaves no earlier run's report to pass for its own. A
reader that leaves early (``| head -1``) only ends the printing: the run, its
files and its exit status go on as if it had read everything.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from pytest_kruise_agents.conformance.plugin import INTERRUPTED_CODE, NO_SANDBOX_URL
from pytest_kruise_agents.conformance.registry import parse_levels
from pytest_kruise_agents.conformance.report import to_junit, to_markdown, unwritable
from pytest_kruise_agents.conformance.target import url_problem
from pytest_kruise_agents.pipes import stdout_reader_may_leave

__all__ = [
    "NOT_CHOSEN",
    "NOT_ENDED",
    "NO_CHECK_CODE",
    "PLUGIN",
    "USAGE_CODE",
    "RunOptions",
    "pytest_args",
    "run",
]

PLUGIN: Final = "pytest_kruise_agents.conformance.plugin"
_NO_AUTOLOAD: Final = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
_PYTEST_ENV: Final = "PYTEST_"


@dataclass(frozen=True)
class RunOptions:
    """The options of ``kruise-agents conformance`` (see the plugin for each one).

    Every value is passed on as given: an empty ``api_key`` means no key (the
    environment's ``E2B_API_KEY`` is the command's to read, not the suite's).
    """

    api_url: str
    api_key: str = ""
    template: str = "base"
    sandbox_url: str | None = None
    domain: str | None = None
    code_template: str = "code-interpreter-v1"
    no_stock_template: str | None = None
    admin_key: str | None = None
    levels: str | None = None
    list_settle: float | None = None
    request_timeout: float | None = None
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
        "--noconftest",  # nor its conftest.py (the suite has none: its plugin is -p'd)
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
    given: dict[str, str | float | Path | None] = {
        "--kruise-conformance-api-url": opts.api_url,
        "--kruise-conformance-api-key": opts.api_key,
        "--kruise-conformance-sandbox-url": opts.sandbox_url,
        "--kruise-conformance-domain": opts.domain,
        "--kruise-conformance-template": opts.template,
        "--kruise-conformance-code-template": opts.code_template,
        "--kruise-conformance-no-stock-template": opts.no_stock_template,
        "--kruise-conformance-admin-key": opts.admin_key,
        "--kruise-conformance-levels": opts.levels,
        "--kruise-conformance-list-settle": opts.list_settle,
        "--kruise-conformance-request-timeout": opts.request_timeout,
        "--kruise-conformance-junit": opts.junit,
        "--kruise-conformance-report": opts.report,
    }
    for flag, value in given.items():
        # Every given value, the empty API key too (no key): dropped, it would leave the
        # plugin to put its default or the environment's value in its place.
        if value is not None:
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

NO_CHECK_CODE: Final = 5
"""Exit code of a run that ran no check (pytest's "no tests collected"): never a pass."""

NOT_ENDED: Final = "INTERRUPTED: the run did not end (stopped before its first check, or killed)"
"""What the reports written at the start say until the run's end replaces them."""

_NO_CHECK: Final = "no check ran: none was selected"


NOT_CHOSEN: Final = "INTERRUPTED before the checks were chosen; no check ran"
"""What the command prints when a Ctrl-C stops it before the table (which says it otherwise)."""


class _CommandRun:
    """The command's own plugin in the run: pytest's Ctrl-C banner is not printed.

    The table's summary line says the run was interrupted and in which check (the
    plugin's); pytest's banner after it would add the path of the code where the
    signal landed (the SDK's, inside site-packages) and advise ``--full-trace``, an
    option the command does not have. Before the checks are chosen there is no
    table, and :func:`run` prints :data:`NOT_CHOSEN` instead.
    """

    def __init__(self) -> None:
        self.chosen = False

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            # pytest has no option for it. Private: were it renamed, only the banner returns.
            reporter._report_keyboardinterrupt = lambda: None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.chosen = True


def _write_reports(opts: RunOptions, note: str) -> str | None:
    """Write the ``--report`` and ``--junit`` of a run with no result, saying ``note``;
    ``None``, or the error line of the one that cannot be written."""
    info = {
        "API URL": opts.api_url,
        "Sandbox URL": opts.sandbox_url or NO_SANDBOX_URL,
        "Template": opts.template,
        "Levels": ",".join(parse_levels(opts.levels)),
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "Interrupted" if note == NOT_ENDED else "Result": note,
    }
    texts = {"--junit": to_junit([], info), "--report": to_markdown([], info, interrupted=note)}
    for option, path in (("--junit", opts.junit), ("--report", opts.report)):
        if path is None:
            continue
        try:
            path.write_text(texts[option], encoding="utf-8")
        except OSError as exc:
            return f"error: {option}: cannot write {path}: {exc.strerror or exc}"
    return None


def run(opts: RunOptions) -> int:
    """Run the suite; 0 if every selected check passed or was skipped, 1 if one failed,
    2 for a bad option (one ``error:`` line on stderr), 3 if a report could not be written
    at the end, 5 if no check ran (one ``error:`` line), 130 if the run was interrupted
    (Ctrl-C). A closed standard output changes none of them.

    Other installed pytest plugins are not loaded: the suite needs none, and
    loading every plugin of a large environment costs seconds.
    """
    for option, url in (("--api-url", opts.api_url), ("--sandbox-url", opts.sandbox_url)):
        problem = url_problem(url) if url is not None else None
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
    args = pytest_args(opts)
    # An earlier run's report must not pass for this one's if this one never gets to
    # write its own (Ctrl-C before the checks are selected, SIGKILL, a crash).
    problem = _write_reports(opts, NOT_ENDED)
    if problem is not None:
        print(problem, file=sys.stderr)
        return USAGE_CODE
    command = _CommandRun()
    with _suite_environ(), stdout_reader_may_leave():
        try:
            code = pytest.main(args, plugins=[command])
        except KeyboardInterrupt:
            # A Ctrl-C while pytest still starts (loading plugins, parsing options) is
            # raised, not returned: its session, which turns one into a code, is not up yet.
            code = pytest.ExitCode.INTERRUPTED
        if code == pytest.ExitCode.INTERRUPTED and not command.chosen:
            print(NOT_CHOSEN)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        # A CI job whose selection lost every check must not go green.
        _write_reports(opts, _NO_CHECK)
        print(f"error: {_NO_CHECK}", file=sys.stderr)
        return NO_CHECK_CODE
    if code == pytest.ExitCode.OK:
        return 0
    if code == pytest.ExitCode.INTERRUPTED:
        return INTERRUPTED_CODE
    if code == pytest.ExitCode.USAGE_ERROR:
        return USAGE_CODE
    return 1 if code == pytest.ExitCode.TESTS_FAILED else int(code)
