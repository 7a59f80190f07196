"""The ``kruise-agents`` command."""

from __future__ import annotations

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
def version() -> None:
    """Print the version."""
    from pytest_kruise_agents import __version__

    typer.echo(__version__)


def main() -> None:
    """Entry point of the console script."""
    app()
