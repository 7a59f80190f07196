"""Executors: the same seeds give the same numbers in this process, in 2 worker processes and on Dask."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import dask
import pytest
from dask.distributed import LocalCluster

from simulator.planning.errors import PlanningError
from simulator.planning.executors import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SerialExecutor,
)
from simulator.planning.loading import parse_scenario
from simulator.planning.metrics import RunResult
from simulator.planning.overrides import apply_overrides
from simulator.planning.scenario import Scenario
from simulator.planning.study import Point, PointSummary, run_points

from .conftest import TINY


@pytest.fixture(scope="module")
def points() -> list[Point]:
    """Two pool sizes, two replications each: four runs of ~40 claims."""
    base = parse_scenario(TINY.replace("duration: 40s", "duration: 20s"))
    return [
        Point({"pools.base.replicas": n}, apply_overrides(base, [("pools.base.replicas", n)]))
        for n in (2, 5)
    ]


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An in-process Dask cluster (threads), reachable by its scheduler address.

    Its scratch space goes under pytest's temporary directory: by default the
    scheduler and the worker each leave ``$TMPDIR/dask-scratch-space`` (their
    lock files) behind. Dask's temporary directory is the one setting both read.
    """
    scratch = str(tmp_path_factory.mktemp("dask"))
    with (
        dask.config.set({"temporary-directory": scratch}),
        LocalCluster(  # type: ignore[no-untyped-call]
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster,
    ):
        yield cluster.scheduler_address


def _figures(result: RunResult) -> tuple[Any, ...]:
    # Everything a run reports except its wall-clock time.
    return (
        result.index,
        result.replication,
        result.seed,
        result.point,
        result.metrics,
        result.pools,
        result.failures,
        result.series,
        result.warm_q,
        result.cold_q,
        result.interrupted,
    )


def _run(executor: Executor, points: list[Point]) -> list[PointSummary]:
    try:
        summaries, partial = run_points(points, executor, stop=threading.Event())
    finally:
        executor.close()
    assert not partial
    return summaries


def test_same_numbers_whatever_the_executor(points: list[Point], dask_address: str) -> None:
    """Serial, 2 processes and Dask return identical runs, in the same order, for the same seeds."""
    serial = _run(SerialExecutor(), points)
    pooled = _run(ProcessExecutor(2), points)
    dask = _run(DaskExecutor(dask_address), points)
    for other in (pooled, dask):
        assert [s.labels for s in other] == [s.labels for s in serial]
        for a, b in zip(serial, other, strict=True):
            assert [_figures(r) for r in a.runs] == [_figures(r) for r in b.runs]
            assert a.metrics == b.metrics
    # The points do differ from each other, and replications within a point too.
    assert serial[0].metrics["cold_share"].mean > serial[1].metrics["cold_share"].mean
    assert serial[0].runs[0].seed != serial[0].runs[1].seed
    assert serial[0].runs[0].seed == serial[1].runs[0].seed  # common random numbers


def test_stop_keeps_what_finished(points: list[Point]) -> None:
    """A stop after the first result: that run comes back whole, the rest are dropped, the batch is partial."""
    stop = threading.Event()
    executor = SerialExecutor()
    summaries, partial = run_points(points, executor, stop=stop, on_result=lambda r: stop.set())
    assert partial
    assert [len(s.runs) for s in summaries] == [1]
    assert not summaries[0].complete


def stopped_on_two_workers(tiny: Scenario, replications: int) -> list[RunResult]:
    """Hour-long runs of ``tiny`` on two worker processes, stopped after 3 s: the runs back."""
    long = apply_overrides(tiny, [("duration", "1h"), ("replications", replications)])
    stop = threading.Event()
    executor = ProcessExecutor(2)
    timer = threading.Timer(3.0, stop.set)
    timer.start()
    try:
        summaries, partial = run_points([Point({}, long)], executor, stop=stop)
    finally:
        timer.cancel()
        executor.close()
    assert partial
    return summaries[0].runs


def test_stop_reaches_worker_processes(tiny: Scenario) -> None:
    """Stopping a process pool: the runs in flight end early, marked interrupted, and come back."""
    runs = stopped_on_two_workers(tiny, 2)
    assert len(runs) == 2 and all(r.interrupted for r in runs)
    assert all(0 < len(r.series["t"]) < 600 for r in runs)


def test_runs_not_started_at_a_stop_are_dropped(tiny: Scenario) -> None:
    """Four runs on two workers, stopped while the first two run: only those two come back.

    The pool had already queued a third (a queued task cannot be cancelled);
    it used to start, stop at once and be averaged in as a run of no claims.
    """
    runs = stopped_on_two_workers(tiny, 4)
    assert len(runs) == 2
    assert all((r.metrics["claims"] or 0) > 0 for r in runs)


def test_an_unreachable_dask_scheduler_is_one_error_naming_the_option() -> None:
    """Nothing listens there: a PlanningError on ``--dask`` (the CLI's exit 2), no traceback."""
    with pytest.raises(
        PlanningError, match=r"^--dask: cannot reach the scheduler at tcp://127.0.0.1:1"
    ):
        DaskExecutor("tcp://127.0.0.1:1", connect_timeout=1)


def test_a_malformed_dask_address_is_one_error_naming_the_option() -> None:
    """``--dask notaurl``: the message names --dask and the address, not only dask's own words."""
    with pytest.raises(
        PlanningError,
        match=r"^--dask: 'notaurl' is not a scheduler address \(expected e\.g\. tcp://",
    ):
        DaskExecutor("notaurl", connect_timeout=1)
