"""Run a delivery workload on the fake cluster and read the latencies from its claim records.

Everything happens in virtual time, inside the model: the arrivals are a
SimPy process, every claim is a concurrent SimPy process (E2B path) or a
SandboxClaim applied at its arrival time (SandboxClaim path), and the
latencies and phases come from the run's own claim records, held as they
start (a cluster with a records limit may drop them before the run ends).
The E2B path kills each sandbox at its delivery, once measured, as the live
runner does (so a steady rate never fills the nodes with sandboxes the run
holds), and cancels the claims still unfinished :data:`SETTLE_TIMEOUT_S`
after the last arrival, as a client going away does: they fail, and can
neither deliver later nor leak a sandbox. The SandboxClaim path deletes each
claim's sandboxes once it sees the claim completed, through a watch of its
own, as a user done with them would (the claims stay, for their status and
TTL).

How the model's time moves follows the cluster's clock. In virtual mode the
run drives the model itself, as fast as it simulates (wall time is only the
cost of simulating). On a realtime backend its clock driver does, and the run
waits on the wall clock, releasing the lock between looks: virtual time never
runs ahead of the wall clock (the server's next call would wait for it to
catch up), and the result is labelled ``realtime``.

A run's names (``<prefix>-<run>`` owns the E2B path's sandboxes,
``<prefix>-<run>-<i>`` are the SandboxClaims) number the runs of that
cluster, read from what it holds: the same seed and the same calls give the
same event log, whatever else the process ran before.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, Final, Literal, Protocol, TypeVar

import simpy

from pytest_kruise_agents.api.keys import LABEL_CLAIM_NAME, LABEL_SANDBOX_POOL
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import ClaimPhase
from pytest_kruise_agents.api.validation import dns_subdomain_problem, name_as_label_problem
from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from pytest_kruise_agents.delivery.result import Delivery, DeliveryResult, check_name
from pytest_kruise_agents.delivery.workload import Workload, check_workload
from simulator.cluster import Cluster
from simulator.collector import simulation_gc
from simulator.informer import Informer
from simulator.records import PHASES, ClaimRecord

__all__ = [
    "BENCHMARK_USER_PREFIX",
    "SETTLE_TIMEOUT_S",
    "UNFINISHED",
    "check_on_cluster",
    "is_run_name",
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

T = TypeVar("T")

_POLL_S: Final = 0.005
"""How often a run on a realtime backend looks at the model (wall seconds)."""

_RUN_NAME: Final = re.compile(rf"{re.escape(BENCHMARK_USER_PREFIX)}-([0-9]+)(?:-[0-9]+)?")
"""A run's owner (``<prefix>-<run>``) or one of its SandboxClaims (``<prefix>-<run>-<i>``)."""


def is_run_name(name: str) -> bool:
    """Whether ``name`` is a run's: its owner (``<prefix>-<run>``) or a SandboxClaim's
    (``<prefix>-<run>-<i>``), as written on the sandboxes it claims."""
    return _RUN_NAME.fullmatch(name) is not None


def _next_run(cluster: Cluster) -> int:
    """The number of the next run on ``cluster``: one more than the highest it holds.

    Read from the cluster (its records, its SandboxClaims), not counted by the
    process: a process-wide count would name a test's claims after the
    benchmarks other tests ran before it, and change its event log.
    """
    names = [r.owner for r in cluster.records]
    names += [r.claim_name for r in cluster.records if r.claim_name]
    names += [c.metadata.name for c in cluster.world.api.peek_list("SandboxClaim")]
    runs = [int(m.group(1)) for name in names if (m := _RUN_NAME.fullmatch(name))]
    return max(runs, default=0) + 1


class _Drive(Protocol):
    """How a run moves the model and waits for it (see the module docstring).

    ``cluster`` may be touched only inside :meth:`act` and the predicates of :meth:`wait`.
    """

    cluster: Cluster

    def act(self, fn: Callable[[], T]) -> T:
        """``fn()`` with the cluster to itself."""
        ...

    def start(self, gen: Generator[simpy.Event, Any, None]) -> simpy.Process:
        """Inside :meth:`act`: start ``gen`` as a process that :meth:`join` waits for."""
        ...

    def join(self, proc: simpy.Process) -> None:
        """Wait until ``proc`` (from :meth:`start`) ends; raise its error if it failed."""
        ...

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` or ``timeout`` virtual seconds pass; return whether it held."""
        ...


class _Virtual:
    """The run drives the model itself; the caller owns the cluster's thread."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def act(self, fn: Callable[[], T]) -> T:
        return fn()

    def start(self, gen: Generator[simpy.Event, Any, None]) -> simpy.Process:
        return self.cluster.env.process(gen)

    def join(self, proc: simpy.Process) -> None:
        self.cluster.env.run(until=proc)

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        return self.cluster.run_until(done, timeout=timeout)


class _Realtime:
    """The backend's clock driver moves the model; the run looks at it between wall-clock naps."""

    def __init__(self, backend: SimBackend) -> None:
        self._backend = backend
        self.cluster = backend.cluster

    def act(self, fn: Callable[[], T]) -> T:
        with self._backend.locked():
            return fn()

    def start(self, gen: Generator[simpy.Event, Any, None]) -> simpy.Process:
        proc = self.cluster.env.process(gen)
        # Processed by the driver thread: a failure is raised here, by join, not there.
        proc.callbacks.append(_defuse)
        return proc

    def join(self, proc: simpy.Process) -> None:
        self.wait(lambda: proc.triggered, float("inf"))
        if not proc.ok:
            error = proc.value
            assert isinstance(error, BaseException)
            raise error

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = self.act(lambda: self.cluster.now + timeout)
        while True:
            with self._backend.locked() as cluster:
                if done():
                    return True
                if cluster.now >= deadline:
                    return False
            time.sleep(_POLL_S)


def _defuse(event: simpy.Event) -> None:
    """Mark a failed ``event`` handled, so that processing it does not raise (its waiter does)."""
    if not event.ok:
        event.defused = True


class _Count:
    """A number kept by the processes it counts, read after every step of the model."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def zero(self) -> bool:
        """Whether nothing is left to count."""
        return self.value == 0


class _Completed:
    """Whether every SandboxClaim named in :attr:`names` so far is completed (or gone).

    Asked after every step of the model, so it looks at the first claim not
    yet seen done, and passes only claims seen done: a ``Completed`` claim
    stays so (upstream's CalculateClaimStatus leaves a completed status
    unchanged) and a claim gone stays gone (its name is the run's own, never
    applied again), so a claim once done is done for the rest of the run.
    Reading every claim at every step made the wait quadratic in the burst.
    """

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.names: list[str] = []
        self._api = cluster.world.api
        self._namespace = namespace
        self._done = 0  # names[:_done] are done

    def __call__(self) -> bool:
        names = self.names
        while self._done < len(names):
            claim = self._api.peek("SandboxClaim", self._namespace, names[self._done])
            if claim is not None and claim.status.phase != ClaimPhase.COMPLETED:
                return False
            self._done += 1
        return True


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


def _e2b(drive: _Drive, workload: Workload, run: int) -> list[Delivery]:
    cluster = drive.cluster
    env = cluster.env
    user = f"{BENCHMARK_USER_PREFIX}-{run}"
    creates: list[simpy.Process] = []
    unfinished = _Count()

    def claim() -> Generator[simpy.Event, Any, None]:
        try:
            create = cluster.submit_create(
                workload.template, namespace=workload.namespace, user=user
            )
            creates.append(create)
            outcome = yield create
            if isinstance(outcome, Sandbox):
                # Measured at its delivery: killed at once, as the live runner kills each
                # sandbox once measured. Held until the run ends, a steady rate would fill
                # the nodes and later claims would wait for capacity the run itself holds.
                yield from _kill(cluster, workload.namespace, user, cluster.sandbox_id(outcome))
        finally:
            # Counted off as its process ends (the step that triggers it), however it ends.
            unfinished.value -= 1

    def start() -> tuple[float, simpy.Process]:
        t0 = env.now
        times = workload.arrivals(cluster.ctx.rng)

        def arrivals() -> Generator[simpy.Event, Any, None]:
            for at in times:
                if t0 + at > env.now:
                    yield env.timeout(t0 + at - env.now)
                unfinished.value += 1
                env.process(claim())

        return t0, drive.start(arrivals())

    with _collecting(drive, lambda r: r.path == "e2b" and r.owner == user) as records:
        t0, arriving = drive.act(start)
        drive.join(arriving)
        # Asked after every step of the model: a count, not a look at every claim.
        settled = unfinished.zero
        if not drive.wait(settled, SETTLE_TIMEOUT_S):
            _cancel(drive, creates, settled)
    return drive.act(lambda: [_e2b_delivery(i, rec, t0) for i, rec in enumerate(records, 1)])


@contextlib.contextmanager
def _collecting(drive: _Drive, mine: Callable[[ClaimRecord], bool]) -> Iterator[list[ClaimRecord]]:
    """The records started meanwhile that are ``mine``, held as they start.

    Not read back from the cluster's records afterwards: with a records limit
    the oldest are dropped, and a long run's first claims would be lost (or
    another's taken for them).
    """
    held: list[ClaimRecord] = []

    def hold(rec: ClaimRecord) -> None:
        if mine(rec):
            held.append(rec)

    stop = drive.act(lambda: drive.cluster.records.listen(hold))
    try:
        yield held
    finally:
        drive.act(stop)


def _e2b_delivery(index: int, rec: ClaimRecord, t0: float) -> Delivery:
    """The E2B-path claim ``rec`` of a run started at ``t0``."""
    return Delivery(
        index=index,
        path="e2b",
        template=rec.template,
        requested=rec.requested - t0,
        latency=rec.latency,
        warm=rec.warm,  # None until delivered
        sandbox_id=_sandbox_id(rec),
        phases=_phases(rec, rec.requested),
        retries=rec.retries,
        error=_e2b_error(rec),
    )


def _cancel(drive: _Drive, creates: list[simpy.Process], settled: Callable[[], bool]) -> None:
    """Cancel the creates still in flight and let the claims clean up until ``settled()``
    (within the time limit again)."""

    def interrupt() -> None:
        for proc in creates:
            if proc.is_alive:
                # The request's context cancelled, as when the E2B server's client goes
                # away: the claim stops at its current wait, releases what it locked and
                # fails, where left running it could deliver later and leak the sandbox.
                proc.interrupt("benchmark time limit")

    drive.act(interrupt)
    drive.wait(settled, SETTLE_TIMEOUT_S)


def _e2b_error(rec: ClaimRecord) -> str | None:
    """Why an E2B-path claim got no sandbox; ``None`` if it got one."""
    if rec.delivered is not None:
        return None
    # Only the time limit cancels a benchmark claim; one not even failed yet
    # is still cleaning up after its cancel.
    if rec.failed is None or rec.error_reason == ClaimCanceledError.reason:
        return UNFINISHED
    return rec.error or "not delivered"


def _kill(
    cluster: Cluster, namespace: str, user: str, sandbox_id: str
) -> Generator[simpy.Event, Any, None]:
    """Kill a delivered sandbox as the E2B client that claimed it."""
    # A fault in force may fail the kill; the sandbox stays, and the
    # kruise_e2b fixture's teardown kills and reports it.
    with contextlib.suppress(ClaimError):
        yield from cluster.manager.kill(namespace, user, sandbox_id)


def _claim_manifest(name: str, workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": name, "namespace": workload.namespace},
        "spec": {"templateName": workload.template, "replicas": 1},
    }


def _sandboxclaim(drive: _Drive, workload: Workload, run: int) -> list[Delivery]:
    cluster = drive.cluster
    env = cluster.env
    ns = workload.namespace
    applied: dict[str, float] = {}
    completed = _Completed(cluster, ns)

    def start() -> tuple[float, simpy.Process]:
        t0 = env.now
        times = workload.arrivals(cluster.ctx.rng)

        def arrivals() -> Generator[simpy.Event, Any, None]:
            for i, at in enumerate(times, start=1):
                if t0 + at > env.now:
                    yield env.timeout(t0 + at - env.now)
                name = f"{BENCHMARK_USER_PREFIX}-{run}-{i}"
                cluster.apply(_claim_manifest(name, workload))
                applied[name] = env.now
                completed.names.append(name)

        return t0, drive.start(arrivals())

    def mine(rec: ClaimRecord) -> bool:
        # Records start at the controller's attempts, after the apply named the claim.
        return rec.path == "sandboxclaim" and rec.namespace == ns and rec.claim_name in applied

    with _collecting(drive, mine) as records, _releasing(drive, ns, mine) as released:
        t0, arriving = drive.act(start)
        drive.join(arriving)
        drive.wait(lambda: completed() and released(), SETTLE_TIMEOUT_S)
    return drive.act(lambda: _claim_deliveries(cluster, workload, applied, records, t0))


@contextlib.contextmanager
def _releasing(
    drive: _Drive, ns: str, mine: Callable[[ClaimRecord], bool]
) -> Iterator[Callable[[], bool]]:
    """Meanwhile, delete each of the run's SandboxClaims' sandboxes once the claim completes.

    Yields whether every claim that made an attempt has been seen completed
    (and its sandboxes deleted).

    As a user who has measured a delivery and is done with it: the run watches
    its SandboxClaims (a watch of its own, with its own lag) and deletes the
    sandboxes a claim was delivered (``kubectl delete sandbox``; deleting the
    claim would not, its sandboxes are not its dependents). Kept, they would
    hold their node slots until the test ends, and a steady rate would fill the
    nodes. The claims stay, for their status and their TTL.
    """
    cluster = drive.cluster
    api = cluster.world.api
    delivered: dict[str, list[ClaimRecord]] = {}
    watch = Informer(f"{BENCHMARK_USER_PREFIX}-watch", ("SandboxClaim",))
    watching = True

    def hold(rec: ClaimRecord) -> None:
        if mine(rec) and rec.claim_name is not None:
            delivered.setdefault(rec.claim_name, []).append(rec)

    def on_claim(_event: str, _old: Any, new: Any) -> None:
        if not watching or new is None or new.metadata.namespace != ns:
            return
        if new.status.phase != ClaimPhase.COMPLETED:
            return
        name = new.metadata.name
        for rec in delivered.pop(name, ()):
            if rec.delivered is None or not rec.sandbox:
                continue
            sbx_ns, sbx_name = rec.sandbox.split("/", 1)
            sbx = api.peek("Sandbox", sbx_ns, sbx_name)
            # Gone already (its timeout), or a later sandbox of that name: not ours to delete.
            if sbx is not None and sbx.metadata.labels.get(LABEL_CLAIM_NAME) == name:
                cluster.delete("Sandbox", sbx_name, sbx_ns)

    def start() -> Callable[[], None]:
        watch.add_handler("SandboxClaim", on_claim)
        api.register(watch)
        return cluster.records.listen(hold)

    stop = drive.act(start)
    try:
        yield lambda: not delivered
    finally:

        def end() -> None:
            nonlocal watching
            stop()
            # Events under way still reach the cache; they no longer delete anything.
            watching = False
            api.unregister(watch)

        drive.act(end)


def _claim_deliveries(
    cluster: Cluster,
    workload: Workload,
    applied: dict[str, float],
    records: list[ClaimRecord],
    t0: float,
) -> list[Delivery]:
    """The SandboxClaim path's deliveries: each claim ``applied`` (name: when), from its ``records``."""
    ns = workload.namespace
    by_claim: dict[str, list[ClaimRecord]] = {}
    for rec in records:
        if rec.claim_name is not None:
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
    """Run ``workload`` on ``cluster`` in virtual time (the caller owns the cluster's thread).

    A workload that could only fail (a template no SandboxSet can be named) raises
    :class:`ValueError` naming its field before anything is drawn, sent or run; a
    ``name`` that is not a str, :class:`TypeError` naming it.
    """
    check_on_cluster(workload)
    check_name(name)
    # The run drives the model (its arrivals too) and reads it: under the collector
    # thresholds the model runs with, in every part, not only in the waits.
    with simulation_gc():
        return _run(_Virtual(cluster), workload, name, "virtual")


def run_on_backend(
    backend: SimBackend, workload: Workload, *, name: str | None = None
) -> DeliveryResult:
    """Run ``workload`` on the backend's cluster, in the backend's clock mode.

    Virtual: as :func:`run_on_cluster`, holding the backend's lock throughout.
    Realtime: the backend's clock driver moves the model, on the wall clock,
    and the run takes the lock only to start and read it; the result's
    ``clock`` is ``realtime``. The workload and ``name`` are checked first, as by
    :func:`run_on_cluster`.
    """
    check_on_cluster(workload)
    check_name(name)
    if backend.clock_mode == "realtime":
        return _run(_Realtime(backend), workload, name, "realtime")
    with backend.locked() as cluster:
        return run_on_cluster(cluster, workload, name=name)


def check_on_cluster(workload: object) -> Workload:
    """``workload`` if a run on the fake cluster can take it; else the error naming its field.

    As :func:`~pytest_kruise_agents.delivery.workload.check_workload`, and
    refusing what such a run would send only to see it fail: the run draws
    its arrivals and moves the clock before its first claim, and a template no
    SandboxSet can be named (every E2B create a 400, every SandboxClaim
    failing) would cost that and change the runs after it. The runners call
    it first; a caller that sets up a cluster for a run can call it before that.
    """
    checked = check_workload(workload)
    template = checked.template
    why = dns_subdomain_problem(template) or name_as_label_problem(template, LABEL_SANDBOX_POOL)
    if why is not None:
        raise ValueError(f"template: {why} (a template names a SandboxSet)")
    return checked


def _run(
    drive: _Drive, workload: Workload, name: str | None, clock: Literal["virtual", "realtime"]
) -> DeliveryResult:
    cluster = drive.cluster
    run = drive.act(lambda: _next_run(cluster))
    if workload.path == "e2b":
        deliveries = _e2b(drive, workload, run)
    else:
        deliveries = _sandboxclaim(drive, workload, run)
    return DeliveryResult(
        name=name or workload.name,
        workload=workload,
        target=f"sim seed={cluster.ctx.seed} profile={cluster.profile.summary()}",
        clock=clock,
        deliveries=tuple(deliveries),
    )
