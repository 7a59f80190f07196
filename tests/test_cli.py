"""The ``kruise-agents`` command itself: one-line usage errors, help that fits, ``python -m``."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pytest_kruise_agents.cli import usage_error_line, usage_line

KRUISE_AGENTS = Path(sys.executable).with_name("kruise-agents")
COMMANDS = ["", "demo", "serve", "version", "simulate", "plan", "sweep", "conformance"]


def run(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``kruise-agents`` with ``args``, its output captured (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("E2B_", "COLUMNS"))}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [str(KRUISE_AGENTS), *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["conformance", "--api-url", "http://127.0.0.1:9"],
            "error: --template: required (see 'kruise-agents conformance --help')",
        ),
        (
            ["conformance", "--template", "base"],
            "error: --api-url: required: pass it or set E2B_API_URL "
            "(see 'kruise-agents conformance --help')",
        ),
        (
            ["conformance", "--api-url", "http://127.0.0.1:9", "--template", "b", "--foo"],
            "error: --foo: no such option (see 'kruise-agents conformance --help')",
        ),
        (["plan", "steady"], "error: --pool: required (see 'kruise-agents plan --help')"),
        (["simulate"], "error: scenario: required (see 'kruise-agents simulate --help')"),
        (["nosuch"], "error: No such command 'nosuch'. (see 'kruise-agents --help')"),
    ],
    ids=["missing-template", "missing-url", "unknown-option", "missing-pool", "no-arg", "no-cmd"],
)
def test_a_usage_error_is_one_error_line_and_exit_2(args: list[str], line: str) -> None:
    """As the commands' own checks say it (``error: --port: ...``): no framed panel."""
    proc = run(*args, columns=200)

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == line + "\n"


@pytest.mark.parametrize(
    "args",
    [["serve", "--port", "abc"], ["sweep", "s", "--workers", "0"], ["serve", "--seed", "-5"]],
)
def test_a_bad_value_names_its_option_in_one_line(args: list[str]) -> None:
    proc = run(*args, columns=200)

    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {args[-2]}: ")
    assert proc.stderr.count("\n") == 1


def test_click_messages_become_the_option_and_the_reason() -> None:
    assert usage_line("Missing option '--pool'.") == "error: --pool: required"
    assert usage_line("No such option: --levl Did you mean --levels?", "k conformance") == (
        "error: --levl: no such option; did you mean --levels? (see 'k conformance --help')"
    )
    assert usage_line("Option '--seed' requires an argument.") == (
        "error: --seed: requires an argument."
    )
    assert usage_line("Something\nelse") == "error: Something else"


@pytest.mark.parametrize(
    ("param", "line"),
    [
        (click.Argument(["scenario"], metavar="SCENARIO"), "error: scenario: required"),
        (
            click.Option(["--api-url"], envvar="E2B_API_URL"),
            "error: --api-url: required: pass it or set E2B_API_URL",
        ),
        (
            click.Option(["--api-url"], envvar="E2B_API_URL", show_envvar=True),
            "error: --api-url: required: pass it or set E2B_API_URL",
        ),
        (click.Option(["--pool", "-p"]), "error: --pool: required"),
        (click.Option(["-p", "--pool"]), "error: --pool: required"),
    ],
    ids=["argument-metavar", "envvar-unshown", "envvar-shown", "short-flag", "short-flag-first"],
)
def test_a_missing_parameter_is_named_from_the_parameter_not_click_s_sentence(
    param: click.Parameter, line: str
) -> None:
    """Click's sentence moved between versions (the metavar ``SCENARIO`` or the name, the env
    var in it or not, ``(env var: 'None')``): the line is built from the parameter."""
    assert usage_error_line(click.MissingParameter(param=param)) == line
    bad = click.BadParameter("must be\n0 or more", param=param)
    assert usage_error_line(bad) == f"error: {line.split()[1]} must be 0 or more"


@pytest.mark.parametrize("columns", [40, None], ids=["40-columns", "redirected"])
def test_no_help_cuts_an_option_name_or_a_word(columns: int | None) -> None:
    """Rich crops cells that do not fit (``--max-…`` for both --max-cold and --max-failed at
    40 columns): a narrow terminal gets Click's plain layout, which wraps instead."""
    for command in COMMANDS:
        proc = run(*([command] if command else []), "--help", columns=columns)
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout, (command, proc.stdout)
    plan = run("plan", "--help", columns=columns).stdout
    assert "--max-cold" in plan and "--max-failed" in plan
    # Each command's line in the list is whole (Click's own list would end it in "...").
    listed = " ".join(run("--help", columns=columns).stdout.replace("│", " ").split())
    assert "print the environment a client exports." in listed


def test_a_terminal_of_80_columns_gets_the_framed_help() -> None:
    """80 columns is the narrowest that gets rich's panels (``RICH_HELP_MIN_WIDTH``)."""
    framed = run("plan", "--help", columns=80).stdout
    plain = run("plan", "--help", columns=79).stdout
    assert "╭" in framed and "…" not in framed
    assert "╭" not in plain and "--max-failed" in plain


def test_serve_binds_loopback_port_8080_by_default() -> None:
    """The address README.md's exports name (``E2B_API_URL=http://127.0.0.1:8080``)."""
    helped = run("serve", "--help", columns=200).stdout
    assert re.search(r"--host\s.*\[default: 127\.0\.0\.1\]", helped)
    assert re.search(r"--port\s.*\[default: 8080\]", helped)


def test_in_a_terminal_the_help_keeps_its_colours() -> None:
    """The command's stdout wrapper (for a reader that leaves) still says it is a terminal."""
    master, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env |= {"TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [str(KRUISE_AGENTS), "--help"], stdin=child, stdout=child, stderr=child, env=env
    )
    os.close(child)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the command has closed the terminal
        while chunk := os.read(master, 65536):
            shown += chunk
    os.close(master)
    assert proc.wait(60) == 0
    assert b"\x1b[" in shown and b"Usage" in shown


def test_python_dash_m_runs_the_same_command() -> None:
    """``python -m pytest_kruise_agents``: the command where its script is not on PATH."""
    version = subprocess.run(
        [sys.executable, "-m", "pytest_kruise_agents", "version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    helped = subprocess.run(
        [sys.executable, "-m", "pytest_kruise_agents", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )

    assert version.returncode == 0 and version.stdout == run("version").stdout
    assert helped.returncode == 0
    assert "python -m pytest_kruise_agents [OPTIONS] COMMAND" in helped.stdout
    assert "conformance" in helped.stdout


@pytest.mark.parametrize(
    "args", [["demo"], ["serve", "--port", "0"], ["simulate", "steady"], ["sweep", "steady"]]
)
def test_a_project_simulator_in_the_current_directory_is_one_error_line(
    tmp_path: Path, args: list[str]
) -> None:
    """``python -m`` puts the current directory first: its ``simulator.py`` would hide ours."""
    mine = tmp_path / "simulator.py"
    mine.write_text("def simulate():\n    return 1\n")

    proc = subprocess.run(
        [sys.executable, "-m", "pytest_kruise_agents", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    still = subprocess.run(
        [sys.executable, "-m", "pytest_kruise_agents", "version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(
        f"error: the top-level name 'simulator' is taken by the module {mine}, which hides"
    )
    assert proc.stderr.count("\n") == 1
    assert still.returncode == 0  # a command that needs no simulator runs


@pytest.mark.parametrize("command", ["", "simulate"], ids=["group", "simulate"])
def test_help_is_the_same_under_python_dash_OO(command: str) -> None:
    """``-OO`` strips docstrings: no command's description may come from one.

    The group's help lists every command with its description; a command's
    own help shows the same text in full.
    """

    def helped(*flags: str) -> str:
        args = [sys.executable, *flags, "-m", "pytest_kruise_agents", *command.split(), "--help"]
        env = {**os.environ, "COLUMNS": "100"}
        env.pop("PYTHONOPTIMIZE", None)
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    optimized = helped("-OO")

    assert optimized == helped()
    if not command:
        for name in COMMANDS[1:]:
            line = next(li for li in optimized.splitlines() if li.strip("│ ").startswith(name))
            assert len(line.strip("│ ").split()) > 1, line  # the name and its description


@pytest.mark.parametrize(
    ("args", "buffered"),
    [
        (["version"], True),
        (["version"], False),
        (["--help"], True),
        (["conformance", "--help"], True),
        (["demo"], True),
    ],
    ids=["version", "version-unbuffered", "--help", "conformance --help", "demo"],
)
def test_a_reader_that_left_ends_only_the_printing(
    tmp_path: Path, args: list[str], buffered: bool
) -> None:
    """``kruise-agents demo | head -1``: exit 0 and no message, as the planning and
    conformance commands do; not exit 1 in silence (Click, Typer and rich on ``EPIPE``).

    Buffered, as a shell runs it: what is still buffered for the gone reader is flushed at
    exit, and must go somewhere (else ``Exception ignored ... BrokenPipeError`` and exit
    120). With ``PYTHONUNBUFFERED`` set, as some environments have it, every write fails at
    once and nothing is left for the exit, so that case alone cannot show it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    # The demo's capacity plan leaves its folder for the user, here in tmp_path.
    env["TMPDIR"] = str(tmp_path)
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line: every write fails
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_kruise_agents", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            # A hang guard: the demo runs its whole tour unprinted (9 s on a quiet 2-CPU
            # machine, over 120 s beside a dozen busy processes), as in tests/test_demo.py.
            timeout=300,
            env=env,
        )
    finally:
        os.close(write)

    assert (proc.returncode, proc.stderr) == (0, "")
