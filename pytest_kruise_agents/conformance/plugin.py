"""The pytest plugin of the conformance suite: options, check ordering, dependencies, reports.

Loaded by the ``pytest11`` entry point ``kruise_conformance`` (``-p kruise_conformance``
with plugin autoloading off; ``-p pytest_kruise_agents.conformance.plugin`` only where
the package is on the path but not installed: an installed one has it registered
already, and pytest refuses the module a second time), it does nothing unless
conformance checks are collected, as with::

    pytest --pyargs pytest_kruise_agents.conformance \
        --kruise-conformance-api-url URL --kruise-conformance-api-key KEY

Options (the first four fall back to the environment variable the SDK reads, the admin
key to the one ``kruise-agents serve`` prints):
``--kruise-conformance-api-url`` (``E2B_API_URL``), ``-api-key`` (``E2B_API_KEY``),
``-sandbox-url`` (``E2B_SANDBOX_URL``), ``-domain`` (``E2B_DOMAIN``), ``-template``,
``-code-template``, ``-no-stock-template``, ``-admin-key`` (``KRUISE_ADMIN_KEY``),
``-levels``, ``-list-settle``, ``-request-timeout``, ``-junit``, ``-report``:
``kruise-agents conformance``'s options, with the prefix
:data:`OPTION_PREFIX`. An installed plugin's options share one namespace with every
other plugin's and with the conftest of every project that has it installed: the
prefix is this project's own (``kruise-``, as the fixtures' plugin has it) and names the
suite, because ``e2b-`` is the prefix an application built on the E2B SDK picks for
its own options (``--e2b-api-key``), and two options of one name stop pytest.

Checks run in the catalogue's dependency order
(:mod:`~pytest_kruise_agents.conformance.registry`). A check whose dependency
failed fails at once as "blocked"; one whose dependency was skipped is
skipped. Run the suite in one process (no ``-n``): dependencies are tracked
per process.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pytest

from pytest_kruise_agents.conformance.registry import CHECKS, Check, by_id, parse_levels

# The reports (report.py, and xml.etree with it) load only in a run that collected checks,
# as the target and the SDK do: this plugin loads in every pytest run of every project that
# has the package installed.
if TYPE_CHECKING:
    from pytest_kruise_agents.conformance.clock import ServerClock
    from pytest_kruise_agents.conformance.report import Outcome
    from pytest_kruise_agents.conformance.sandboxes import Sandboxes
    from pytest_kruise_agents.conformance.target import Api, Target

__all__ = [
    "INTERRUPTED_CODE",
    "LEFT_INFO",
    "MARKER",
    "NO_SANDBOX_URL",
    "OPTION_PREFIX",
    "WRITE_FAILED_CODE",
    "DependencyFailed",
    "check",
    "conformance_api",
    "conformance_clock",
    "conformance_sandboxes",
    "conformance_target",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_teststatus",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "sweep",
]

MARKER: Final = "conformance_check"
OPTION_PREFIX: Final = "--kruise-conformance-"
"""The prefix of the suite's pytest options: ``kruise-agents conformance --api-url`` is
``--kruise-conformance-api-url`` under pytest."""

F = TypeVar("F", bound=Callable[..., Any])

_SWEEP_PAGES: Final = 100
"""Pages of the run's list the final sweep reads at most (a run makes far fewer sandboxes)."""
_ORDER: Final[dict[str, int]] = {c.id: i for i, c in enumerate(CHECKS)}
_RESULTS = pytest.StashKey["dict[str, Outcome]"]()
_INFO = pytest.StashKey[dict[str, str]]()
_TARGET = pytest.StashKey["Target | None"]()
_STARTED = pytest.StashKey["dict[str, Outcome]"]()
_BLOCKED = pytest.StashKey[set[str]]()
_SELECTED = pytest.StashKey[bool]()
_LEFT = pytest.StashKey[list[str]]()
_LAST = pytest.StashKey[str]()
LEFT_INFO: Final = "Left on the server"
"""The reports' setting naming the sandboxes the run may have left on the server."""
NO_SANDBOX_URL: Final = "(none: where the installed SDK sends each sandbox's traffic)"
"""The reports' ``Sandbox URL`` without one: ``https://sandbox.<domain>`` for the domains
the SDK reaches at one host (E2B's own), else ``https://<port>-<id>.<domain>``."""
INTERRUPTED_CODE: Final = 130
"""Exit code of ``kruise-agents conformance`` after Ctrl-C (as the planning commands)."""
WRITE_FAILED_CODE: Final = 3
"""Exit code when a report could not be written at the end of a run."""


class DependencyFailed(AssertionError):
    """A check is not run because a check it depends on failed."""


def check(check_id: str) -> Callable[[F], F]:
    """Mark a test function as the check ``check_id`` of the catalogue."""
    by_id(check_id)  # an unknown id fails at import, naming it

    def mark(fn: F) -> F:
        marked: F = getattr(pytest.mark, MARKER)(check_id)(fn)
        return marked

    return mark


# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    """The options of the suite (see the module docstring)."""
    group = parser.getgroup(
        "kruise-conformance",
        "E2B conformance suite of pytest-kruise-agents "
        "(pytest --pyargs pytest_kruise_agents.conformance)",
    )

    def add(name: str, metavar: str, help: str, default: str | None = None) -> None:
        group.addoption(OPTION_PREFIX + name, metavar=metavar, default=default, help=help)

    add("api-url", "URL", "Base URL of the E2B API (default: $E2B_API_URL).")
    add("api-key", "KEY", "API key of the checks (default: $E2B_API_KEY).")
    add(
        "sandbox-url",
        "URL",
        "One URL for all sandbox traffic, routed by E2b-Sandbox-Id/-Port headers "
        "(default: $E2B_SANDBOX_URL; without it, where the installed SDK sends it: "
        "https://sandbox.<domain> for E2B's domains, else https://<port>-<id>.<domain>).",
    )
    add("domain", "DOMAIN", "Sandbox domain (default: $E2B_DOMAIN).")
    add("template", "NAME", "A template with ready sandboxes (default: base).", "base")
    add(
        "code-template",
        "NAME",
        "A template running the code interpreter (default: code-interpreter-v1).",
        "code-interpreter-v1",
    )
    add(
        "no-stock-template",
        "NAME",
        "A template with no ready sandbox (kruise.no-stock is skipped without it).",
    )
    add(
        "admin-key",
        "KEY",
        "Key for the server's admin clock /_kruise/clock, if it has one "
        "(default: $KRUISE_ADMIN_KEY, else the API key).",
    )
    add(
        "levels",
        "LEVELS",
        "Comma-separated levels to run: core,lifecycle,envd,code,kruise (default: all).",
    )
    add(
        "list-settle",
        "SECONDS",
        "Wall seconds the checks of what a list shows ask again until it shows the change "
        "(default: 10).",
    )
    add(
        "request-timeout",
        "SECONDS",
        "Seconds each request, and each cleanup's DELETE, waits for an answer (default: 60).",
    )
    add("junit", "PATH", "Write JUnit XML with one testcase per check here.")
    add("report", "PATH", "Write the Markdown report here.")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and the run's result store."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(id): the test is the E2B conformance check with this id "
        "(in pytest_kruise_agents.conformance only: elsewhere the marker is the project's own)",
    )
    config.stash[_RESULTS] = {}
    config.stash[_STARTED] = {}
    config.stash[_BLOCKED] = set()
    config.stash[_INFO] = {}
    config.stash[_SELECTED] = False


def _seconds(name: str, text: str | None, *, positive: bool = False) -> float | None:
    """``--kruise-conformance-<name>`` as seconds (``None`` if not given): a finite number
    >= 0, or > 0 when ``positive``."""
    if text is None or text == "":
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 if positive else seconds >= 0) or seconds == float("inf"):
        bound = "> 0" if positive else ">= 0"
        raise pytest.UsageError(
            f"{OPTION_PREFIX}{name}: must be a number of seconds {bound}, got {text!r}"
        )
    return seconds


def _target(config: pytest.Config) -> Target | None:
    if _TARGET not in config.stash:
        from pytest_kruise_agents.conformance.target import Target

        opt = config.getoption
        names = ["api-url", "api-key", "sandbox-url", "domain", "template", "code-template"]
        names += ["no-stock-template", "admin-key"]
        given = {n.replace("-", "_"): opt(OPTION_PREFIX + n) for n in names}
        given["list_settle"] = _seconds("list-settle", opt(OPTION_PREFIX + "list-settle"))
        timeout = _seconds("request-timeout", opt(OPTION_PREFIX + "request-timeout"), positive=True)
        # A cleanup waits as long as a request: a server slow enough to need a longer
        # request timeout answers its DELETEs as slowly.
        given["request_timeout"] = given["cleanup_timeout"] = timeout
        try:
            target = Target.from_env(**given)
        except ValueError as exc:
            # "template: must not be empty", named as the option the user typed.
            field, _, reason = str(exc).partition(": ")
            raise pytest.UsageError(f"{OPTION_PREFIX}{field.replace('_', '-')}: {reason}") from None
        config.stash[_TARGET] = target
    return config.stash[_TARGET]


# --------------------------------------------------------------------------- collection


_PACKAGE: Final = Path(__file__).resolve().parent
"""The directory of the suite's test modules: only tests collected from it are checks."""


def _check_of(item: pytest.Item) -> Check | None:
    """The check ``item`` is, or ``None`` if it is no check of the suite.

    A check is a test of the suite's own modules marked by :func:`check`. A test of another
    project is never one, whatever its markers: ``conformance_check`` is a name a project
    may give its own marker (``@pytest.mark.conformance_check`` with no id, or ids of its
    own), and this plugin, loaded in every run, must leave its tests alone.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None or not _in_package(item.path):
        return None
    return by_id(str(marker.args[0]))


def _in_package(path: Path) -> bool:
    """Whether ``path`` is one of the suite's modules (under a symlinked path too)."""
    return path.parent == _PACKAGE or path.resolve().parent == _PACKAGE


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Keep the checks of the chosen levels, in dependency order, after any other tests."""
    ours: list[tuple[Check, pytest.Item]] = []
    others: list[pytest.Item] = []
    for item in items:
        found = _check_of(item)
        if found is None:
            others.append(item)
        else:
            ours.append((found, item))
    if not ours:
        return
    from pytest_kruise_agents.conformance.report import unwritable

    for option in ("levels", "junit", "report"):
        # Empty is no level and no file: not "all levels", nor "no report" in silence.
        if config.getoption(OPTION_PREFIX + option) == "":
            raise pytest.UsageError(f"{OPTION_PREFIX}{option}: must not be empty")
    try:
        levels = parse_levels(config.getoption("--kruise-conformance-levels"))
    except ValueError as exc:
        reason = str(exc).removeprefix("levels: ")
        raise pytest.UsageError(f"--kruise-conformance-levels: {reason}") from None
    target = _target(config)
    if target is None:
        # Skipping every check would exit 0: a CI job missing its URL must not go green.
        raise pytest.UsageError(
            "--kruise-conformance-api-url: no server to check: pass it or set E2B_API_URL"
        )
    _check_urls(target)
    for option in ("--kruise-conformance-junit", "--kruise-conformance-report"):
        path = config.getoption(option)
        problem = unwritable(Path(path)) if path else None
        if problem is not None:
            raise pytest.UsageError(f"{option}: {problem}")
    seen: dict[str, str] = {}
    for found, item in ours:
        if found.id in seen:
            raise pytest.UsageError(
                f"check {found.id} is implemented twice: {seen[found.id]} and {item.nodeid}"
            )
        seen[found.id] = item.nodeid
    keep = [(c, i) for c, i in ours if c.level in levels]
    dropped = [i for c, i in ours if c.level not in levels]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    keep.sort(key=lambda pair: _ORDER[pair[0].id])
    items[:] = others + [item for _, item in keep]
    config.stash[_INFO]["Levels"] = ",".join(levels)
    config.stash[_SELECTED] = bool(keep)


def _check_urls(target: Target) -> None:
    """Refuse a URL no check could reach: every check would fail on it, one by one."""
    from pytest_kruise_agents.conformance.target import url_problem

    for option, url in (
        ("--kruise-conformance-api-url", target.api_url),
        ("--kruise-conformance-sandbox-url", target.sandbox_url),
    ):
        problem = url_problem(url) if url else None
        if problem is not None:
            raise pytest.UsageError(f"{option}: {problem}")


# --------------------------------------------------------------------------- running


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Record the check as started, then fail it if a dependency failed and skip it if one
    was skipped."""
    found = _check_of(item)
    if found is None:
        return
    from pytest_kruise_agents.conformance.report import Outcome

    # Started at setup, not at its first report: a Ctrl-C during setup (a module fixture's
    # cold create) makes no report, and the run must still name the check it stopped in.
    item.config.stash[_STARTED].setdefault(found.id, Outcome(found, "pass"))
    results = item.config.stash[_RESULTS]
    for dep in found.depends:
        outcome = results.get(dep)
        if outcome is None:
            continue  # not selected: the check runs on its own
        if outcome.status == "fail":
            raise DependencyFailed(f"blocked: depends on {dep}, which failed")
        if outcome.status == "skip":
            reason = outcome.message
            if not reason.startswith("depends on "):
                reason = f"depends on {dep}, which was skipped: {reason}"
            pytest.skip(reason)


def _message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    from pytest_kruise_agents.conformance.report import clean

    exc = excinfo.value
    if isinstance(exc, pytest.skip.Exception):
        return str(exc.msg)
    text = " ".join(clean(str(exc)).split())
    if len(text) > 500:
        text = text[:500] + "..."
    if isinstance(exc, AssertionError):
        return text  # CheckFailed and DependencyFailed say it all
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Record each check's outcome and message as its phases end."""
    report: pytest.TestReport = yield
    found = _check_of(item)
    if found is None:
        return report
    from pytest_kruise_agents.conformance.report import Outcome

    if call.excinfo is not None and isinstance(call.excinfo.value, DependencyFailed):
        # The reason is the whole story: a traceback into this plugin would only hide it.
        report.longrepr = _message(call.excinfo)
        item.config.stash[_BLOCKED].add(report.nodeid)
    item.config.stash[_LAST] = found.id
    results = item.config.stash[_RESULTS]
    started = item.config.stash[_STARTED]
    # A passed setup is not a passed check: only the call phase decides (a Ctrl-C during
    # the call leaves no call report, and the check must not count as passed).
    outcome = results.get(found.id) or started.setdefault(found.id, Outcome(found, "pass"))
    outcome.duration += report.duration
    if report.skipped and outcome.status != "fail":
        outcome.status = "skip"
        outcome.message = _message(call.excinfo) if call.excinfo else "skipped"
        results[found.id] = outcome
    elif report.failed and outcome.status != "fail":
        outcome.status = "fail"
        outcome.message = _message(call.excinfo) if call.excinfo else "failed"
        if report.when == "teardown":
            outcome.message = f"cleanup: {outcome.message}"
        results[found.id] = outcome
    elif report.when == "call" and report.passed:
        results[found.id] = outcome
    return report


def pytest_report_teststatus(
    report: pytest.CollectReport | pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """Count a blocked check as failed, as the suite does, not as a setup error."""
    if report.when == "setup" and report.failed and report.nodeid in config.stash[_BLOCKED]:
        return "failed", "F", "FAILED"
    return None


def _outcomes(config: pytest.Config) -> list[Outcome]:
    results = config.stash[_RESULTS]
    return sorted(results.values(), key=lambda o: _ORDER[o.check.id])


def _interrupted(config: pytest.Config, exitstatus: int) -> str | None:
    """What to say of an interrupted run (``None`` if the run was not interrupted, or
    selected no check)."""
    # The plugin is installed for every pytest run: a run that selected no check (another
    # project's, or one interrupted before collection ended) must not get an empty table.
    if exitstatus != pytest.ExitCode.INTERRUPTED or not config.stash.get(_SELECTED, False):
        return None
    results = config.stash[_RESULTS]
    running = [cid for cid in config.stash[_STARTED] if cid not in results]
    if running:
        where = f" during {', '.join(running)}"
    else:
        # Between checks: in the cleanup of the last one to report, its result already in.
        last = config.stash.get(_LAST, "")
        where = f" after {last}" if last else ""
    return f"INTERRUPTED{where}; the checks after it did not run"


def _running(config: pytest.Config) -> list[Outcome]:
    results = config.stash[_RESULTS]
    return [o for cid, o in config.stash[_STARTED].items() if cid not in results]


def _info(config: pytest.Config) -> dict[str, str]:
    info: dict[str, str] = {}
    target = _target(config)
    if target is not None:
        info["API URL"] = target.api_url
        info["Sandbox URL"] = target.sandbox_url or NO_SANDBOX_URL
        info["Template"] = target.template
        info["Code template"] = target.code_template
        info["No-stock template"] = target.no_stock_template or "(none)"
    for key, value in config.stash[_INFO].items():
        info[key] = value
    info["Date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return info


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the pass/fail/skip table."""
    outcomes = _outcomes(config)
    interrupted = _interrupted(config, exitstatus)
    if not outcomes and interrupted is None:
        return
    from pytest_kruise_agents.conformance.report import render_table

    tw = getattr(terminalreporter, "_tw", None)
    width = max(int(tw.fullwidth) if tw is not None else 120, 100)
    color = bool(getattr(terminalreporter, "hasmarkup", False))
    text = render_table(outcomes, width=width, color=color, interrupted=interrupted)
    left = config.stash.get(_LEFT, [])
    if left:
        # Before the table: its summary stays the last line.
        terminalreporter.write_line(f"cleanup: {_left_note(left)}", red=True)
    terminalreporter.write("\n" + text)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the JUnit XML and the Markdown report, if asked for."""
    config = session.config
    outcomes = _outcomes(config)
    interrupted = _interrupted(config, exitstatus)
    if not outcomes and interrupted is None:
        return
    from pytest_kruise_agents.conformance.report import to_junit, to_markdown

    info = _info(config)
    if interrupted is not None:
        info["Interrupted"] = interrupted
    running = _running(config)
    for option, render in (
        ("--kruise-conformance-junit", lambda: to_junit(outcomes, info, interrupted=running)),
        (
            "--kruise-conformance-report",
            lambda: to_markdown(outcomes, info, interrupted=interrupted),
        ),
    ):
        if not _write(config, option, render) and exitstatus != pytest.ExitCode.INTERRUPTED:
            session.exitstatus = WRITE_FAILED_CODE


def _write(config: pytest.Config, option: str, render: Callable[[], str]) -> bool:
    """Write the report ``render`` makes where ``option`` asks (if it does); ``False``
    (and one error line) if it cannot be written."""
    path = config.getoption(option)
    if not path:
        return True
    from pytest_kruise_agents.conformance.report import clean

    try:
        Path(path).write_text(render(), encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        # Checked writable at the start; a disk can still fill up or a directory vanish.
        # Server text is escaped (report.clean), but a report must never end the run in a
        # traceback: whatever still cannot be encoded is this one error line too.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        reason = exc.strerror if isinstance(exc, OSError) else None
        line = f"error: {option}: cannot write {path}: {clean(str(reason or exc))}"
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line, file=sys.stderr)
        return False
    return True


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def conformance_target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """The server under test (skips every check when none is configured).

    For the session, a server on a loopback address is reached directly, not
    through a proxy in ``HTTP_PROXY``: the loopback hosts are in ``NO_PROXY``
    and ``no_proxy`` (:mod:`pytest_kruise_agents.loopback`).
    """
    target = _target(pytestconfig)
    if target is None:
        pytest.skip("no server to check: pass --kruise-conformance-api-url or set E2B_API_URL")
    from pytest_kruise_agents.conformance.sdk import sdk_versions
    from pytest_kruise_agents.loopback import direct_to_loopback

    info = pytestconfig.stash[_INFO]
    info["SDK"] = ", ".join(f"{k} {v}" for k, v in sdk_versions().items())
    # A proxy cannot reach this host's loopback: with it, every check of a local
    # server would fail as a connection refused by the server's own address.
    with direct_to_loopback():
        yield target


@pytest.fixture(scope="session")
def conformance_api(conformance_target: Target, pytestconfig: pytest.Config) -> Iterator[Api]:
    """Raw HTTP to the server; at the end, kills whatever the run left behind and notes, for
    the summary and the reports, the sandboxes the server did not answer a DELETE of."""
    from pytest_kruise_agents.conformance.target import Api

    api = Api(conformance_target)
    try:
        yield api
    finally:
        left = sweep(api)
        api.close()
        if left:
            pytestconfig.stash[_LEFT] = left
            pytestconfig.stash[_INFO][LEFT_INFO] = _left_note(left)


def _left_note(left: list[str]) -> str:
    many = "es" if len(left) != 1 else ""
    return (
        f"{len(left)} sandbox{many} may be left on the server (it did not answer their "
        f"DELETE): {', '.join(left)}"
    )


def sweep(api: Api) -> list[str]:
    """Kill every sandbox the run's list shows with the run's metadata, or that the run made
    (:attr:`Api.made <pytest_kruise_agents.conformance.target.Api.made>`: a list item may lack
    the metadata): what a check left behind untracked. Each item on its own: one odd item (``"metadata": null``, no id, a
    kill that fails) does not end the sweep. The list and the kills wait as a cleanup does
    (:func:`~pytest_kruise_agents.conformance.sandboxes.kill_all`).

    The list is read page by page (``X-Next-Token``), up to 100 pages. Returns the sandboxes
    that may be left on the server: those whose DELETE got no answer here and, when a page of
    the list got none, every one whose cleanup DELETE got none.
    """
    from pytest_kruise_agents.conformance.sandboxes import cleanup_wait, kill_all
    from pytest_kruise_agents.conformance.target import RUN_KEY

    target = api.target
    ids: list[str] = []
    token: str | None = None
    listed = False  # every page read, to the last
    for _ in range(_SWEEP_PAGES):
        params = {"metadata": target.run_filter} | ({"nextToken": token} if token else {})
        try:
            resp = api.request("GET", "/v2/sandboxes", params=params, timeout=cleanup_wait(api))
            items = resp.json() if resp.status_code == 200 else []
        except Exception:
            break  # no answer: kill what the pages read so far showed
        for item in items if isinstance(items, list) else []:
            meta = item.get("metadata") if isinstance(item, dict) else None
            sid = item.get("sandboxID") if isinstance(item, dict) else None
            if not isinstance(sid, str) or sid in ids:
                continue
            if sid in api.made or (isinstance(meta, dict) and meta.get(RUN_KEY) == target.run_id):
                ids.append(sid)
        token = resp.headers.get("x-next-token") if resp.status_code == 200 else None
        if not token:
            listed = True
            break
    missed = kill_all(api, ids)
    if listed:
        return missed
    # Past a page with no answer, a sandbox whose cleanup DELETE got none may be left too.
    return missed + [sid for sid in api.unanswered if sid not in ids]


@pytest.fixture(scope="session")
def conformance_clock(conformance_target: Target, pytestconfig: pytest.Config) -> ServerClock:
    """How server time passes (the admin clock if the server offers one)."""
    from pytest_kruise_agents.conformance.clock import ServerClock

    target = conformance_target
    clock = ServerClock.detect(target.api_root, [target.admin_key, target.api_key])
    pytestconfig.stash[_INFO]["Clock"] = clock.describe()
    return clock


@pytest.fixture
def conformance_sandboxes(conformance_target: Target, conformance_api: Api) -> Iterator[Sandboxes]:
    """Sandboxes for one check, killed when it ends."""
    from pytest_kruise_agents.conformance.sandboxes import Sandboxes

    made = Sandboxes(conformance_target, conformance_api)
    try:
        yield made
    finally:
        made.cleanup()
