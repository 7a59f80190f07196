"""``kruise-agents conformance``: the pytest command line it builds, its option errors, and
what no reader, no check or a killed run leave."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from pytest_kruise_agents.cli import app
from pytest_kruise_agents.conformance.registry import CHECKS
from pytest_kruise_agents.conformance.runner import (
    NO_CHECK_CODE,
    NOT_CHOSEN,
    NOT_ENDED,
    PLUGIN,
    RunOptions,
    pytest_args,
)

from .conftest import (
    clean_env,
    cli_command,
    read_junit,
    run_cli,
    run_refused,
    serve,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


def test_the_command_line_runs_the_package_with_the_plugin_and_every_given_option() -> None:
    args = pytest_args(
        RunOptions(
            api_url="http://h:1",
            api_key="k",
            template="base",
            sandbox_url="http://h:2",
            levels="core,envd",
            junit=Path("out.xml"),
        )
    )
    assert args[:4] == ["--pyargs", "pytest_kruise_agents.conformance", "-p", PLUGIN]
    assert args[args.index("-c") + 1] == os.devnull
    pairs = dict(itertools.pairwise(args))
    assert pairs["--kruise-conformance-api-url"] == "http://h:1"
    assert pairs["--kruise-conformance-sandbox-url"] == "http://h:2"
    assert pairs["--kruise-conformance-levels"] == "core,envd"
    assert pairs["--kruise-conformance-junit"] == "out.xml"
    assert "--kruise-conformance-domain" not in args and "--kruise-conformance-report" not in args


def test_an_unknown_level_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="unknown level 'nope'"):
        pytest_args(RunOptions(api_url="http://h:1", levels="core,nope"))
    proc = run_refused("--levels", "nope")
    assert proc.returncode == 2
    assert "--levels: unknown level 'nope'" in proc.stderr


@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
def test_a_list_settle_of_no_seconds_is_refused_naming_the_commands_option(value: str) -> None:
    """``--list-settle -1`` (or inf, or nan): exit 2 and one line naming ``--list-settle``, the
    option the user typed, not the pytest option it becomes."""
    proc = run_refused("--list-settle", value)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --list-settle: must be a number of seconds >= 0, got {float(value):g}\n"
    )
    assert proc.stdout == ""


def test_a_list_settle_of_zero_seconds_is_taken() -> None:
    """``--list-settle 0``: each list check asks once. Accepted, so the next option's check
    (here a refused ``--request-timeout``) is the one that speaks."""
    proc = run_refused("--list-settle", "0", "--request-timeout", "0")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --request-timeout: ")


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_a_request_timeout_of_no_seconds_is_refused_naming_the_commands_option(
    value: str,
) -> None:
    proc = run_refused("--request-timeout", value)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --request-timeout: must be a number of seconds > 0, got {float(value):g}\n"
    )
    assert proc.stdout == ""


_EXPORTED = {
    "E2B_API_URL": "http://127.0.0.1:9",
    "E2B_API_KEY": "exported-key",
    "E2B_SANDBOX_URL": "http://127.0.0.1:9",
    "E2B_DOMAIN": "exported.example.com",
    "KRUISE_ADMIN_KEY": "exported-admin",
}
"""A server's exports, as ``kruise-agents serve`` prints them: what an empty option must not fall back to."""


@pytest.mark.parametrize(
    "option",
    [
        "--api-url",
        "--template",
        "--code-template",
        "--no-stock-template",
        "--sandbox-url",
        "--domain",
        "--admin-key",
        "--levels",
        "--junit",
        "--report",
    ],
)
def test_an_empty_option_is_refused_naming_it_never_replaced_by_a_default(option: str) -> None:
    """``--template ""`` (a script's ``--template "$T"`` with ``T`` unset): exit 2 and one line
    naming the option, not a run against ``base``, the environment's URL, or the current
    directory as a report path."""
    args = ["conformance", "--api-url", "http://127.0.0.1:9", "--template", "base", option, ""]
    result = CliRunner().invoke(app, args, env=_EXPORTED)

    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {option}: must not be empty\n"
    assert result.stdout == ""


@pytest.mark.parametrize("value", [",", " ", " , "])
def test_a_levels_value_naming_no_level_is_refused_as_the_empty_one(value: str) -> None:
    """``--levels "$A,$B"`` with both unset: refused, not a run of every level."""
    args = ["conformance", "--api-url", "http://127.0.0.1:9", "--template", "base"]
    result = CliRunner().invoke(app, [*args, "--levels", value], env=_EXPORTED)

    assert result.exit_code == 2, result.output
    assert result.stderr == "error: --levels: must not be empty\n"
    assert result.stdout == ""


def test_an_empty_api_key_is_passed_on_as_no_key() -> None:
    """``--api-key ""`` is meaningful: the checks send no key. It reaches the suite as given,
    where before it was dropped and the plugin used ``E2B_API_KEY`` in its place."""
    args = pytest_args(RunOptions(api_url="http://h:1", api_key=""))

    assert dict(itertools.pairwise(args))["--kruise-conformance-api-key"] == ""


def test_the_suite_reads_no_conftest_of_the_current_directory() -> None:
    """``-c os.devnull`` keeps the directory's pytest.ini out, ``--noconftest`` its
    conftest.py: one that drops every item, or fails to import, changes nothing."""
    args = pytest_args(RunOptions(api_url="http://h:1"))

    assert "--noconftest" in args


@pytest.mark.parametrize(
    "conftest",
    [
        "def pytest_collection_modifyitems(config, items):\n    items.clear()\n",
        "raise ImportError('this project needs its own packages installed')\n",
    ],
    ids=["drops-every-check", "fails-to-import"],
)
def test_a_conftest_where_the_command_starts_is_not_loaded(tmp_path: Path, conftest: str) -> None:
    (tmp_path / "conftest.py").write_text(conftest)
    with serve() as url:
        run = run_cli(url, tmp_path, levels="core")

    assert run.returncode == 0, run.output[-3000:]
    assert run.results and run.with_status("pass") == set(run.results), run.output[-3000:]


def test_a_run_that_ran_no_check_says_so_and_fails(tmp_path: Path) -> None:
    """A selection that leaves no check (here pytest's ``-k`` of ``RunOptions.extra``) is
    no pass: one error line, exit 5, and reports that say no check ran."""
    report = tmp_path / "out.md"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pytest_kruise_agents.conformance.runner import RunOptions, run\n"
        "sys.exit(run(RunOptions(api_url='http://127.0.0.1:9', template='base',\n"
        f"    report=Path({str(report)!r}), extra=('-k', 'no_check_is_named_so'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == NO_CHECK_CODE == 5, proc.stdout + proc.stderr
    assert proc.stderr == "error: no check ran: none was selected\n"
    assert "0 passed, 0 failed, 0 skipped; no check ran" in report.read_text()


@pytest.mark.parametrize(
    "plugin",
    [
        "def pytest_collection(session):\n    raise KeyboardInterrupt\n",
        # While pytest still loads its plugins, before its session catches a Ctrl-C.
        "raise KeyboardInterrupt\n",
    ],
    ids=["in-collection", "while-pytest-starts"],
)
def test_a_ctrl_c_before_the_checks_are_chosen_is_one_line_too(tmp_path: Path, plugin: str) -> None:
    """No table yet to say it: the command prints that no check ran, and nothing of pytest's
    (here a plugin of ``RunOptions.extra`` stands for the Ctrl-C)."""
    (tmp_path / "ctrl_c_in_collection.py").write_text(plugin)
    code = (
        "import sys\n"
        "from pytest_kruise_agents.conformance.runner import RunOptions, run\n"
        "sys.exit(run(RunOptions(api_url='http://127.0.0.1:9', template='base',\n"
        "    extra=('-p', 'ctrl_c_in_collection'))))\n"
    )
    pythonpath = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": pythonpath}),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stdout.strip() == NOT_CHOSEN
    assert proc.stderr == ""


def test_a_killed_run_leaves_no_earlier_runs_report(tmp_path: Path) -> None:
    """The reports are written at the start, saying the run has not ended: a run killed
    (or stopped before the checks were chosen) never leaves the last run's as its own."""
    stale = "**Result: 54 passed, 0 failed, 0 skipped** (an earlier run)\n"
    (tmp_path / "conformance.md").write_text(stale)
    (tmp_path / "conformance.xml").write_text("<testsuites/>\n")
    reached = threading.Event()

    def wrap(app: ASGIApp) -> ASGIApp:
        async def first_request_seen(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":  # not the server's own lifespan startup
                reached.set()
            await app(scope, receive, send)

        return first_request_seen

    with serve(wrap=wrap) as url:
        proc = subprocess.Popen(
            cli_command(url, tmp_path, levels="core"),
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert reached.wait(120)
        finally:
            proc.kill()
            proc.wait(60)

    report = (tmp_path / "conformance.md").read_text()
    assert "earlier run" not in report
    assert f"**Result: 0 passed, 0 failed, 0 skipped; {NOT_ENDED}**" in report
    junit = ET.parse(tmp_path / "conformance.xml").getroot()
    interrupted = junit.find(".//property[@name='Interrupted']")
    assert interrupted is not None and interrupted.get("value") == NOT_ENDED


@pytest.mark.parametrize(
    ("reader", "unbuffered"), [("one line", False), ("none", True)], ids=["one line", "none"]
)
def test_a_reader_that_leaves_early_changes_neither_the_status_nor_the_files(
    tmp_path: Path, reader: str, unbuffered: bool
) -> None:
    """``kruise-agents conformance ... | head -1`` (or ``| true``): exit 0 when every check
    passed, as unpiped (1 would say one failed), nothing printed about the pipe, and both
    reports written whole. Output buffered, as a shell runs it (EPIPE then meets the flush
    at exit), and unbuffered (``PYTHONUNBUFFERED``, as some environments set it: every
    write meets it)."""
    env = clean_env({"COLUMNS": "200"})
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with (
        serve() as url,
        subprocess.Popen(
            cli_command(url, tmp_path, levels="core"),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None and proc.stderr is not None
        if reader == "one line":
            proc.stdout.readline()
        proc.stdout.close()  # the reader is gone: the next write meets EPIPE
        errors = proc.stderr.read()
        proc.wait(300)

    assert proc.returncode == 0, errors
    assert errors == ""
    results = read_junit(tmp_path / "conformance.xml")
    assert results and all(r.status == "pass" for r in results.values())
    core = sum(1 for c in CHECKS if c.level == "core")
    assert (
        f"**Result: {core} passed, 0 failed, 0 skipped**"
        in (tmp_path / "conformance.md").read_text()
    )


def test_without_a_sandbox_url_the_reports_say_the_sdk_chooses_not_per_sandbox_hosts(
    tmp_path: Path,
) -> None:
    """Without ``--sandbox-url`` the suite reaches a sandbox where the installed SDK does
    (docs/conformance.md): ``https://sandbox.<domain>`` for E2B's own domains, routed by
    headers. The reports' ``Sandbox URL`` said "(per-sandbox hosts)", wrong for the E2B
    cloud, the run that most often has no sandbox URL."""
    report, junit = tmp_path / "r.md", tmp_path / "r.xml"
    run_refused("--levels", "kruise", "--report", str(report), "--junit", str(junit))
    said = "(none: where the installed SDK sends each sandbox's traffic)"
    assert f"- **Sandbox URL**: {said}" in report.read_text()
    (prop,) = [p for p in ET.parse(junit).iter("property") if p.get("name") == "Sandbox URL"]
    assert prop.get("value") == said
