"""Plan: the smallest pool meeting the goals, simulated, next to Erlang's answer.

The search starts at Erlang's estimate (see :mod:`simulator.planning.analytic`)
and assumes the goals get easier as the pool grows: it evaluates the estimate
and one below it, gallops away from them (1, 2, 4, ... replicas) until it
brackets the boundary, then bisects. Each evaluation runs the scenario's
replications (in parallel, with the executor) with the pool set to the
candidate size; a candidate *meets* the goals when the means over
replications do, and the verdict is *certain* when the 95% intervals lie on
the same side of every goal.

Goals: the latency ``slo`` (e.g. ``p99<1s``; failed claims count as slow:
their share must stay within the tail the percentile allows),
``max_cold``, the largest share of the pool's deliveries created cold, and
``max_failed``, the largest failed share (with a latency goal, the stricter
of it and the tail is held). All are judged on the planned pool's own claims:
in a scenario of several pools, another pool's claims say nothing of its size.

A goal no claim was counted for (nobody claims from the pool, or no claim
falls in the window) is ``not measured``: nothing can miss it, so it does not
hold a size back, and a plan whose goals were all unmeasured answers the
smallest size of the range and says no claims were measured. A size the nodes
cannot hold (the pools never fill) is a verdict too: it *does not fit*, and the
search goes no higher (a larger pool fits no better).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.planning.analytic import (
    AnalyticEstimate,
    Slo,
    analytic_estimate,
    latency_share_note,
    pool_workloads,
    size_for_loss,
    waits_for_refill,
)
from simulator.planning.arrivals import (
    BurstArrivals,
    ConstantArrivals,
    DiurnalArrivals,
    PoissonArrivals,
    TraceArrivals,
)
from simulator.planning.errors import PlanningError
from simulator.planning.executors import Executor, OnProgress, OnResult
from simulator.planning.figures import three_figures
from simulator.planning.formatting import label_of
from simulator.planning.overrides import apply_overrides
from simulator.planning.scenario import PoolSpec, Scenario, WorkloadSpec
from simulator.planning.stats import Estimate, wilson_interval
from simulator.planning.study import Point, PointSummary, UnfitPoint, run_study

__all__ = [
    "MAX_REPLICAS",
    "NEVER_COLD",
    "Candidate",
    "Goal",
    "PlanResult",
    "claims_to_show",
    "cold_goal_certainty",
    "explain",
    "failed_limit",
    "goal_verdict",
    "judge",
    "plan",
]


@dataclass
class Goal:
    """One goal at one candidate: the measured estimate, the limit, the verdict."""

    name: str
    limit: float
    estimate: Estimate | None
    met: bool
    certain: bool
    inclusive: bool = True
    """``<=`` (shares) rather than ``<`` (latency goals)."""
    no_claims: bool = False
    """No claim was counted for the goal in any replication: nothing could miss it."""
    certain_by: str | None = None
    """Why the verdict holds whatever the claims counted (the share cannot be nonzero)."""

    @property
    def symbol(self) -> str:
        """``<=`` or ``<``."""
        return "<=" if self.inclusive else "<"

    @property
    def verdict(self) -> str:
        """``met``, ``missed``, or ``not measured`` when no replication gave a value."""
        if self.estimate is None:
            return "not measured"
        return "met" if self.met else "missed"

    @property
    def confidence(self) -> str:
        """How sure the verdict is, in words."""
        if self.estimate is None:
            return "no claims were measured" if self.no_claims else "no replication gave a value"
        if self.certain_by is not None:
            return f"certain: {self.certain_by}"
        if self.estimate.n < 2:
            return "measured in one replication only: no interval"
        return "certain" if self.certain else "uncertain: the 95% interval crosses the limit"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "name": self.name,
            "limit": self.limit,
            "estimate": None if self.estimate is None else self.estimate.as_dict(),
            "met": self.met,
            "certain": self.certain,
            "inclusive": self.inclusive,
            "no_claims": self.no_claims,
            "certain_by": self.certain_by,
        }


@dataclass
class Candidate:
    """A pool size the search ran, its summary and its verdict on each goal."""

    replicas: int
    summary: PointSummary
    goals: list[Goal]

    def __repr__(self) -> str:
        """The size and its verdict: the runs stay in ``summary``."""
        return f"<Candidate {self.replicas} replicas: meets={self.meets}, certain={self.certain}>"

    @property
    def meets(self) -> bool:
        """Whether every goal is met (on the means); one no claim was counted for cannot miss."""
        return all(g.met or g.no_claims for g in self.goals)

    @property
    def measured(self) -> list[Goal]:
        """The goals some claim was counted for."""
        return [g for g in self.goals if not g.no_claims]

    @property
    def no_claims(self) -> bool:
        """Whether no claim was counted for any goal (nothing was measured to judge by)."""
        return not self.measured

    @property
    def certain(self) -> bool:
        """Whether every measured verdict holds across the 95% intervals (and one was measured)."""
        measured = self.measured
        return bool(measured) and all(g.certain for g in measured)

    @property
    def one_replication(self) -> bool:
        """Whether a goal was measured in one replication only (no interval to judge it by).

        A goal certain whatever the count (a cold share that cannot be nonzero)
        needs no interval.
        """
        return any(
            g.estimate is not None and g.estimate.n < 2 and g.certain_by is None for g in self.goals
        )

    @property
    def confidence(self) -> str:
        """How sure the candidate's verdict is, in words (one replication has no interval)."""
        if self.no_claims:
            return "no claims were measured"
        if self.one_replication:
            return "one replication: no interval"
        return "certain" if self.certain else "uncertain: an interval crosses a goal"


@dataclass
class PlanResult:
    """The answer of :func:`plan` and everything needed to explain it."""

    pool: str
    slo: Slo | None
    max_cold: float | None
    low: int
    high: int
    analytic: AnalyticEstimate
    analytic_measured: AnalyticEstimate | None
    answer: int | None
    candidates: dict[int, Candidate]
    explanation: list[str] = field(default_factory=list)
    interrupted: bool = False
    max_failed: float | None = None
    unfit: dict[int, str] = field(default_factory=dict)
    """Sizes the nodes cannot hold (the pools never filled), with the run's reason."""
    all_failed_at: int | None = None
    """The size at which the search stopped because every claim of the pool failed with
    stock at hand (see :func:`all_failed_with_stock`): no size fixes that."""

    def __repr__(self) -> str:
        """The pool, the answer and the sizes tried: the runs stay in ``candidates``."""
        tried = ", ".join(str(s) for s in sorted(self.candidates)) or "none"
        return (
            f"<PlanResult pool={self.pool} answer={self.answer} "
            f"erlang={self.analytic.replicas} tried=[{tried}]"
            f"{' interrupted' if self.interrupted else ''}>"
        )

    @property
    def fits_below(self) -> int | None:
        """The smallest size found not to fit (every larger one does not either), if any."""
        return min(self.unfit, default=None)

    @property
    def none_found(self) -> str:
        """What to say when no size met the goals: the whole range, or only the sizes tried."""
        if self.interrupted:
            tried = ", ".join(str(s) for s in sorted(self.candidates)) or "none"
            return f"no size tried meets the goals (interrupted; sizes tried: {tried})"
        if self.all_failed_at is not None:
            tried = ", ".join(str(s) for s in sorted(self.candidates))
            return (
                f"no size meets the goals: every claim fails, whatever the size "
                f"(sizes tried: {tried})"
            )
        text = f"no size in {self.low}..{self.high} meets the goals"
        top = self.fits_below
        if top is not None:
            text += f" (from {top} replicas up the pool does not fit on the nodes)"
        return text

    @property
    def failed_limit(self) -> float | None:
        """The failed share the goals allow (see :func:`failed_limit`)."""
        return failed_limit(self.slo, self.max_failed)

    @property
    def best(self) -> Candidate | None:
        """The candidate at the answer."""
        return None if self.answer is None else self.candidates.get(self.answer)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: goals, both analytic estimates, the answer and every candidate."""
        return {
            "pool": self.pool,
            "slo": None if self.slo is None else self.slo.text,
            "max_cold": self.max_cold,
            "max_failed": self.max_failed,
            "failed_limit": self.failed_limit,
            "range": [self.low, self.high],
            "analytic": self.analytic.as_dict(),
            "analytic_measured_refill": (
                None if self.analytic_measured is None else self.analytic_measured.as_dict()
            ),
            "answer": self.answer,
            "certain": None if self.best is None else self.best.certain,
            "explanation": self.explanation,
            "interrupted": self.interrupted,
            "all_failed_at": self.all_failed_at,
            "does_not_fit": [
                {"replicas": size, "reason": reason} for size, reason in sorted(self.unfit.items())
            ],
            "candidates": [
                {
                    "replicas": c.replicas,
                    "meets": c.meets,
                    "certain": c.certain,
                    "goals": [g.as_dict() for g in c.goals],
                }
                for _, c in sorted(self.candidates.items())
            ],
        }


def goal_verdict(name: str, est: Estimate | None, limit: float, inclusive: bool) -> Goal:
    """The verdict on one goal: met on the mean; certain when the interval agrees."""
    if est is None:
        return Goal(name, limit, None, met=False, certain=False, inclusive=inclusive)

    def ok(v: float) -> bool:
        return v <= limit if inclusive else v < limit

    met = ok(est.mean)
    if est.low is None or est.high is None:
        certain = False
    else:
        certain = ok(est.high) if met else not ok(est.low)
    return Goal(name, limit, est, met, certain, inclusive)


def judge(
    summary: PointSummary,
    pool: str,
    slo: Slo | None,
    max_cold: float | None,
    max_failed: float | None = None,
) -> list[Goal]:
    """The verdict of a point on each goal, judged on the claims of ``pool`` alone.

    The latency, failed and cold shares are the pool's own (another pool's
    claims say nothing of its size); a goal none of its claims was counted
    for in any replication is marked ``no_claims``.
    """
    figures = summary.pools.get(pool, {})
    goals = run_goals(figures, slo, max_failed)
    if max_cold is not None:
        cold = goal_verdict("cold_share", figures.get("cold_share"), max_cold, True)
        scenario = summary.scenario
        spec = next((p for p in scenario.pools if p.key == pool), None)
        if spec is not None:
            goals.append(cold_goal_certainty(cold, pool_workloads(scenario, spec)))
        else:
            goals.append(cold)
    for goal in goals:
        goal.no_claims = goal.estimate is None and _none_counted(figures.get("claims"))
    return goals


MAX_REPLICAS = 2**31 - 1
"""The largest pool size: a SandboxSet's ``spec.replicas`` is an int32."""

NEVER_COLD = "no claim can be cold (create-on-no-stock is off: claims wait for a refill)"
"""Why a cold-share verdict is certain when every workload waits for a refill."""


def cold_goal_certainty(goal: Goal, workloads: Sequence[WorkloadSpec]) -> Goal:
    """``goal`` (on a cold share), certain when none of ``workloads`` may create on no stock.

    Such claims wait for a refill and are never cold: the share is zero by
    construction, and counting more claims cannot change the verdict (the
    Wilson interval of 0 in ``n`` would call it uncertain for small ``n``).
    """
    never_cold = bool(workloads) and not any(wl.claim.create_on_no_stock for wl in workloads)
    if goal.estimate is not None and never_cold:
        goal.certain_by = NEVER_COLD
        goal.certain = goal.met
    return goal


def _none_counted(count: Estimate | None) -> bool:
    """Whether a count (of claims, or their rate) was zero in every replication.

    Counts are never negative, so a mean of zero is zero everywhere.
    """
    return count is not None and count.mean == 0


def run_goals(
    figures: Mapping[str, Estimate], slo: Slo | None, max_failed: float | None
) -> list[Goal]:
    """The verdicts on the latency and failure goals, as ``simulate`` and ``plan`` both judge them.

    ``figures`` are a point's aggregates: the run's (``simulate``) or one
    pool's (``plan``), which name the figures alike.

    A failed (or never delivered) claim counts as slower than any delivered
    one: a percentile goal is judged on the percentile of all the claims
    (``latency_p99_all``), which more failed claims than the tail leaves make
    unbounded, and the failed share is held to the tail the percentile leaves
    (1% for a p99) and to ``max_failed`` if given (the stricter of the two).
    """
    goals: list[Goal] = []
    if slo is not None:
        metric = slo.judged_metric
        goals.append(goal_verdict(metric, figures.get(metric), slo.seconds, slo.inclusive))
    limit = failed_limit(slo, max_failed)
    if limit is not None:
        goals.append(goal_verdict("failed_share", figures.get("failed_share"), limit, True))
    return goals


def failed_limit(slo: Slo | None, max_failed: float | None) -> float | None:
    """The failed share the goals allow: the stricter of ``max_failed`` and the SLO's tail.

    A failed claim counts as slow, so a ``p99`` goal alone allows 1% failed.
    ``None`` when neither limits it.
    """
    limits = [x for x in (None if slo is None else slo.tail_share, max_failed) if x is not None]
    return min(limits) if limits else None


def plan(
    scenario: Scenario,
    pool_name: str,
    *,
    slo: Slo | None,
    max_cold: float | None,
    low: int | None,
    high: int | None,
    executor: Executor,
    max_failed: float | None = None,
    stop: threading.Event,
    keep_claims: bool = False,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
) -> PlanResult:
    """Search the smallest ``replicas`` of ``pool_name`` meeting the goals (module docstring).

    With ``keep_claims`` the runs at the answer keep their per-claim rows
    (``RunResult.claims``, for ``claims.csv``); every other candidate's are
    dropped, those of a size that misses the goals as soon as it is judged.
    """
    if slo is None and max_cold is None:
        raise PlanningError("give a goal: --slo and/or --max-cold")
    try:
        pool = scenario.pool(pool_name)
    except KeyError as exc:
        raise PlanningError(f"--pool: {exc.args[0]}") from None
    estimate = analytic_estimate(scenario, pool, slo, max_cold)
    lo = 1 if low is None else low
    # An open HIGH leaves room to gallop up from where the search starts:
    # Erlang's estimate, or LOW when the user starts above it (never past
    # the largest size a SandboxSet holds).
    hi = (
        high
        if high is not None
        else min(MAX_REPLICAS, max(10, 4 * max(estimate.replicas or 10, lo) + 10))
    )
    if lo < 0 or hi < lo:
        raise PlanningError(f"--range: need 0 <= low <= high, got {lo}:{hi}")
    if hi > MAX_REPLICAS:
        raise PlanningError(f"--range: sizes must be at most {MAX_REPLICAS}, got {lo}:{hi}")
    path = f"pools[{scenario.pools.index(pool)}].replicas"
    result = PlanResult(
        pool=pool.key,
        slo=slo,
        max_cold=max_cold,
        low=lo,
        high=hi,
        analytic=estimate,
        analytic_measured=None,
        answer=None,
        candidates={},
        max_failed=max_failed,
    )

    def unfit(s: int) -> bool:
        """Whether ``s`` is known not to fit: it, or a smaller size, never filled."""
        top = result.fits_below
        return top is not None and s >= top

    def evaluate(sizes: list[int]) -> bool:
        todo = sorted(
            {s for s in sizes if lo <= s <= hi and s not in result.candidates and not unfit(s)}
        )
        if stop.is_set():
            result.interrupted = True  # stopped between batches: the search is cut short too
            return False
        if not todo:
            return True
        points = [
            Point({f"pools.{pool.name}.replicas": s}, apply_overrides(scenario, [(path, s)]))
            for s in todo
        ]
        # run_study tells which sizes did not fit and keeps the runs of the others:
        # no size of the batch is run again.
        study = run_study(
            points,
            executor,
            stop=stop,
            keep_claims=keep_claims,
            on_result=on_result,
            on_progress=on_progress,
        )
        for s, outcome in zip(todo, study.by_point, strict=True):
            if isinstance(outcome, UnfitPoint):
                result.unfit[s] = outcome.reason
        for s, summary in zip(todo, study.by_point, strict=True):
            # A size above one that did not fit counts as not fitting (the search
            # assumes so), even if its own runs happened to fill.
            if not isinstance(summary, PointSummary) or not summary.complete or unfit(s):
                continue
            cand = Candidate(s, summary, judge(summary, pool.key, slo, max_cold, max_failed))
            if not cand.meets:
                _drop_claims(cand)  # never the answer: free its rows at once
            result.candidates[s] = cand
            if on_candidate is not None:
                on_candidate(cand)
        if study.partial:
            result.interrupted = True
        return not study.partial

    def meets(s: int) -> bool | None:
        """Whether ``s`` meets the goals or does not fit (evaluating it if needed); None when stopped.

        A size that does not fit counts with the sizes that meet: the search
        looks for the smallest size that is either, so it never climbs past a
        size that does not fit, and the answer is that size only if it fits.
        """
        if s not in result.candidates and not unfit(s) and not evaluate([s]):
            return None
        if unfit(s):
            return True
        cand = result.candidates.get(s)
        return None if cand is None else cand.meets

    def hopeless(s: int) -> bool:
        """Whether the search stops below any size that meets: at ``s`` every claim failed
        with stock at hand (a larger pool only adds stock)."""
        cand = result.candidates.get(s)
        if cand is None or not all_failed_with_stock(cand, pool.key):
            return False
        result.all_failed_at = s
        return True

    start = min(max(estimate.replicas or lo, lo), hi)
    # The estimate and the size below it in one batch: the usual answer needs no more.
    if not evaluate([start - 1, start]):
        return _finish(result, scenario, pool, slo, max_cold)
    first = meets(start)
    if first is None:
        return _finish(result, scenario, pool, slo, max_cold)
    if first:
        ok, fail, step = start, lo - 1, 1
        while ok > lo:  # gallop down until a size fails
            probe = max(lo, ok - step)
            verdict = meets(probe)
            if verdict is None:
                return _finish(result, scenario, pool, slo, max_cold)
            if not verdict:
                fail = probe
                break
            ok, step = probe, step * 2
    else:
        ok, fail, step = hi + 1, start, 1
        while fail < hi:  # gallop up until a size meets
            if hopeless(fail):
                return _finish(result, scenario, pool, slo, max_cold)
            probe = min(hi, fail + step)
            verdict = meets(probe)
            if verdict is None:
                return _finish(result, scenario, pool, slo, max_cold)
            if verdict:
                ok = probe
                break
            fail, step = probe, step * 2
        if ok > hi:
            return _finish(result, scenario, pool, slo, max_cold)
    while ok - fail > 1:
        mid = (ok + fail) // 2
        verdict = meets(mid)
        if verdict is None:
            return _finish(result, scenario, pool, slo, max_cold)
        if verdict:
            ok = mid
        else:
            fail = mid
    result.answer = None if unfit(ok) else ok
    return _finish(result, scenario, pool, slo, max_cold)


FOUND_NO_STOCK = (
    "no_stock_claims",
    "cold_no_stock",
    "cold_all_picked",
    "failed_cold_no_stock",
    "failed_cold_all_picked",
)
"""The pool figures that count claims whose pick found no sandbox to take: failed for no
stock (``create_on_no_stock`` off), or created cold on finding the pool empty or every
candidate of the window picked, delivered (``cold_*``) or not (``failed_cold_*``)."""


def all_failed_with_stock(candidate: Candidate, pool: str) -> bool:
    """Whether every claim of ``pool`` failed at ``candidate``, none of them for want of stock.

    Every run had claims of the pool, all of them failed, none ever found the
    pool empty or every candidate of its window picked (:data:`FOUND_NO_STOCK`:
    a pick that failed for no stock, or a sandbox created cold, the claim
    delivered or not) and none waited for a creation token (``create_limited``):
    each attempt had a sandbox to take, and failed after (a pool without the
    agent runtime fails every E2B claim at ``/init``, reference §16; a fault
    that fails every start). Stock is all a larger pool adds, so no size meets
    a goal: the search stops there rather than running every larger size to
    learn the same. A claim created cold that failed (a cold start longer than
    its wait-ready timeout) is one a larger pool may deliver warm: it never
    stops the search.
    """
    own = candidate.summary.pools.get(pool, {})
    failed, claims = own.get("failed_share"), own.get("claims")
    limited = candidate.summary.metrics.get("create_limited")
    found = [own.get(name) for name in FOUND_NO_STOCK]
    return (
        failed is not None
        and claims is not None
        and limited is not None
        and failed.n == len(candidate.summary.runs)  # every run had claims of the pool
        and claims.mean > 0
        and failed.mean == 1.0
        and all(est is not None and est.mean == 0.0 for est in found)
        and limited.mean == 0.0
    )


def _all_failed_line(candidate: Candidate) -> str:
    """Why the search stopped at ``candidate``: every claim failed, and what they failed of."""
    total = sum(est.mean for est in candidate.summary.failures.values()) or 1.0
    reasons = ", ".join(
        f"{reason} {est.mean / total:.0%}"
        for reason, est in sorted(candidate.summary.failures.items(), key=lambda kv: -kv[1].mean)
        if est.mean
    )
    return (
        f"Every claim failed at {candidate.replicas} replicas ({reasons}), though none found "
        "the pool empty or every candidate picked (none failed its pick for no stock, none "
        "was created cold) or waited for a creation token: each attempt had a sandbox to take. "
        "More replicas cannot fix that, so the search stopped there; fix what fails (a pool "
        "serving E2B creates needs runtimes: [{name: agent-runtime}], whose /init every "
        "claim calls)."
    )


def _drop_claims(candidate: Candidate) -> None:
    """Forget the per-claim rows of ``candidate``'s runs (they can be large)."""
    for run in candidate.summary.runs:
        run.claims = None


def _finish(
    result: PlanResult, scenario: Scenario, pool: PoolSpec, slo: Slo | None, max_cold: float | None
) -> PlanResult:
    # Only the answer's claims are kept (claims.csv describes the answer).
    for size, candidate in result.candidates.items():
        if size != result.answer:
            _drop_claims(candidate)
    # Erlang again, with the refill time the simulation measured (Little's law).
    refills = [
        est.mean
        for c in result.candidates.values()
        if (est := c.summary.pools.get(pool.key, {}).get("refill_s")) is not None
    ]
    if refills:
        measured = sorted(refills)[len(refills) // 2]
        result.analytic_measured = analytic_estimate(
            scenario, pool, slo, max_cold, refill_s=measured
        )
    result.explanation = explain(result, scenario, pool)
    return result


def explain(result: PlanResult, scenario: Scenario, pool: PoolSpec) -> list[str]:
    """Why the simulated answer differs from Erlang's (or why they agree)."""
    lines: list[str] = []
    est = result.analytic
    sim = result.answer
    best = result.best
    if result.interrupted:
        lines.append("The search was interrupted: the answer covers the sizes evaluated so far.")
    top = result.fits_below
    if top is not None:
        lines.append(
            f"From {top} replicas up the pool does not fit on the nodes ({result.unfit[top]}): "
            "the search went no higher; add nodes, or make the sandboxes smaller, to try more."
        )
    if best is not None and best.no_claims:
        lines.append(
            f"No claims were measured for pool {result.pool} in the window, at any size tried: "
            f"no size can miss the goals, so the answer is the smallest size in the range "
            f"({result.low}). Check that a workload claims from this pool within the window."
        )
    if est.target is None:
        lines.append(
            f"Erlang has no size to give: {est.notes[-1]}; the simulation judges the rest."
        )
    elif result.slo is not None and est.cold_miss_share:
        # The mean cold latency says nothing of the tail: say what the target rests on.
        note = latency_share_note(result.slo, est.cold_miss_share, est.cold_latency_s)
        lines.append(f"The latency goal limits the cold share: {note}.")
    if sim is None:
        lines.append(f"{result.none_found[0].upper()}{result.none_found[1:]} in simulation.")
        stopped = result.candidates.get(result.all_failed_at or -1)
        if stopped is not None:
            lines.append(_all_failed_line(stopped))
        worst = max(result.candidates.values(), key=lambda c: c.replicas, default=None)
        if worst is not None:
            # The pool's own claims, as its goals were judged on.
            warm = _pool_mean(worst, result.pool, "warm_p99")
            waits = waits_for_refill(scenario, pool)
            if result.slo is not None and warm is not None and not result.slo.met(warm):
                if waits:
                    # A claim that found no stock waited for a refill and was then
                    # delivered warm: its wait is in the warm p99, which a pool sets.
                    lines.append(
                        f"Warm deliveries take {three_figures(warm)}s at p99 "
                        f"(>= {result.slo.seconds:g}s) at {worst.replicas} replicas, "
                        "counting the claims that waited for a refill: a pool larger than the range searched may still meet the goal."
                    )
                else:
                    first = _pool_mean(worst, result.pool, "warm_first_p99")
                    if first is not None and result.slo.met(first):
                        # The floor meets the goal: retries (a creation token refused, every
                        # candidate picked by concurrent claims) make the tail, and stock
                        # shortens those.
                        lines.append(
                            f"Warm deliveries take {three_figures(warm)}s at p99 "
                            f"(>= {result.slo.seconds:g}s) at {worst.replicas} replicas, but "
                            f"{three_figures(first)}s on their first attempt: the rest retried "
                            "(a creation token refused, or every candidate picked by concurrent "
                            "claims), "
                            "which a pool larger than the range searched may avoid."
                        )
                    else:
                        lines.append(
                            f"Even warm deliveries take {three_figures(warm)}s at p99 "
                            f"(>= {result.slo.seconds:g}s): no pool size fixes that; the "
                            "latency of the claim path itself does."
                        )
            failed = _pool_mean(worst, result.pool, "failed_share")
            if failed:
                lines.append(f"{failed:.2%} of the claims fail at {worst.replicas} replicas.")
    elif sim == result.low > 1 and not (best is not None and best.no_claims):
        # No size below the range was run: the answer is only an upper bound,
        # and its distance to Erlang's says nothing of what the pool needs.
        erlang = "" if est.replicas is None else f" (Erlang says {est.replicas})"
        lines.append(
            f"The smallest size of the range ({sim}) meets the goals; smaller sizes were not "
            f"tried{erlang}: a smaller pool may meet them too."
        )
    elif est.replicas is not None and not (best is not None and best.no_claims):
        diff = sim - est.replicas
        if abs(diff) <= 1:
            lines.append(
                f"Simulation ({sim}) and Erlang ({est.replicas}) agree within one replica: the pool "
                "behaves as the loss/queue system the formula describes; the rest is sampling noise."
            )
        else:
            direction = "more" if diff > 0 else "fewer"
            lines.append(
                f"Simulation needs {abs(diff)} replicas {direction} than Erlang ({sim} vs {est.replicas})."
            )
    measured = result.analytic_measured
    if measured is not None and est.refill_s > 0:
        ratio = measured.refill_s / est.refill_s
        if abs(ratio - 1) > 0.1:
            lines.append(
                f"The measured refill time is {three_figures(measured.refill_s)}s, "
                f"not the {three_figures(est.refill_s)}s the profile's step means add up to "
                "(image pulls on nodes without the image, client QPS limits, SandboxSet batches "
                f"and controller queues add to it); {_erlang_with(measured)}."
            )
        elif measured.replicas is not None:
            lines.append(
                f"The measured refill time ({three_figures(measured.refill_s)}s) "
                "matches the profile estimate; "
                f"Erlang with it says {measured.replicas}."
            )
    lines.extend(_arrival_lines(scenario, pool, est))
    if est.model == "erlang-c":
        lines.append(
            "Claims wait for a refill (no create-on-no-stock): Erlang-C assumes exponential refills "
            "served in arrival order, while waiting claims retry on their own schedule (exponential "
            "back-off at HEAD, every 25 ms in v0.3.0), so waits are longer and lumpier."
        )
    if scenario.faults:
        kinds_f = sorted({f.kind for f in scenario.faults})
        lines.append(
            f"The scenario injects faults ({', '.join(kinds_f)}), which the formula ignores."
        )
    if best is not None:
        pending = best.summary.mean("pending_pods_peak")
        if pending:
            lines.append(
                f"Nodes ran out of room at times (up to {pending:.0f} pods waiting for a node): "
                "node capacity, not the pool, limits delivery."
            )
        if best.one_replication:
            # No interval at all: saying one "crosses a goal" would contradict the table.
            lines.append(
                f"The verdict at {best.replicas} rests on one replication, which gives no "
                "interval: run more replications (--replications) to know how sure it is."
            )
        elif not best.certain and not best.no_claims:
            lines.append(
                f"The verdict at {best.replicas} is not certain: a 95% interval crosses a goal; "
                "run more replications (--replications) or a longer duration to settle it."
            )
            lines.extend(_claims_needed(best))
        # diagnose imports this module: import its create-limit reading here.
        from simulator.planning.diagnose import create_limit

        limited = create_limit(best.summary, scenario.cluster.build_profile())
        if limited is not None:
            lines.append(limited)
    return lines


def _erlang_with(measured: AnalyticEstimate) -> str:
    """What Erlang answers with the measured refill time: a size, or why it has none."""
    if measured.replicas is not None:
        return f"with the measured refill Erlang says {measured.replicas}"
    if measured.target is None:
        return "Erlang still has no size to give (no goal limits the share it sizes)"
    return "with it no pool size meets Erlang's target either"


def _pool_mean(candidate: Candidate, pool: str, metric: str) -> float | None:
    """The mean of one of ``pool``'s own figures at ``candidate`` (None when undefined)."""
    est = candidate.summary.pools.get(pool, {}).get(metric)
    return None if est is None else est.mean


def _arrival_lines(scenario: Scenario, pool: PoolSpec, est: AnalyticEstimate) -> list[str]:
    """How the pool's own arrivals differ from Erlang's Poisson stream (other pools' do not count)."""
    lines: list[str] = []
    workloads = pool_workloads(scenario, pool)
    kinds = {type(wl.arrivals) for wl in workloads}
    sizes = est.model == "erlang-b" and est.target is not None and est.target > 0
    if BurstArrivals in kinds:
        peak = max(
            wl.arrivals.peak_rate() * wl.claim.replicas
            for wl in workloads
            if isinstance(wl.arrivals, BurstArrivals)
        )
        line = "Arrivals come in bursts, far above the mean rate over the window that Erlang uses"
        if sizes and est.target is not None and peak < float("inf"):
            s_peak, _ = size_for_loss(peak * est.refill_s, est.target)
            line += (
                f"; at the burst's own rate ({three_figures(peak)}/s) Erlang-B asks for {s_peak}, "
                "an upper bound when the burst is shorter than the pool takes to drain"
            )
        else:
            line += "; a burst that arrives at once needs its whole count in stock"
        lines.append(line + ".")
    if DiurnalArrivals in kinds:
        peak = _peak_rate(scenario, workloads, est.rate)
        if sizes and est.target is not None:
            s_peak, _ = size_for_loss(peak * est.refill_s, est.target)
            lines.append(
                f"The rate follows a day; at the peak ({three_figures(peak)}/s) "
                f"Erlang-B asks for {s_peak}: "
                "the goal over the whole day sits between the mean-rate and the peak-rate answers."
            )
    if ConstantArrivals in kinds and PoissonArrivals not in kinds:
        lines.append(
            "Arrivals are evenly spaced, smoother than Poisson: fewer claims find the pool empty "
            "than Erlang-B predicts."
        )
    if TraceArrivals in kinds:
        lines.append("Arrivals replay a trace: Erlang sees only its mean rate over the window.")
    return lines


_PEAK_STEPS = 2000
"""Times of day tried for the peak of several diurnal curves (beside each one's own peak)."""


def _peak_rate(scenario: Scenario, workloads: Sequence[WorkloadSpec], mean_rate: float) -> float:
    """The pool's rate at its diurnal peak: every workload that claims from it counts.

    The diurnal workloads at the time their sum peaks, the others (Poisson, constant,
    bursts, a trace) at their mean rate over the measured window, as Erlang takes them:
    ``mean_rate`` (Erlang's rate, over every workload) less the diurnal ones' mean.
    """
    lo, hi = scenario.warmup, scenario.horizon
    diurnal = [
        (wl.arrivals, wl.claim.replicas)
        for wl in workloads
        if isinstance(wl.arrivals, DiurnalArrivals)
    ]
    curves_mean = math.fsum(a.expected(lo, hi) * n for a, n in diurnal) / (hi - lo)
    # The sum peaks at one workload's peak or table row when the curves are steps or
    # lines; a grid over the longest day finds the peak of cosines that differ in phase.
    longest = max(a.period for a, _ in diurnal)
    times = [longest * i / _PEAK_STEPS for i in range(_PEAK_STEPS)]
    for a, _ in diurnal:
        days = [a.peak] if a.table is None else [p.at for p in a.table]
        times += [(d - a.start) % a.period for d in days]
    curves_peak = max(math.fsum(a.rate_at(t) * n for a, n in diurnal) for t in times)
    return max(0.0, mean_rate - curves_mean) + curves_peak


def _claims_needed(candidate: Candidate) -> list[str]:
    """For each share goal whose interval crosses its limit: how many claims would settle it.

    A share seen as 0 in ``n`` claims is only known to be below about
    ``3.84/n`` (the Wilson bound), so a limit of 0.1% needs some 3,840 claims
    with none of them counted before it can be certain.
    """
    lines: list[str] = []
    for goal in candidate.measured:
        est = goal.estimate
        if goal.certain or not goal.met or est is None or est.trials is None:
            continue
        needed = claims_to_show(est.mean, goal.limit)
        if needed is None or needed <= est.trials:
            continue
        lines.append(
            f"{label_of(goal.name).capitalize()}: {est.mean:.3%} of {est.trials:,.0f} claims counted over the "
            f"replications, which only shows it below {est.high or 0.0:.3%}; showing it within "
            f"{goal.limit:.3%} takes about {needed:,} claims: run a longer duration or more "
            "replications."
        )
    return lines


def claims_to_show(share: float, limit: float) -> int | None:
    """The fewest claims at which a share seen as ``share`` has its 95% Wilson bound within ``limit``.

    ``None`` when no number does (the share is not below the limit).
    """
    if not 0 <= share < limit:
        return None

    def enough(n: int) -> bool:
        return wilson_interval(share * n, n)[1] <= limit

    hi = 1
    while not enough(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi
