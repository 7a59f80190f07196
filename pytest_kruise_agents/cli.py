"""The ``kruise-agents`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    help="pytest-kruise-agents: the OpenKruise Agents claim system on a fake cluster."
)


@app.command()
def demo(seed: int = typer.Option(42, help="Seed of the fake cluster.")) -> None:
    """Run the demo on the embedded fake cluster."""
    from pytest_kruise_agents.demo import run_demo

    run_demo(seed=seed)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(help="Cluster config file (YAML); the default cluster if omitted."),
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
    seed: Annotated[int | None, typer.Option(help="Seed of the fake cluster.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the E2B API over the fake cluster; print the environment a client exports."""
    from pytest_kruise_agents.e2b.config import ConfigError
    from pytest_kruise_agents.e2b.serve import ServeOptions
    from pytest_kruise_agents.e2b.serve import serve as run_server

    if clock not in (None, "realtime", "virtual"):
        typer.echo(f"error: --clock: must be realtime or virtual, got {clock!r}", err=True)
        raise typer.Exit(2)
    opts = ServeOptions(
        config=config,
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
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def version() -> None:
    """Print the version."""
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
_Out = Annotated[Path | None, typer.Option("--out", help="Output directory.")]
_ClaimsCsv = Annotated[bool, typer.Option("--claims-csv", help="Write claims.csv.")]
_Set = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field: path=value (repeatable).")
]


@app.command()
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
    """Run a scenario; print the summary; write summary.json and report.html."""
    from simulator.planning.commands import RunOptions, simulate_command

    opts = RunOptions(seed, replications, workers, dask, out, claims_csv, set_ or [])
    raise typer.Exit(simulate_command(scenario, opts))


@app.command()
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
    """Find the smallest pool meeting the goals; Erlang's answer next to it."""
    from simulator.planning.commands import RunOptions, plan_command

    opts = RunOptions(seed, replications, workers, dask, out, claims_csv, set_ or [])
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


@app.command()
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
    """Run every combination of the --set values; one table, comparative plots."""
    from simulator.planning.commands import RunOptions, sweep_command

    opts = RunOptions(seed, replications, workers, dask, out, claims_csv, set_ or [])
    raise typer.Exit(sweep_command(scenario, opts))


# -- conformance suite (pytest_kruise_agents.conformance) ----------------------------------


@app.command()
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
            help="One URL for all sandbox traffic (header routing); default per-sandbox hosts.",
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
        typer.Option("--admin-key", help="Key of the server's admin clock, if it has one."),
    ] = None,
    levels: Annotated[
        str, typer.Option("--levels", help="Comma-separated levels to run.")
    ] = "core,lifecycle,envd,code,kruise",
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML (one testcase per check).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the Markdown report.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="A line per check, and tracebacks of failures.")
    ] = False,
) -> None:
    """Check an E2B-compatible server, check by check; print a pass/fail/skip table."""
    from pytest_kruise_agents.conformance.registry import parse_levels
    from pytest_kruise_agents.conformance.runner import RunOptions as ConformanceOptions
    from pytest_kruise_agents.conformance.runner import run as run_conformance

    try:
        parse_levels(levels)
    except ValueError as exc:
        typer.echo(f"error: --{exc}", err=True)
        raise typer.Exit(2) from None
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
        junit=junit,
        report=report,
        verbose=verbose,
    )
    raise typer.Exit(run_conformance(opts))


def main() -> None:
    """Entry point of the console script."""
    app()
