"""The ``simulate``, ``plan`` and ``sweep`` commands, minus argument parsing.

The CLI (``pytest_kruise_agents.cli``) parses options and calls these; each
loads the scenario, runs it on the chosen executor with a progress bar,
writes ``summary.json``, ``report.html`` (and ``claims.csv`` when asked),
prints a table and returns the exit code:

``0``   done (``plan``: a size meets the goals; ``sweep``: at least one point
        ran, whether or not others do not fit on the nodes);
``1``   ``plan`` found no size in the range that meets the goals; ``sweep``
        found no point that fits on the nodes (each one's reason is written);
``2``   bad input (the message names the file or option, the field and the reason),
        including an ``--out`` that cannot be written;
``130`` interrupted with Ctrl-C (``143`` SIGTERM, ``129`` SIGHUP): partial
        results were written.

The files are written before anything is printed, and a reader that leaves
early (``| head -1``) only ends the printing: the files and the exit status
are the same whoever reads the tables.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from simulator.planning.analytic import (
    ERLANG_C_ORDER,
    AnalyticEstimate,
    Slo,
    analytic_estimate,
    parse_max_share,
    parse_slo,
)
from simulator.planning.consoles import PipeSafeConsole
from simulator.planning.diagnose import check_goals, limits
from simulator.planning.errors import PlanningError
from simulator.planning.executors import Executor, StopSignals, make_executor, signals_stop
from simulator.planning.figures import three_figures
from simulator.planning.formatting import METRIC_ROWS, POOL_ROWS, fmt_estimate, fmt_value, label_of
from simulator.planning.loading import load_scenario
from simulator.planning.metrics import RunResult
from simulator.planning.outputs import check_out_dir, summary_payload, write_outputs
from simulator.planning.overrides import Axis, apply_overrides, canonical_path, parse_axis
from simulator.planning.plan import MAX_REPLICAS, Candidate, Goal, PlanResult, plan
from simulator.planning.report import render_report
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate
from simulator.planning.study import (
    NO_POINT_FITS,
    Point,
    PointSummary,
    UnfitPoint,
    grid,
    run_points,
    run_study,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_MET",
    "EXIT_OK",
    "RunOptions",
    "parse_range",
    "plan_command",
    "simulate_command",
    "sweep_command",
]

EXIT_OK = 0
EXIT_NOT_MET = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


@dataclass
class RunOptions:
    """Options every command shares."""

    seed: int | None = None
    replications: int | None = None
    workers: int = 1
    dask: str | None = None
    out: Path | None = None
    claims_csv: bool = False
    sets: Sequence[str] = ()


def _load(path: str, opts: RunOptions) -> Scenario:
    scenario = load_scenario(path)
    changes: list[tuple[str, Any]] = []
    typed: list[str] = []
    for text in opts.sets:
        axis = parse_axis(text)
        if len(axis.values) != 1:
            raise PlanningError(f"--set {text}: give one value here (sweep takes several)")
        changes.append((axis.path, axis.values[0]))
        typed.append(f"--set {text}")
    if opts.seed is not None:
        changes.append(("seed", opts.seed))
        typed.append(f"--seed {opts.seed}")
    if opts.replications is not None:
        changes.append(("replications", opts.replications))
        typed.append(f"--replications {opts.replications}")
    return apply_overrides(scenario, changes, typed=typed)


def _out_dir(opts: RunOptions, scenario: Scenario, command: str) -> Path:
    if opts.out is not None:
        return opts.out
    # The name is free text: only its safe characters name a folder, which
    # stays inside kruise-agents-out whatever the name says ("../x", "/etc").
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario.name).strip("._") or "scenario"
    return Path("kruise-agents-out") / f"{safe}-{command}"


def _animates(console: Console) -> bool:
    """Whether progress is drawn as a live bar: on a real terminal only.

    ``FORCE_COLOR`` (which CI jobs set for coloured logs) makes rich take a pipe
    for a terminal: colour is welcome there, redrawn frames are not, so the
    stream must be a tty too, unless rich's own ``TTY_INTERACTIVE=1`` asks for
    animation. Otherwise the runs are logged a line each.
    """
    if not console.is_interactive:
        return False  # not a terminal, TERM=dumb, or TTY_INTERACTIVE=0
    if os.environ.get("TTY_INTERACTIVE") == "1":
        return True
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


class _Bar:
    """A rich progress bar over runs (a fraction for the run in progress when known)."""

    def __init__(self, console: Console, total: int | None, what: str) -> None:
        self.animated = _animates(console)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not self.animated,
        )
        # Escaped: the column reads markup, and a scenario name is the user's text.
        self.task = self.progress.add_task(escape(what), total=total)
        self.console = console
        self.fractions: dict[tuple[int, int], float] = {}
        self.batch = 0
        self.done = 0

    def new_batch(self, size: int) -> None:
        self.batch += 1
        task = self.progress.tasks[0]
        if task.total is not None:
            self.progress.update(self.task, total=max(task.total, self.done + size))

    def on_progress(self, index: int, fraction: float) -> None:
        key = (self.batch, index)
        if key not in self.fractions and not self.animated:
            # Without a bar, a log line per run.
            self.console.print(f"run {len(self.fractions) + 1} under way")
        self.fractions[key] = fraction
        self.progress.update(self.task, completed=sum(self.fractions.values()))

    def on_result(self, result: RunResult) -> None:
        self.fractions[(self.batch, result.index)] = 1.0
        self.done += 1
        self.progress.update(self.task, completed=sum(self.fractions.values()))
        if not self.animated:
            state = "stopped early" if result.interrupted else "done"
            self.console.print(
                f"run {self.done} {state} ({result.metrics.get('claims') or 0:,.0f} claims, "
                f"{result.wall_s:.1f}s)"
            )


def _consoles(console: Console | None) -> tuple[Console, Console]:
    """The console for the tables (stdout) and the one for progress and errors (stderr).

    Both go quiet when their reader leaves (``| head -1``) instead of ending
    the command: see :class:`PipeSafeConsole`.
    """
    if console is not None:
        return console, console
    return PipeSafeConsole(soft_wrap=True), PipeSafeConsole(stderr=True, soft_wrap=True)


@contextmanager
def _running(console: Console, total: int | None, what: str) -> Iterator[_Bar]:
    bar = _Bar(console, total, what)
    with bar.progress:
        if not bar.animated:
            # No bar without a terminal: one line says the runs have started
            # (and that Ctrl-C now stops them cleanly).
            console.print(
                f"{what}: {total if total is not None else 'several'} run(s) started",
                markup=False,
                highlight=False,
            )
        yield bar


def _exit_code(caught: StopSignals, partial: bool, done: int) -> int:
    """The stop signal's code (130, 143, 129) when one came, else 130 for a cut batch, else ``done``.

    A signal that came while the files were written (the runs had all ended)
    still says the command was stopped.
    """
    if caught.exit_code is not None:
        return caught.exit_code
    return EXIT_INTERRUPTED if partial else done


def _metrics_table(title: str, summary: PointSummary) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("metric", overflow="fold")
    table.add_column("mean [95% interval]", justify="right", overflow="fold")
    for metric, label in METRIC_ROWS:
        est = summary.metrics.get(metric)
        if est is not None:
            table.add_row(label, fmt_estimate(metric, est))
    for reason, est in sorted(summary.failures.items()):
        table.add_row(f"failed: {escape(reason)} (per run)", f"{est.mean:,.1f}")
    return table


def _pools_table(summary: PointSummary) -> Table:
    table = Table(title="Pools")
    table.add_column("", overflow="fold")
    keys = list(summary.pools)
    for key in keys:
        table.add_column(escape(key), justify="right", overflow="fold")
    for metric, label in POOL_ROWS:
        table.add_row(label, *(fmt_estimate(metric, summary.pools[k].get(metric)) for k in keys))
    return table


def _write(
    out: Path,
    *,
    command: str,
    scenario: Scenario,
    source: str,
    summaries: Sequence[PointSummary],
    executor: Executor,
    interrupted: bool,
    plan_result: PlanResult | None = None,
    analytic: Sequence[AnalyticEstimate] = (),
    axes: Sequence[str] = (),
    goals: Sequence[Goal] = (),
    limits: Sequence[str] = (),
    claims_csv: bool = False,
    unfit: Sequence[UnfitPoint] = (),
    rows: Sequence[PointSummary | UnfitPoint] | None = None,
) -> list[Path]:
    """Write ``summary.json``, ``report.html`` and (when asked) ``claims.csv``; return their paths.

    The report is rendered (the slow part: its plots) before any file of an
    earlier run is touched.
    """
    payload = summary_payload(
        command,
        scenario,
        source,
        summaries,
        executor=executor.name,
        interrupted=interrupted,
        plan=plan_result,
        analytic=analytic,
        axes=axes,
        goals=goals,
        limits=limits,
        unfit=unfit,
    )
    report = render_report(
        command,
        scenario,
        source,
        summaries,
        interrupted=interrupted,
        plan=plan_result,
        analytic=analytic,
        axes=axes,
        goals=goals,
        limits=limits,
        rows=rows,
    )
    return write_outputs(out, payload, report, summaries if claims_csv else None)


def _said_written(
    console: Console, files: Sequence[Path], *, interrupted: bool, caught: StopSignals
) -> None:
    if interrupted:
        console.print("[yellow]Interrupted: partial results written.[/yellow]")
    elif caught.signum is not None:
        console.print("[yellow]Stopped after the last run ended: the results are whole.[/yellow]")
    for f in files:
        console.print(f"wrote {f}", markup=False, highlight=False)


def _bad_input(console: Console, exc: Exception) -> int:
    # One line, never wrapped: the message names a file and a field path. Escaped: a
    # bracket in user text (``pools[web].replicas``, a name) is not rich markup.
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return EXIT_BAD_INPUT


def simulate_command(path: str, opts: RunOptions, console: Console | None = None) -> int:
    """``kruise-agents simulate``: run the scenario's replications and report them."""
    out_console, err = _consoles(console)
    try:
        scenario = _load(path, opts)
        out = _out_dir(opts, scenario, "simulate")
        check_out_dir(out)
        executor = make_executor(opts.workers, opts.dask)
    except (PlanningError, ValueError) as exc:
        return _bad_input(err, exc)
    keep = opts.claims_csv or scenario.claims_csv
    stop = threading.Event()
    with signals_stop(stop) as caught:
        try:
            with _running(err, scenario.replications, f"simulate {scenario.name}") as bar:
                bar.new_batch(scenario.replications)
                summaries, partial = run_points(
                    [Point({}, scenario)],
                    executor,
                    stop=stop,
                    keep_claims=keep,
                    on_result=bar.on_result,
                    on_progress=bar.on_progress,
                )
        except PlanningError as exc:
            return _bad_input(err, exc)
        finally:
            executor.close()
        # From here a signal waits for the files: they are written whole.
        caught.held = True
        # Each formula at the pool's own size: Erlang-B's cold share, or Erlang-C's waiting
        # share for a pool whose claims wait for a refill (they are never cold). Its size is
        # for the scenario's own goals, none without them: never for a goal nobody set.
        slo, max_cold = _erlang_goals(scenario)
        analytic = [
            analytic_estimate(scenario, p, slo, max_cold).at(p.replicas or 0)
            for p in scenario.pools
        ]
        s = summaries[0] if summaries else None
        verdicts = (
            check_goals(s, scenario.goals) if s is not None and scenario.goals is not None else []
        )
        found = limits(s, scenario) if s is not None else []
        try:
            files = _write(
                out,
                command="simulate",
                scenario=scenario,
                source=path,
                summaries=summaries,
                executor=executor,
                interrupted=partial,
                analytic=analytic,
                goals=verdicts,
                limits=found,
                claims_csv=keep,
            )
        except PlanningError as exc:
            return _bad_input(err, exc)
        if s is not None:
            _print_simulated(out_console, scenario, s, analytic, verdicts, found)
        _said_written(out_console, files, interrupted=partial, caught=caught)
    return _exit_code(caught, partial, EXIT_OK)


def _erlang_goals(scenario: Scenario) -> tuple[Slo | None, float | None]:
    """The scenario's latency goal and largest cold share, which Erlang sizes a pool for."""
    goals = scenario.goals
    if goals is None:
        return None, None
    slo = parse_slo(goals.slo) if goals.slo is not None else None
    cold = parse_max_share(str(goals.max_cold)) if goals.max_cold is not None else None
    return slo, cold


def _print_simulated(
    console: Console,
    scenario: Scenario,
    s: PointSummary,
    analytic: Sequence[AnalyticEstimate],
    verdicts: Sequence[Goal],
    found: Sequence[str],
) -> None:
    """``simulate``'s tables: the metrics, the pools, Erlang-B, the goals' verdicts, the limits."""
    note = s.partial_note()
    partial = "" if note is None else " (partial)"
    console.print(
        _metrics_table(f"{escape(scenario.name)}: {len(s.runs)} replication(s){partial}", s)
    )
    if note is not None:
        console.print(f"[yellow]{escape(note)}[/yellow]", highlight=False, soft_wrap=True)
    console.print(_pools_table(s))
    for a in analytic:
        line = _erlang_line(a, s.pools.get(a.pool, {}))
        if line is not None:
            console.print(line, markup=False, highlight=False)
    for g in verdicts:
        goal = f"goal {label_of(g.name)} {g.symbol} {fmt_value(g.name, g.limit)}"
        if g.estimate is None:
            # Nothing to judge (e.g. interrupted before any claim): not a miss.
            console.print(
                f"{goal}: [yellow]not measured[/yellow] "
                f"(no value in the {len(s.runs)} replication(s))"
            )
            continue
        mark = "[green]met[/green]" if g.met else "[red]missed[/red]"
        console.print(
            f"{goal}: {mark}, measured {fmt_estimate(g.name, g.estimate)} ({g.confidence})"
        )
    if found:
        console.print("[bold]What limits delivery[/bold]")
        for line in found:
            console.print(f"  - {line}", markup=False, highlight=False, soft_wrap=True)


def _erlang_line(a: AnalyticEstimate, pool: dict[str, Estimate]) -> str | None:
    """Erlang's share at the pool's size next to the simulated one (None: no size to compare).

    Erlang-B's cold share with create-on-no-stock; Erlang-C's waiting share for claims that
    wait for a refill, which are never cold: set against the share of claims that waited.
    """
    if a.at_replicas is None or a.value_at_replicas is None:
        return None
    load = f"(a = {three_figures(a.rate)}/s x {three_figures(a.refill_s)}s)"
    simulated = fmt_estimate(a.compared_with, pool.get(a.compared_with))
    if a.model == "erlang-b":
        head = (
            f"Erlang-B for {a.pool} at {a.at_replicas} replicas: {a.value_at_replicas:.2%} cold "
            f"{load}; simulated {simulated}"
        )
    else:
        head = (
            f"Erlang-C for {a.pool} at {a.at_replicas} replicas: {a.value_at_replicas:.2%} of "
            f"the claims wait {load}; simulated, claims that waited: {simulated}"
        )
    # The Poisson note says why the formula's arrivals are not the scenario's; Erlang-C's
    # says why its waiting is not the claims' (they retry on a schedule, not in order).
    notes = [note for note in a.notes if "Poisson" in note]
    if a.model == "erlang-c":
        notes.append(ERLANG_C_ORDER)
    return head + "".join(f"; {note}" for note in notes)


def _sweep_axes(base: Scenario, sets: Sequence[str]) -> list[Axis]:
    """The axes of ``--set`` options; PlanningError for a field given twice.

    Each point applies the axes in turn, so the last values of a repeated field
    would replace the first ones in every point, which would never run.
    """
    axes: list[Axis] = []
    given: dict[str, str] = {}
    for text in sets:
        axis = parse_axis(text)
        try:  # pools.base.replicas and pools[0].replicas are one field
            field = canonical_path(base, axis.path)
        except PlanningError:
            field = axis.path  # no such field: the grid names it
        if field in given:
            raise PlanningError(
                f"--set {text}: {axis.path} is already swept by --set {given[field]}"
            )
        given[field] = text
        axes.append(axis)
    return axes


def _check_options_not_swept(
    base: Scenario, opts: RunOptions, axes: Sequence[Axis], named: Sequence[str]
) -> None:
    """Refuse ``--seed`` or ``--replications`` beside an axis of the same field.

    Each point applies its axes after the options, so the option would be
    replaced in every point, and never run.
    """
    options = {"seed": opts.seed, "replications": opts.replications}
    for axis, name in zip(axes, named, strict=True):
        try:
            field = canonical_path(base, axis.path)
        except PlanningError:
            continue  # no such field: the grid names it
        value = options.get(field)
        if value is not None:
            raise PlanningError(
                f"--{field} {value}: {field} is already swept by {name} "
                "(each point runs the swept values): give one or the other"
            )


def sweep_command(path: str, opts: RunOptions, console: Console | None = None) -> int:
    """``kruise-agents sweep``: every combination of the ``--set`` values, one table, comparative plots."""
    out_console, err = _consoles(console)
    try:
        base = _load(path, RunOptions(seed=opts.seed, replications=opts.replications))
        if opts.sets:
            axes = _sweep_axes(base, opts.sets)
            named = [f"--set {text}" for text in opts.sets]
        elif base.sweep:
            axes = [Axis(path=k, values=tuple(v)) for k, v in base.sweep.items()]
            named = [f"the scenario's sweep[{k!r}]" for k in base.sweep]
        else:
            raise PlanningError(
                "--set: give at least one path=v1,v2,... to sweep (the scenario has no sweep section)"
            )
        _check_options_not_swept(base, opts, axes, named)
        points = grid(base, axes)
        out = _out_dir(opts, base, "sweep")
        check_out_dir(out)
        executor = make_executor(opts.workers, opts.dask)
    except (PlanningError, ValueError) as exc:
        return _bad_input(err, exc)
    keep = opts.claims_csv or base.claims_csv
    total = sum(p.scenario.replications for p in points)
    stop = threading.Event()
    with signals_stop(stop) as caught:
        try:
            with _running(err, total, f"sweep {base.name} ({len(points)} points)") as bar:
                bar.new_batch(total)
                # A point whose pools never fill is a row of the table, not an error.
                study = run_study(
                    points,
                    executor,
                    stop=stop,
                    keep_claims=keep,
                    on_result=bar.on_result,
                    on_progress=bar.on_progress,
                )
        except PlanningError as exc:
            return _bad_input(err, exc)
        finally:
            executor.close()
        caught.held = True  # from here a signal waits for the files: they are written whole
        names = [a.path for a in axes]
        summaries, unfit = study.summaries, study.unfit
        try:
            files = _write(
                out,
                command="sweep",
                scenario=base,
                source=path,
                summaries=summaries,
                executor=executor,
                interrupted=study.partial,
                axes=names,
                claims_csv=keep,
                unfit=unfit,
                rows=study.rows,
            )
        except PlanningError as exc:
            return _bad_input(err, exc)
        out_console.print(_sweep_table(base.name, names, study.rows, len(unfit)))
        for u in unfit:
            out_console.print(
                f"  - {_point_name(u.labels)}: does not fit on the nodes: {u.reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        for s in summaries:
            if (note := s.partial_note()) is not None:
                out_console.print(
                    f"  - {_point_name(s.labels)}: {note}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        if unfit and not summaries and not study.partial:
            out_console.print(
                f"[red]{NO_POINT_FITS}[/red]: add nodes, or make the pools or their sandboxes "
                "smaller.",
                highlight=False,
            )
        _said_written(out_console, files, interrupted=study.partial, caught=caught)
    return _exit_code(caught, study.partial, EXIT_NOT_MET if unfit and not summaries else EXIT_OK)


_SWEEP_SHOWN = {
    "latency_p50": "p50",
    "latency_p99": "p99",
    "cold_share": "cold",
    "failed_share": "failed",
    "node_cpu_peak": "CPU peak",
    "idle_sandbox_hours": "idle sbx-h",
}


def _sweep_table(
    name: str, axes: Sequence[str], rows: Sequence[PointSummary | UnfitPoint], unfit: int
) -> Table:
    """One row per point: its means and intervals, or ``does not fit`` (the reasons follow it)."""
    ran = len(rows) - unfit
    fits = f", {unfit} {'does' if unfit == 1 else 'do'} not fit" if unfit else ""
    table = Table(title=f"{escape(name)}: {ran} point(s){fits}, mean [95% interval]")
    for n in axes:
        table.add_column(escape(n), overflow="fold")
    for heading in _SWEEP_SHOWN.values():
        table.add_column(heading, justify="right", overflow="fold")
    for row in rows:
        labels = [escape(str(row.labels.get(n))) for n in axes]
        if isinstance(row, PointSummary) and not row.complete and labels:
            labels[-1] += " (partial)"  # the line below the table says why
        if isinstance(row, UnfitPoint):
            table.add_row(*labels, "does not fit", *["-"] * (len(_SWEEP_SHOWN) - 1))
        else:
            table.add_row(*labels, *(fmt_estimate(m, row.metrics.get(m)) for m in _SWEEP_SHOWN))
    return table


def _point_name(labels: dict[str, Any]) -> str:
    """``pools.base.replicas=11, duration=10s``: a point by its labels, as ``--set`` gives them."""
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def parse_range(text: str | None) -> tuple[int | None, int | None]:
    """``"10:2000"`` → (10, 2000); either side may be empty; PlanningError names ``--range``.

    Sizes run from 0 to :data:`MAX_REPLICAS`.
    """
    if text is None:
        return None, None
    low, sep, high = text.partition(":")
    try:
        lo = int(low) if low.strip() else None
        hi = int(high) if sep and high.strip() else None
    except ValueError:
        raise PlanningError(
            f"--range: expected LOW:HIGH with whole numbers, got {text!r}"
        ) from None
    if not sep:
        raise PlanningError(f"--range: expected LOW:HIGH, got {text!r}")
    if (lo is not None and lo < 0) or (lo is not None and hi is not None and hi < lo):
        raise PlanningError(f"--range: need 0 <= LOW <= HIGH, got {text!r}")
    if max(lo or 0, hi or 0) > MAX_REPLICAS:
        # Refused here, before a run: the search would only meet it at that size, as the
        # SandboxSet's error about a --set nobody gave.
        raise PlanningError(
            f"--range: sizes must be at most {MAX_REPLICAS} (a SandboxSet's replicas is an "
            f"int32), got {text!r}"
        )
    return lo, hi


def _plan_goals(
    scenario: Scenario, slo: str | None, max_cold: str | None, max_failed: str | None
) -> tuple[Slo | None, float | None, float | None]:
    """The goals ``plan`` aims for: (latency goal, largest cold share, largest failed share).

    ``--slo`` and ``--max-cold`` replace the scenario's goals; without either,
    the scenario's three goals are taken. ``--max-failed`` replaces the
    failed-share goal either way: it only adds to the others (alone it sizes
    nothing), and ``run_goals`` holds the failed share to the stricter of it
    and the latency goal's tail.
    """
    goals = scenario.goals
    if slo is None and max_cold is None and goals is not None:
        slo = goals.slo
        max_cold = None if goals.max_cold is None else str(goals.max_cold)
        if max_failed is None and goals.max_failed is not None:
            max_failed = str(goals.max_failed)
    goal = parse_slo(slo) if slo is not None else None
    cold = parse_max_share(max_cold) if max_cold is not None else None
    failed = parse_max_share(max_failed, "--max-failed") if max_failed is not None else None
    if goal is None and cold is None:
        raise PlanningError(
            "give a goal: --slo (e.g. 'p99<1s') and/or --max-cold (e.g. 1%); "
            "--max-failed only adds to them"
        )
    return goal, cold, failed


def _check_pool(scenario: Scenario, pool: str, sets: Sequence[str]) -> None:
    """The pool exists, and no ``--set`` sizes it: plan sets its replicas to each candidate."""
    names = [p.name for p in scenario.pools]
    if pool not in names:
        raise PlanningError(
            f"--pool: no pool {pool!r} in the scenario (pools: {', '.join(map(str, names))})"
        )
    searched = f"pools[{names.index(pool)}].replicas"
    for text in sets:
        if canonical_path(scenario, parse_axis(text).path) == searched:
            raise PlanningError(
                f"--set {text}: plan searches {searched} itself; give --range LOW:HIGH instead"
            )


def plan_command(
    path: str,
    opts: RunOptions,
    *,
    pool: str,
    slo: str | None,
    max_cold: str | None,
    size_range: str | None,
    max_failed: str | None = None,
    console: Console | None = None,
) -> int:
    """``kruise-agents plan``: the smallest ``replicas`` of ``pool`` meeting the goals.

    With ``--claims-csv`` (or ``claims_csv: true``) it writes the claims of the
    runs at the answer; none when no size meets the goals.
    """
    out_console, err = _consoles(console)
    try:
        scenario = _load(path, opts)
        goal, cold, failed = _plan_goals(scenario, slo, max_cold, max_failed)
        lo, hi = parse_range(size_range)
        _check_pool(scenario, pool, opts.sets)
        out = _out_dir(opts, scenario, "plan")
        check_out_dir(out)
        executor = make_executor(opts.workers, opts.dask)
    except (PlanningError, ValueError) as exc:
        return _bad_input(err, exc)
    keep = opts.claims_csv or scenario.claims_csv

    def seen(c: Candidate) -> None:
        verdicts = ", ".join(
            f"{label_of(g.name)} {fmt_estimate(g.name, g.estimate)}" for g in c.goals
        )
        err.print(
            f"  {c.replicas:>6} replicas: {'meets' if c.meets else 'misses'} ({verdicts})",
            highlight=False,
        )

    stop = threading.Event()
    with signals_stop(stop) as caught:
        try:
            with _running(err, None, f"plan {scenario.name} pool {pool}") as bar:
                result = plan(
                    scenario,
                    pool,
                    slo=goal,
                    max_cold=cold,
                    max_failed=failed,
                    low=lo,
                    high=hi,
                    executor=executor,
                    stop=stop,
                    keep_claims=keep,
                    on_result=bar.on_result,
                    on_progress=bar.on_progress,
                    on_candidate=seen,
                )
        except PlanningError as exc:
            return _bad_input(err, exc)
        finally:
            executor.close()
        caught.held = True  # from here a signal waits for the files: they are written whole
        summaries = [c.summary for _, c in sorted(result.candidates.items())]
        try:
            # Only the runs at the answer kept their claims (plan drops the others').
            files = _write(
                out,
                command="plan",
                scenario=scenario,
                source=path,
                summaries=summaries,
                executor=executor,
                interrupted=result.interrupted,
                plan_result=result,
                claims_csv=keep,
                unfit=[
                    UnfitPoint({f"pools.{pool}.replicas": size}, reason)
                    for size, reason in sorted(result.unfit.items())
                ],
            )
        except PlanningError as exc:
            return _bad_input(err, exc)
        out_console.print(_plan_table(result))
        for line in result.explanation:
            out_console.print(f"  - {line}", markup=False, highlight=False, soft_wrap=True)
        if keep and result.answer is None:
            out_console.print(f"No claims.csv: {result.none_found}.", markup=False, highlight=False)
        _said_written(out_console, files, interrupted=result.interrupted, caught=caught)
    found = EXIT_OK if result.answer is not None else EXIT_NOT_MET
    return _exit_code(caught, result.interrupted, found)


def _plan_table(result: PlanResult) -> Table:
    table = Table(title=f"Plan for pool {escape(result.pool)}")
    # Folded, not cut with "…": a redirected table is 80 columns wide, and no value may be lost.
    table.add_column("", overflow="fold")
    table.add_column("replicas", justify="right", overflow="fold")
    table.add_column("how", justify="left", overflow="fold")
    est = result.analytic
    table.add_row("Erlang (profile refill)", str(est.replicas or "-"), escape(est.describe()))
    if result.analytic_measured is not None:
        m = result.analytic_measured
        table.add_row("Erlang (measured refill)", str(m.replicas or "-"), escape(m.describe()))
    best = result.best
    if best is not None:
        how = "; ".join(
            f"{label_of(g.name)} {fmt_estimate(g.name, g.estimate)}" for g in best.goals
        )
        sure = best.confidence
        table.add_row(
            "simulated",
            str(result.answer),
            f"{len(best.summary.runs)} replication(s): {how} ({sure})",
        )
    else:
        table.add_row("simulated", "-", escape(result.none_found))
    return table
