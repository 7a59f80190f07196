"""How figures read in the tables and the report (``simulator.planning.formatting``)."""

from __future__ import annotations

import math

import pytest

from simulator.planning.formatting import fmt_value, point_labels


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("latency_p99", 0.25, "250 ms"),
        ("latency_p99", 1.0, "1 s"),  # one second reads in seconds, not as 1000 ms
        ("warm_first_p99", 12.345, "12.3 s"),
        ("latency_p99", 0.9996, "1 s"),  # rounds to a second: not "1000 ms"
        ("latency_p99", 999.7, "1,000 s"),  # not "1e+03 s"
        ("latency_p99", 1234.5, "1,234 s"),  # long waits whole, never "1.23e+03 s"
        ("idle_sandbox_hours", 999.6, "1,000"),  # not "1e+03"
        ("refill_s", 0.5, "500 ms"),  # a figure in seconds by its name
        ("cold_share", 0.01234, "1.23%"),
        ("node_cpu_mean", 0.5, "50.00%"),  # node use is a share of allocatable
        ("node_pod_slots", 2000.0, "2,000"),
        ("claims", 1234.0, "1,234"),
        ("failed", 2.5, "2.5"),
        ("idle_sandbox_hours", 0.123456, "0.123"),
        ("latency_p99_all", math.inf, "unbounded"),
        ("latency_p99", None, "-"),
    ],
)
def test_each_figure_reads_in_its_unit(metric: str, value: float | None, text: str) -> None:
    """Seconds below one in ms, shares in percent to two decimals, counts whole."""
    assert fmt_value(metric, value) == text


def test_sweep_points_are_labelled_by_the_end_of_each_path_unless_two_end_alike() -> None:
    """``replicas=6, profile=...``; two axes ending in ``replicas`` keep their whole paths."""
    assert point_labels([{"pools.base.replicas": 6, "cluster.profile": "openkruise-head"}, {}]) == [
        "replicas=6, profile=openkruise-head",
        "base",
    ]
    assert point_labels([{"pools.a.replicas": 1, "pools.b.replicas": 2}]) == [
        "pools.a.replicas=1, pools.b.replicas=2"
    ]
