"""Points run as one batch: a point whose pools do not fit is a verdict, and the others keep their runs."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from dask.distributed import LocalCluster

from simulator.planning.errors import PoolFillError
from simulator.planning.executors import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SerialExecutor,
)
from simulator.planning.loading import parse_scenario
from simulator.planning.metrics import RunResult
from simulator.planning.overrides import apply_overrides
from simulator.planning.study import Point, PointSummary, Study, UnfitPoint, run_points, run_study

from .test_plan import CRAMPED

SIZES = (4, 11, 6)
"""One node of 10 pod slots: 4 and 6 fit, 11 never fills."""


def _points() -> list[Point]:
    base = parse_scenario(CRAMPED.replace("duration: 40s", "duration: 10s"))
    return [
        Point({"pools.base.replicas": n}, apply_overrides(base, [("pools.base.replicas", n)]))
        for n in SIZES
    ]


def _study(executor: Executor) -> tuple[Study, Counter[int]]:
    """The study of the three sizes, and how many runs each size made."""
    ran: Counter[int] = Counter()

    def count(result: RunResult) -> None:
        ran[result.point["pools.base.replicas"]] += 1

    try:
        study = run_study(_points(), executor, stop=threading.Event(), on_result=count)
    finally:
        executor.close()
    return study, ran


def test_a_point_that_does_not_fit_is_reported_and_the_others_keep_their_runs() -> None:
    """4 and 6 are summarised from one run of each replication; 11 says why it does not fit.

    Before, the fill error of 11 ended the whole batch: the runs of 4 were lost,
    and nothing of 6 ran.
    """
    study, ran = _study(SerialExecutor())
    assert [type(o) for o in study.by_point] == [PointSummary, UnfitPoint, PointSummary]
    assert [s.labels for s in study.summaries] == [
        {"pools.base.replicas": 4},
        {"pools.base.replicas": 6},
    ]
    assert all(s.complete for s in study.summaries)
    (unfit,) = study.unfit
    assert unfit.labels == {"pools.base.replicas": 11}
    assert "pool default/base did not fill: 10 of 11 available" in unfit.reason
    assert unfit.as_dict() == {"labels": {"pools.base.replicas": 11}, "reason": unfit.reason}
    assert not study.partial
    # Each fitting replication ran once; once a replication of 11 did not fill,
    # its other replication was not run (it would not fill either).
    assert ran == Counter({4: 2, 6: 2})


@pytest.mark.parametrize("where", ["processes", "dask"])
def test_other_executors_report_the_same_points(where: str) -> None:
    """On two worker processes and on Dask: the same verdicts and figures as in this process."""
    serial, _ = _study(SerialExecutor())
    if where == "processes":
        pooled, ran = _study(ProcessExecutor(2))
    else:
        with LocalCluster(  # type: ignore[no-untyped-call]
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster:
            pooled, ran = _study(DaskExecutor(cluster.scheduler_address))
    assert [type(o) for o in pooled.by_point] == [type(o) for o in serial.by_point]
    assert [u.reason for u in pooled.unfit] == [u.reason for u in serial.unfit]
    assert [s.metrics for s in pooled.summaries] == [s.metrics for s in serial.summaries]
    assert ran[4] == 2 and ran[6] == 2


def test_run_points_still_refuses_a_point_that_does_not_fit() -> None:
    """``run_points`` (simulate's single point) raises the fill error, as it always has."""
    with pytest.raises(PoolFillError, match="did not fill"):
        run_points(_points()[1:2], SerialExecutor(), stop=threading.Event())


def test_points_of_one_scenario_that_does_not_fit_all_say_so() -> None:
    """Two points sharing a scenario: the first one's fill error stands for the second, unrun."""
    (unfit,) = _points()[1:2]
    twins = [Point({"copy": 1}, unfit.scenario), Point({"copy": 2}, unfit.scenario)]
    study = run_study(twins, SerialExecutor(), stop=threading.Event())
    assert [type(o) for o in study.by_point] == [UnfitPoint, UnfitPoint]
    assert study.unfit[0].reason == study.unfit[1].reason
    assert not study.summaries


def test_a_run_stopped_in_the_warm_up_moves_no_mean_and_the_point_says_it_is_partial() -> None:
    """A point of one complete run and one stopped in its warm-up has the complete run's
    figures (node use, idle hours, claims: nothing averaged with a run that measured
    nothing), and says it is partial and why.

    Before, the stopped run's warm-up node CPU and its 0 idle hours entered the means: the
    idle sandbox-hours were halved and the node CPU peak's interval ran past 100%.
    """
    from simulator.planning.runner import run_once
    from simulator.planning.study import summarise_point

    from .conftest import TINY

    scenario = parse_scenario(TINY)
    full = run_once(scenario, replication=0)
    seen = [0.0]

    def progress(p: float) -> None:
        seen[0] = p

    early = run_once(
        scenario, replication=1, should_stop=lambda: seen[0] >= 0.05, progress=progress
    )
    point = summarise_point({}, scenario, [full, early])
    for name in ("node_cpu_peak", "node_cpu_mean", "idle_sandbox_hours", "claims"):
        est = point.metrics[name]
        assert (est.n, est.mean, est.high) == (1, full.metrics[name], None), name
    assert point.pools["default/base"]["idle_sandbox_hours"].mean == pytest.approx(
        full.pools["default/base"]["idle_sandbox_hours"]
    )
    assert not point.complete
    assert (
        point.partial_note()
        == "partial: 1 of 2 replication(s) stopped in the warm-up (nothing measured)"
    )
    assert point.as_dict()["partial"] == point.partial_note()
    whole = summarise_point({}, scenario, [full, run_once(scenario, replication=1)])
    assert whole.partial_note() is None and whole.as_dict()["partial"] is None
