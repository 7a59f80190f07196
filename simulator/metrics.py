"""The cluster's Prometheus metrics, kept as the model runs (exported by :mod:`simulator.exposition`).

Named after upstream's (reference §7 "Metrics": the sandbox-manager's
``sandbox_claim_*`` and ``sandbox_pause/resume/delete_*``, the controller's
``sandboxset_*``), so that dashboards carry over; the label sets are ours (the
reference gives the names only: docs/server.md lists them). Durations are in
virtual seconds.

Counters and histograms are updated where things end: a claim's record when it
is finished (delivered or failed), a SandboxSet's sandbox when its create is
written, a pool sandbox when a claim's lock takes it out of its set, a pause,
resume or delete call when it answers. They count from the cluster's start and
only grow: they are never recomputed from the claim records, which a
``records_limit`` caps and ``records.clear()`` empties. The SandboxSet gauges
are read from the stored objects when the metrics are collected, not kept here.

Each update is a few dictionary and list operations (no function call but one
``bisect`` per histogram): a claim's end stays cheap on the simulator's hot path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Final, Literal

from pytest_kruise_agents.api.sandbox import Sandbox
from simulator.records import ClaimRecord

__all__ = [
    "DURATION_BUCKETS",
    "OPERATIONS",
    "RETRY_BUCKETS",
    "ClusterMetrics",
    "Histograms",
    "Operation",
]

DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""Upper bounds of the duration histograms' buckets (seconds): the Prometheus clients' defaults.

They straddle the 1 s line a warm delivery keeps under (reference §7) and reach
a cold one's pod start; ``+Inf`` takes the rest.
"""

RETRY_BUCKETS: Final[tuple[float, ...]] = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
"""Upper bounds of ``sandbox_claim_retries``' buckets (attempts after the first).

Not the clients' defaults, which are seconds: retries are whole numbers, from
none (most claims) to the thousands of v0.3.0's fixed 25 ms schedule (reference §5.3).
"""

Operation = Literal["pause", "resume", "delete"]
"""A sandbox-manager call whose end is counted: ``sandbox_<operation>_*``."""

OPERATIONS: Final[tuple[Operation, ...]] = ("pause", "resume", "delete")
"""The counted calls, in the order the exposition lists them."""

Histograms = defaultdict[tuple[str, ...], list[float]]
"""Per label values: the count of each bucket (not cumulative; the last is ``+Inf``), then the sum."""


def _histograms(bounds: tuple[float, ...]) -> Histograms:
    size = len(bounds) + 2  # each bucket, +Inf, then the sum

    def empty() -> list[float]:
        return [0.0] * size

    return defaultdict(empty)


def _copy_into(target: Histograms, source: Histograms) -> None:
    target.update((key, list(counts)) for key, counts in source.items())


class ClusterMetrics:
    """The counters and histograms of one cluster (see the module docstring).

    Keyed by label values, in the order :mod:`simulator.exposition` names them.
    Read them through ``Cluster.metrics_text()``; the model writes them.
    """

    def __init__(self) -> None:
        # (namespace, template, code)
        self.creation_responses: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        # (path, namespace, template, lock_type)
        self.claims: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        # (path, namespace, template, reason)
        self.claim_failures: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        # (path, namespace, template, lock_type)
        self.claim_durations: Histograms = _histograms(DURATION_BUCKETS)
        # (path, namespace, template)
        self.claim_retries: Histograms = _histograms(RETRY_BUCKETS)
        # (namespace, sandboxset)
        self.sandboxes_created: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.sandboxes_claimed: defaultdict[tuple[str, str], int] = defaultdict(int)
        # per operation: (namespace, result), and (namespace,) for the durations
        self.operations: dict[Operation, defaultdict[tuple[str, str], int]] = {
            op: defaultdict(int) for op in OPERATIONS
        }
        self.operation_durations: dict[Operation, Histograms] = {
            op: _histograms(DURATION_BUCKETS) for op in OPERATIONS
        }

    def claim_ended(self, record: ClaimRecord) -> None:
        """Count ``record``'s claim, just finished: delivered, or failed with its error.

        An E2B create counts a creation response (``201``, or its error's code);
        a delivered claim its lock type and latency; every claim its retries.
        A create refused 400 before any attempt (a bad request, a template no pool
        has) counts under ``template=""``: its name is the client's, maybe no
        pool's, and each distinct name would add series for as long as the
        cluster runs.
        """
        path, namespace, template = record.path, record.namespace, record.template
        if record.attempts == 0 and record.error_code == 400:
            template = ""
        if record.delivered is not None:
            lock_type = record.lock_type or ""
            key = (path, namespace, template, lock_type)
            self.claims[key] += 1
            latency = record.delivered - record.requested
            buckets = self.claim_durations[key]
            buckets[bisect_left(DURATION_BUCKETS, latency)] += 1
            buckets[-1] += latency
            code = "201"
        else:
            self.claim_failures[(path, namespace, template, record.error_reason or "")] += 1
            code = "" if record.error_code is None else str(record.error_code)
        if path == "e2b":
            self.creation_responses[(namespace, template, code)] += 1
        retries = record.attempts - 1 if record.attempts > 1 else 0
        buckets = self.claim_retries[(path, namespace, template)]
        buckets[bisect_left(RETRY_BUCKETS, retries)] += 1
        buckets[-1] += retries

    def snapshot(self) -> ClusterMetrics:
        """A copy of the counts as they are now, apart from the model's (which goes on counting):
        formatted later, for instance after a lock over the model is let go."""
        copy = ClusterMetrics()
        copy.creation_responses.update(self.creation_responses)
        copy.claims.update(self.claims)
        copy.claim_failures.update(self.claim_failures)
        _copy_into(copy.claim_durations, self.claim_durations)
        _copy_into(copy.claim_retries, self.claim_retries)
        copy.sandboxes_created.update(self.sandboxes_created)
        copy.sandboxes_claimed.update(self.sandboxes_claimed)
        for op in OPERATIONS:
            copy.operations[op].update(self.operations[op])
            _copy_into(copy.operation_durations[op], self.operation_durations[op])
        return copy

    def sandbox_created(self, namespace: str, sandboxset: str) -> None:
        """Count a pool sandbox the SandboxSet controller's create wrote."""
        self.sandboxes_created[(namespace, sandboxset)] += 1

    def sandbox_claimed(self, sandbox: Sandbox) -> None:
        """Count ``sandbox`` (as it was before the lock write) as claimed from its SandboxSet.

        Called when a claim's lock takes a pool sandbox: it leaves its set
        there (its owner reference goes). One not controlled by a set is not counted.
        """
        ref = sandbox.metadata.controller_ref()
        if ref is not None:
            self.sandboxes_claimed[(sandbox.metadata.namespace, ref.name)] += 1

    def operation_ended(
        self, operation: Operation, namespace: str, started: float, now: float, *, ok: bool
    ) -> None:
        """Count a pause, resume or delete call of a sandbox in ``namespace`` that answered at ``now``.

        A call that succeeded observes its duration (``now - started``); one that
        failed (or was cancelled) counts under ``result="failure"`` only.
        """
        self.operations[operation][(namespace, "success" if ok else "failure")] += 1
        if ok:
            duration = now - started
            buckets = self.operation_durations[operation][(namespace,)]
            buckets[bisect_left(DURATION_BUCKETS, duration)] += 1
            buckets[-1] += duration
