"""What one run measured: claim outcomes, pool levels and node use, summarised.

:class:`RunResult` is plain data (picklable, JSON-friendly) so that runs made
in worker processes or on a Dask cluster come back whole. Latency
percentiles use the nearest-rank definition: ``p99`` is the smallest
latency with at least 99% of the delivered claims at or below it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from simulator.records import COLD_REASONS, ColdReason

__all__ = [
    "ALL_CLAIMS_PERCENTILES",
    "QUANTILE_POINTS",
    "Outcome",
    "RunResult",
    "percentile",
    "quantile_sketch",
    "summarise_outcomes",
]

QUANTILE_POINTS = 401
"""Order statistics kept per run and per kind (warm, cold) for latency CDF plots."""


@dataclass(slots=True)
class Outcome:
    """One claimed sandbox (an E2B create, or one replica of a SandboxClaim)."""

    workload: int
    pool: str
    requested: float
    delivered: float | None = None
    failed: float | None = None
    warm: bool | None = None
    attempts: int = 0
    reason: str | None = None
    phases: dict[str, Any] | None = None
    create_refused: int = 0
    """Attempts the manager's create limiter refused a token (the claim retried)."""
    pick_failed: int = 0
    """Attempts that failed at the pick or the lock for another reason (no stock, every
    candidate picked by concurrent claims, a conflict on the lock write): the claim retried."""
    no_stock: int = 0
    """Of ``pick_failed``, the attempts that found the pool empty in the manager's cache: the
    proof that the pool ran empty, whatever the samples of its level saw."""
    lock_s: float | None = None
    """A warm claim's lock write: seconds from its pick to its lock (None otherwise)."""
    taken: float | None = None
    """When the claim took a sandbox from the pool (its pick, of a warm lock that was
    written), delivered or not; None when it never did (cold, or no lock)."""
    retaken: tuple[tuple[float, float], ...] = ()
    """Sandboxes the claim's failed attempts took and lost (a SandboxClaim wave whose
    ``/init`` failed after its lock): ``(taken, lock_s)`` each. They emptied slots too."""
    cold_reason: ColdReason | None = None
    """Why a cold claim's delivering attempt created its sandbox
    (:attr:`simulator.records.ClaimRecord.cold_reason`): ``NoStock`` or ``AllCandidatesPicked``."""
    failed_cold_reason: ColdReason | None = None
    """Why a claim not delivered created a sandbox cold, as its record tells (an E2B create:
    its last attempt; a SandboxClaim: its latest failed attempt that did), None if it did not:
    the proof that it found the pool empty, or every candidate picked, though it failed."""

    @property
    def latency(self) -> float | None:
        """Seconds from request to delivery."""
        return None if self.delivered is None else self.delivered - self.requested

    @property
    def failure(self) -> str | None:
        """Why the claim was not delivered (None if it was): its error, ``unfinished`` when it
        was still in flight as the drain ended, else ``Unknown``. The summary and claims.csv
        both count by it, so the CSV's rows add up to the summary's failures by reason."""
        if self.delivered is not None:
            return None
        return self.reason or ("unfinished" if self.failed is None else "Unknown")


@dataclass
class RunResult:
    """The figures of one run (one replication of one point).

    ``metrics`` holds flat numbers (``None`` when undefined, e.g. the cold p99
    of a run without cold claims); ``pools`` the same per pool key; ``series``
    the sampled time series (seconds from the workload start); ``warm_q`` and
    ``cold_q`` sorted latency order statistics, ``warm_n``/``cold_n`` how many
    latencies they stand for; ``claims`` per-claim rows when asked for.
    """

    index: int
    replication: int
    seed: int
    point: dict[str, Any]
    metrics: dict[str, float | None]
    failures: dict[str, int]
    pools: dict[str, dict[str, float | None]]
    series: dict[str, list[float]]
    warm_q: list[float] = field(default_factory=list)
    cold_q: list[float] = field(default_factory=list)
    warm_n: int = 0
    cold_n: int = 0
    claims: list[dict[str, Any]] | None = None
    interrupted: bool = False
    measured_s: float = 0.0
    """Seconds of the measured window the run covered: the scenario's duration, or less when
    it was stopped (0 when stopped in the warm-up: then it has no figure, only ``None``)."""
    in_flight_at_stop: int = 0
    """Claims of the window still in flight when the run was stopped: left out of its
    figures (a stopped run keeps the claims it saw end), not counted as failed."""
    wall_s: float = 0.0
    """Wall-clock seconds the run took (with ``cpu_s``, the only figures that differ between identical runs)."""
    cpu_s: float = 0.0
    """CPU seconds of the process that made the run, while it ran."""

    def __repr__(self) -> str:
        """The point, the replication and a few figures: the time series and rows stay fields."""
        m = self.metrics
        figures = ", ".join(
            f"{name}={value:.4g}"
            for name in ("claims", "delivered", "failed_share", "cold_share", "latency_p99")
            if (value := m.get(name)) is not None
        )
        stopped = ", interrupted" if self.interrupted else ""
        return (
            f"<RunResult point={self.point!r} replication={self.replication} seed={self.seed}: "
            f"{figures}{stopped}>"
        )

    def as_dict(self, *, series: bool = False) -> dict[str, Any]:
        """JSON-ready fields (the time series and claim rows only when asked)."""
        d = asdict(self)
        d.pop("claims", None)
        d.pop("warm_q", None)
        d.pop("cold_q", None)
        if not series:
            d.pop("series", None)
        return d


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0..100) of already sorted values; None if empty.

    The rank ``ceil(q/100 · n)`` is computed on the decimal ``q`` is written
    as, exactly: in floats ``99.9 / 100 * 1000`` is ``999.0000000000001``,
    whose ceiling would be one rank too high.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(Fraction(str(q)) * n / 100))
    return sorted_values[min(rank, n) - 1]


ALL_CLAIMS_PERCENTILES: dict[str, float] = {
    "latency_p50": 50.0,
    "latency_p90": 90.0,
    "latency_p95": 95.0,
    "latency_p99": 99.0,
    "latency_p999": 99.9,
    "latency_max": 100.0,
}
"""The percentiles also taken over all claims (``latency_p99_all``, ...): what latency goals judge."""


def _percentile_of_all(delivered: Sequence[float], claims: int, q: float) -> float | None:
    """Nearest-rank percentile ``q`` of ``claims`` claims, of which ``delivered`` (sorted) were.

    The claims not delivered rank after every delivered one: ``math.inf``
    when the rank falls on one of them; None when there are no claims.
    """
    if claims == 0:
        return None
    rank = max(1, math.ceil(Fraction(str(q)) * claims / 100))
    return delivered[rank - 1] if rank <= len(delivered) else math.inf


def quantile_sketch(sorted_values: Sequence[float], points: int = QUANTILE_POINTS) -> list[float]:
    """At most ``points`` evenly spaced order statistics (all values when fewer)."""
    n = len(sorted_values)
    if n <= points:
        return list(sorted_values)
    return [sorted_values[round(i * (n - 1) / (points - 1))] for i in range(points)]


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return math.fsum(vals) / len(vals) if vals else None


def _retry_cause(o: Outcome) -> int:
    """Why a claim retried: 0 a creation token refused, 1 another failed pick, 2 a failed attempt."""
    if o.create_refused > 0:
        return 0
    return 1 if o.pick_failed > 0 else 2


def summarise_outcomes(
    outcomes: Sequence[Outcome], window: float
) -> tuple[dict[str, float | None], dict[str, int], list[float], list[float]]:
    """Claim metrics of the outcomes in the measured window of ``window`` seconds.

    Return the metrics, the failures by reason (``unfinished`` for claims
    still in flight when the drain ended: a stopped run passes only the claims
    it saw end, since no drain ran) and the sorted warm and cold latencies.
    """
    warm: list[float] = []
    cold: list[float] = []
    failures: dict[str, int] = {}
    first: list[float] = []
    retried = 0
    attempts = 0
    refused = 0
    no_stock = 0
    # Cold deliveries by the reason their attempt created a sandbox (what the pick saw).
    cold_by_reason = dict.fromkeys(COLD_REASONS, 0)
    # The same for the claims not delivered whose attempt created a sandbox cold.
    failed_cold_by_reason = dict.fromkeys(COLD_REASONS, 0)
    # Warm claims delivered after a retry, by the first cause that applies: a creation
    # token refused, another failed pick, else a failed attempt after the lock.
    warm_retried = [0, 0, 0]
    for o in outcomes:
        attempts += o.attempts
        refused += o.create_refused > 0
        no_stock += o.no_stock > 0
        if o.attempts > 1:
            retried += 1
        lat = o.latency
        if lat is not None:
            if o.warm is False:
                cold.append(lat)
                if o.cold_reason is not None:
                    cold_by_reason[o.cold_reason] += 1
            else:
                warm.append(lat)
                if o.attempts > 1:
                    warm_retried[_retry_cause(o)] += 1
                else:
                    first.append(lat)
        else:
            if o.failed_cold_reason is not None:
                failed_cold_by_reason[o.failed_cold_reason] += 1
            reason = o.failure or "Unknown"
            failures[reason] = failures.get(reason, 0) + 1
    warm.sort()
    cold.sort()
    first.sort()
    everything = sorted(warm + cold)
    n = len(outcomes)
    delivered = len(everything)
    unfinished = failures.get("unfinished", 0)
    failed = n - delivered - unfinished
    metrics: dict[str, float | None] = {
        "claims": float(n),
        "delivered": float(delivered),
        "failed": float(failed),
        "unfinished": float(unfinished),
        # Not delivered by the end of the drain counts as failed (as the
        # failures-by-reason list has it, under ``unfinished``).
        "failed_share": (failed + unfinished) / n if n else None,
        "cold_share": len(cold) / delivered if delivered else None,
        "waited_share": retried / n if n else None,
        "attempts_mean": attempts / n if n else None,
        # What the create limiter acted on: claims it made wait for a token.
        "create_limited": float(refused),
        # Claims that found the pool empty in the manager's cache (no create-on-no-stock).
        "no_stock_claims": float(no_stock),
        # Cold deliveries whose pick found the pool empty in the manager's cache, and those
        # whose pick found every candidate of its window being picked by concurrent claims.
        "cold_no_stock": float(cold_by_reason["NoStock"]),
        "cold_all_picked": float(cold_by_reason["AllCandidatesPicked"]),
        # Claims not delivered (failed or unfinished) whose attempt created a sandbox cold, by
        # why: they found the pool empty (or every candidate picked) too, then failed.
        "failed_cold_no_stock": float(failed_cold_by_reason["NoStock"]),
        "failed_cold_all_picked": float(failed_cold_by_reason["AllCandidatesPicked"]),
        "warm_retried": float(sum(warm_retried)),
        "warm_retried_limited": float(warm_retried[0]),
        "warm_retried_picks": float(warm_retried[1]),
        "latency_mean": _mean(everything),
        "latency_p50": percentile(everything, 50),
        "latency_p90": percentile(everything, 90),
        "latency_p95": percentile(everything, 95),
        "latency_p99": percentile(everything, 99),
        "latency_p999": percentile(everything, 99.9),
        "latency_max": everything[-1] if everything else None,
        # What a latency goal judges: every claim, one not delivered ranking after
        # every delivered one (an SLO counts it as slow); math.inf when the rank
        # falls on such a claim.
        **{
            f"{name}_all": _percentile_of_all(everything, n, q)
            for name, q in ALL_CLAIMS_PERCENTILES.items()
        },
        "warm_p50": percentile(warm, 50),
        "warm_p99": percentile(warm, 99),
        # The claim path's own floor: no retry, hence no wait for stock or a token, in it.
        "warm_first_p99": percentile(first, 99),
        "cold_p50": percentile(cold, 50),
        "cold_p99": percentile(cold, 99),
        "throughput": delivered / window if window > 0 else None,
    }
    return metrics, failures, warm, cold
