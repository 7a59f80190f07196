"""One run of a scenario: build the cluster, fill the pools, drive the workloads, measure.

:func:`run_once` is what every executor calls, in this process, in a worker
process or on a Dask worker: a pure function of the scenario and the seed.
The cluster draws from its own seeded generator; each workload draws its
arrivals from a generator of its own and its hold times from another, both
seeded from the run's seed, so that the same arrivals meet every point of a
sweep, whatever its pool size or hold time (common random numbers:
differences between points are the model's, not the dice's).

The run advances in steps of ``sample_interval``: after each step it samples
every pool's available and creating sandboxes (the SandboxSet controller's
own counts), node CPU and memory requests and pod slots, and releases the
SandboxClaim sandboxes whose hold is over; between steps, and every
``STOP_CHECK_EVENTS`` events within a step (a step can hold millions of
events), it asks ``should_stop`` whether to end early (Ctrl-C), in which case
the result is marked ``interrupted`` and holds what was measured up to its
last sample: the claims of that window which ended before the stop (those
still in flight are left out and counted apart, never failed: no drain ran),
and, for a run stopped in the warm-up, no figure at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import random
import time
from collections.abc import Callable, Generator
from typing import Any

import simpy

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.quantity import parse_quantity
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.extensions import CreateRequest, CreateSpec, create_spec
from simulator.cluster import Cluster
from simulator.collector import simulation_gc
from simulator.errors import NotFoundError, PoolTimeoutError
from simulator.planning.claims import (
    SandboxClaimTracker,
    e2b_metadata,
    e2b_outcome,
    sandboxclaim_manifest,
    sandboxclaim_outcomes,
    volume_mounts,
)
from simulator.planning.errors import PoolFillError, RunError
from simulator.planning.holds import sandbox_timeout
from simulator.planning.measure import binned_rates, claim_row, node_metrics, pool_metrics
from simulator.planning.metrics import Outcome, RunResult, quantile_sketch, summarise_outcomes
from simulator.planning.scenario import POOL_FILL_TIMEOUT_S, Scenario, WorkloadSpec
from simulator.records import ClaimRecord

__all__ = [
    "POOL_FILL_TIMEOUT_S",
    "STOP_CHECK_EVENTS",
    "Progress",
    "StopCheck",
    "derive_seed",
    "run_once",
]


StopCheck = Callable[[], bool]
"""Asked between steps: True ends the run early with what was measured."""
Progress = Callable[[float], None]
"""Told the run's progress, 0..1, between steps."""

STOP_CHECK_EVENTS = 2000
"""Events processed between two ``should_stop`` checks inside a step (a few milliseconds)."""


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (stable across processes and machines)."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


class _Run:
    """The state of one run (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        keep_claims: bool,
        should_stop: StopCheck | None,
        progress: Progress | None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.keep_claims = keep_claims
        self.should_stop = should_stop
        self.progress = progress
        self.cluster = Cluster(
            seed=seed,
            profile=scenario.cluster.build_profile(),
            nodes=scenario.cluster.node_specs(),
            log=False,
        )
        self.env: simpy.Environment = self.cluster.env
        specs = self.cluster.nodes.specs
        self.caps = {
            n.name: (float(parse_quantity(n.cpu)), float(parse_quantity(n.memory))) for n in specs
        }
        self.max_pods = {n.name: n.max_pods for n in specs}
        self.pod_slots = sum(self.max_pods.values())
        self.interval = scenario.sampling_interval
        self.origin = 0.0
        self.e2b: list[tuple[int, str, ClaimRecord]] = []
        self.claims: list[SandboxClaimTracker] = []
        self.open_claims: dict[tuple[str, str], SandboxClaimTracker] = {}
        self.record_cursor = 0
        self.in_flight = 0
        self.held = 0
        self.arrivals_left = len(scenario.workloads)
        self.series: dict[str, list[float]] = {}
        self.sets: dict[str, SandboxSet] = {}

    # -- set-up ------------------------------------------------------------------

    def fill_pools(self) -> None:
        """Apply every pool and run until each is full; then inject the faults."""
        cluster = self.cluster
        for pool in self.scenario.pools:
            sbs = pool.sandboxset()
            self.sets[pool.key] = sbs
            cluster.apply(sbs)
        for pool in self.scenario.pools:
            try:
                cluster.wait_for_pool(pool.name or "", pool.namespace, timeout=POOL_FILL_TIMEOUT_S)
            except PoolTimeoutError as exc:
                counts = cluster.sandboxset_controller.counts(pool.namespace, pool.name or "")
                # The pool's own cause when it gives one (an unschedulable pod, an image
                # that never pulls, a blocked rollout); too few nodes is only a guess.
                why = exc.reason or "are there enough nodes for the pools?"
                raise PoolFillError(
                    f"pool {pool.key} did not fill: {counts['available']} of {pool.replicas} "
                    f"available after {POOL_FILL_TIMEOUT_S:g}s of virtual time "
                    f"({cluster.nodes.pending_pods()} pods unschedulable or pending; {why})"
                ) from None
        self.origin = cluster.now
        cluster.records.clear()
        for i, spec in enumerate(self.scenario.faults):
            try:
                cluster.ctx.faults.inject(spec.to_fault(self.origin))
            except InvalidError as exc:
                # The scenario checks what it can; the cluster is the last word.
                raise RunError(f"faults[{i}].{exc.field}: {exc.reason}") from None

    # -- workloads ----------------------------------------------------------------------

    def start_workloads(self) -> None:
        """One arrival process per workload, with a generator for its arrivals and one for its holds."""
        self._check_requests()
        for i, wl in enumerate(self.scenario.workloads):
            arrivals = random.Random(derive_seed(self.seed, "workload", i))
            # Holds from a stream of their own: a sweep of the hold (or of a
            # trace's fixed holds) draws a different number of values, which
            # must not move the arrivals (common random numbers).
            holds = random.Random(derive_seed(self.seed, "hold", i))
            self.env.process(self._arrivals(i, wl, arrivals, holds))

    def _check_requests(self) -> None:
        """Refuse, before anything runs, an E2B workload whose creates would be refused.

        The scenario refuses them at load; one changed behind its validation
        stops here with the field named, not inside a SimPy process (which
        re-raises a copy of the error) nor as a run of 400s.
        """
        for i, wl in enumerate(self.scenario.workloads):
            if wl.claim.path != "e2b":
                continue
            try:
                _create_spec(wl, wl.namespace, wl.template or "", None)
            except InvalidError as exc:
                raise RunError(f"workloads[{i}].{exc.field}: {exc.reason}") from None

    def _arrivals(
        self, index: int, wl: WorkloadSpec, rng: random.Random, hold_rng: random.Random
    ) -> Generator[Any]:
        env = self.env
        hold_dist = wl.hold_dist
        claim = wl.claim
        for t, row in wl.arrivals.times(rng, self.scenario.horizon):
            at = self.origin + t
            if at > env.now:
                yield env.timeout(at - env.now)
            namespace = (row.namespace if row else None) or wl.namespace
            template = (row.template if row else None) or wl.template or ""
            fixed = row.hold if row is not None else None
            # Holds are drawn at the arrival, from the workload's hold generator.
            holds = [
                fixed if fixed is not None else hold_dist.sample(hold_rng)
                for _ in range(claim.replicas)
            ]
            if claim.path == "e2b":
                self.in_flight += 1
                env.process(self._e2b_claim(index, wl, namespace, template, holds[0]))
            else:
                self._apply_claim(index, wl, namespace, template, holds)
        self.arrivals_left -= 1

    def _e2b_claim(
        self, index: int, wl: WorkloadSpec, namespace: str, template: str, hold: float | None
    ) -> Generator[Any]:
        cluster = self.cluster
        manager = cluster.manager
        # Checked before the record, as Cluster.create_sandbox checks it (and as
        # _check_requests did for the workload: this cannot fail here).
        spec = _create_spec(wl, namespace, template, hold)
        rec = cluster.records.new(
            path="e2b", namespace=namespace, template=template, owner=wl.user, requested=cluster.now
        )
        self.e2b.append((index, f"{namespace}/{template}", rec))
        try:
            sbx = yield from manager.create(spec, rec)
        except ClaimError:
            return
        finally:
            self.in_flight -= 1
        if hold is None:
            return
        self.held += 1
        yield self.env.timeout(hold)
        self.held -= 1
        # Already gone (its timeout, a node loss): nothing to release.
        with contextlib.suppress(ClaimError):
            yield from manager.kill(namespace, wl.user, cluster.sandbox_id(sbx))

    def _apply_claim(
        self, index: int, wl: WorkloadSpec, namespace: str, template: str, holds: list[float | None]
    ) -> None:
        name = f"w{index}-{len(self.claims) + 1}"
        self.cluster.apply(sandboxclaim_manifest(name, namespace, template, wl.claim))
        tracker = SandboxClaimTracker(
            index, f"{namespace}/{template}", name, namespace, self.cluster.now, holds
        )
        self.claims.append(tracker)
        self.open_claims[(namespace, name)] = tracker

    # -- between steps ------------------------------------------------------------------------

    def _reap(self) -> None:
        """Attach new SandboxClaim records; schedule the release of delivered sandboxes; close claims."""
        records = self.cluster.records
        n = len(records)
        for i in range(self.record_cursor, n):
            rec = records[i]
            if rec.path == "sandboxclaim" and rec.claim_name is not None:
                tracker = self.open_claims.get((rec.namespace, rec.claim_name))
                if tracker is not None:
                    tracker.records.append(rec)
        self.record_cursor = n
        for key, tracker in list(self.open_claims.items()):
            delivered = tracker.delivered()
            for rec, hold in zip(delivered, tracker.holds, strict=False):
                if rec.id not in tracker.released:
                    tracker.released.add(rec.id)
                    if hold is not None and rec.sandbox is not None:
                        self.env.process(self._release(rec, hold))
            finished = self._claim_finished(tracker)
            if len(delivered) >= len(tracker.holds) or finished is not None:
                tracker.finished = finished if finished is not None else float(self.env.now)
                del self.open_claims[key]

    def _claim_finished(self, tracker: SandboxClaimTracker) -> float | None:
        """When the claim completed (its ``completionTime``, whole seconds as stored), or
        ``None`` while it has not; a claim gone (its TTL) finished by now."""
        # The stored object, read in place: Cluster.get would copy it at every scan.
        obj = self.cluster.world.api.peek("SandboxClaim", tracker.namespace, tracker.name)
        if obj is None:
            return float(self.env.now)
        if obj.status.phase != "Completed":
            return None
        done = obj.status.completion_time
        return float(self.env.now) if done is None else self.cluster.ctx.to_seconds(done)

    def _release(self, rec: ClaimRecord, hold: float) -> Generator[Any]:
        assert rec.delivered is not None and rec.sandbox is not None
        self.held += 1
        wait = rec.delivered + hold - self.env.now
        if wait > 0:
            yield self.env.timeout(wait)
        self.held -= 1
        ns, _, name = rec.sandbox.partition("/")
        with contextlib.suppress(NotFoundError):
            self.cluster.delete("Sandbox", name, ns)

    def _sample(self, t: float) -> None:
        cluster = self.cluster
        s = self.series
        s.setdefault("t", []).append(t - self.origin)
        for pool in self.scenario.pools:
            counts = cluster.sandboxset_controller.counts(pool.namespace, pool.name or "")
            s.setdefault(f"available:{pool.key}", []).append(float(counts["available"]))
            s.setdefault(f"creating:{pool.key}", []).append(
                float(counts["creating"] + counts["unobserved"])
            )
        cpu_used = cpu_cap = mem_used = mem_cap = cpu_peak = 0.0
        for name, (cpu_frac, mem_frac) in cluster.nodes.utilisation().items():
            cap_cpu, cap_mem = self.caps[name]
            cpu_used += cpu_frac * cap_cpu
            cpu_cap += cap_cpu
            mem_used += mem_frac * cap_mem
            mem_cap += cap_mem
            cpu_peak = max(cpu_peak, cpu_frac)
        # Pods bound to each node, from the kubelets' cache index (a read, no event).
        # Only the nodes that take pods count: a lost node's slots are no room,
        # and the pods still bound to it take none on the others.
        pods = cluster.world.node_cache
        ready = cluster.nodes.ready_nodes()
        slots = sum(self.max_pods[name] for name in ready)
        # The cache still lists a pod for a moment after its slot is freed (watch
        # lag): a node never holds more pods than its slots.
        bound = sum(
            min(pods.index_size("Pod", "node", name), self.max_pods[name]) for name in ready
        )
        s.setdefault("node_pods", []).append(bound / slots if slots else 1.0)
        s.setdefault("free_pod_slots", []).append(float(max(0, slots - bound)))
        s.setdefault("node_cpu", []).append(cpu_used / cpu_cap if cpu_cap else 0.0)
        s.setdefault("node_cpu_peak", []).append(cpu_peak)
        s.setdefault("node_mem", []).append(mem_used / mem_cap if mem_cap else 0.0)
        s.setdefault("pending_pods", []).append(float(cluster.nodes.pending_pods()))
        s.setdefault("held", []).append(float(self.held))

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> bool:
        """Run to the end (or until stopped); return whether it was interrupted."""
        sc = self.scenario
        env = self.env
        end = self.origin + sc.horizon
        deadline = end + sc.drain
        step = 0
        while True:
            t = self.origin + step * self.interval
            if t > env.now and self._advance(t):
                self._reap()
                return True  # stopped within the step: the window ends at the last sample
            self._reap()
            self._sample(t)
            if self.progress is not None:
                self.progress(min(1.0, (t - self.origin) / sc.horizon))
            if self.should_stop is not None and self.should_stop():
                return True
            settled = self.in_flight == 0 and not self.open_claims and self.arrivals_left == 0
            if t >= end and (settled or t >= deadline):
                return False
            step += 1

    def _advance(self, t: float) -> bool:
        """``env.run(until=t)``, asking ``should_stop`` every ``STOP_CHECK_EVENTS`` events.

        Return whether it stopped before ``t``. The same events run in the same
        order as ``env.run(until=t)`` would (its stop event is made the same
        way), so a run that is not stopped is the same, event for event.
        """
        env = self.env
        stop = self.should_stop
        with simulation_gc():
            if stop is None:
                env.run(until=t)
                return False
            # As Environment.run(until=t): an event processed before the
            # ordinary events scheduled at t, whose callback ends the stepping.
            until = simpy.Event(env)
            until._ok = True
            until._value = None
            env.schedule(until, simpy.events.URGENT, t - env.now)
            until.callbacks.append(simpy.core.StopSimulation.callback)
            step = env.step
            try:
                while True:
                    for _ in range(STOP_CHECK_EVENTS):
                        step()
                    if stop():
                        # The run ends here: the pending stop event must end no later stepping.
                        until.callbacks.remove(simpy.core.StopSimulation.callback)
                        return True
            except simpy.core.StopSimulation:
                return False

    def outcomes(self) -> list[Outcome]:
        """Every requested sandbox's outcome, in request order."""
        out = [e2b_outcome(i, pool, rec, phases=self.keep_claims) for i, pool, rec in self.e2b]
        for tracker in self.claims:
            out.extend(sandboxclaim_outcomes(tracker, phases=self.keep_claims))
        out.sort(key=lambda o: o.requested)
        return out

    def result(
        self, index: int, replication: int, point: dict[str, Any], interrupted: bool
    ) -> RunResult:
        """What the run measured in its window (see :class:`RunResult`)."""
        sc = self.scenario
        everything = self.outcomes()
        lo, hi = sc.warmup, sc.horizon
        origin = self.origin
        # An interrupted run's window ends where it stopped.
        end = min(hi, self.series["t"][-1]) if self.series.get("t") else hi
        outcomes = [o for o in everything if lo <= o.requested - origin < end]
        in_flight = 0
        if interrupted:
            # A stopped run measured the claims that ended before the stop: one still in
            # flight is no failure (no drain ran), only a claim the run did not see end.
            ended = [o for o in outcomes if o.delivered is not None or o.failed is not None]
            in_flight = len(outcomes) - len(ended)
            outcomes = ended
        metrics, failures, warm, cold = summarise_outcomes(outcomes, max(0.0, end - lo))
        # Every claim of the run: the refill counts the sandboxes taken in the window,
        # also by claims requested before it.
        shifted_all = [_shift(o, origin) for o in everything]
        # The pools' own claims are the run's: those a stopped run saw end.
        shifted = [_shift(o, origin) for o in outcomes]
        # A claimed sandbox counts as available until its lock reaches the
        # SandboxSet controller's cache: the refill adds that lag back.
        seen_lag = self.cluster.ctx.profile.latency("watch.lag").mean()
        pools = {
            p.key: pool_metrics(
                p,
                self.sets[p.key],
                self.series,
                shifted,
                lo=lo,
                hi=end,
                seen_lag=seen_lag,
                run_outcomes=shifted_all,
            )
            for p in sc.pools
        }
        metrics["idle_sandbox_hours"] = math.fsum(
            p["idle_sandbox_hours"] or 0.0 for p in pools.values()
        )
        metrics["idle_cpu_core_hours"] = math.fsum(
            p["idle_cpu_core_hours"] or 0.0 for p in pools.values()
        )
        metrics.update(node_metrics(self.series, lo=lo, hi=end, pod_slots=self.pod_slots))
        metrics["virtual_s"] = self.cluster.now - origin
        series = dict(self.series)
        series.update(binned_rates(series["t"], everything, origin=origin, interval=self.interval))
        names = [wl.label for wl in sc.workloads]
        claims = (
            [claim_row(o, names[o.workload], origin) for o in outcomes]
            if self.keep_claims
            else None
        )
        measured = max(0.0, end - lo)
        if measured <= 0:
            # Stopped in the warm-up: no window, so no figure (the warm-up's samples are
            # not the window's, and a count of 0 would drag every mean of the point).
            metrics = {k: (v if k == "virtual_s" else None) for k, v in metrics.items()}
            pools = {k: _unmeasured(p) for k, p in pools.items()}
        return RunResult(
            index=index,
            replication=replication,
            seed=self.seed,
            point=point,
            metrics=metrics,
            failures=failures,
            pools=pools,
            series=series,
            warm_q=quantile_sketch(warm),
            cold_q=quantile_sketch(cold),
            warm_n=len(warm),
            cold_n=len(cold),
            claims=claims,
            interrupted=interrupted,
            measured_s=measured,
            in_flight_at_stop=in_flight,
        )


def _unmeasured(pool: dict[str, float | None]) -> dict[str, float | None]:
    """A pool's figures of a run that measured no window: only its size, a setting, is known."""
    return {k: (v if k == "replicas" else None) for k, v in pool.items()}


def _create_spec(wl: WorkloadSpec, namespace: str, template: str, hold: float | None) -> CreateSpec:
    """The checked create of one claim of ``wl``: the request ``Cluster.create_sandbox`` makes.

    Raise :class:`InvalidError` naming the field the create path refuses.
    """
    claim = wl.claim
    request = CreateRequest(
        template,
        timeout=sandbox_timeout(hold, claim.timeout),
        auto_pause=claim.auto_pause,
        metadata=e2b_metadata(claim) or {},
        volume_mounts=volume_mounts(claim.csi_mounts),
    )
    return create_spec(namespace, wl.user, request)


def _shift(o: Outcome, origin: float) -> Outcome:
    """The outcome with its times relative to the workload start (as the samples are)."""
    return dataclasses.replace(
        o,
        requested=o.requested - origin,
        delivered=None if o.delivered is None else o.delivered - origin,
        failed=None if o.failed is None else o.failed - origin,
        taken=None if o.taken is None else o.taken - origin,
        retaken=tuple((t - origin, lock) for t, lock in o.retaken),
        phases=None,
    )


def run_once(
    scenario: Scenario,
    *,
    replication: int = 0,
    seed: int | None = None,
    index: int = 0,
    point: dict[str, Any] | None = None,
    keep_claims: bool = False,
    should_stop: StopCheck | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``scenario`` once and measure it.

    The run's seed is ``seed`` if given, else derived from the scenario's
    seed and ``replication``. Raise :class:`RunError` when a pool cannot fill.
    """
    run_seed = seed if seed is not None else derive_seed(scenario.seed, "replication", replication)
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    run = _Run(
        scenario, run_seed, keep_claims=keep_claims, should_stop=should_stop, progress=progress
    )
    run.fill_pools()
    run.start_workloads()
    interrupted = run.run()
    result = run.result(index, replication, dict(point or {}), interrupted)
    result.wall_s = time.perf_counter() - wall0
    result.cpu_s = time.process_time() - cpu0
    return result
