"""Capacity planning on the fake cluster: scenarios, runs, sweeps, plans and reports.

A scenario file (:mod:`~simulator.planning.scenario`) describes a cluster,
its warm pools, the claims that arrive and the faults that strike; a run
(:func:`run_once`) simulates it once and measures delivery latency, cold
share, pool levels, node use and idle cost; executors run replications and
sweep points here, in worker processes or on Dask; :func:`plan` searches the
smallest pool meeting a latency goal and sets Erlang's answer next to it;
the report is one HTML page with the plots.
"""

from simulator.planning.analytic import (
    AnalyticEstimate,
    Slo,
    analytic_estimate,
    parse_max_share,
    parse_slo,
    refill_estimate,
)
from simulator.planning.errors import PlanningError, PoolFillError, RunError, ScenarioError
from simulator.planning.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    Task,
    make_executor,
)
from simulator.planning.loading import load_scenario, parse_scenario, shipped_scenarios
from simulator.planning.metrics import RunResult
from simulator.planning.overrides import apply_overrides, parse_axis
from simulator.planning.plan import PlanResult, plan
from simulator.planning.quick import QuickPlan, quick_plan
from simulator.planning.runner import run_once
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate, aggregate
from simulator.planning.study import Point, PointSummary, Study, UnfitPoint, run_points, run_study

__all__ = [
    "AnalyticEstimate",
    "DaskExecutor",
    "Estimate",
    "PlanResult",
    "PlanningError",
    "Point",
    "PointSummary",
    "PoolFillError",
    "ProcessExecutor",
    "QuickPlan",
    "RunError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "SerialExecutor",
    "Slo",
    "Study",
    "Task",
    "UnfitPoint",
    "aggregate",
    "analytic_estimate",
    "apply_overrides",
    "load_scenario",
    "make_executor",
    "parse_axis",
    "parse_max_share",
    "parse_scenario",
    "parse_slo",
    "plan",
    "quick_plan",
    "refill_estimate",
    "run_once",
    "run_points",
    "run_study",
    "shipped_scenarios",
]
