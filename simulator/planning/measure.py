"""Turning a run's samples and outcomes into per-pool and per-node figures.

The run samples at fixed steps; these functions read the samples inside the
measured window (and the claim outcomes) and compute pool levels, idle
cost, the refill time by Little's law, node use, and the claims-per-second
series of the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pytest_kruise_agents.api.quantity import parse_quantity
from pytest_kruise_agents.api.sandboxset import SandboxSet
from simulator.planning.metrics import Outcome, summarise_outcomes
from simulator.planning.scenario import PoolSpec

__all__ = [
    "POOL_CLAIM_FIGURES",
    "binned_rates",
    "claim_row",
    "cpu_request",
    "node_metrics",
    "pool_metrics",
    "time_average",
    "window_indexes",
]

Series = Mapping[str, Sequence[float]]

POOL_CLAIM_FIGURES: tuple[str, ...] = (
    "claims",
    "failed_share",
    "waited_share",
    "latency_mean",
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "latency_p999",
    "latency_max",
    "latency_p50_all",
    "latency_p90_all",
    "latency_p95_all",
    "latency_p99_all",
    "latency_p999_all",
    "latency_max_all",
    "warm_p99",
    "warm_first_p99",
    "no_stock_claims",
    "cold_no_stock",
    "cold_all_picked",
    "failed_cold_no_stock",
    "failed_cold_all_picked",
)
"""The figures of a pool's own claims, named as the run's (what a plan's goals read,
``waited_share``: what Erlang-C is set against when its claims wait for a refill,
``warm_first_p99``: what a warm p99 is without retries, ``no_stock_claims``: whether
this pool's claims found it empty, ``cold_no_stock``/``cold_all_picked``: why its
cold deliveries were created, an empty pool or a window all being picked, and
``failed_cold_no_stock``/``failed_cold_all_picked``: the same for its claims that
were created cold and failed)."""


def cpu_request(sbs: SandboxSet) -> float:
    """CPU cores requested by one sandbox of the pool (sum over its containers)."""
    spec = (sbs.spec.template or {}).get("spec") or {}
    total = Decimal(0)
    for c in spec.get("containers") or []:
        cpu = ((c.get("resources") or {}).get("requests") or {}).get("cpu")
        if cpu is not None:
            total += parse_quantity(cpu)
    return float(total)


def window_indexes(series: Series, lo: float, hi: float) -> list[int]:
    """Indexes of the samples taken in ``[lo, hi)`` (times relative to the workload start)."""
    return [i for i, t in enumerate(series["t"]) if lo <= t < hi]


def time_average(
    times: Sequence[float], values: Sequence[float], lo: float, hi: float
) -> float | None:
    """The mean over ``[lo, hi)`` of the step function the samples describe (None if empty).

    A sample holds from its time until the next one (the last until ``hi``);
    only the part of each step inside the window counts, so a
    ``sample_interval`` that does not divide the window weighs its first and
    last steps by the time they really cover.
    """
    total = _integral(times, values, lo, hi)
    return None if total is None else total / (hi - lo)


def _integral(
    times: Sequence[float], values: Sequence[float], lo: float, hi: float
) -> float | None:
    """The integral over ``[lo, hi)`` of the samples' step function (None if no step covers it)."""
    if hi <= lo:
        return None
    total = 0.0
    covered = False
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        end = times[i + 1] if i + 1 < len(times) else hi
        start, stop = max(t, lo), min(end, hi)
        if stop > start:
            total += v * (stop - start)
            covered = True
    return total if covered else None


def pool_metrics(
    pool: PoolSpec,
    sbs: SandboxSet,
    series: Series,
    outcomes: Sequence[Outcome],
    *,
    lo: float,
    hi: float,
    seen_lag: float = 0.0,
    run_outcomes: Sequence[Outcome] | None = None,
) -> dict[str, float | None]:
    """A pool's figures over the window ``[lo, hi)`` (seconds from the workload start).

    ``outcomes`` are the claims requested in the window; ``run_outcomes``
    every claim of the run, whenever requested (default: ``outcomes``).

    The refill time is Little's law on the pool's slots: a slot is busy from a
    warm claim's pick until its replacement is available, so
    ``replicas - mean available = warm claim rate x refill time``. The rate
    counts the sandboxes taken from the pool *in the window*, by the time the
    claims took them (:attr:`Outcome.taken`), whenever they were requested:
    claims that wait for a refill (no create-on-no-stock) take their sandbox
    long after their request, some after the window ends. The available
    count is the SandboxSet controller's, which still counts a claimed
    sandbox while the claim writes its lock and until the lock reaches its
    cache: those claims' mean lock time (measured) and ``seen_lag`` (the
    mean watch lag) are added back, so the measured refill covers the steps
    :data:`simulator.planning.analytic.REFILL_STEPS` adds up.

    Levels and idle hours integrate the samples over exactly ``[lo, hi)``
    (see :func:`time_average`), whatever the sampling step.

    The pool's own claims give the figures :data:`POOL_CLAIM_FIGURES` names,
    computed as the run's (:func:`~simulator.planning.metrics.summarise_outcomes`):
    a plan judges a pool's goals on its own claims, not on another pool's.
    """
    key = pool.key
    inside = window_indexes(series, lo, hi)
    avail = [series[f"available:{key}"][i] for i in inside]
    creating = [series[f"creating:{key}"][i] for i in inside]
    times = series["t"]
    idle_s = _integral(times, series[f"available:{key}"], lo, hi)
    mean_avail = None if idle_s is None else idle_s / (hi - lo)
    mine = [o for o in outcomes if o.pool == key]
    # The cold share is of delivered claims, as the run's (docs/planning.md): a claim that
    # failed or is still in flight after taking the cold path delivered nothing.
    delivered = [o for o in mine if o.delivered is not None]
    warm = sum(1 for o in delivered if o.warm is True)
    cold = sum(1 for o in delivered if o.warm is False)
    span = max(hi - lo, 1e-9)
    replicas = float(pool.replicas or 0)
    # A claim that took a sandbox emptied a slot whether or not it was delivered in the end.
    # So did a failed attempt that took one and lost it (Outcome.retaken).
    taken: list[tuple[float, float | None]] = []
    for o in outcomes if run_outcomes is None else run_outcomes:
        if o.pool != key:
            continue
        if o.taken is not None and lo <= o.taken < hi:
            taken.append((o.taken, o.lock_s))
        taken.extend((t, lock) for t, lock in o.retaken if lo <= t < hi)
    warm_rate = len(taken) / span
    locks = [lock for _, lock in taken if lock is not None]
    unseen = (math.fsum(locks) / len(locks) if locks else 0.0) + seen_lag
    refill = (
        (replicas - mean_avail) / warm_rate + unseen
        if mean_avail is not None and warm_rate > 0
        else None
    )
    idle_hours = (idle_s or 0.0) / 3600.0
    own, _, _, _ = summarise_outcomes(mine, span)
    return {
        "replicas": replicas,
        "offered_rate": len(mine) / span,
        **{name: own[name] for name in POOL_CLAIM_FIGURES},
        "warm": float(warm),
        "cold": float(cold),
        "cold_share": cold / (warm + cold) if warm + cold else None,
        "available_mean": mean_avail,
        "available_min": min(avail) if avail else None,
        "creating_mean": time_average(times, series[f"creating:{key}"], lo, hi),
        "creating_max": max(creating) if creating else None,
        "idle_sandbox_hours": idle_hours,
        "idle_cpu_core_hours": idle_hours * cpu_request(sbs),
        "refill_s": refill,
    }


def node_metrics(
    series: Series, *, lo: float, hi: float, pod_slots: int
) -> dict[str, float | None]:
    """Node use over the window (all samples if none falls inside it).

    Pod slots count the nodes that take pods at each sample (a lost node's do
    not): ``node_pods_peak`` is the largest share of them used, and
    ``free_pod_slots_min`` the fewest left free; ``node_pod_slots`` is every
    node's slots together.
    """
    inside = window_indexes(series, lo, hi) or list(range(len(series["t"])))

    def values(name: str) -> list[float]:
        return [series[name][i] for i in inside]

    def mean(name: str) -> float | None:
        vals = values(name)
        return math.fsum(vals) / len(vals) if vals else None

    def peak(name: str) -> float | None:
        vals = values(name)
        return max(vals) if vals else None

    def low(name: str) -> float | None:
        vals = values(name)
        return min(vals) if vals else None

    return {
        "node_cpu_mean": mean("node_cpu"),
        "node_cpu_peak": peak("node_cpu"),
        "node_busiest_cpu_peak": peak("node_cpu_peak"),
        "node_mem_mean": mean("node_mem"),
        "node_mem_peak": peak("node_mem"),
        "pending_pods_peak": peak("pending_pods"),
        "node_pods_peak": peak("node_pods"),
        "node_pod_slots": float(pod_slots),
        "free_pod_slots_min": low("free_pod_slots"),
    }


def binned_rates(
    times: Sequence[float], outcomes: Sequence[Outcome], *, origin: float, interval: float
) -> dict[str, list[float]]:
    """Claims per second requested, delivered warm or cold, and failed, per sample step.

    A claim counts in the step that ends at or after its time (``times`` are
    the sample times relative to ``origin``).
    """
    n = len(times)
    bins: dict[str, list[float]] = {k: [0.0] * n for k in ("arrivals", "warm", "cold", "failed")}

    def slot(at: float) -> int | None:
        i = math.ceil((at - origin) / interval)
        return i if 0 <= i < n else None

    for o in outcomes:
        if (i := slot(o.requested)) is not None:
            bins["arrivals"][i] += 1
        if o.delivered is not None:
            if (j := slot(o.delivered)) is not None:
                bins["warm" if o.warm is not False else "cold"][j] += 1
        elif o.failed is not None and (j := slot(o.failed)) is not None:
            bins["failed"][j] += 1
    return {f"rate_{k}": [v / interval for v in vals] for k, vals in bins.items()}


def claim_row(o: Outcome, workload: str, origin: float) -> dict[str, Any]:
    """One ``claims.csv`` row: times in seconds from the workload start."""
    row: dict[str, Any] = {
        "workload": workload,
        "pool": o.pool,
        "requested": o.requested - origin,
        "delivered": None if o.delivered is None else o.delivered - origin,
        "latency": o.latency,
        "warm": o.warm,
        "attempts": o.attempts,
        # A delivered claim's error (a failed attempt before) stays; an undelivered one's
        # says why, as the summary counts it: ``unfinished`` for one still in flight.
        "error": o.reason if o.failure is None else o.failure,
        "cold_reason": o.cold_reason,
    }
    for phase, value in (o.phases or {}).items():
        if phase in ("requested", "delivered"):
            # The claim's own: a SandboxClaim replica's record starts at its attempt,
            # not at the claim's creation, which ``requested`` and ``latency`` measure from.
            continue
        row[phase] = None if value is None else value - origin
    if o.failed is not None:
        row["failed"] = o.failed - origin
    return row
