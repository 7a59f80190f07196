"""Whether a point met its goals, and what limited its delivery.

``simulate`` answers two questions about a scenario: does it hold (the
goals of its ``goals`` section, judged on the means over replications with
95% intervals) and what limits it (the pool running dry, nodes running out
of room, the manager's create limit, failures, the claim path's own
latency). The limits are read from the measurements, not guessed.
"""

from __future__ import annotations

from simulator.planning.analytic import (
    parse_max_share,
    parse_slo,
    refill_estimate,
    waits_for_refill,
)
from simulator.planning.figures import three_figures
from simulator.planning.formatting import fmt_value
from simulator.planning.plan import Goal, cold_goal_certainty, goal_verdict, run_goals
from simulator.planning.scenario import Goals, PoolSpec, Scenario
from simulator.planning.study import PointSummary
from simulator.profile import Profile

__all__ = ["check_goals", "create_limit", "limits"]


def check_goals(summary: PointSummary, goals: Goals) -> list[Goal]:
    """The verdict on each goal of ``goals`` (latency, cold share, failed share)."""
    slo = parse_slo(goals.slo) if goals.slo is not None else None
    failed = (
        parse_max_share(str(goals.max_failed), "max_failed")
        if goals.max_failed is not None
        else None
    )
    out = run_goals(summary.metrics, slo, failed)
    if goals.max_cold is not None:
        limit = parse_max_share(str(goals.max_cold), "max_cold")
        cold = goal_verdict("cold_share", summary.metrics.get("cold_share"), limit, True)
        out.append(cold_goal_certainty(cold, summary.scenario.workloads))
    return out


def limits(summary: PointSummary, scenario: Scenario) -> list[str]:
    """What limited delivery in this point, most important first (plain sentences)."""
    lines: list[str] = []
    m = summary.mean
    claims = m("claims") or 0.0
    failed = m("failed") or 0.0
    if failed > 0:
        # Claims still in flight when the drain ended are not among ``failed``: they
        # have a line of their own, so the parts here add up to the total.
        reasons = ", ".join(
            f"{reason} {est.mean:,.1f}"
            for reason, est in sorted(summary.failures.items(), key=lambda kv: -kv[1].mean)
            if reason != "unfinished"
        )
        lines.append(
            f"{failed:,.1f} of {claims:,.0f} claims per run failed ({reasons}): "
            "failures, not latency, are the first limit."
        )
    unfinished = m("unfinished") or 0.0
    if unfinished > 0:
        lines.append(
            f"{unfinished:,.1f} claims per run were still in flight when the drain ended "
            f"(drain {scenario.drain:g}s): the system did not keep up."
        )
    profile = scenario.cluster.build_profile()
    for pool in scenario.pools:
        p = summary.pools.get(pool.key, {})
        # The worst replication decides whether the pool ran dry.
        lowest = _lowest(summary, pool.key)
        if lowest is None:
            continue
        refilling = p.get("creating_max")
        if refilling is not None and refilling.mean > 0:
            lines.append(
                f"At the peak {refilling.mean:,.0f} replacements of {pool.key} were in flight at "
                "once (claim rate x refill time): the pool must cover about that many, or claims "
                "find it empty."
            )
        lines.append(_pool_level(summary, scenario, pool, lowest, profile.candidate_count))
        refill = p.get("refill_s")
        expected = refill_estimate(profile)
        if refill is not None and expected > 0 and refill.mean > 1.5 * expected:
            lines.append(
                f"Refills of {pool.key} took {three_figures(refill.mean)}s on average "
                f"against {three_figures(expected)}s "
                "of step latencies: replacements queued (image pulls, QPS limits, controller batches)."
            )
    pending = m("pending_pods_peak") or 0.0
    if pending > 0:
        lines.append(
            f"Nodes ran out of room: up to {pending:,.0f} pods waited for a node; add nodes or "
            "make sandboxes smaller."
        )
    slots_line = _pod_slots(summary, scenario, pending)
    if slots_line is not None:
        lines.append(slots_line)
    busiest = m("node_busiest_cpu_peak")
    if busiest is not None and busiest >= 0.95:
        lines.append(f"The busiest node's CPU requests reached {busiest:.0%} of allocatable.")
    create_line = create_limit(summary, profile)
    if create_line is not None:
        lines.append(create_line)
    warm_line = _warm_p99(summary, scenario, profile.candidate_count)
    if warm_line is not None:
        lines.append(warm_line)
    if scenario.faults:
        kinds = ", ".join(sorted({f.kind for f in scenario.faults}))
        lines.append(f"Injected faults: {kinds}.")
    return lines


def _lowest(summary: PointSummary, key: str) -> float | None:
    """The lowest available level of pool ``key`` sampled in any replication (None: no sample)."""
    mins = [v for r in summary.runs if (v := r.pools.get(key, {}).get("available_min")) is not None]
    return min(mins) if mins else None


def _ran_empty(summary: PointSummary, key: str) -> bool:
    """Whether pool ``key`` ran empty: a sample saw it at 0, or a claim found it empty.

    A cold delivery alone proves nothing: a claim whose window of candidates
    is all being picked by concurrent claims is created cold while stock
    remains (reference §5.2). A claim that found no stock at all (a pick that
    failed for it, or a cold creation it caused: the record says which) is
    the proof the samples, taken between steps, may miss.
    """
    lowest = _lowest(summary, key)
    return (lowest is not None and lowest < 1) or _found_empty(summary, key) > 0


def _per_run(summary: PointSummary, key: str, name: str) -> float | None:
    """Pool ``key``'s figure ``name`` averaged over the runs (None: not measured)."""
    est = summary.pools.get(key, {}).get(name)
    return None if est is None else est.mean


def _found_empty(summary: PointSummary, key: str) -> float:
    """Claims per run that found pool ``key`` empty in the manager's cache: picks that failed
    for no stock, and cold creations caused by it (the claim delivered or not)."""
    return sum(
        (
            _per_run(summary, key, name) or 0.0
            for name in ("no_stock_claims", "cold_no_stock", "failed_cold_no_stock")
        ),
        0.0,
    )


def _cold_reasons(summary: PointSummary, key: str) -> tuple[float, float] | None:
    """Pool ``key``'s cold deliveries per run created on no stock and with every candidate of
    the window being picked; None where a summary does not have them (older ones)."""
    no_stock = _per_run(summary, key, "cold_no_stock")
    all_picked = _per_run(summary, key, "cold_all_picked")
    if no_stock is None or all_picked is None:
        return None
    return no_stock, all_picked


def _cold_split(reasons: tuple[float, float] | None, window: int, replicas: int) -> str:
    """The words for why cold deliveries were created (empty when unknown or none)."""
    if reasons is None:
        return ""
    no_stock, all_picked = reasons
    parts = []
    if no_stock > 0:
        parts.append(f"{fmt_value('cold', no_stock)} created on finding no stock")
    if all_picked > 0 and replicas <= window:
        # The window holds the whole pool: no stock remained beyond it (docs: all spoken for).
        parts.append(
            f"{fmt_value('cold', all_picked)} created with every sandbox of the pool, all "
            f"within their window of {window:,}, being picked by concurrent claims: the pool "
            "was all spoken for"
        )
    elif all_picked > 0:
        parts.append(
            f"{fmt_value('cold', all_picked)} created while stock remained, every candidate "
            f"of their window of {window:,} being picked by concurrent claims"
        )
    return f" (per run: {', '.join(parts)})" if parts else ""


def _pool_level(
    summary: PointSummary, scenario: Scenario, pool: PoolSpec, lowest: float, window: int
) -> str:
    """The line on how low pool ``pool`` ran: empty, stock left yet claims went cold, or how close."""
    p = summary.pools.get(pool.key, {})
    replicas = pool.replicas or 0
    cold = p.get("cold_share")
    cold_share = cold.mean if cold is not None else 0.0
    # Retries are counted over all claims: they tell about the pool only when it is the only one.
    waited = (summary.mean("waited_share") or 0.0) if len(scenario.pools) == 1 else 0.0
    reasons = _cold_reasons(summary, pool.key)
    if _ran_empty(summary, pool.key):
        split = _cold_split(reasons, window, replicas)
        share = f"{cold_share:.2%} of its deliveries were cold{split}"
        if waited and waits_for_refill(scenario, pool):
            share += f", {waited:.2%} of the claims waited and retried"
        if lowest >= 1:
            # Only the claims saw it: the samples, taken between steps, never did.
            return (
                f"Pool {pool.key} ran empty between two samples ({replicas:,} replicas; "
                f"lowest sampled {lowest:,.0f} available, yet "
                f"{fmt_value('no_stock_claims', _found_empty(summary, pool.key))} claims per run "
                f"found no stock in the manager's cache): {share}."
            )
        return f"Pool {pool.key} ran empty ({replicas:,} replicas): {share}."
    # The create limiter's refusals are counted over all claims, as the retries.
    limited = (summary.mean("create_limited") or 0.0) if len(scenario.pools) == 1 else 0.0
    seen = [f"{cold_share:.2%} of its deliveries were cold"] if cold_share > 0 else []
    if limited > 0:
        seen.append(
            f"{fmt_value('create_limited', limited)} claims per run were refused a creation token"
        )
    if seen and reasons is not None and limited <= 0 and replicas <= window:
        # No claim found it empty, but a window holds the whole pool: every sandbox it had was
        # being picked, which is running out (a larger pool helps), not stock left over.
        return (
            f"Pool {pool.key} had stock at every sample (lowest {lowest:,.0f} of {replicas:,} "
            f"available) and no claim found it empty, yet {' and '.join(seen)}: every sandbox "
            f"of the pool ({replicas:,} replicas, within one claim's window of {window:,} "
            "candidates) was being picked by concurrent claims, so they created one cold: the "
            "pool was all spoken for, and a larger pool reduces that."
        )
    if seen and reasons is not None and limited <= 0:
        # The records say why: no claim found the pool empty (else it ran empty above).
        return (
            f"Pool {pool.key} had stock at every sample (lowest {lowest:,.0f} of {replicas:,} "
            f"available) and no claim found it empty, yet {' and '.join(seen)}: every "
            f"candidate of those claims' window (the first {window:,} available sandboxes) was "
            "being picked by concurrent claims, so they created one cold while stock remained."
        )
    if seen:
        # The samples alone cannot tell: a summary without the cold claims' reasons, or
        # claims refused a creation token, whose records do not say what their pick found.
        return (
            f"Pool {pool.key} had stock at every sample (lowest {lowest:,.0f} of {replicas:,} "
            f"available), yet {' and '.join(seen)}: a claim that finds every candidate of its "
            f"window (the first {window:,} available sandboxes) being picked by concurrent claims "
            "creates one cold (or, refused a creation token, retries) while stock remains, or "
            "the pool emptied between two samples."
        )
    if lowest >= max(2.0, 0.05 * replicas):
        return (
            f"Pool {pool.key} never ran empty: its lowest point was {lowest:,.0f} of "
            f"{replicas:,} available ({lowest / max(replicas, 1):.0%}), so about {lowest:,.0f} "
            "sandboxes were never needed; `plan` finds the smallest pool that holds."
        )
    return (
        f"Pool {pool.key} came close to empty: its lowest point was {lowest:,.0f} of "
        f"{replicas:,} available."
    )


def _warm_p99(summary: PointSummary, scenario: Scenario, window: int) -> str | None:
    """The warm p99 line: the claim path's own floor, apart from the warm claims that retried.

    A warm claim that retried waited for something a pool may or may not
    remove: a creation token or stock (the pool ran empty: a larger pool
    shortens that), a candidate no concurrent claim was picking (the pool had
    stock: it does not), or a failed attempt (``/init``, a lost node: no pool
    size prevents it).
    """
    m = summary.mean
    warm = m("warm_p99")
    if warm is None:
        return None
    floor = (
        "the claim path itself (pick, lock, runtime /init) sets that floor; "
        "no pool size goes below it"
    )
    retried = m("warm_retried") or 0.0
    if retried <= 0:
        return f"Warm deliveries take {fmt_value('warm_p99', warm)} at p99: {floor}."
    limited = m("warm_retried_limited") or 0.0
    picks = m("warm_retried_picks") or 0.0
    failed = max(0.0, retried - limited - picks)
    refills = any(waits_for_refill(scenario, pool) for pool in scenario.pools)
    causes = [
        f"{fmt_value('warm_retried', n)} {'claim' + what.removeprefix('claims') if n == 1 else what}"
        for n, what in (
            (
                limited,
                "claims the create limiter refused a creation token (they found nothing to "
                "pick and retried after the manager's back-off)",
            ),
            (
                picks,
                "claims that waited for a refill"
                if refills
                else "claims whose pick failed (every candidate picked, a lock conflict)",
            ),
            (failed, "claims that retried after a failed attempt (/init, a lost node)"),
        )
        if n > 0
    ]
    head = (
        f"Warm deliveries take {fmt_value('warm_p99', warm)} at p99, counting, per run, "
        f"{'; '.join(causes)}"
    )
    # Lock conflicts and failed attempts come from concurrency and faults, not from stock.
    if limited + (picks if refills else 0.0) <= 0:
        verdict, shortens = ": no pool size prevents those", False
    elif any(_ran_empty(summary, pool.key) for pool in scenario.pools):
        verdict, shortens = ": a larger pool shortens that", True
    else:
        verdict, shortens = _stock_verdict(summary, scenario, window)
    if shortens:
        floor = "the claim path's own floor"
    first = m("warm_first_p99")
    if first is None:
        return f"{head}{verdict}."
    return (
        f"{head}{verdict}. Warm claims delivered on their first attempt take "
        f"{fmt_value('warm_first_p99', first)} at p99: {floor}."
    )


def _stock_verdict(summary: PointSummary, scenario: Scenario, window: int) -> tuple[str, bool]:
    """What a larger pool does to the pick retries of a run whose samples always saw stock
    (the verdict's words, and whether it may shorten them).

    A pool that kept a whole window of candidates at every sample lost its
    picks to concurrent claims, which a larger pool does not prevent (a burst
    of 500 on pools of 600 and 1,000: the same retries). Below a window, it may
    also have emptied between two samples.
    """
    levels = [v for pool in scenario.pools if (v := _lowest(summary, pool.key)) is not None]
    lowest = min(levels, default=0.0)
    if lowest >= window:
        return (
            f": the pool had stock (at least {lowest:,.0f} available at every sample, a whole "
            f"window of {window:,} candidates), so these retries came from concurrent claims "
            "picking every candidate of their window: a larger pool does not shorten that",
            False,
        )
    limited = summary.mean("warm_retried_limited") or 0.0
    if limited <= 0 and all(_cold_reasons(summary, p.key) is not None for p in scenario.pools):
        # Counted, not guessed: no claim found a pool empty (the caller checked; a claim
        # refused a token would not say), so the window was small, not empty; a larger
        # pool widens it up to the whole window.
        return (
            f": no claim found the pool empty (at least {lowest:,.0f} available at every "
            "sample), so these retries came from concurrent claims picking every candidate of "
            f"a claim's window, below {window:,} candidates at the lowest sample: a larger "
            "pool widens it",
            True,
        )
    return (
        f": the samples saw stock (at least {lowest:,.0f} available), so these retries came from "
        f"concurrent claims picking every candidate of a claim's window of {window:,}, or from the "
        "pool emptying between two samples: a larger pool shortens only the latter",
        True,
    )


def _pod_slots(summary: PointSummary, scenario: Scenario, pending: float) -> str | None:
    """The pod-slot line: the peak share of the slots on nodes that take pods, and what is left.

    A lost node's slots are no room (the run samples only the nodes that take
    pods), so this never says sandboxes fit while pods wait for a node.
    """
    slots = summary.mean("node_pods_peak")
    if slots is None or slots < 0.75:
        return None
    capacity = summary.mean("node_pod_slots") or 0.0
    free = summary.mean("free_pod_slots_min")
    lost = any(f.kind == "node_loss" for f in scenario.faults)
    of = (
        f"of the slots on the nodes that take pods ({capacity:,.0f} with every node up)"
        if lost
        else f"of {capacity:,.0f}"
    )
    if pending > 0:
        return f"Node pod slots peaked at {slots:.0%} {of}: node capacity is the limit."
    left = "" if free is None else f" (about {free:,.0f} more sandboxes fit at the peak)"
    return f"Node pod slots peaked at {slots:.0%} {of}: node capacity is the next limit{left}."


def create_limit(summary: PointSummary, profile: Profile) -> str | None:
    """The create-limit line, when the manager's limiter made claims wait for a token; else None.

    Measured on what the limiter acts on: the claims it refused a creation
    token (they retried), not a rate of cold deliveries per sample step.
    """
    limited = summary.mean("create_limited") or 0.0
    if limited <= 0:
        return None
    return (
        f"The manager's create limit ({profile.create_qps:g}/s, burst {profile.create_burst}; "
        f"--max-create-qps) refused {fmt_value('create_limited', limited)} claims per run a "
        "token for a cold creation: "
        "they retried, and cold claims beyond the limit queue for it."
    )
