"""Points and their replications: the unit that simulate, sweep and plan all report on.

A *point* is one scenario (after overrides) run ``replications`` times with
seeds derived from the scenario's seed; :class:`PointSummary` aggregates its
runs into estimates with confidence intervals.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.planning.executors import Batch, Executor, OnProgress, OnResult, Task
from simulator.planning.metrics import RunResult
from simulator.planning.overrides import Axis, apply_overrides
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate, ShareBase, aggregate

__all__ = [
    "POOL_SHARES",
    "RUN_SHARES",
    "Point",
    "PointSummary",
    "grid",
    "profiles_ran",
    "run_points",
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

    @property
    def complete(self) -> bool:
        """Whether every replication ran to its end."""
        return len(self.runs) == self.scenario.replications and not any(
            r.interrupted for r in self.runs
        )

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
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "pools": {p: {k: v.as_dict() for k, v in m.items()} for p, m in self.pools.items()},
            "failures": {k: v.as_dict() for k, v in self.failures.items()},
            "runs": [r.as_dict() for r in self.runs],
        }


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

    Task ``k`` of point ``p`` is replication ``k`` with the seed derived from
    the point's scenario seed and ``k``: the same replication index meets the
    same arrivals at every point.
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
    by_point: dict[int, list[RunResult]] = {i: [] for i in range(len(points))}
    for result in batch.results:
        by_point[owner[result.index]].append(result)
    summaries = [
        summarise_point(point.labels, point.scenario, by_point[i])
        for i, point in enumerate(points)
        if by_point[i]
    ]
    return summaries, batch.partial


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
