"""The delivery benchmark: how fast sandboxes are delivered, warm and cold.

A workload (:class:`Burst` of N claims, or a :class:`Rate` for a duration,
through the E2B path or SandboxClaims) runs on the fake cluster
(:func:`run_on_backend`, virtual latencies from the claim records) or against
any E2B server (:func:`run_on_server`, wall-clock time from create to the first
successful command). The :class:`DeliveryResult` has per-claim records, the
warm/cold split, p50/p90/p99/max, agent-sandbox's quality zones, an assertion
helper, and CSV/JSON reports. The pytest fixture is ``delivery_benchmark``.

The live runner imports the E2B SDK when it runs.
"""

from __future__ import annotations

from pytest_kruise_agents.delivery.live import run_on_server
from pytest_kruise_agents.delivery.result import (
    GREEN_S,
    GREY_S,
    WARM_THRESHOLD_S,
    Delivery,
    DeliveryResult,
    LatencyStats,
    percentile,
    zone_of,
)
from pytest_kruise_agents.delivery.sim import run_on_backend, run_on_cluster
from pytest_kruise_agents.delivery.workload import Burst, DeliveryPath, Rate, Workload

__all__ = [
    "GREEN_S",
    "GREY_S",
    "WARM_THRESHOLD_S",
    "Burst",
    "Delivery",
    "DeliveryPath",
    "DeliveryResult",
    "LatencyStats",
    "Rate",
    "Workload",
    "percentile",
    "run_on_backend",
    "run_on_cluster",
    "run_on_server",
    "zone_of",
]
