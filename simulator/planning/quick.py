"""A short capacity plan for one pool, for ``make demo``: a few seconds, a paragraph and a report.

>>> qp = quick_plan(POOL_YAML)          # doctest: +SKIP
>>> print(qp.text)                      # doctest: +SKIP
>>> qp.report                           # doctest: +SKIP
PosixPath('/tmp/kruise-agents-plan-k3v9x0_a/report.html')
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.modification import AGENT_RUNTIME
from simulator.planning.analytic import parse_max_share, parse_slo
from simulator.planning.errors import PlanningError
from simulator.planning.executors import SerialExecutor
from simulator.planning.formatting import fmt_estimate
from simulator.planning.loading import parse_scenario
from simulator.planning.outputs import check_out_dir, summary_payload, write_summary
from simulator.planning.plan import PlanResult, plan
from simulator.planning.report import write_report

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
    pool_yaml: str | None = None,
    *,
    rate: float = 2.0,
    hold: str = "exp(1m)",
    slo: str = "p99<1s",
    max_cold: str = "1%",
    duration: float = 240.0,
    replications: int = 2,
    seed: int = 42,
    out_dir: str | os.PathLike[str] | None = None,
) -> QuickPlan:
    """Plan the pool of ``pool_yaml`` (a SandboxSet) for Poisson claims at ``rate`` per second.

    Runs in this process (a few seconds with the defaults) and writes
    ``summary.json`` and ``report.html`` to ``out_dir`` (default: a new
    ``kruise-agents-plan-*`` directory under the system's temp directory,
    made by :func:`tempfile.mkdtemp`: the caller's own, mode 0700, never a
    path another user of the host could have made first). An ``out_dir`` (a
    path or its text) that cannot be a folder to write in, or that holds files
    no run wrote, raises :class:`~simulator.planning.errors.PlanningError`
    naming ``out_dir`` before anything runs.

    A pool without ``runtimes: [{name: agent-runtime}]`` raises
    :class:`~simulator.planning.errors.PlanningError` before any run: every
    E2B create calls its ``/init`` and fails (upstream), whatever the size.
    A plan in which every claim fails for another reason with stock at hand
    stops at the first size that shows it and says so (see
    :func:`~simulator.planning.plan.all_failed_with_stock`).
    """
    data: dict[str, Any] = {
        "name": "demo-plan",
        "description": (
            f"Poisson claims at {rate:g}/s held {hold}, on the demo's pool; "
            f"goal {slo} and at most {max_cold} cold."
        ),
        "seed": seed,
        "replications": replications,
        "duration": duration,
        "warmup": 30.0,
        "pools": [{"manifest": pool_yaml or _DEFAULT_POOL}],
    }
    # The goals and the folder first: a bad one is refused before the pool is read or
    # anything runs.
    goal = parse_slo(slo, "slo")
    cold = parse_max_share(max_cold, "max_cold")
    chosen = None if out_dir is None else Path(out_dir)
    if chosen is not None:
        check_out_dir(chosen, "out_dir")
    scenario = parse_scenario(_with_workload(data, rate, hold), source="quick_plan")
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
    return QuickPlan(
        text=_text(result, rate, hold, slo, max_cold, report), report=report, result=result
    )


def _with_workload(data: dict[str, Any], rate: float, hold: str) -> dict[str, Any]:
    from pytest_kruise_agents.api.errors import InvalidError
    from pytest_kruise_agents.api.manifest import load_manifest

    pool_text = data["pools"][0]["manifest"]
    try:
        obj = load_manifest(pool_text)
    except InvalidError as exc:
        # The loader names its own argument ("manifest"); the caller's is pool_yaml.
        reason = str(exc).removeprefix("manifest: ")
        raise PlanningError(f"pool_yaml: {reason}") from None
    if isinstance(obj, SandboxSet) and not any(
        r.name == AGENT_RUNTIME for r in obj.spec.runtimes or ()
    ):
        # Checked before any run: the plan would search size after size to learn it.
        raise PlanningError(
            f"pool_yaml: SandboxSet {obj.metadata.namespace}/{obj.metadata.name} has no "
            f"runtimes: [{{name: {AGENT_RUNTIME}}}]: every E2B create (the claims quick_plan "
            "makes) calls its /init and fails, whatever the pool's size (upstream's "
            "behaviour); add it"
        )
    return data | {
        "workloads": [
            {
                "template": obj.metadata.name,
                "namespace": obj.metadata.namespace,
                "arrivals": {"kind": "poisson", "rate": rate},
                "hold": hold,
            }
        ]
    }


def _text(result: PlanResult, rate: float, hold: str, slo: str, max_cold: str, report: Path) -> str:
    est = result.analytic
    lines = [
        f"Capacity plan for pool {result.pool}: Poisson claims at {rate:g}/s held {hold}; "
        f"goal {slo}, at most {max_cold} cold.",
        f"  Erlang-B: {est.replicas} replicas (load a = {est.rate:.3g}/s x {est.refill_s:.3g}s "
        f"refill = {est.load:.3g}).",
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
