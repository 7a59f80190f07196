"""The cluster's metrics in Prometheus' text exposition format (``GET /metrics``).

:class:`ClusterCollector` is a ``prometheus_client`` collector over one
cluster's :class:`~simulator.metrics.ClusterMetrics` and its stored
SandboxSets; :func:`cluster_registry` gives it a registry of its own (never
the process-wide default one: a test session runs many clusters, each with its
own counts). ``prometheus_client`` writes the text (:func:`exposition_text`).

Every family is listed even before anything was counted (with no samples), and
samples come in label order: the same run gives the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pytest_kruise_agents.api.sandboxset import SandboxSet
from simulator.metrics import (
    DURATION_BUCKETS,
    OPERATIONS,
    RETRY_BUCKETS,
    ClusterMetrics,
    Histograms,
)

__all__ = [
    "CLAIM_LABELS",
    "ClusterCollector",
    "SetGauges",
    "cluster_registry",
    "exposition_text",
    "sandboxset_gauges",
]

CLAIM_LABELS: Final = ("path", "namespace", "template", "lock_type")
"""Labels of ``sandbox_claim_total`` and ``sandbox_claim_duration_seconds``."""

_SET_LABELS: Final = ("namespace", "sandboxset")

_K = TypeVar("_K", bound=tuple[str, ...])

SetGauges = tuple[str, str, int, int]
"""A SandboxSet's gauges: its namespace, name, ``status.replicas``, ``status.availableReplicas``."""


def sandboxset_gauges(sets: Iterable[SandboxSet]) -> list[SetGauges]:
    """The gauges of each of ``sets``, read now (the status as stored)."""
    return [
        (s.metadata.namespace, s.metadata.name, s.status.replicas, s.status.available_replicas)
        for s in sets
    ]


class ClusterCollector:
    """Collects one cluster's metrics (see the module docstring).

    :param metrics: the counters and histograms the model keeps (or a snapshot of them).
    :param sandboxsets: the SandboxSets' gauges when called: ``(namespace, name, replicas,
        available replicas)`` of each (see :func:`sandboxset_gauges`).
    """

    def __init__(
        self, metrics: ClusterMetrics, sandboxsets: Callable[[], Iterable[SetGauges]]
    ) -> None:
        self._metrics = metrics
        self._sandboxsets = sandboxsets

    def collect(self) -> Iterator[Metric]:
        """Every family, manager's first, then the SandboxSet controller's."""
        m = self._metrics
        yield _counter(
            "sandbox_claim_creation_responses",
            "E2B creates answered, by HTTP status code (201: delivered).",
            ("namespace", "template", "code"),
            m.creation_responses,
        )
        yield _counter(
            "sandbox_claim",
            "Claims delivered, by how their sandbox was locked (update: from the warm pool; "
            "create: created on no stock).",
            CLAIM_LABELS,
            m.claims,
        )
        yield _counter(
            "sandbox_claim_failures",
            "Claims that failed, by the reason of their error.",
            ("path", "namespace", "template", "reason"),
            m.claim_failures,
        )
        yield _histogram(
            "sandbox_claim_duration_seconds",
            "Virtual seconds from a delivered claim's request to its delivery.",
            CLAIM_LABELS,
            DURATION_BUCKETS,
            m.claim_durations,
        )
        yield _histogram(
            "sandbox_claim_retries",
            "Attempts after the first, per claim ended (delivered or failed).",
            ("path", "namespace", "template"),
            RETRY_BUCKETS,
            m.claim_retries,
        )
        for op in OPERATIONS:
            yield _counter(
                f"sandbox_{op}",
                f"Sandbox-manager {op} calls ended, by result (success or failure).",
                ("namespace", "result"),
                m.operations[op],
            )
            yield _histogram(
                f"sandbox_{op}_duration_seconds",
                f"Virtual seconds a successful {op} call took.",
                ("namespace",),
                DURATION_BUCKETS,
                m.operation_durations[op],
            )
        sets = sorted(self._sandboxsets())
        replicas = GaugeMetricFamily(
            "sandboxset_replicas",
            "Sandboxes a SandboxSet counts (creating and available), as its status says.",
            labels=_SET_LABELS,
        )
        available = GaugeMetricFamily(
            "sandboxset_available_replicas",
            "Available sandboxes of a SandboxSet (its warm pool), as its status says.",
            labels=_SET_LABELS,
        )
        for namespace, name, count, ready in sets:
            replicas.add_metric((namespace, name), count)
            available.add_metric((namespace, name), ready)
        yield replicas
        yield available
        yield _counter(
            "sandboxset_sandboxes_created",
            "Sandboxes the SandboxSet controller created for a set.",
            _SET_LABELS,
            m.sandboxes_created,
        )
        yield _counter(
            "sandboxset_sandboxes_claimed",
            "Sandboxes claims took out of a set's pool (by a lock write).",
            _SET_LABELS,
            m.sandboxes_claimed,
        )


def _counter(
    name: str,
    documentation: str,
    labels: tuple[str, ...],
    values: Mapping[_K, int],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key in sorted(values):
        family.add_metric(key, values[key])
    return family


def _histogram(
    name: str,
    documentation: str,
    labels: tuple[str, ...],
    bounds: tuple[float, ...],
    values: Histograms,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    names = [*(repr(float(b)) for b in bounds), "+Inf"]
    for key in sorted(values):
        counts = values[key]
        cumulative = 0.0
        buckets: list[tuple[str, float]] = []
        for le, count in zip(names, counts, strict=False):  # the sum comes after the buckets
            cumulative += count
            buckets.append((le, cumulative))
        family.add_metric(key, buckets, counts[-1])
    return family


def cluster_registry(collector: ClusterCollector) -> CollectorRegistry:
    """A registry of ``collector`` alone (not the process-wide default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition_text(registry: CollectorRegistry) -> str:
    """What ``GET /metrics`` answers: the text exposition format (``CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry).decode("utf-8")
