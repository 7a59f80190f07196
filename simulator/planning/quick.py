"""A short capacity plan for one pool, for ``make demo``: a few seconds, a paragraph and a report.

>>> qp = quick_plan(POOL_YAML)          # doctest: +SKIP
>>> print(qp.text)                      # doctest: +SKIP
>>> qp.report                           # doctest: +SKIP
PosixPath('/tmp/kruise-agents-plan-k3v9x0_a/report.html')
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import load_manifest
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.modification import (
    AGENT_RUNTIME,
    RUNTIME_INIT_CONTAINER,
    sandboxset_has_agent_runtime,
)
from simulator.planning.analytic import parse_max_share, parse_slo
from simulator.planning.arrivals import parse_rate
from simulator.planning.errors import PlanningError, ScenarioError
from simulator.planning.executors import SerialExecutor
from simulator.planning.figures import three_figures
from simulator.planning.formatting import fmt_estimate
from simulator.planning.loading import parse_scenario
from simulator.planning.outputs import check_out_dir, summary_payload, write_summary
from simulator.planning.plan import PlanResult, plan
from simulator.planning.report import write_report
from simulator.planning.scenario import Scenario

__all__ = ["QuickPlan", "quick_plan"]

_DEFAULT_POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: base, namespace: default}
spec:
  replicas: 5
  runtimes: [{name: agent-runtime}]
  template:
    spec:
      containers:
        - name: sandbox
          image: registry.example.com/agent-sandbox:v1
          resources: {requests: {cpu: 500m, memory: 512Mi}}
"""


@dataclass
class QuickPlan:
    """The plan as a few lines of text, the report's path and the full result."""

    text: str
    report: Path
    result: PlanResult

    def __repr__(self) -> str:
        """The answer and the report's path (``print(qp)`` or ``qp.text`` gives the paragraph)."""
        return f"<QuickPlan answer={self.result.answer} report={str(self.report)!r}>"

    def __str__(self) -> str:
        return self.text


def quick_plan(
    pool_yaml: str | Mapping[str, Any] | None = None,
    *,
    rate: float | str = 2.0,
    hold: str | float = "exp(1m)",
    slo: str = "p99<1s",
    max_cold: str | float = "1%",
    duration: float | str = 240.0,
    replications: int = 2,
    seed: int = 42,
    out_dir: str | os.PathLike[str] | None = None,
) -> QuickPlan:
    """Plan the pool of ``pool_yaml`` (a SandboxSet) for Poisson claims at ``rate`` per second.

    Runs in this process (a few seconds with the defaults) and writes
    ``summary.json`` and ``report.html`` to ``out_dir`` (default: a new
    ``kruise-agents-plan-*`` directory under the system's temp directory,
    made by :func:`tempfile.mkdtemp`: the caller's own, mode 0700, never a
    path another user of the host could have made first).

    Each argument takes the forms a scenario file (or ``kruise-agents plan``)
    takes for the same value, read by the same parsers: ``pool_yaml`` a
    SandboxSet manifest (YAML text or a mapping, as a pool's ``manifest:``;
    ``None``: the demo's pool), ``rate`` claims per second (``2`` or
    ``"120/min"``), ``hold`` a latency or ``"forever"``, ``slo`` a goal such as
    ``"p99<1s"`` (``--slo``), ``max_cold`` a share (``"1%"`` or ``0.01``, as
    ``--max-cold``), ``duration`` seconds (``240`` or ``"4m"``), ``replications``
    and ``seed`` whole numbers, ``out_dir`` a path or its text. Anything else
    raises one :class:`~simulator.planning.errors.PlanningError` naming the
    argument and the reason before anything runs or is written; so does an
    ``out_dir`` that cannot be a folder to write in, or that holds files no
    run wrote.

    A pool without the agent runtime (``runtimes: [{name: agent-runtime}]``,
    or an init container named ``runtime``: the rule the claim path uses)
    raises :class:`~simulator.planning.errors.PlanningError` before any run:
    every E2B create calls its ``/init`` and fails (upstream), whatever the
    size. A plan in which every claim fails for another reason with stock at
    hand stops at the first size that shows it and says so (see
    :func:`~simulator.planning.plan.all_failed_with_stock`).
    """
    # The goals and the folder first: a bad one is refused before the pool is read or
    # anything runs.
    goal = parse_slo(slo, "slo")
    cold = parse_max_share(max_cold, "max_cold")
    chosen = _out_dir(out_dir)
    goals = f"goal {slo} and at most {max_cold} cold."
    scenario = _scenario(
        pool_yaml,
        rate=rate,
        hold=hold,
        duration=duration,
        replications=replications,
        seed=seed,
        goals=goals,
    )
    pool = scenario.pools[0]
    result = plan(
        scenario,
        pool.name or "",
        slo=goal,
        max_cold=cold,
        low=1,
        high=None,
        executor=SerialExecutor(),
        stop=threading.Event(),
    )
    out = chosen or Path(tempfile.mkdtemp(prefix="kruise-agents-plan-"))
    summaries = [c.summary for _, c in sorted(result.candidates.items())]
    try:
        write_summary(
            out,
            summary_payload(
                "plan",
                scenario,
                "quick_plan",
                summaries,
                executor="serial",
                interrupted=False,
                plan=result,
            ),
        )
        report = write_report(out, "plan", scenario, "quick_plan", summaries, plan=result)
    except BaseException:
        if chosen is None:
            # Its own folder, half written (a Ctrl-C while the plots are drawn): nobody
            # was told its path, so it would be left behind unseen.
            shutil.rmtree(out, ignore_errors=True)
        raise
    per_second = scenario.workloads[0].arrivals.draws(1.0)[1]
    return QuickPlan(
        text=_text(result, per_second, hold, slo, max_cold, report),
        report=report,
        result=result,
    )


def _out_dir(out_dir: object) -> Path | None:
    """``out_dir`` as a checked folder to write in, or ``None`` (a new temp folder)."""
    if out_dir is None:
        return None
    if not isinstance(out_dir, str | os.PathLike):
        raise PlanningError(f"out_dir: expected a path or its text, got {out_dir!r}")
    chosen = Path(out_dir)
    check_out_dir(chosen, "out_dir")
    return chosen


def _scenario(
    pool_yaml: object,
    *,
    rate: object,
    hold: object,
    duration: object,
    replications: object,
    seed: object,
    goals: str,
) -> Scenario:
    """The scenario quick_plan runs; a bad value is a PlanningError naming its argument."""
    try:
        # Read first: the description quotes it (a str has no ``:g``).
        per_second = parse_rate(rate)
    except ValueError as exc:
        raise PlanningError(f"rate: {exc}") from None
    obj, manifest = _pool(pool_yaml)
    data: dict[str, Any] = {
        "name": "demo-plan",
        "description": (
            f"Poisson claims at {per_second:g}/s held {hold}, on the demo's pool; {goals}"
        ),
        "seed": seed,
        "replications": replications,
        "duration": duration,
        "warmup": 30.0,
        "pools": [{"manifest": manifest}],
        "workloads": [
            {
                "template": obj.metadata.name,
                "namespace": obj.metadata.namespace,
                "arrivals": {"kind": "poisson", "rate": per_second},
                "hold": hold,
            }
        ],
    }
    try:
        scenario = parse_scenario(data, source="quick_plan")
    except ScenarioError as exc:
        raise PlanningError(_argument_error(exc)) from None
    if not sandboxset_has_agent_runtime(obj):
        # Checked before any run: the plan would search size after size to learn it.
        raise PlanningError(
            f"pool_yaml: SandboxSet {obj.metadata.namespace}/{obj.metadata.name} has no agent "
            f"runtime (runtimes: [{{name: {AGENT_RUNTIME}}}], or an init container named "
            f"{RUNTIME_INIT_CONTAINER}): every E2B create (the claims quick_plan makes) calls "
            "its /init and fails, whatever the pool's size (upstream's behaviour); add one"
        )
    return scenario


def _pool(pool_yaml: object) -> tuple[SandboxSet, str | dict[str, Any]]:
    """The pool's SandboxSet, and the manifest the scenario is given (as a pool's ``manifest:``)."""
    manifest: str | dict[str, Any]
    if pool_yaml is None:
        manifest = _DEFAULT_POOL
    elif isinstance(pool_yaml, str):
        manifest = pool_yaml
    elif isinstance(pool_yaml, Mapping):
        manifest = dict(pool_yaml)
    else:
        raise PlanningError(
            "pool_yaml: expected a SandboxSet manifest (its YAML text, or a mapping), "
            f"got {type(pool_yaml).__name__}"
        )
    try:
        obj = load_manifest(manifest)
    except InvalidError as exc:
        # The loader names its own argument ("manifest"); the caller's is pool_yaml.
        raise PlanningError(f"pool_yaml: {str(exc).removeprefix('manifest: ')}") from None
    if not isinstance(obj, SandboxSet):
        raise PlanningError(f"pool_yaml: must be a SandboxSet, got {obj.kind}")
    return obj, manifest


_ARGUMENTS = {
    "seed": "seed",
    "replications": "replications",
    "duration": "duration",
    "workloads[0].arrivals.rate": "rate",
    "workloads[0].hold": "hold",
}
"""The argument each field of quick_plan's scenario comes from (the rest: ``pool_yaml``'s)."""


def _argument_error(exc: ScenarioError) -> str:
    """The scenario's refusal said of the caller's argument, not of the scenario's field."""
    argument = _ARGUMENTS.get(exc.path)
    if argument is not None:
        return f"{argument}: {exc.reason}"
    if exc.path == "sample_interval":
        # Too many samples: only the duration (with the 30 s warm-up) makes the run that long.
        return f"duration: too long for quick_plan ({exc.reason.partition(': set')[0]})"
    if exc.path.startswith(("pools[0]", "workloads[0]")):
        # The pool's own fields, and the workload's template and namespace (the pool's).
        field = exc.path.partition(".")[2]
        if field in ("", "manifest"):
            return f"pool_yaml: {exc.reason}"
        return f"pool_yaml: {field}: {exc.reason}"
    return str(exc)


def _text(
    result: PlanResult, rate: float, hold: object, slo: str, max_cold: object, report: Path
) -> str:
    est = result.analytic
    lines = [
        f"Capacity plan for pool {result.pool}: Poisson claims at {rate:g}/s held {hold}; "
        f"goal {slo}, at most {max_cold} cold.",
        f"  Erlang-B: {est.replicas} replicas (load a = {three_figures(est.rate)}/s x "
        f"{three_figures(est.refill_s)}s "
        f"refill = {three_figures(est.load)}).",
    ]
    best = result.best
    if best is not None:
        how = ", ".join(f"{g.name} {fmt_estimate(g.name, g.estimate)}" for g in best.goals)
        # How sure the answer is: a share interval crossing its limit says so.
        runs = len(best.summary.runs)
        lines.append(
            f"  simulated: {result.answer} replicas over {runs} replication"
            f"{'' if runs == 1 else 's'}, {best.confidence} ({how})."
        )
        if result.explanation:
            lines.append(f"  {result.explanation[0]}")
    else:
        # Every line: why no size meets (claims failing, the nodes full) is among them.
        lines.append(f"  simulated: {result.none_found}.")
        said = f"{result.none_found[0].upper()}{result.none_found[1:]} in simulation."
        lines.extend(f"  {line}" for line in result.explanation if line != said)
    lines.append(f"  report: {report}")
    return "\n".join(lines)
