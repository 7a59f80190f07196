"""Points and their replications: the unit that simulate, sweep and plan all report on.

A *point* is one scenario (after overrides) run ``replications`` times with
seeds derived from the scenario's seed; :class:`PointSummary` aggregates its
runs into estimates with confidence intervals. A point whose pools never
fill on the scenario's nodes is an :class:`UnfitPoint`: a verdict on the
point (it does not fit), found by :func:`run_study` for ``sweep`` and ``plan``
alike, while the points that fit keep their runs.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.planning.errors import PoolFillError
from simulator.planning.executors import Batch, Executor, OnProgress, OnResult, Task
from simulator.planning.figures import three_figures
from simulator.planning.metrics import RunResult
from simulator.planning.overrides import Axis, apply_overrides
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate, ShareBase, aggregate

__all__ = [
    "NO_POINT_FITS",
    "POOL_SHARES",
    "RUN_SHARES",
    "Point",
    "PointSummary",
    "Study",
    "UnfitPoint",
    "grid",
    "profiles_ran",
    "ran_by_point",
    "run_points",
    "run_study",
    "runs_ran",
    "summarise_point",
]


@dataclass
class Point:
    """A scenario to run, with the labels that tell it apart in a sweep or a plan."""

    labels: dict[str, Any]
    scenario: Scenario


@dataclass
class PointSummary:
    """A point's runs and their aggregate (metrics, per-pool metrics and failures by reason)."""

    labels: dict[str, Any]
    scenario: Scenario
    runs: list[RunResult]
    metrics: dict[str, Estimate] = field(default_factory=dict)
    pools: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    failures: dict[str, Estimate] = field(default_factory=dict)

    def __repr__(self) -> str:
        """The point and how many runs: the runs and the scenario stay fields."""
        return f"<PointSummary {self.labels!r}: {len(self.runs)} runs, complete={self.complete}>"

    @property
    def complete(self) -> bool:
        """Whether every replication ran to its end."""
        return len(self.runs) == self.scenario.replications and not any(
            r.interrupted for r in self.runs
        )

    def partial_note(self) -> str | None:
        """What makes the point partial (replications not run or stopped), or None when complete.

        ``partial: 1 of 3 replication(s) did not run; 1 of 3 replication(s) stopped early
        (measured 90s of the 180s window; 4 claim(s) in flight at the stop left out)``.
        """
        if self.complete:
            return None
        wanted = self.scenario.replications
        of = f"of {wanted} replication(s)"
        parts = []
        missing = wanted - len(self.runs)
        if missing > 0:
            parts.append(f"{missing} {of} did not run")
        cut = [r for r in self.runs if r.interrupted and r.measured_s > 0]
        if cut:
            measured = ", ".join(f"{three_figures(r.measured_s)}s" for r in cut)
            left = sum(r.in_flight_at_stop for r in cut)
            out = f"; {left:,} claim(s) in flight at the stop left out" if left else ""
            parts.append(
                f"{len(cut)} {of} stopped early (measured {measured} of the "
                f"{self.scenario.duration:g}s window{out})"
            )
        early = sum(1 for r in self.runs if r.interrupted and r.measured_s <= 0)
        if early:
            parts.append(f"{early} {of} stopped in the warm-up (nothing measured)")
        return "partial: " + "; ".join(parts)

    def mean(self, metric: str) -> float | None:
        """The mean of ``metric`` over the runs (None when undefined)."""
        est = self.metrics.get(metric)
        return None if est is None else est.mean

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: labels, aggregates and the runs' own figures."""
        return {
            "labels": self.labels,
            "replications": len(self.runs),
            "complete": self.complete,
            "partial": self.partial_note(),
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "pools": {p: {k: v.as_dict() for k, v in m.items()} for p, m in self.pools.items()},
            "failures": {k: v.as_dict() for k, v in self.failures.items()},
            "runs": [r.as_dict() for r in self.runs],
        }


NO_POINT_FITS = "No point of the sweep fits on the scenario's nodes"
"""What a sweep says when every point it ran does not fit (on the console and in the report)."""


@dataclass
class UnfitPoint:
    """A point whose pools never filled on the scenario's nodes: it does not fit.

    A verdict, not a bad input: a smaller pool (or more nodes) may fit.
    ``reason`` is the run's own words (the pool, how many of its sandboxes
    became available, how many pods waited for a node).
    """

    labels: dict[str, Any]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the point's labels and why it does not fit."""
        return {"labels": self.labels, "reason": self.reason}


@dataclass
class Study:
    """What :func:`run_study` found for each point, in the points' order."""

    by_point: list[PointSummary | UnfitPoint | None]
    """One entry per point: its summary, why it does not fit, or None when none of
    its runs finished (the batch was stopped first)."""
    partial: bool
    """Whether the batch was cut short (some runs missing or incomplete)."""

    @property
    def rows(self) -> list[PointSummary | UnfitPoint]:
        """The points that ran or do not fit, in order (what a sweep's table shows)."""
        return [o for o in self.by_point if o is not None]

    @property
    def summaries(self) -> list[PointSummary]:
        """The points that fit and ran, in order."""
        return [o for o in self.by_point if isinstance(o, PointSummary)]

    @property
    def unfit(self) -> list[UnfitPoint]:
        """The points that do not fit, in order."""
        return [o for o in self.by_point if isinstance(o, UnfitPoint)]


def _count(*names: str) -> ShareBase:
    """The claims a share is of: the sum of ``names`` in the row (None if one is missing)."""

    def read(row: Mapping[str, float | None]) -> float | None:
        vals = [row.get(n) for n in names]
        return None if any(v is None for v in vals) else math.fsum(v or 0.0 for v in vals)

    return read


RUN_SHARES: dict[str, ShareBase] = {
    "cold_share": _count("delivered"),
    "failed_share": _count("claims"),
    "waited_share": _count("claims"),
}
"""The run's shares and the claims each is of (see ``summarise_outcomes``)."""

POOL_SHARES: dict[str, ShareBase] = {
    "cold_share": _count("warm", "cold"),
    "failed_share": _count("claims"),
    "waited_share": _count("claims"),
}
"""A pool's shares and the claims each is of (see ``pool_metrics``)."""


def summarise_point(
    labels: dict[str, Any], scenario: Scenario, runs: Sequence[RunResult]
) -> PointSummary:
    """Aggregate ``runs`` (of one point) into estimates across replications."""
    runs = sorted(runs, key=lambda r: r.replication)
    pools: dict[str, dict[str, Estimate]] = {}
    for key in scenario.pools:
        pools[key.key] = aggregate([r.pools.get(key.key, {}) for r in runs], shares=POOL_SHARES)
    reasons: dict[str, None] = {}
    for r in runs:
        reasons.update(dict.fromkeys(r.failures))
    failures = aggregate([{k: float(r.failures.get(k, 0)) for k in reasons} for r in runs])
    return PointSummary(
        labels=labels,
        scenario=scenario,
        runs=list(runs),
        metrics=aggregate([r.metrics for r in runs], shares=RUN_SHARES),
        pools=pools,
        failures=failures,
    )


def run_study(
    points: Sequence[Point],
    executor: Executor,
    *,
    stop: threading.Event,
    keep_claims: bool = False,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
) -> Study:
    """Run every point's replications as one batch; say for each point what it gave.

    Task ``k`` of point ``p`` is replication ``k`` with the seed derived from
    the point's scenario seed and ``k``: the same replication index meets the
    same arrivals at every point. A point one of whose replications never
    filled its pools does not fit (:class:`UnfitPoint`, with that run's
    reason): its other replications are not run, or not counted if they
    already ran, and the other points' runs are kept as they are (none is
    run again).
    """
    tasks: list[Task] = []
    owner: list[int] = []
    for p_index, point in enumerate(points):
        for rep in range(point.scenario.replications):
            tasks.append(
                Task(
                    index=len(tasks),
                    scenario=point.scenario,
                    replication=rep,
                    point=point.labels,
                    keep_claims=keep_claims,
                )
            )
            owner.append(p_index)
    batch: Batch = executor.run(tasks, stop=stop, on_result=on_result, on_progress=on_progress)
    runs: dict[int, list[RunResult]] = {i: [] for i in range(len(points))}
    for result in batch.results:
        runs[owner[result.index]].append(result)
    reasons: dict[int, str] = {}
    for index, reason in sorted(batch.unfit.items()):
        reasons.setdefault(owner[index], reason)  # the first replication's words
    by_point: list[PointSummary | UnfitPoint | None] = []
    for i, point in enumerate(points):
        if i in reasons:
            by_point.append(UnfitPoint(point.labels, reasons[i]))
        elif runs[i]:
            by_point.append(summarise_point(point.labels, point.scenario, runs[i]))
        else:
            by_point.append(None)
    return Study(by_point, batch.partial)


def run_points(
    points: Sequence[Point],
    executor: Executor,
    *,
    stop: threading.Event,
    keep_claims: bool = False,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[list[PointSummary], bool]:
    """Run every point's replications as one batch; return the summaries and whether cut short.

    As :func:`run_study`, for callers to whom a point that does not fit is an
    error (``simulate``'s one point): it raises :class:`PoolFillError` with
    the first such point's reason, after the batch.
    """
    study = run_study(
        points,
        executor,
        stop=stop,
        keep_claims=keep_claims,
        on_result=on_result,
        on_progress=on_progress,
    )
    unfit = study.unfit
    if unfit:
        raise PoolFillError(unfit[0].reason)
    return study.summaries, study.partial


def grid(base: Scenario, axes: Sequence[Axis]) -> list[Point]:
    """Every combination of the axes' values (the first axis varies slowest), as points."""
    combos: list[list[tuple[str, Any]]] = [[]]
    for axis in axes:
        combos = [[*c, (axis.path, v)] for c in combos for v in axis.values]
    return [Point(dict(c), apply_overrides(base, c)) for c in combos]


def profiles_ran(scenario: Scenario, summaries: Sequence[PointSummary]) -> str:
    """The profile the points ran, with what their overrides changed (reports say it).

    ``openkruise-head``, ``openkruise-v0.3.0 (changed: retry)``, or, when the
    points ran different ones (a sweep over ``cluster.profile`` or a knob),
    each once, in order: ``openkruise-head; openkruise-v0.3.0 (by point)``.
    """
    ran = [s.scenario.cluster.build_profile().summary() for s in summaries]
    distinct = list(dict.fromkeys(ran or [scenario.cluster.build_profile().summary()]))
    return distinct[0] if len(distinct) == 1 else "; ".join(distinct) + " (by point)"


def ran_by_point(scenario: Scenario, summaries: Sequence[PointSummary], name: str) -> Any:
    """What the points ran for ``name`` (``replications``, ``duration`` or ``warmup``).

    The one value when every point ran the same (the scenario's when no point
    ran), else each distinct value once, in order: a sweep or a ``--set``
    over it is reported with what ran, not with the file's value.
    """
    ran = [getattr(s.scenario, name) for s in summaries] or [getattr(scenario, name)]
    distinct = list(dict.fromkeys(ran))
    return distinct[0] if len(distinct) == 1 else distinct


def runs_ran(scenario: Scenario, summaries: Sequence[PointSummary]) -> str:
    """The points' replications, duration and warm-up, as reports say them.

    ``2 replication(s) of 60s (+10s warm-up)``, or, when the points ran
    different ones (a sweep over them), each once, in order:
    ``1 replication(s) of 30s (+10s warm-up); 1 replication(s) of 120s (+10s warm-up) (by point)``.
    """
    ran = [
        f"{p.replications} replication(s) of {p.duration:g}s (+{p.warmup:g}s warm-up)"
        for p in [s.scenario for s in summaries] or [scenario]
    ]
    distinct = list(dict.fromkeys(ran))
    return distinct[0] if len(distinct) == 1 else "; ".join(distinct) + " (by point)"
