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
from simulator.planning.formatting import fmt_value
from simulator.planning.plan import Goal, cold_goal_certainty, goal_verdict, run_goals
from simulator.planning.scenario import Goals, Scenario
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
        reasons = ", ".join(
            f"{reason} {est.mean:,.1f}"
            for reason, est in sorted(summary.failures.items(), key=lambda kv: -kv[1].mean)
        )
        lines.append(
            f"{failed:,.1f} of {claims:,.0f} claims per run failed ({reasons}): "
            "failures, not latency, are the first limit."
        )
    unfinished = m("unfinished") or 0.0
    if unfinished > 0:
        lines.append(
            f"{unfinished:,.1f} claims per run were still in flight when the run ended "
            f"(drain {scenario.drain:g}s): the system did not keep up."
        )
    profile = scenario.cluster.build_profile()
    for pool in scenario.pools:
        p = summary.pools.get(pool.key, {})
        replicas = pool.replicas or 0
        cold = p.get("cold_share")
        # The worst replication decides whether the pool ran dry.
        mins = [
            v
            for r in summary.runs
            if (v := r.pools.get(pool.key, {}).get("available_min")) is not None
        ]
        if not mins:
            continue
        lowest = min(mins)
        refilling = p.get("creating_max")
        if refilling is not None and refilling.mean > 0:
            lines.append(
                f"At the peak {refilling.mean:,.0f} replacements of {pool.key} were in flight at "
                "once (claim rate x refill time): the pool must cover about that many, or claims "
                "find it empty."
            )
        # The samples see the controller's counts between steps; a cold claim
        # (or one that waited for a refill) is the proof that the manager found no stock.
        # Retries are counted over all claims: they tell about the pool only when it is
        # the only one, and only when its claims wait for a refill (with create-on-no-stock
        # a claim retries after an /init failure or a lost node, not for stock).
        waits = len(scenario.pools) == 1 and waits_for_refill(scenario, pool)
        waited = (m("waited_share") or 0.0) if waits else 0.0
        dry = lowest < 1 or (cold is not None and cold.mean > 0) or waited > 0
        if dry:
            share = (
                f"{cold.mean:.2%} of its deliveries were cold"
                if cold is not None
                else "claims went cold"
            )
            if waited:
                share += f", {waited:.2%} of the claims waited and retried"
            lines.append(f"Pool {pool.key} ran empty ({replicas:,} replicas): {share}.")
        elif lowest >= max(2.0, 0.05 * replicas):
            lines.append(
                f"Pool {pool.key} never ran empty: its lowest point was {lowest:,.0f} of "
                f"{replicas:,} available ({lowest / max(replicas, 1):.0%}), so about {lowest:,.0f} "
                "sandboxes were never needed; `plan` finds the smallest pool that holds."
            )
        else:
            lines.append(
                f"Pool {pool.key} came close to empty: its lowest point was {lowest:,.0f} of "
                f"{replicas:,} available."
            )
        refill = p.get("refill_s")
        expected = refill_estimate(profile)
        if refill is not None and expected > 0 and refill.mean > 1.5 * expected:
            lines.append(
                f"Refills of {pool.key} took {refill.mean:.3g}s on average against {expected:.3g}s "
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
    warm = m("warm_p99")
    waited_all = m("waited_share") or 0.0
    refills = any(waits_for_refill(scenario, pool) for pool in scenario.pools)
    if warm is not None and waited_all > 0 and refills:
        # A claim that found no stock and waited for a refill is delivered warm
        # (create-on-no-stock off): its wait is in the warm p99, and a pool sets it.
        # Claims that may not wait for stock retry only after a failure, which no
        # pool size prevents: for them the warm p99 stays a floor.
        lines.append(
            f"Warm deliveries take {fmt_value('warm_p99', warm)} at p99, counting the "
            f"{waited_all:.2%} of claims that waited for a refill: a larger pool shortens that."
        )
    elif warm is not None:
        lines.append(
            f"Warm deliveries take {fmt_value('warm_p99', warm)} at p99: the claim path itself "
            "(pick, lock, runtime /init) sets that floor; no pool size goes below it."
        )
    if scenario.faults:
        kinds = ", ".join(sorted({f.kind for f in scenario.faults}))
        lines.append(f"Injected faults: {kinds}.")
    return lines


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
        f"--max-create-qps) refused {limited:,.1f} claims per run a token for a cold creation: "
        "they retried, and cold claims beyond the limit queue for it."
    )
