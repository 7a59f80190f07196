"""How metrics read: their labels, units and the rows of the summary tables.

Shared by the terminal tables and the HTML report, so both say the same thing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.planning.figures import three_figures
from simulator.planning.overrides import split_path
from simulator.planning.stats import Estimate

__all__ = [
    "METRIC_ROWS",
    "POOL_ROWS",
    "fmt_estimate",
    "fmt_interval",
    "fmt_value",
    "label_of",
    "point_labels",
]

METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("claims", "claims requested (measured window)"),
    ("delivered", "delivered"),
    ("failed", "failed"),
    ("unfinished", "still in flight when the drain ended"),
    ("latency_p50", "delivery p50"),
    ("latency_p90", "delivery p90"),
    ("latency_p99", "delivery p99"),
    ("latency_max", "delivery max"),
    ("warm_p99", "warm delivery p99"),
    ("warm_first_p99", "warm delivery p99, first attempt"),
    ("warm_retried", "warm deliveries after a retry"),
    ("cold_p50", "cold delivery p50"),
    ("cold_p99", "cold delivery p99"),
    ("cold_share", "cold share (of delivered)"),
    ("waited_share", "claims that retried (waited)"),
    ("create_limited", "claims that waited for a create token"),
    ("failed_share", "failed share"),
    ("throughput", "delivered per second"),
    ("node_cpu_mean", "node CPU requested, mean"),
    ("node_cpu_peak", "node CPU requested, peak"),
    ("node_busiest_cpu_peak", "busiest node CPU, peak"),
    ("node_mem_mean", "node memory requested, mean"),
    ("node_pods_peak", "node pod slots used, peak"),
    ("free_pod_slots_min", "free pod slots, fewest"),
    ("pending_pods_peak", "pods waiting for a node, peak"),
    ("idle_sandbox_hours", "idle pool sandbox-hours"),
    ("idle_cpu_core_hours", "idle pool CPU core-hours"),
)
"""(metric, label) in the order the summary shows them."""

POOL_ROWS: tuple[tuple[str, str], ...] = (
    ("replicas", "replicas"),
    ("offered_rate", "claims per second"),
    ("latency_p50", "delivery p50"),
    ("latency_p99", "delivery p99"),
    ("cold_share", "cold share"),
    ("available_mean", "available, mean"),
    ("available_min", "available, min"),
    ("creating_mean", "creating, mean"),
    ("creating_max", "creating, max"),
    ("refill_s", "refill time (measured)"),
    ("idle_sandbox_hours", "idle sandbox-hours"),
)
"""(pool metric, label) in the order the pool table shows them."""

_LABELS = (
    dict(METRIC_ROWS)
    | {f"pool.{k}": v for k, v in POOL_ROWS}
    | {
        f"latency_{stat}_all": f"delivery {stat.replace('p999', 'p99.9')} of all claims"
        for stat in ("p50", "p90", "p95", "p99", "p999", "max")
    }
)


def label_of(metric: str) -> str:
    """A readable label for a metric name."""
    return _LABELS.get(metric, metric.replace("_", " "))


def _kind(metric: str) -> str:
    if metric.startswith(("latency", "warm_p", "warm_first_p", "cold_p")) or metric.endswith("_s"):
        return "seconds"
    if metric == "node_pod_slots":
        return "count"
    if metric.endswith("_share") or metric.startswith("node_"):
        return "share"
    if metric in (
        "claims",
        "delivered",
        "failed",
        "unfinished",
        "replicas",
        "warm",
        "cold",
        "create_limited",
        "no_stock_claims",
        "cold_no_stock",
        "cold_all_picked",
        "failed_cold_no_stock",
        "failed_cold_all_picked",
        "warm_retried",
        "warm_retried_limited",
        "warm_retried_picks",
        "free_pod_slots_min",
    ):
        return "count"
    return "number"


def fmt_value(metric: str, value: float | None) -> str:
    """``value`` in the unit of ``metric`` (``-`` when undefined)."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "unbounded"
    kind = _kind(metric)
    if kind == "seconds":
        # Cut where the rounded figure changes unit: 0.9996 s reads "1 s", not "1000 ms".
        if abs(value) < 0.9995:
            return f"{value * 1000:.0f} ms"
        return f"{three_figures(value)} s"
    if kind == "share":
        return f"{value:.2%}"
    if kind == "count":
        return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"
    return three_figures(value)


def fmt_interval(metric: str, est: Estimate | None) -> str:
    """The 95% interval as ``[low, high]`` (empty with fewer than two values)."""
    if est is None or est.low is None or est.high is None:
        return ""
    return f"[{fmt_value(metric, est.low)}, {fmt_value(metric, est.high)}]"


def fmt_estimate(metric: str, est: Estimate | None) -> str:
    """``mean [low, high]``."""
    if est is None:
        return "-"
    interval = fmt_interval(metric, est)
    return f"{fmt_value(metric, est.mean)} {interval}".strip()


def _short(path: str) -> str:
    """The last part of a field path: ``pools[0].replicas`` → ``replicas``."""
    last = split_path(path)[-1]
    return path if isinstance(last, int) else last


def point_labels(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """A short label per point of a sweep: ``replicas=6, profile=openkruise-v0.3.0``.

    Each axis is named by the last part of its path, or by its whole path
    when another axis ends alike (``pools.a.replicas``, ``pools.b.replicas``);
    a point without labels is ``base``.
    """
    axes = list(dict.fromkeys(k for p in points for k in p))
    ends = Counter(_short(a) for a in axes)
    names = {a: _short(a) if ends[_short(a)] == 1 else a for a in axes}
    return [", ".join(f"{names[k]}={v}" for k, v in p.items()) or "base" for p in points]
