"""Run a delivery workload on the fake cluster and read the latencies from its claim records.

Everything happens in virtual time, inside the model: the arrivals are a
SimPy process, every claim is a concurrent SimPy process (E2B path) or a
SandboxClaim applied at its arrival time (SandboxClaim path), and the
latencies and phases come from the cluster's claim records. Wall time is only
the cost of simulating. The E2B path kills the sandboxes it delivered once
they are measured, as the live runner does, and cancels the claims still
unfinished :data:`SETTLE_TIMEOUT_S` after the last arrival, as a client going
away does: they fail, and can neither deliver later nor leak a sandbox.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Generator
from typing import Any, Final

import simpy

from pytest_kruise_agents.api.sandboxclaim import ClaimPhase
from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from pytest_kruise_agents.delivery.result import Delivery, DeliveryResult
from pytest_kruise_agents.delivery.workload import Workload
from simulator.cluster import Cluster
from simulator.records import PHASES, ClaimRecord

__all__ = [
    "BENCHMARK_USER_PREFIX",
    "SETTLE_TIMEOUT_S",
    "UNFINISHED",
    "run_on_backend",
    "run_on_cluster",
]

BENCHMARK_USER_PREFIX: Final = "delivery-benchmark"
"""The owner of the E2B path's sandboxes (``<prefix>-<run>``), which tells the run's records apart."""

SETTLE_TIMEOUT_S: Final = 3600.0
"""Virtual seconds the run may take after its last arrival before unfinished claims count as failed.

The E2B path's are cancelled then (:data:`UNFINISHED`).
"""

UNFINISHED: Final = f"unfinished {SETTLE_TIMEOUT_S:g} s after the last arrival: canceled"
"""The error of an E2B-path claim cancelled at the time limit."""

_runs = itertools.count(1)


def _phases(rec: ClaimRecord, origin: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for phase in PHASES:
        at = getattr(rec, phase)
        if at is not None and phase != "requested":
            out[phase] = at - origin
    return out


def _sandbox_id(rec: ClaimRecord) -> str | None:
    """The E2B id of the sandbox delivered; ``None`` when none was (a failed claim's record
    still names the sandbox its last attempt picked)."""
    if rec.delivered is None or not rec.sandbox:
        return None
    # Records name the sandbox "<namespace>/<name>"; E2B ids are "<namespace>--<name>".
    return rec.sandbox.replace("/", "--", 1)


def _e2b(cluster: Cluster, workload: Workload, run: int) -> list[Delivery]:
    env = cluster.env
    user = f"{BENCHMARK_USER_PREFIX}-{run}"
    first = len(cluster.records)
    t0 = env.now
    times = workload.arrivals(cluster.ctx.rng)
    procs: list[simpy.Process] = []

    def arrivals() -> Generator[simpy.Event, Any, None]:
        for at in times:
            if t0 + at > env.now:
                yield env.timeout(t0 + at - env.now)
            procs.append(
                cluster.submit_create(workload.template, namespace=workload.namespace, user=user)
            )

    env.run(until=env.process(arrivals()))
    if not cluster.run_until(lambda: all(p.triggered for p in procs), timeout=SETTLE_TIMEOUT_S):
        _cancel(cluster, procs)
    records = [r for r in list(cluster.records)[first:] if r.path == "e2b" and r.owner == user]
    _kill(cluster, workload.namespace, user, [r for r in records if r.delivered is not None])
    out: list[Delivery] = []
    for i, rec in enumerate(records, start=1):
        out.append(
            Delivery(
                index=i,
                path="e2b",
                template=rec.template,
                requested=rec.requested - t0,
                latency=rec.latency,
                warm=rec.warm if rec.delivered is not None else None,
                sandbox_id=_sandbox_id(rec),
                phases=_phases(rec, rec.requested),
                retries=rec.retries,
                error=_e2b_error(rec),
            )
        )
    return out


def _cancel(cluster: Cluster, procs: list[simpy.Process]) -> None:
    """Cancel the claims still in flight and let them clean up (within the time limit again)."""
    pending = [p for p in procs if p.is_alive]
    for proc in pending:
        # The request's context cancelled, as when the E2B server's client goes
        # away: the claim stops at its current wait, releases what it locked and
        # fails, where left running it could deliver later and leak the sandbox.
        proc.interrupt("benchmark time limit")
    cluster.run_until(lambda: all(p.triggered for p in pending), timeout=SETTLE_TIMEOUT_S)


def _e2b_error(rec: ClaimRecord) -> str | None:
    """Why an E2B-path claim got no sandbox; ``None`` if it got one."""
    if rec.delivered is not None:
        return None
    # Only the time limit cancels a benchmark claim; one not even failed yet
    # is still cleaning up after its cancel.
    if rec.failed is None or rec.error_reason == ClaimCanceledError.reason:
        return UNFINISHED
    return rec.error or "not delivered"


def _kill(cluster: Cluster, namespace: str, user: str, delivered: list[ClaimRecord]) -> None:
    """Kill the run's delivered sandboxes, all at once, as the E2B client that claimed them."""
    env = cluster.env

    def kill(sandbox_id: str) -> Generator[simpy.Event, Any, None]:
        # A fault in force may fail the kill; the sandbox stays, and the
        # kruise_e2b fixture's teardown kills and reports it.
        with contextlib.suppress(ClaimError):
            yield from cluster.manager.kill(namespace, user, sandbox_id)

    kills = [env.process(kill(sid)) for rec in delivered if (sid := _sandbox_id(rec))]
    cluster.run_until(lambda: all(p.triggered for p in kills), timeout=SETTLE_TIMEOUT_S)


def _claim_manifest(name: str, workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": name, "namespace": workload.namespace},
        "spec": {"templateName": workload.template, "replicas": 1},
    }


def _sandboxclaim(cluster: Cluster, workload: Workload, run: int) -> list[Delivery]:
    env = cluster.env
    ns = workload.namespace
    first = len(cluster.records)
    t0 = env.now
    times = workload.arrivals(cluster.ctx.rng)
    applied: dict[str, float] = {}

    def arrivals() -> Generator[simpy.Event, Any, None]:
        for i, at in enumerate(times, start=1):
            if t0 + at > env.now:
                yield env.timeout(t0 + at - env.now)
            name = f"{BENCHMARK_USER_PREFIX}-{run}-{i}"
            cluster.apply(_claim_manifest(name, workload))
            applied[name] = env.now

    def completed() -> bool:
        for name in applied:
            claim = cluster.world.api.peek("SandboxClaim", ns, name)
            if claim is not None and claim.status.phase != ClaimPhase.COMPLETED:
                return False
        return True

    env.run(until=env.process(arrivals()))
    cluster.run_until(completed, timeout=SETTLE_TIMEOUT_S)
    by_claim: dict[str, list[ClaimRecord]] = {}
    for rec in list(cluster.records)[first:]:
        if rec.path == "sandboxclaim" and rec.namespace == ns and rec.claim_name in applied:
            by_claim.setdefault(rec.claim_name, []).append(rec)
    out: list[Delivery] = []
    for i, (name, at) in enumerate(applied.items(), start=1):
        recs = by_claim.get(name, [])
        done = next((r for r in recs if r.delivered is not None), None)
        if done is not None and done.delivered is not None:
            out.append(
                Delivery(
                    index=i,
                    path="sandboxclaim",
                    template=workload.template,
                    requested=at - t0,
                    latency=done.delivered - at,
                    warm=done.warm,
                    sandbox_id=_sandbox_id(done),
                    phases=_phases(done, at),
                    retries=max(0, len(recs) - 1),
                )
            )
            continue
        claim = cluster.world.api.peek("SandboxClaim", ns, name)
        reason = recs[-1].error if recs and recs[-1].error else None
        if reason is None and claim is not None:
            reason = claim.status.message or f"phase {claim.status.phase}"
        out.append(
            Delivery(
                index=i,
                path="sandboxclaim",
                template=workload.template,
                requested=at - t0,
                latency=None,
                warm=None,
                retries=max(0, len(recs) - 1),
                error=reason or "not delivered",
            )
        )
    return out


def run_on_cluster(
    cluster: Cluster, workload: Workload, *, name: str | None = None
) -> DeliveryResult:
    """Run ``workload`` on ``cluster`` in virtual time (the caller owns the cluster's thread)."""
    run = next(_runs)
    if workload.path == "e2b":
        deliveries = _e2b(cluster, workload, run)
    else:
        deliveries = _sandboxclaim(cluster, workload, run)
    profile = cluster.profile.name
    return DeliveryResult(
        name=name or workload.name,
        workload=workload,
        target=f"sim seed={cluster.ctx.seed} profile={profile}",
        clock="virtual",
        deliveries=tuple(deliveries),
    )


def run_on_backend(
    backend: SimBackend, workload: Workload, *, name: str | None = None
) -> DeliveryResult:
    """Run ``workload`` on the backend's cluster, holding the backend's lock (see :func:`run_on_cluster`)."""
    with backend.locked() as cluster:
        return run_on_cluster(cluster, workload, name=name)
