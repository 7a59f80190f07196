"""The suite in awkward runs: Ctrl-C (in a check or in its setup), bad report paths, no URL, a port past 65535, no key, a busy
team, a prefixed API URL, control characters, lone surrogates and U+FFFF from the server, a
server that ignores a command timeout, a caller's ``PYTEST_*`` environment, a proxy in the
environment."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_kruise_agents.conformance.registry import CHECKS, dependents

from .conftest import (
    FILLER_KEY,
    KRUISE_AGENTS,
    ROOT,
    USER_KEY,
    Result,
    clean_env,
    cli_command,
    fill_team,
    read_junit,
    run_cli,
    run_refused,
    serve,
    suite_pytest_command,
)
from .mutants import sdk_create_bad_text

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _control_plane(scope: Scope) -> bool:
    headers = {k.lower() for k, _ in scope["headers"]}
    return b"e2b-sandbox-id" not in headers


class _Hold:
    """Holds the requests :meth:`holds` picks for up to a minute, until ``released`` is set
    (the test is done with them: the server then stops at once instead of waiting out the
    minute); ``reached`` is set by the first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.reached = threading.Event()
        self.released = threading.Event()

    def holds(self, scope: Scope) -> bool:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.holds(scope):
            self.reached.set()
            for _ in range(1200):
                if self.released.is_set():
                    break
                await asyncio.sleep(0.05)
        await self.app(scope, receive, send)


class _HangOnTimeout(_Hold):
    """Holds every ``POST /sandboxes/{id}/timeout`` of an existing sandbox with the team's key
    (``core.timeout``'s, not the refused ones of ``core.auth.refused``)."""

    def holds(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/timeout")
            and "conformance-missing" not in scope["path"]  # core.errors' unknown sandbox
            and (b"x-api-key", USER_KEY.encode()) in scope["headers"]
        )


class _HangOnCreate(_Hold):
    """Holds every create (``POST /sandboxes`` or ``/v2/sandboxes``) with the team's key: a
    cold create that has not answered yet."""

    def holds(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and _control_plane(scope)
            and scope["method"] == "POST"
            and scope["path"] in ("/sandboxes", "/v2/sandboxes")
            and (b"x-api-key", USER_KEY.encode()) in scope["headers"]
        )


class _HangOnCleanup(_Hold):
    """Holds every ``DELETE /sandboxes/{id}`` of an existing sandbox with the team's key: the
    first is a check's cleanup, after the check's result is in."""

    def holds(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and _control_plane(scope)
            and scope["method"] == "DELETE"
            and "conformance-missing" not in scope["path"]  # core.errors' unknown sandbox
            and (b"x-api-key", USER_KEY.encode()) in scope["headers"]
        )


class _ControlCharacters:
    """Answers ``GET /sandboxes/conformance-missing...`` with a text body full of control bytes."""

    BODY = b"sandbox not found \x00\x01\x1b[31m"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and _control_plane(scope)
            and scope["method"] == "GET"
            and scope["path"].startswith("/sandboxes/conformance-missing")
        ):
            headers = [(b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": self.BODY})
            return
        await self.app(scope, receive, send)


def _others_listed(body: bytes) -> int | None:
    """How many sandboxes of a list answer are the team's others (``None``: not JSON)."""
    try:
        items = json.loads(body)
    except ValueError:
        return None
    if not isinstance(items, list):
        return 0  # an error body
    return sum(1 for i in items if FILLER_KEY in (i.get("metadata") or {}))


class _ListReads:
    """Records each sandbox list the server answers: its query and how many of the listed
    sandboxes are the team's others (:func:`_others_listed`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.reads: list[tuple[str, int | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and _control_plane(scope)
            and scope["method"] == "GET"
            and scope["path"].endswith("/v2/sandboxes")
        ):
            await self.app(scope, receive, send)
            return
        query = scope["query_string"].decode()
        body = bytearray()

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    self.reads.append((query, _others_listed(bytes(body))))
            await send(message)

        await self.app(scope, receive, recording)


class _IgnoreCommandTimeout:
    """Drops ``Connect-Timeout-Ms`` from sandbox traffic: envd never ends a command on time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _control_plane(scope):
            kept = [(k, v) for k, v in scope["headers"] if k.lower() != b"connect-timeout-ms"]
            scope = {**scope, "headers": kept}
        await self.app(scope, receive, send)


def _interrupted_run(tmp_path: Path, hold: type[_Hold], levels: str) -> tuple[int, str]:
    """Run the suite at ``levels`` against a server that ``hold``s a request; send SIGINT
    (a Ctrl-C) once it is held. The exit code and the output."""
    held: list[_Hold] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        held.append(hold(app))
        return held[0]

    with serve(wrap=wrap) as url:
        proc = subprocess.Popen(
            cli_command(url, tmp_path, levels=levels),
            cwd=tmp_path,
            env=clean_env({"COLUMNS": "200"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # A Ctrl-C reaches the command as SIGINT with the default disposition.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert held[0].reached.wait(120)
            proc.send_signal(signal.SIGINT)
            # The SDK's transport waits for the answer in native code, where a SIGINT is only
            # noted: let the held request go (after the signal, which it no longer can outrun)
            # rather than have the command sit out the minute.
            time.sleep(0.5)
            held[0].released.set()
            output, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            held[0].released.set()
    return proc.returncode, output


def test_ctrl_c_during_a_check_reports_the_run_interrupted_and_exits_130(tmp_path: Path) -> None:
    """The check a Ctrl-C stopped is not counted as passed; every report says the run was
    interrupted, the JUnit XML has the stopped check as an error, the exit code is 130."""
    code, output = _interrupted_run(tmp_path, _HangOnTimeout, "core")
    assert code == 130, output[-3000:]
    root = ET.parse(tmp_path / "conformance.xml").getroot()
    errors = [c.get("name") for c in root.iter("testcase") if c.find("error") is not None]
    assert errors == ["core.timeout"], output[-3000:]
    results = read_junit(tmp_path / "conformance.xml")
    assert results["core.timeout"] == Result("error", "interrupted before it ended")
    assert "core.timeout.enforced" not in results
    assert "INTERRUPTED during core.timeout" in output
    assert "INTERRUPTED during core.timeout" in (tmp_path / "conformance.md").read_text()
    interrupted = root.find(".//property[@name='Interrupted']")
    assert interrupted is not None and "core.timeout" in (interrupted.get("value") or "")


def test_ctrl_c_is_told_in_one_line_not_in_pytests_banner(tmp_path: Path) -> None:
    """The run ends with the table's summary line saying it was interrupted, and nothing of
    pytest's after it: no ``!!! KeyboardInterrupt !!!`` banner, no path into the SDK where the
    signal landed, no advice to pass ``--full-trace`` (an option the command does not have)."""
    code, output = _interrupted_run(tmp_path, _HangOnTimeout, "core")
    assert code == 130, output[-3000:]
    lines = [line for line in output.splitlines() if line.strip()]
    assert "INTERRUPTED during core.timeout; the checks after it did not run" in lines[-1]
    assert "KeyboardInterrupt" not in output and "--full-trace" not in output
    assert "site-packages" not in output and not any(line.startswith("!!") for line in lines)


def test_ctrl_c_during_a_checks_setup_names_that_check(tmp_path: Path) -> None:
    """A Ctrl-C while a check's module fixture is still creating its sandbox (before the check
    made any report) names that check: "INTERRUPTED during envd.health" in every report, and
    the JUnit XML has it as an error "interrupted before it ended"."""
    code, output = _interrupted_run(tmp_path, _HangOnCreate, "envd")
    assert code == 130, output[-3000:]
    results = read_junit(tmp_path / "conformance.xml")
    expected = {"envd.health": Result("error", "interrupted before it ended")}
    assert results == expected, output[-3000:]
    assert "INTERRUPTED during envd.health" in output
    assert "INTERRUPTED during envd.health" in (tmp_path / "conformance.md").read_text()


def test_ctrl_c_between_checks_names_the_last_check_that_ended(tmp_path: Path) -> None:
    """A Ctrl-C in a check's cleanup, its result already in, lands between checks: the
    summary names that check ("INTERRUPTED after core.create"), not an "it" with nothing
    to refer to, and the JUnit XML has no check as interrupted."""
    code, output = _interrupted_run(tmp_path, _HangOnCleanup, "core")
    assert code == 130, output[-3000:]
    lines = [line for line in output.splitlines() if line.strip()]
    found = re.search(
        r"INTERRUPTED after (core\.[a-z.-]+); the checks after it did not run$", lines[-1]
    )
    assert found is not None, lines[-1]
    results = read_junit(tmp_path / "conformance.xml")
    assert results[found.group(1)].status in ("pass", "fail"), results
    assert not [cid for cid, r in results.items() if r.status == "error"], results
    assert found.group(0) in (tmp_path / "conformance.md").read_text()


def test_an_unwritable_report_path_is_refused_before_the_run(tmp_path: Path) -> None:
    """``--junit`` or ``--report`` in a missing directory: one error naming the option, exit 2,
    and nothing is checked."""
    for option in ("--junit", "--report"):
        bad = tmp_path / "missing" / "out"
        proc = run_refused(option, str(bad))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"error: {option}: cannot write {bad}: No such file or directory"
        )
        assert "Traceback" not in proc.stdout + proc.stderr


def test_a_url_that_is_no_url_is_refused_before_the_run(tmp_path: Path) -> None:
    """``--api-url notaurl`` (or a bad ``--sandbox-url``, or a port past 65535 that would wrap
    round to another server's): exit 2 and one line naming the option, not every check failing
    on it."""
    for option, url, reason in (
        ("--api-url", "notaurl", "must be an http:// or https:// URL, got 'notaurl'"),
        ("--sandbox-url", "http://", "has no host: 'http://'"),
        (
            "--api-url",
            "http://127.0.0.1:106939",
            "port '106939' is not a number in 1..65535: 'http://127.0.0.1:106939'",
        ),
    ):
        args = {"--api-url": "http://127.0.0.1:9", option: url}
        proc = subprocess.run(
            [str(KRUISE_AGENTS), "conformance", "--template", "base"]
            + [part for pair in args.items() for part in pair],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            cwd=tmp_path,
        )
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert proc.stderr.strip() == f"error: {option}: {reason}"
        assert proc.stdout == ""


def _suite_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The pytest form of the suite, without a server's environment, in ``tmp_path``."""
    return subprocess.run(
        [*suite_pytest_command(sys.executable), *args],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pytest_form_refuses_a_url_that_is_no_url(tmp_path: Path) -> None:
    proc = _suite_pytest(tmp_path, "--kruise-conformance-api-url", "notaurl")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (
        "--kruise-conformance-api-url: must be an http:// or https:// URL, got 'notaurl'"
        in proc.stderr
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("template", ""),
        ("levels", ""),
        ("levels", ","),
        ("levels", " "),
        ("junit", ""),
        ("report", ""),
    ],
)
def test_the_pytest_form_refuses_an_empty_option_naming_it(
    tmp_path: Path, option: str, value: str
) -> None:
    """Not a run against its default (``base``, every level) in silence."""
    proc = _suite_pytest(
        tmp_path,
        "--kruise-conformance-api-url",
        "http://127.0.0.1:9",
        f"--kruise-conformance-{option}",
        value,
    )
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"--kruise-conformance-{option}: must not be empty" in proc.stderr


def test_the_pytest_form_without_an_api_url_is_a_usage_error(tmp_path: Path) -> None:
    """No ``--kruise-conformance-api-url`` and no ``E2B_API_URL``: pytest's usage error, not 53 skips and exit 0."""
    proc = _suite_pytest(tmp_path)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--kruise-conformance-api-url: no server to check" in proc.stderr


def test_the_api_url_may_end_in_the_kruise_prefix(tmp_path: Path) -> None:
    """With ``--api-url <server>/kruise/api`` (the OpenKruise form) every check passes and the
    admin clock is still found at the server's root."""
    with serve() as url:
        run = run_cli(url, tmp_path, levels="core,kruise", api_url=url + "/kruise/api")
    assert run.with_status("fail") == set(), run.output[-3000:]
    assert run.returncode == 0
    assert "- **Clock**: virtual (admin clock)" in run.report.read_text()


def test_without_an_api_key_a_server_without_auth_fails_only_the_auth_check(
    tmp_path: Path,
) -> None:
    """No ``--api-key`` against a server with auth disabled: the SDK still sends requests (with a
    placeholder key), so only ``core.auth`` and the checks depending on it fail."""
    with serve(auth=False) as url:
        run = run_cli(url, tmp_path, levels="core,lifecycle", key=False)
    blocked = dependents("core.auth") & set(run.results)
    assert run.with_status("fail") == {"core.auth"} | blocked, run.output[-3000:]


def test_on_a_busy_team_the_list_checks_pass_reading_only_the_runs_own_sandboxes(
    tmp_path: Path,
) -> None:
    """A team already holding 450 sandboxes: every check of ``core`` and ``lifecycle`` passes,
    and ``kruise.api-prefix``; of the 450 the whole run reads one (``core.list``'s
    ``GET /v2/sandboxes?limit=1``), not several pages of them per list."""
    recorders: list[_ListReads] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        recorders.append(_ListReads(app))
        return recorders[0]

    with serve(nodes=80, wrap=wrap) as url:
        fill_team(url, 450)
        run = run_cli(url, tmp_path, levels="core,lifecycle,kruise")
    assert run.with_status("fail") == set(), run.output[-3000:]
    wanted = {c.id for c in CHECKS if c.level in ("core", "lifecycle")} | {"kruise.api-prefix"}
    assert wanted <= run.with_status("pass")
    reads = recorders[0].reads
    assert reads and all(n is not None for _, n in reads), reads
    others = [(query, n) for query, n in reads if n]
    assert sum(n or 0 for _, n in others) <= 1, f"{len(reads)} lists; read the others: {others}"


def test_control_characters_from_the_server_are_escaped_in_every_output(tmp_path: Path) -> None:
    """A server body with NUL and ESC bytes: the JUnit XML still parses and shows them as
    ``\\xNN``, and the terminal gets no raw control character."""
    with serve(wrap=_ControlCharacters) as url:
        run = run_cli(url, tmp_path, levels="core")
    message = run.results["core.errors"].message  # read_junit parsed the XML
    assert "sandbox not found \\x00\\x01\\x1b[31m" in message, message
    assert "\x1b[31m" not in run.output and "\x00" not in run.output
    assert "\x00" not in run.report.read_text()


def test_text_xml_cannot_hold_from_the_server_is_escaped_and_every_report_written(
    tmp_path: Path,
) -> None:
    """An SDK error message with a lone surrogate and U+FFFF (both legal in a JSON string):
    no traceback, the JUnit XML parses, every output shows them as ``\\uXXXX``, exit 1."""
    with serve(mutant=sdk_create_bad_text) as url:
        run = run_cli(url, tmp_path, levels="core")
    assert run.returncode == 1, run.output[-3000:]
    shown = "500: bad \\ud800 and \\uffff"
    assert shown in run.results["core.create"].message, run.results["core.create"]
    assert shown in run.report.read_text(encoding="utf-8")
    assert shown in run.output and "Traceback" not in run.output, run.output[-3000:]


def test_the_command_ignores_the_callers_pytest_environment(tmp_path: Path) -> None:
    """``PYTEST_ADDOPTS`` and ``PYTEST_PLUGINS`` of the caller do not reach the suite's pytest:
    no ``-x``/``-k`` narrows the run and no plugin of theirs is loaded."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    loaded = tmp_path / "spy-loaded"
    (plugins / "conformance_spy.py").write_text(
        f"def pytest_configure(config):\n    open({str(loaded)!r}, 'w').close()\n"
    )
    env = {
        "PYTEST_ADDOPTS": "-x -k test_error_bodies",
        "PYTEST_PLUGINS": "conformance_spy",
        "PYTHONPATH": str(plugins),
    }
    with serve() as url:
        run = run_cli(url, tmp_path, levels="core", env=env)
    assert run.with_status("pass") == {c.id for c in CHECKS if c.level == "core"}, run.output
    assert run.returncode == 0
    assert not loaded.exists()


def test_a_server_on_loopback_is_checked_past_a_proxy_in_the_environment(
    tmp_path: Path, dead_proxy: str
) -> None:
    """Behind a proxy (``HTTP_PROXY``) the SDK and the suite's own HTTP client would send
    every call to it, and no proxy reaches this host's loopback: every check failed as a
    connection refused by the server's own address. A loopback server is reached directly."""
    with serve() as url:
        run = run_cli(url, tmp_path, levels="core")
    assert run.with_status("pass") == {c.id for c in CHECKS if c.level == "core"}, run.output
    assert run.returncode == 0


def test_a_server_ignoring_the_command_timeout_fails_the_timeout_check(tmp_path: Path) -> None:
    """envd ignoring ``Connect-Timeout-Ms``: the SDK times out on its own, but the process lives
    on, so ``envd.commands.timeout`` fails (and nothing else)."""
    with serve(wrap=_IgnoreCommandTimeout) as url:
        run = run_cli(url, tmp_path, levels="core,envd")
    assert run.with_status("fail") == {"envd.commands.timeout"}, run.output[-3000:]
    assert "still running" in run.results["envd.commands.timeout"].message
    assert {c.id for c in CHECKS if c.level in ("core", "envd")} == set(run.results)


def test_sandbox_traffic_nobody_answers_fails_the_health_check_saying_where_its_url_came_from(
    tmp_path: Path,
) -> None:
    """docs/conformance.md: "a failure of ``envd.health`` names the URL and where its domain
    came from". No answer at all is the failure a wrong sandbox URL or domain gives (a host
    nothing listens on, a name that does not resolve); that failure said only the URL, not
    whether it was the sandbox URL, the create answer's domain, ``--domain`` or the SDK's
    default. A port bound and not listening refuses every connection, however the machine."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
        with serve() as url:
            run = run_cli(url, tmp_path, levels="envd", extra=["--sandbox-url", nowhere])
    health = run.results["envd.health"]
    assert health.status == "fail", run.output[-3000:]
    assert re.fullmatch(
        rf"GET /health of sandbox default--base-\w+ \(port 49983\) at {re.escape(nowhere)} "
        r"\(the sandbox URL\): expected an answer, but saw ConnectError: .*",
        health.message,
    ), health.message
