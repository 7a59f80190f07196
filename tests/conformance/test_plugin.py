"""The suite's pytest plugin, installed in every pytest run: its options clash with no E2B
application's, say what they take, and it loads nothing it needs only when checks run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_kruise_agents.conformance.plugin import OPTION_PREFIX, sweep
from pytest_kruise_agents.conformance.runner import RunOptions, pytest_args
from pytest_kruise_agents.conformance.target import Api, Target

from .conftest import ROOT, USER_KEY, clean_env, serve

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

SUITE_OPTIONS = (
    "api-url",
    "api-key",
    "sandbox-url",
    "domain",
    "template",
    "code-template",
    "no-stock-template",
    "admin-key",
    "levels",
    "list-settle",
    "request-timeout",
    "junit",
    "report",
)
"""``kruise-agents conformance``'s options that the pytest form takes too (with a prefix)."""

APP_CONFTEST = f"""\
def pytest_addoption(parser):
    # An application built on the E2B SDK names its own options after the product.
    for name in {SUITE_OPTIONS!r}:
        parser.addoption("--e2b-" + name)
"""

APP_TEST = """\
def test_the_app_reads_its_own_options(pytestconfig):
    assert pytestconfig.getoption("--e2b-api-key") == "app-key"
    assert pytestconfig.getoption("--e2b-template") is None
"""


def _pytest(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in ``cwd`` as a user runs it: installed plugins autoload."""
    given = {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}
    given.update(PYTHONPATH=str(ROOT), COLUMNS="200", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", str(cwd), *args],
        cwd=cwd,
        env=given,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_e2b_apps_own_e2b_options_do_not_clash_with_the_suites(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(APP_CONFTEST)
    (tmp_path / "test_app.py").write_text(APP_TEST)
    proc = _pytest(tmp_path, "-q", "-p", "no:cacheprovider", "--e2b-api-key", "app-key")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


PROJECT_MARKED = """\
import pytest

@pytest.mark.conformance_check
def test_bare():
    pass

@pytest.mark.conformance_check("my-own-id")
def test_own_id():
    pass

@pytest.mark.conformance_check("core.create")
def test_an_id_of_the_suites():
    pass

def test_unmarked():
    pass
"""


def test_a_projects_own_conformance_check_marker_is_left_to_the_project(tmp_path: Path) -> None:
    """The plugin loads in every run, and its marker's name is a generic one: a project's own
    tests marked ``conformance_check`` (bare, with ids of its own, even with the suite's ids)
    are the project's tests, selected by ``-m`` as any marker's, not checks of the suite (they
    stopped every run with an INTERNALERROR)."""
    (tmp_path / "test_project.py").write_text(PROJECT_MARKED)
    proc = _pytest(tmp_path, "-q", "-p", "no:cacheprovider", "-m", "conformance_check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed, 1 deselected" in proc.stdout
    assert "INTERNALERROR" not in proc.stdout + proc.stderr
    assert "E2B conformance" not in proc.stdout  # no check ran: no table of checks


def test_each_option_carries_the_projects_prefix_and_says_what_it_takes(tmp_path: Path) -> None:
    # Loaded by its entry point's name, as the module docstring says: -p kruise_conformance.
    proc = _pytest(
        tmp_path, "-p", "kruise_conformance", "--help", env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = lines.index(
        "E2B conformance suite of pytest-kruise-agents (pytest --pyargs "
        "pytest_kruise_agents.conformance):"
    )
    group = "\n".join(lines[start:])
    for name, metavar in {
        "api-url": "URL",
        "api-key": "KEY",
        "sandbox-url": "URL",
        "domain": "DOMAIN",
        "template": "NAME",
        "code-template": "NAME",
        "no-stock-template": "NAME",
        "admin-key": "KEY",
        "levels": "LEVELS",
        "list-settle": "SECONDS",
        "request-timeout": "SECONDS",
        "junit": "PATH",
        "report": "PATH",
    }.items():
        assert f"{OPTION_PREFIX}{name}={metavar}" in group, name
    # Only the four the SDK reads fall back to a variable: no other metavar looks like one.
    assert "=KRUISE_CONFORMANCE_" not in group and "=E2B_" not in group
    assert "(default: base)" in group and "(default: code-interpreter-v1)" in group
    assert "--e2b-" not in proc.stdout


def test_the_command_passes_each_option_under_the_plugins_name_for_it() -> None:
    args = pytest_args(
        RunOptions(
            api_url="http://h:1",
            api_key="k",
            template="t",
            sandbox_url="http://h:2",
            domain="d",
            code_template="c",
            no_stock_template="n",
            admin_key="a",
            levels="core",
            list_settle=0.0,
            request_timeout=5.0,
            junit=Path("j.xml"),
            report=Path("r.md"),
        )
    )
    flags = [a for a in args if a.startswith("--kruise-conformance-")]
    assert flags == [OPTION_PREFIX + name for name in SUITE_OPTIONS]


@pytest.mark.parametrize(
    ("option", "given", "bound"),
    [
        *[("list-settle", given, ">= 0") for given in ("soon", "-1", "inf")],
        *[("request-timeout", given, "> 0") for given in ("soon", "0", "-1", "inf", "nan")],
    ],
)
def test_seconds_that_are_no_number_in_range_are_refused_before_any_check(
    tmp_path: Path, option: str, given: str, bound: str
) -> None:
    proc = _pytest(
        tmp_path,
        "--pyargs",
        "pytest_kruise_agents.conformance",
        "--kruise-conformance-api-url",
        "http://127.0.0.1:9",
        f"--kruise-conformance-{option}",
        given,
    )
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert (
        f"--kruise-conformance-{option}: must be a number of seconds {bound}, got {given!r}"
    ) in proc.stderr


TARGET_TEST = """\
def test_target(conformance_target):
    print("timeouts", conformance_target.request_timeout, conformance_target.cleanup_timeout)
"""


@pytest.mark.parametrize(("given", "seen"), [(None, "60.0 60.0"), ("150", "150.0 150.0")])
def test_the_request_timeout_bounds_each_request_and_each_cleanup_delete(
    tmp_path: Path, given: str | None, seen: str
) -> None:
    """A slow server needs longer than the SDK's 60 s: ``--kruise-conformance-request-timeout``
    sets what every request waits, and a cleanup's DELETE waits as long."""
    (tmp_path / "test_target.py").write_text(TARGET_TEST)
    option = [] if given is None else ["--kruise-conformance-request-timeout", given]
    proc = _pytest(
        tmp_path,
        "-s",
        "test_target.py",
        "--kruise-conformance-api-url",
        "http://127.0.0.1:9",
        *option,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"timeouts {seen}\n" in proc.stdout


def test_the_plugin_loads_no_report_module_until_checks_run() -> None:
    code = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import pytest_kruise_agents.conformance.plugin\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    loaded = out.stdout.split()
    assert "pytest_kruise_agents.conformance.plugin" in loaded
    assert "pytest_kruise_agents.conformance.report" not in loaded
    assert [m for m in loaded if m.split(".")[0] == "xml"] == []


def _list_without_metadata(app: ASGIApp) -> ASGIApp:
    """The fake, but its list items carry no ``metadata`` (its filter still works)."""

    async def stripped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v2/sandboxes" or scope["method"] != "GET":
            await app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                chunks.append(message.get("body", b""))

        await app(scope, receive, hold)
        items = [
            {k: v for k, v in i.items() if k != "metadata"} for i in json.loads(b"".join(chunks))
        ]
        body = json.dumps(items).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return stripped


def test_the_final_sweep_kills_what_the_run_made_even_listed_without_its_metadata() -> None:
    with serve(wrap=_list_without_metadata) as url:
        api = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        with closing(api.client):
            made = api.create().json()["sandboxID"]  # no check's cleanup kills it
            assert "metadata" not in api.list({"metadata": api.target.run_filter}).json()[0]
            assert sweep(api) == []
            assert api.get(made).status_code == 404


def test_the_final_sweep_kills_what_the_list_shows_with_the_runs_metadata() -> None:
    """A sandbox of the run the suite never saw created (an SDK call that failed after the
    server made it) is still the run's: the list shows it with the run's metadata."""
    with serve() as url:
        api = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        unseen = Api(api.target, v2_routes=True)
        other = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        with closing(api.client), closing(unseen.client), closing(other.client):
            sid = unseen.create().json()["sandboxID"]
            not_ours = other.create().json()["sandboxID"]
            assert sid not in api.made
            assert sweep(api) == []
            assert api.get(sid).status_code == 404
            assert api.get(not_ours).status_code == 200  # another run's sandbox is left alone


def _pages_of_two(app: ASGIApp) -> ASGIApp:
    """The app, its list pages two items long when the client names no limit (as a server
    whose default page is small would answer)."""

    async def paged(scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if scope["type"] == "http" and scope["path"] == "/v2/sandboxes" and b"limit=" not in query:
            scope = {**scope, "query_string": b"&".join(q for q in (query, b"limit=2") if q)}
        await app(scope, receive, send)

    return paged


def test_the_final_sweep_follows_the_lists_pages() -> None:
    """A run's leftovers past the list's first page are the run's too: the sweep follows
    X-Next-Token to the last page."""
    with serve(wrap=_pages_of_two) as url:
        api = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        unseen = Api(api.target, v2_routes=True)
        with closing(api.client), closing(unseen.client):
            sids = [unseen.create().json()["sandboxID"] for _ in range(5)]
            first = api.list({"metadata": api.target.run_filter})
            assert len(first.json()) == 2 and first.headers.get("x-next-token")
            assert sweep(api) == []
            assert [api.get(sid).status_code for sid in sids] == [404] * 5


def _second_page_late(app: ASGIApp) -> ASGIApp:
    """Pages of two, and any page after the first answered only after 1.5 s."""
    paged = _pages_of_two(app)

    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"nextToken=" in scope.get("query_string", b""):
            await asyncio.sleep(1.5)
        await paged(scope, receive, send)

    return late


def test_a_list_page_without_an_answer_ends_the_sweep_naming_what_cleanups_could_not_kill() -> None:
    """What the first page showed is killed; past the broken page the sweep cannot know, so the
    sandboxes an earlier cleanup could not kill are named as possibly left."""
    with serve(wrap=_second_page_late) as url:
        target = Target(api_url=url, api_key=USER_KEY, sandbox_url=url, cleanup_timeout=0.5)
        api = Api(target, v2_routes=True)
        unseen = Api(api.target, v2_routes=True)
        with closing(api.client), closing(unseen.client):
            sids = [unseen.create().json()["sandboxID"] for _ in range(4)]
            api.unanswered.append("sbx-a-cleanup-could-not-kill")
            assert sweep(api) == ["sbx-a-cleanup-could-not-kill"]
            assert sorted(api.get(sid).status_code for sid in sids) == [200, 200, 404, 404]


SETTLE_TEST = """\
def test_target(conformance_target):
    print("settle", conformance_target.list_settle)
"""


def test_a_list_settle_of_zero_seconds_is_taken_by_the_pytest_form(tmp_path: Path) -> None:
    """0 is a list read once (a server whose lists show every change at once), not refused."""
    (tmp_path / "test_target.py").write_text(SETTLE_TEST)
    proc = _pytest(
        tmp_path,
        "-s",
        "test_target.py",
        "--kruise-conformance-api-url",
        "http://127.0.0.1:9",
        "--kruise-conformance-list-settle",
        "0",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "settle 0.0\n" in proc.stdout
