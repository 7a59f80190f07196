"""The ``kruise-agents`` command (also ``python -m pytest_kruise_agents``).

Every usage error is one ``error:`` line on stderr and exit status 2, as the
commands' own checks of their options are (``error: --port: must be between
0 and 65535, got 70000``): Typer's framed panels are for ``--help``, which
falls back to Click's plain layout in a terminal too narrow for them.
"""

from __future__ import annotations

import math
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from typer.core import TyperCommand, TyperGroup

from pytest_kruise_agents.pipes import stdout_reader_may_leave

__all__ = ["RICH_HELP_MIN_WIDTH", "app", "main", "usage_error_line", "usage_line"]

RICH_HELP_MIN_WIDTH: Final = 80
"""Narrowest terminal that gets rich's framed ``--help``; a narrower one gets Click's plain help.

Rich fits a table to the width by cropping its cells with "…" (``--max-…``
for both ``--max-cold`` and ``--max-failed`` at 40 columns, a default value
cut at 70), and Typer offers no minimum width for its columns. Click's plain
layout wraps the help text instead and never cuts an option's name.
"""

_CLICK_MESSAGES: Final = (
    # Click's wording of its usage errors, rewritten to this command's `--option: reason`.
    (re.compile(r"Missing option '(?P<opt>[^']+)'(?P<env>.*?)\.?$"), "{opt}: required{env}"),
    (re.compile(r"Missing argument '(?P<opt>[^']+)'\.?$"), "{opt}: required"),
    (re.compile(r"No such option: (?P<opt>\S+)(?P<env>.*)$"), "{opt}: no such option{env}"),
    (re.compile(r"Invalid value for '(?P<opt>[^']+)': (?P<env>.*)$"), "{opt}: {env}"),
    (re.compile(r"Option '(?P<opt>[^']+)' (?P<env>.*)$"), "{opt}: {env}"),
)


def usage_line(message: str, command_path: str | None = None) -> str:
    """The one ``error:`` line of a usage error whose message Click (or Typer) wrote.

    ``Missing option '--template'.`` becomes ``error: --template: required``;
    a message of another form is kept, on one line. ``command_path`` adds
    where to find the options (``see 'kruise-agents plan --help'``).
    """
    text = " ".join(message.split())
    for pattern, form in _CLICK_MESSAGES:
        found = pattern.match(text)
        if found is not None:
            text = form.format(opt=found["opt"], env=found["env"] if "env" in form else "")
            break
    text = text.replace(" Did you mean", "; did you mean")
    text = re.sub(r" \(env var: '([^']+)'\)", r": pass it or set \1", text)
    hint = f" (see '{command_path} --help')" if command_path else ""
    return f"error: {text}{hint}"


def usage_error_line(error: Exception) -> str:
    """The one ``error:`` line of Click's (or Typer's copy of Click's) usage error ``error``.

    A missing or bad option or argument is named from the parameter itself, not
    from Click's sentence, whose wording moved between versions: an argument's
    metavar (``SCENARIO``) or its name, the ``(env var: ...)`` hint present,
    absent or ``'None'``. Every other error goes through :func:`usage_line`.
    """
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else None
    hint = f" (see '{path} --help')" if path else ""
    param = getattr(error, "param", None)
    kind = type(error).__name__
    message = str(getattr(error, "message", "") or "")
    if param is not None and getattr(error, "param_hint", None) is None:
        flags = [opt for opt in getattr(param, "opts", ()) if opt.startswith("--")]
        name = flags[0] if flags else param.name
        if kind == "MissingParameter" and not message:
            envvar = getattr(param, "envvar", None)
            env = f": pass it or set {envvar}" if isinstance(envvar, str) and envvar else ""
            return f"error: {name}: required{env}{hint}"
        if kind == "BadParameter" and message:
            return f"error: {name}: {' '.join(message.split())}{hint}"
    return usage_line(str(getattr(error, "format_message", error.__str__)()), path)


def _narrow() -> bool:
    """Whether the terminal (or ``COLUMNS``, ``TERMINAL_WIDTH``) is too narrow for rich's help."""
    from rich.console import Console
    from typer import rich_utils

    return Console(width=rich_utils.MAX_WIDTH).width < RICH_HELP_MIN_WIDTH


class _Command(TyperCommand):
    """A subcommand whose ``--help`` is plain in a narrow terminal (see :data:`RICH_HELP_MIN_WIDTH`)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if _narrow():
            self.rich_markup_mode = None  # Typer's switch to Click's own layout
        super().format_help(ctx, formatter)


class _Group(TyperGroup):
    """The ``kruise-agents`` group: one-line usage errors, help that fits the terminal."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if _narrow():
            self.rich_markup_mode = None
        super().format_help(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # Click's plain list cuts each command's line to the width with "...": the whole
        # first line of its help, wrapped, says what it does.
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        *rest: Any,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, *rest, **extra)
        # A reader that leaves (`kruise-agents demo | head -1`) ends only the printing:
        # Click, Typer and rich would exit 1 on the closed pipe, silently.
        with stdout_reader_may_leave():
            try:
                code = super().main(args, prog_name, complete_var, False, *rest, **extra)
            except typer.Abort:
                typer.echo("Aborted.", err=True)
                sys.exit(1)
            except Exception as exc:
                # Click's (or, from Typer 0.22, Typer's own copy of Click's) ClickException:
                # not exported by every version under one name, so known by what it has.
                exit_code = getattr(exc, "exit_code", None)
                if not isinstance(exit_code, int) or not hasattr(exc, "format_message"):
                    raise
                typer.echo(usage_error_line(exc), err=True)
                sys.exit(exit_code)
        # Without standalone mode a command's return value comes back (these return None)
        # and typer.Exit's code too.
        sys.exit(code if isinstance(code, int) else 0)


def _require_simulator() -> None:
    """Exit 2 with one ``error:`` line if a project's own ``simulator`` hides the fake cluster's.

    ``python -m pytest_kruise_agents`` puts the current directory first on
    ``sys.path``: a ``simulator.py`` there would otherwise fail the command deep
    inside with ``No module named 'simulator.cluster'``.
    """
    from pytest_kruise_agents.shadowing import shadowing_simulator

    problem = shadowing_simulator()
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


# Every command's help is given with help=, not taken from its docstring, which
# python -OO (PYTHONOPTIMIZE=2) strips.
app = typer.Typer(
    cls=_Group,
    help="pytest-kruise-agents: the OpenKruise Agents claim system on a fake cluster.",
)


@app.command(cls=_Command, help="Run the demo on the embedded fake cluster.")
def demo(seed: int = typer.Option(42, help="Seed of the fake cluster (0 or more).")) -> None:
    # Checked before anything runs: the capacity plan, the last section, takes no
    # negative seed, and would refuse it only after the other sections had run.
    if seed < 0:
        typer.echo(f"error: --seed: must be 0 or more, got {seed}", err=True)
        raise typer.Exit(2)
    _require_simulator()
    from pytest_kruise_agents.demo import run_demo

    run_demo(seed=seed)


@app.command(
    cls=_Command,
    help="Serve the E2B API over the fake cluster; print the environment a client exports.",
)
def serve(
    # Text, not a Path: Path("") is ".", which would be read as a config file.
    config: Annotated[
        str | None,
        typer.Option(
            metavar="<path>", help="Cluster config file (YAML); the default cluster if omitted."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind; 0 picks a free port.")] = 8080,
    clock: Annotated[
        str | None,
        typer.Option(help="realtime or virtual (default: the config's, else realtime)."),
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="Virtual seconds per wall second (realtime).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of the fake cluster (0 or more).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    _require_simulator()
    from pytest_kruise_agents.e2b.config import ConfigError
    from pytest_kruise_agents.e2b.serve import BuildError, ServeOptions
    from pytest_kruise_agents.e2b.serve import serve as run_server

    if config == "":
        # A script's `--config "$CFG"` with CFG unset: not the default cluster in silence.
        typer.echo("error: --config: must not be empty", err=True)
        raise typer.Exit(2)
    if clock not in (None, "realtime", "virtual"):
        typer.echo(f"error: --clock: must be realtime or virtual, got {clock!r}", err=True)
        raise typer.Exit(2)
    opts = ServeOptions(
        config=None if config is None else Path(config),
        host=host,
        port=port,
        clock=clock,  # type: ignore[arg-type]
        speed=speed,
        seed=seed,
        log_level=log_level,
    )
    try:
        run_server(opts)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except BuildError as exc:
        # A bug, not the user's mistake: its traceback for a report (plain, not rich's
        # pages of frames), then the one line that says what happened.
        traceback.print_exception(exc.cause, file=sys.stderr)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


@app.command(cls=_Command, help="Print the version.")
def version() -> None:
    from pytest_kruise_agents import __version__

    typer.echo(__version__)


# -- capacity planning (simulator.planning): simulate, plan, sweep -------------------------

_Workers = Annotated[int, typer.Option(min=1, help="Worker processes for the runs.")]
_Dask = Annotated[
    str | None, typer.Option("--dask", help="Run on a Dask scheduler at this address.")
]
_Seed = Annotated[int | None, typer.Option(help="Seed (default: the scenario's).")]
_Scenario = Annotated[
    str, typer.Argument(help="Scenario file (YAML), or a shipped scenario by name (steady, ...).")
]
_Reps = Annotated[int | None, typer.Option("--replications", min=1, help="Replications per point.")]
# Text, not a Path: Path("") is ".", and an empty --out must be refused, not read as the
# current directory (whose claims.csv and summary.json the run would replace).
_Out = Annotated[str | None, typer.Option("--out", help="Output directory.")]
_ClaimsCsv = Annotated[bool, typer.Option("--claims-csv", help="Write claims.csv.")]
_Set = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field: path=value (repeatable).")
]


def _out_dir(out: str | None) -> Path | None:
    """``--out`` as a folder (``None``: the command's default); exit 2 if it is empty."""
    if out == "":
        typer.echo("error: --out: must not be empty", err=True)
        raise typer.Exit(2)
    return None if out is None else Path(out)


@app.command(
    cls=_Command, help="Run a scenario; print the summary; write summary.json and report.html."
)
def simulate(
    scenario: _Scenario,
    seed: _Seed = None,
    replications: _Reps = None,
    workers: _Workers = 1,
    dask: _Dask = None,
    out: _Out = None,
    claims_csv: _ClaimsCsv = False,
    set_: _Set = None,
) -> None:
    _require_simulator()
    from simulator.planning.commands import RunOptions, simulate_command

    opts = RunOptions(seed, replications, workers, dask, _out_dir(out), claims_csv, set_ or [])
    raise typer.Exit(simulate_command(scenario, opts))


@app.command(
    cls=_Command, help="Find the smallest pool meeting the goals; Erlang's answer next to it."
)
def plan(
    scenario: _Scenario,
    pool: Annotated[str, typer.Option(help="The pool (SandboxSet name) to size.")],
    slo: Annotated[str | None, typer.Option(help="Latency goal, e.g. 'p99<1s'.")] = None,
    max_cold: Annotated[
        str | None, typer.Option("--max-cold", help="Largest cold share, e.g. 1%.")
    ] = None,
    max_failed: Annotated[
        str | None,
        typer.Option(
            "--max-failed", help="Largest failed share, e.g. 0.1% (replaces the scenario's)."
        ),
    ] = None,
    size_range: Annotated[
        str | None, typer.Option("--range", help="Pool sizes to search, LOW:HIGH.")
    ] = None,
    seed: _Seed = None,
    replications: _Reps = None,
    workers: _Workers = 1,
    dask: _Dask = None,
    out: _Out = None,
    claims_csv: Annotated[
        bool, typer.Option("--claims-csv", help="Write claims.csv (the runs at the answer).")
    ] = False,
    set_: _Set = None,
) -> None:
    _require_simulator()
    from simulator.planning.commands import RunOptions, plan_command

    opts = RunOptions(seed, replications, workers, dask, _out_dir(out), claims_csv, set_ or [])
    code = plan_command(
        scenario,
        opts,
        pool=pool,
        slo=slo,
        max_cold=max_cold,
        max_failed=max_failed,
        size_range=size_range,
    )
    raise typer.Exit(code)


@app.command(
    cls=_Command, help="Run every combination of the --set values; one table, comparative plots."
)
def sweep(
    scenario: _Scenario,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Sweep a field: path=v1,v2,... (default: the scenario's sweep)."
        ),
    ] = None,
    seed: _Seed = None,
    replications: _Reps = None,
    workers: _Workers = 1,
    dask: _Dask = None,
    out: _Out = None,
    claims_csv: _ClaimsCsv = False,
) -> None:
    _require_simulator()
    from simulator.planning.commands import RunOptions, sweep_command

    opts = RunOptions(seed, replications, workers, dask, _out_dir(out), claims_csv, set_ or [])
    raise typer.Exit(sweep_command(scenario, opts))


# -- conformance suite (pytest_kruise_agents.conformance) ----------------------------------


@app.command(
    cls=_Command,
    help="Check an E2B-compatible server, check by check; print a pass/fail/skip table.",
)
def conformance(
    api_url: Annotated[
        str, typer.Option("--api-url", envvar="E2B_API_URL", help="Base URL of the E2B API.")
    ],
    template: Annotated[str, typer.Option("--template", help="A template with ready sandboxes.")],
    api_key: Annotated[
        str, typer.Option("--api-key", envvar="E2B_API_KEY", help="API key of the checks.")
    ] = "",
    sandbox_url: Annotated[
        str | None,
        typer.Option(
            "--sandbox-url",
            envvar="E2B_SANDBOX_URL",
            help="One URL for all sandbox traffic (header routing); default: where the installed "
            "SDK sends it for the sandbox's domain.",
        ),
    ] = None,
    domain: Annotated[
        str | None, typer.Option("--domain", envvar="E2B_DOMAIN", help="Sandbox domain.")
    ] = None,
    code_template: Annotated[
        str, typer.Option("--code-template", help="A template running the code interpreter.")
    ] = "code-interpreter-v1",
    no_stock_template: Annotated[
        str | None,
        typer.Option("--no-stock-template", help="A template with no ready sandbox."),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            envvar="KRUISE_ADMIN_KEY",
            help="Key of the server's admin clock, if it has one (default: the API key).",
        ),
    ] = None,
    levels: Annotated[
        str, typer.Option("--levels", help="Comma-separated levels to run.")
    ] = "core,lifecycle,envd,code,kruise",
    list_settle: Annotated[
        float | None,
        typer.Option(
            "--list-settle",
            metavar="SECONDS",
            help="Wall seconds a list check asks again for the change it waits for (default: 10).",
        ),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            "--request-timeout",
            metavar="SECONDS",
            help="Seconds each request, and each cleanup's DELETE, waits for an answer "
            "(default: 60).",
        ),
    ] = None,
    # Paths taken as text: Path("") is ".", and an empty value must be refused, not read
    # as the current directory.
    junit: Annotated[
        str | None, typer.Option("--junit", help="Write JUnit XML (one testcase per check).")
    ] = None,
    report: Annotated[
        str | None, typer.Option("--report", help="Write the Markdown report.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="A line per check, and tracebacks of failures.")
    ] = False,
) -> None:
    from pytest_kruise_agents.conformance.registry import parse_levels
    from pytest_kruise_agents.conformance.runner import RunOptions as ConformanceOptions
    from pytest_kruise_agents.conformance.runner import run as run_conformance

    given = {
        "--api-url": api_url,
        "--template": template,
        "--sandbox-url": sandbox_url,
        "--domain": domain,
        "--code-template": code_template,
        "--no-stock-template": no_stock_template,
        "--admin-key": admin_key,
        "--levels": levels,
        "--junit": junit,
        "--report": report,
    }
    for option, value in given.items():
        # A script's `--template "$T"` with T unset: its own default or the environment's
        # value in its place would check what was never asked for. An empty --api-key is
        # meaningful (no key), and is passed on as such.
        if value == "":
            typer.echo(f"error: {option}: must not be empty", err=True)
            raise typer.Exit(2)
    try:
        parse_levels(levels)
    except ValueError as exc:
        typer.echo(f"error: --{exc}", err=True)
        raise typer.Exit(2) from None
    if list_settle is not None and not 0 <= list_settle < math.inf:
        typer.echo(
            f"error: --list-settle: must be a number of seconds >= 0, got {list_settle:g}",
            err=True,
        )
        raise typer.Exit(2)
    if request_timeout is not None and not 0 < request_timeout < math.inf:
        typer.echo(
            f"error: --request-timeout: must be a number of seconds > 0, got {request_timeout:g}",
            err=True,
        )
        raise typer.Exit(2)
    opts = ConformanceOptions(
        api_url=api_url,
        api_key=api_key,
        template=template,
        sandbox_url=sandbox_url,
        domain=domain,
        code_template=code_template,
        no_stock_template=no_stock_template,
        admin_key=admin_key,
        levels=levels,
        list_settle=list_settle,
        request_timeout=request_timeout,
        junit=None if junit is None else Path(junit),
        report=None if report is None else Path(report),
        verbose=verbose,
    )
    raise typer.Exit(run_conformance(opts))


def main() -> None:
    """Entry point of the console script."""
    app()
