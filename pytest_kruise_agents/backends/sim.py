"""The embedded backend: the SimPy fake cluster behind the :class:`Backend` seam.

SimPy is single-threaded, and the E2B server calls the backend from many
worker threads, so every call holds one lock around the model. Two clocks:

- **virtual** (default): time moves only when a call must wait. A create that
  needs a refill runs the simulation forward until it is answered, under the
  lock; :meth:`SimBackend.advance` moves time on purpose. Calls are serialised,
  so concurrent requests are answered one after another in virtual time.
- **realtime(speed)**: a driver thread keeps virtual time at
  ``start + (wall elapsed) * speed``. A call starts its SimPy process under the
  lock and waits (without the lock) until the driver has run it to its end,
  so external clients see timeouts fire on the wall clock. The process starts
  at the call's arrival (the wall clock when it was made, in virtual time),
  whatever the model's clock read then. The driver runs the model in slices of
  one tick at most; with more to run than the wall clock times the speed
  allows, it runs as fast as it can and falls behind (:meth:`SimBackend.lag`):
  answers come late in wall time, stamped at their arrival all the same.

:meth:`SimBackend.attempt` answers a call on the caller's own thread (the
server's event loop) when it can be answered at once: the lock is free, and
the call either needs no model time or, in virtual mode, its process ends
within a short budget (:data:`INLINE_BUDGET_S` by default). Otherwise the rest of the call
(its process keeps running, nothing is started twice) is handed back as a
:class:`~pytest_kruise_agents.backends.base.Pending` for a worker thread.
Its ``cancel`` interrupts a create's process (the request's context is
cancelled): in virtual mode whichever call runs the model next delivers it
within a few dozen events, in realtime mode the clock driver at the virtual
instant the cancel was asked for (within one tick when the model keeps up with
the wall clock); cancels delivered together land in the order they were
requested, so the same calls give the same run.
In realtime mode the rest needs no thread at all: the call is started at once
(or by the clock driver, if the lock is busy), the driver runs it on the wall
clock, and ``Pending.when_ready`` says when ``finish`` has its answer. A
server awaits that, so creates waiting for cold sandboxes never hold the
worker threads quick calls (a timeout change, a kill) need.

Neither clock passes :data:`~simulator.context.CLOCK_END`. A call that would
need the model to run past it fails with :func:`past_clock_end` (the virtual
clock stops just before the first event beyond it); a realtime clock that
reaches it stands still, still running what is due at that instant.
"""

from __future__ import annotations

import builtins
import collections
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final, Self, TypeVar, overload

import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import (
    KubeObject,
    PodKind,
    SandboxClaimKind,
    SandboxKind,
    SandboxSetKind,
    SandboxTemplateKind,
    listing_order,
    load_manifests,
    to_manifest_dict,
)
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from pytest_kruise_agents.backends.base import (
    Caller,
    ClockMode,
    CreateRequest,
    ListQuery,
    Pending,
    ResourceForbidden,
    ResourceNotFound,
    Route,
    SandboxListener,
    TemplateView,
)
from pytest_kruise_agents.claiming.errors import NotFoundError as ClaimNotFound
from pytest_kruise_agents.claiming.extensions import check_timeout_seconds, create_spec
from pytest_kruise_agents.claiming.view import (
    SandboxView,
    e2b_state,
    init_request,
    sandbox_id,
    sandbox_view,
    served_state,
    split_sandbox_id,
    template_resources,
)
from simulator.apiserver import ForbiddenError
from simulator.cluster import (
    Cluster,
    check_caller,
    check_list_query,
    check_retention,
    check_seconds,
)
from simulator.collector import simulation_gc
from simulator.context import DEFAULT_EPOCH, past_clock_end
from simulator.errors import NoAnswerError, NotFoundError
from simulator.faults import Fault
from simulator.interrupts import sigint_deferred, step_to
from simulator.latency import Latency

__all__ = [
    "DEFAULT_POOLS",
    "INLINE_BUDGET_S",
    "MAX_SPEED",
    "UNIX_EPOCH",
    "ClockLag",
    "SimBackend",
    "default_pools_yaml",
    "opened",
    "opening_at",
    "past_clock_end",
    "wall_clock_now",
]

T = TypeVar("T")
V = TypeVar("V")

UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest date a cluster may be made at by :func:`opening_at` (Kubernetes timestamps
are Unix times)."""

DEFAULT_POOLS: Final = ("base", "code-interpreter-v1")
"""The pools of the default cluster: the templates the E2B SDKs use by default."""

MAX_SPEED: Final = 1e6
"""Most virtual seconds per wall second a realtime clock may run.

One driver tick is then ~1.4 virtual hours, past anything the model's timers
mean; far beyond, the first tick would move the clock past the last date a
timestamp can hold (at 1e308, every call would fail).
"""

_DRIVER_TICK_S: Final = 0.005
"""Longest wall time the realtime driver sleeps before it looks at the clock again,
and longest it runs the model in one slice (between two, calls get in)."""

_LET_IN_S: Final = 0.0005
"""Shortest wall time the realtime driver lets go of the lock between two slices."""

INLINE_BUDGET_S: Final = 0.005
"""Default longest wall time :meth:`SimBackend.attempt` runs the model on the caller's thread.

Python's default GIL switch interval: an event loop calling :meth:`SimBackend.attempt`
is held up about as long as a worker thread running the same call could hold the GIL.
"""

_NEVER: Final = float("inf")
"""``env.peek()`` of an empty schedule."""

_STEPS_PER_CLOCK_READ: Final = 32
"""Model events between two reads of the CPU clock while a budget runs."""


@dataclass(frozen=True)
class _CallBound:
    """A call gives up once the model's next event is past ``at``, ``seconds`` after it started."""

    at: float
    seconds: float


class _BoundPassed(Exception):
    """The model's next event is past the running call's :class:`_CallBound`."""


_ROUTE_STATES: Final[dict[SandboxState, str]] = {
    SandboxState.RUNNING: "running",
    SandboxState.PAUSED: "paused",
    SandboxState.CREATING: "creating",
    SandboxState.AVAILABLE: "creating",
    SandboxState.DEAD: "dead",
}


def default_pools_yaml(
    replicas: int = 10, *, namespace: str = "default", pools: tuple[str, ...] = DEFAULT_POOLS
) -> str:
    """SandboxSet YAML for the default pools, each with an agent runtime.

    Names are written as JSON strings (valid YAML): bare, ``1``, ``007``,
    ``1.5`` or ``yes`` would be read back as a number or a boolean.
    """
    docs = []
    ns = json.dumps(namespace)
    for name in pools:
        quoted = json.dumps(name)
        image = json.dumps(f"registry.example.com/e2b/{name}:v1")
        docs.append(
            f"""apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: {quoted}
  namespace: {ns}
spec:
  replicas: {replicas}
  runtimes:
  - name: agent-runtime
  template:
    metadata:
      labels:
        app: {quoted}
    spec:
      containers:
      - name: sandbox
        image: {image}
        resources:
          requests:
            cpu: "1"
            memory: 1Gi
          limits:
            cpu: "2"
            memory: 2Gi
"""
        )
    return "---\n".join(docs)


def wall_clock_now() -> datetime:
    """The wall clock's now in whole seconds, UTC: the date a realtime cluster opens at."""
    return datetime.now(UTC).replace(microsecond=0)


def opening_at(opens: datetime, build: Callable[[datetime], Cluster]) -> Cluster:
    """``build(epoch)``, its epoch chosen so that once built its clock reads ``opens``.

    ``build`` makes a cluster from its epoch (virtual time 0) and fills its
    pools, which takes virtual time (about 29 s for the server's defaults):
    from ``opens`` itself, a realtime server would open that far ahead of its
    clients' clocks. The fill takes the same virtual time from any epoch
    (same seed, same calls; dates only shift), so a first build measures it
    and the second starts that much, rounded up, earlier: the clock then
    reads ``opens`` to within a second (a little before).

    The first build starts at :data:`~simulator.context.DEFAULT_EPOCH`, with
    the fraction of a second ``opens`` has, not at ``opens``: from a date
    less than the fill before :data:`~simulator.context.CLOCK_END` it would
    need the clock past its end.

    An ``opens`` less than the fill after :data:`UNIX_EPOCH` raises
    :class:`InvalidError` naming ``start``: the objects made during the fill
    would carry dates before 1970, which no Unix time holds.
    """
    measured_from = DEFAULT_EPOCH + timedelta(microseconds=opens.microsecond)
    lead = math.ceil(build(measured_from).now)
    epoch = opens - timedelta(seconds=lead)
    if epoch < UNIX_EPOCH:
        raise InvalidError(
            "start",
            f"must be at least {lead} s after {format_time(UNIX_EPOCH)}: the pools fill for "
            f"{lead} s (rounded up) before the opening, and the objects made then carry Unix "
            f"times, which start there; got {format_time(opens)}",
        )
    return build(epoch)


def opened(
    build: Callable[[datetime], Cluster], *, start: datetime | None, realtime: bool
) -> Cluster:
    """``build(epoch)`` with the dates its clock should read once built.

    ``start`` given: it reads ``start`` exactly. Otherwise a realtime cluster
    reads the wall clock's now, to the millisecond. Either is moved on by
    :func:`opening_at`'s rounding (and, for the wall clock, by what the builds
    took), since the realtime driver, which starts next, never catches up a lag
    it starts with. A virtual cluster starts at :data:`DEFAULT_EPOCH` (the
    same dates every run).
    """
    if start is None and not realtime:
        return build(DEFAULT_EPOCH)
    cluster = opening_at(start if start is not None else wall_clock_now(), build)
    # opening_at leaves the clock up to a second early (its lead is rounded up), and the
    # builds took wall time: make it read the date asked for, which a created sandbox's
    # startedAt (and a client's startedAfter) is compared with.
    opens = start if start is not None else datetime.now(UTC)
    behind = (opens - cluster.now_dt()).total_seconds()
    if behind > 0:
        cluster.advance(behind)
    return cluster


@dataclass(frozen=True, slots=True)
class ClockLag:
    """How far a realtime clock's model runs behind the wall clock, in wall seconds.

    At most about one driver tick (5 ms) while the model keeps up; more when
    it has more to run than the wall clock times the speed allows (it then
    runs as fast as it can): answers come that much later in wall time.
    """

    now_s: float
    """Behind now (0 when the model is ahead: a ``locked()`` caller ran it)."""
    max_s: float
    """The most it has been behind since the backend opened."""


class SimBackend:
    """The fake cluster as a :class:`~pytest_kruise_agents.backends.base.Backend`.

    :param cluster: the cluster to serve; a new ``Cluster(**cluster_options)`` if omitted.
    :param clock: ``"virtual"`` or ``"realtime"``.
    :param speed: virtual seconds per wall second in realtime mode.
    :param inline_budget_s: how long :meth:`attempt` may run the model on the
        caller's thread (``0``: one short batch of events).
    """

    def __init__(
        self,
        cluster: Cluster | None = None,
        *,
        clock: ClockMode = "virtual",
        speed: float = 1.0,
        inline_budget_s: float = INLINE_BUDGET_S,
        **cluster_options: Any,
    ) -> None:
        if clock not in ("virtual", "realtime"):
            raise InvalidError("clock", f"must be virtual or realtime, got {clock!r}")
        if not (speed > 0 and math.isfinite(speed) and speed <= MAX_SPEED):
            raise InvalidError(
                "speed", f"must be a finite number > 0 and at most {MAX_SPEED:g}, got {speed!r}"
            )
        if not inline_budget_s >= 0:
            raise InvalidError("inline_budget_s", f"must be >= 0, got {inline_budget_s!r}")
        self.cluster = cluster if cluster is not None else Cluster(**cluster_options)
        self._mode: ClockMode = clock
        self._speed = float(speed)
        self._budget = float(inline_budget_s)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._listeners: list[SandboxListener] = []
        self._states: dict[str, str] = {}
        self._closed = False
        self._waiting: set[threading.Event] = set()
        # Realtime: calls started without a thread (settled by the model), and calls
        # the driver starts because the lock was busy when they were attempted.
        self._tickets: set[_Ticket] = set()
        # Each with the instant (time.monotonic()) it was attempted: its arrival.
        self._queued: collections.deque[tuple[_Ticket, Callable[[], Any], _Cancellation, float]] = (
            collections.deque()
        )
        # Cancellable calls whose process runs, delivered by whichever thread runs the
        # model next (a virtual-clock call, the realtime driver), not only their own.
        # A dict, not a set: a set of these iterates in the order of their memory
        # addresses, and the order the interrupts land in is part of the run.
        self._cancels: dict[_Cancellation, None] = {}
        # The budget of an attempt, per thread: only the attempting thread may stop early.
        self._inline = threading.local()
        self.cluster.world.manager_cache.add_handler("Sandbox", self._on_sandbox)
        # What restore_latency puts back: the latencies the backend opened with (a
        # config file's overrides included), not the built-in profile's.
        self._opening_latencies: dict[str, Latency] = dict(self.cluster.profile.latencies)
        self._driver: threading.Thread | None = None
        # No call runs the model past CLOCK_END (virtual time, both clocks).
        self._end = self.cluster.ctx.clock_end()
        if clock == "realtime":
            self._wall0 = time.monotonic()
            self._sim0 = self.cluster.now
            self._most_behind = 0.0  # wall seconds (see lag)
            self._driver = threading.Thread(
                target=self._drive, name="kruise-sim-clock", daemon=True
            )
            self._driver.start()

    @classmethod
    def default(
        cls,
        *,
        seed: int = 0,
        clock: ClockMode = "virtual",
        speed: float = 1.0,
        replicas: int = 10,
        profile: str = "openkruise-head",
        nodes: int = 4,
        inline_budget_s: float = INLINE_BUDGET_S,
    ) -> Self:
        """A cluster of ``nodes`` nodes with ready pools ``base`` and ``code-interpreter-v1``.

        A virtual clock starts at the fixed epoch (2026-01-01, the same dates every
        run); a realtime one reads the wall clock's now once the pools are filled.
        """

        def filled(epoch: datetime) -> Cluster:
            cluster = Cluster(seed=seed, profile=profile, nodes=nodes, epoch=epoch)
            cluster.apply(default_pools_yaml(replicas))
            for name in DEFAULT_POOLS:
                cluster.wait_for_pool(name)
            return cluster

        built = opened(filled, start=None, realtime=clock == "realtime")
        return cls(built, clock=clock, speed=speed, inline_budget_s=inline_budget_s)

    # -- running the model ---------------------------------------------------------------

    def _virtual_at(self, instant: float) -> float:
        """Realtime mode: the virtual time the wall clock reads at ``instant`` (``time.monotonic()``).

        The model's clock follows it (behind it while the driver catches up),
        and a call's process starts at it (:meth:`_at_arrival`). It stops at
        CLOCK_END rather than run past the dates a timestamp holds.
        """
        return min(self._sim0 + (instant - self._wall0) * self._speed, self._end)

    def _target(self) -> float:
        return self._virtual_at(time.monotonic())

    def _drive(self) -> None:
        """Realtime mode: keep virtual time in step with the wall clock.

        The model runs in slices of at most one tick of wall time toward the
        wall clock's virtual time (:meth:`_run_slice`). Between two slices the
        driver starts the calls queued meanwhile, schedules the cancels asked
        for, and lets go of the lock: other calls (a get, an admin call) are
        answered while a long backlog runs, which one ``env.run`` over all of
        it held them back from, up to a second under load.
        """
        env = self.cluster.env
        with self._lock:
            while not self._closed:
                self._begin_queued()
                self._schedule_cancels()
                caught_up = self._run_slice(self._target())
                if env.now >= self._end:
                    self._stand_still()
                # Condition.wait releases the lock: calls get in between slices.
                self._wake.wait(timeout=self._pause() if caught_up else _LET_IN_S)

    def _pause(self) -> float:
        """The driver, caught up: how long it sleeps, until the next event is due (a tick at most)."""
        nxt = self.cluster.env.peek()
        wait = _DRIVER_TICK_S
        if nxt != _NEVER:
            wait = min(wait, max((nxt - self._target()) / self._speed, 0.0))
        return max(wait, _LET_IN_S)

    def _run_slice(self, target: float) -> bool:
        """The driver, under the lock: run the model toward ``target`` for one tick at most.

        Return whether it got there: the clock then reads ``target``, as
        ``env.run(until=target)`` leaves it (the same events, in the same
        order). How far the clock was behind the wall clock's at the start
        is noted for :meth:`lag`.
        """
        env = self.cluster.env
        self._most_behind = max(self._most_behind, (target - env.now) / self._speed)
        if target <= env.now:
            return True
        step, peek, clock = env.step, env.peek, time.perf_counter
        deadline = clock() + _DRIVER_TICK_S
        with simulation_gc():
            while peek() < target:
                if clock() > deadline:
                    return False
                for _ in range(_STEPS_PER_CLOCK_READ):
                    if peek() >= target:
                        break
                    step()
            env.run(until=target)
        return True

    def _schedule_cancels(self) -> None:
        """Realtime mode, under the lock: each cancel asked for lands when its client left.

        The interrupt becomes an event of the model at the virtual time the
        wall clock read when the cancel was requested (now, if the model is
        past it), in request order. Delivered at once, a model behind the wall
        clock would stop the claim before its client left, and its record
        would say so.
        """
        due = [c for c in self._cancels if c.requested and not c.delivered]
        due.sort(key=_requested_order)
        env = self.cluster.env
        for cancellation in due:
            del self._cancels[cancellation]  # the model delivers it from now on
            left = self._virtual_at(cancellation.at)
            env.timeout(max(left - env.now, 0.0)).callbacks.append(partial(_land, cancellation))

    def _stand_still(self) -> None:
        """The realtime driver, the clock at :data:`CLOCK_END`: what is due now runs, nothing later.

        ``env.run(until=now)`` would leave the events due at this instant (a
        call's first step, a cancel's interrupt) unprocessed for ever: they
        are stepped here. A call still waiting afterwards waits for a time
        the clock never reaches: it fails with :func:`past_clock_end`.
        """
        env = self.cluster.env
        with simulation_gc():
            while env.peek() <= env.now:
                env.step()
        if not (self._tickets or self._waiting):
            return
        ended = past_clock_end()
        for ticket in list(self._tickets):
            ticket.settle(False, ended)
        self._tickets.clear()
        for done in self._waiting:
            done.set()  # _run sees its process unfinished, the backend open
        # Their processes never run again: their cancels have nothing left to stop.
        self._cancels.clear()

    def _run(
        self,
        gen: Generator[simpy.Event, Any, T],
        what: str,
        cancellation: _Cancellation | None = None,
        *,
        cancellable: bool = False,
        check: Callable[[], object] | None = None,
        bound: float | None = None,
    ) -> T:
        """Run a SimPy sub-process to its end and return its value (or raise its error).

        A ``cancellation`` requested meanwhile interrupts the process. So does,
        for a ``cancellable`` one in virtual mode, a Ctrl-C that stops the run
        (the caller went away), before the ``KeyboardInterrupt`` leaves. ``what``
        names the call for :class:`NoAnswerError` (see :meth:`_step`). In virtual
        mode ``check`` runs first, under the lock, and the call gives up after
        ``bound`` simulated seconds: see :meth:`_op`.
        """
        if self._mode == "virtual":
            with self._lock:
                self._check_open()
                if check is not None:
                    check()
                limit = self._limit(bound)
                proc = self.cluster.env.process(gen)
                proc.callbacks.append(_defuse)
                self._register(cancellation, proc)
                try:
                    self._step(proc, None, what, limit)
                except KeyboardInterrupt:
                    # The caller went away (Ctrl-C): a cancellable create stops, as on a cancel.
                    if cancellable and proc.is_alive:
                        proc.interrupt("client gone")
                    raise
                finally:
                    self._unregister(cancellation)
                result: T = _outcome(proc)
                return result
        done = threading.Event()
        with self._lock:
            self._check_open()
            proc = self.cluster.env.process(gen)
            proc.callbacks.append(lambda ev: _settle(ev, done))
            self._register(cancellation, proc)
            self._waiting.add(done)
            self._wake.notify_all()
        done.wait()
        with self._lock:
            self._waiting.discard(done)
            self._unregister(cancellation)
            if not proc.triggered:
                # close() woke us, or the clock stands still at its end (_stand_still).
                if self._closed:
                    raise RuntimeError("the backend is closed")
                raise past_clock_end()
        outcome: Any = proc.value
        if not proc.ok:
            raise outcome
        value: T = outcome
        return value

    def _register(self, cancellation: _Cancellation | None, proc: simpy.Process) -> None:
        """Under the lock: from now on ``cancellation`` stops ``proc``, whoever runs the model."""
        if cancellation is not None:
            cancellation.proc = proc
            self._cancels[cancellation] = None

    def _unregister(self, cancellation: _Cancellation | None) -> None:
        """Under the lock: the call of ``cancellation`` has ended (or is about to be answered)."""
        if cancellation is not None:
            self._cancels.pop(cancellation, None)

    def _limit(self, bound: float | None) -> _CallBound | None:
        """Under the lock: the bound of a call starting now that waits at most ``bound`` seconds."""
        return None if bound is None else _CallBound(self.cluster.env.now + bound, bound)

    def _step(
        self,
        proc: simpy.Process,
        deadline: float | None,
        what: str,
        limit: _CallBound | None = None,
    ) -> bool:
        """Virtual mode, under the lock: run the model until ``proc`` is processed.

        With a ``deadline`` (``time.perf_counter()``), stop once it passes;
        return whether ``proc`` was processed. This is ``env.run(until=proc)``
        (same events, same order) made interruptible; ``proc`` must carry the
        :func:`_defuse` callback, so whichever thread processes it never raises
        its error: :func:`_outcome` does, in the thread that asked. Cancels
        requested meanwhile (from other threads) are delivered between two
        batches of events, to whichever registered process they are for.

        When the model runs out of events before ``proc`` ends, its answer can
        never come: ``proc`` is interrupted as a client going away (a create's
        claim is cancelled and cleans up what it locked, as :class:`Cluster`
        does), the model runs until it has ended (or nothing is left to run),
        and :class:`NoAnswerError` naming ``what`` is raised, the clock at the
        last event that happened. So it is, the clock at ``limit.at``, when the
        model's next event is past ``limit`` (the call's bound, see :meth:`_op`).
        """
        # A Ctrl-C in the caller's (main) thread stops the run between two events.
        with simulation_gc(), sigint_deferred() as hits:
            bounded = self._bounded_step(hits, limit)
            try:
                return self._steps(proc, bounded, deadline, self._cancels)
            except simpy.core.EmptySchedule:
                error = NoAnswerError.went_idle(what, self.cluster.ctx.now_dt())
            except _BoundPassed:
                assert limit is not None  # only a bounded step raises it
                step_to(self.cluster.env, limit.at, hits)
                if proc.callbacks is None:  # answered at the bound itself
                    return True
                error = NoAnswerError.out_of_bound(what, limit.seconds)
            if proc.is_alive:
                proc.interrupt("client gone")
                step = self._bounded_step(hits)
                try:
                    while proc.callbacks is not None:
                        step()
                except simpy.core.EmptySchedule:
                    pass  # it waits on something else nothing will answer
            raise error

    def _bounded_step(
        self, hits: Sequence[int], limit: _CallBound | None = None
    ) -> Callable[[], None]:
        """``env.step``, raising :func:`past_clock_end` instead of moving the clock past its end.

        An empty schedule is left to ``env.step`` (``EmptySchedule``): the call
        can never end, and that is said at once rather than at the end of time.
        Once ``hits`` (a deferred Ctrl-C), it raises ``KeyboardInterrupt`` instead.
        With a ``limit``, a next event past it raises :class:`_BoundPassed`.
        """
        env = self.cluster.env
        step, peek, end = env.step, env.peek, self._end
        if limit is not None and limit.at < end:
            at = limit.at

            def bounded_by_call() -> None:
                if hits:
                    raise KeyboardInterrupt
                if at < peek() < _NEVER:
                    raise _BoundPassed
                step()

            return bounded_by_call

        def bounded() -> None:
            if hits:
                raise KeyboardInterrupt
            if end < peek() < _NEVER:
                raise past_clock_end()
            step()

        return bounded

    @staticmethod
    def _steps(
        proc: simpy.Process,
        step: Callable[[], None],
        deadline: float | None,
        cancels: Collection[_Cancellation],
    ) -> bool:
        # Cancels are registered under the lock, which the caller holds: none
        # appears during the run, though a registered one may be requested.
        if deadline is None and not cancels:
            while proc.callbacks is not None:
                step()
            return True
        clock = time.perf_counter
        while proc.callbacks is not None:
            _deliver(cancels)
            for _ in range(_STEPS_PER_CLOCK_READ):
                step()
                if proc.callbacks is None:
                    return True
            if deadline is not None and clock() > deadline:
                return False
        return True

    def _op(
        self,
        gen: Generator[simpy.Event, Any, V],
        after: Callable[[V], T],
        what: str,
        *,
        cancellable: bool = False,
        check: Callable[[], object] | None = None,
        bound: float | None = None,
    ) -> T:
        """An E2B operation ``what``: run its process ``gen`` to the end, then ``after(value)`` under the lock.

        Inside :meth:`attempt`, virtual mode runs the process for at most the
        attempt's budget and raises :class:`_Unfinished` with the rest;
        realtime mode raises it at once (the call waits for the wall clock).
        A ``cancellable`` operation's process is interrupted when the
        :class:`Pending` it was handed back as is cancelled.

        ``check`` raises what the sandbox-manager answers at once (a 404, a 400):
        in virtual mode it runs before the process starts, so a refused call runs
        nothing of the model (the events due at its instant stay due). In
        realtime mode the process makes the same check itself, at the instant
        the call arrives in the model.

        ``bound`` (simulated seconds, virtual mode) is how long the call waits
        at most, from its start, however many attempts and ``finish`` calls it
        takes: then its process is interrupted as a client going away and
        :class:`NoAnswerError` raised, as :class:`Cluster`'s create does (see
        :meth:`~simulator.manager.SandboxManager.call_bound`). A realtime
        call is bounded by its client, as a real server's.
        """
        cancellation: _Cancellation | None = (
            getattr(self._inline, "cancellation", None) if cancellable else None
        )
        deadline: float | None = getattr(self._inline, "deadline", None)
        if deadline is None:
            if self._mode != "virtual":
                gen = self._at_arrival(self._virtual_at(time.monotonic()), gen, None)
            value = self._run(
                gen, what, cancellation, cancellable=cancellable, check=check, bound=bound
            )
            with self._lock:
                return after(value)
        if self._mode != "virtual":
            ticket: _Ticket | None = getattr(self._inline, "ticket", None)
            ticket = ticket if ticket is not None else _Ticket()
            arrived: float | None = getattr(self._inline, "arrival", None)
            arrival = self._virtual_at(time.monotonic() if arrived is None else arrived)
            self._start(ticket, gen, after, cancellation, arrival)
            raise _Unfinished(ticket.result, ticket.when_ready)
        self._check_open()
        if check is not None:
            check()
        limit = self._limit(bound)
        proc = self.cluster.env.process(gen)
        proc.callbacks.append(_defuse)
        if cancellation is not None and cancellation.requested:
            # Its client is gone already: the first batch of events delivers the
            # interrupt, after the process's start (SimPy runs that first), so the
            # call's own cleanup and record run, as a cancel while it waits.
            self._register(cancellation, proc)
        try:
            finished = self._step(proc, deadline, what, limit)
        except BaseException:
            self._unregister(cancellation)
            raise
        if not finished:
            # Registered now, so that any call running the model meanwhile delivers it.
            self._register(cancellation, proc)
            raise _Unfinished(partial(self._finish, proc, after, what, cancellation, limit))
        self._unregister(cancellation)
        return after(_outcome(proc))

    def _start(
        self,
        ticket: _Ticket,
        gen: Generator[simpy.Event, Any, V],
        after: Callable[[V], T],
        cancellation: _Cancellation | None,
        arrival: float,
    ) -> None:
        """Realtime mode, under the lock: start ``gen`` at ``arrival``; ``ticket`` gets ``after(value)``.

        ``after`` runs in the model as the process ends (realtime ``after``
        functions never wait for the model), so the answer is complete when
        the ticket settles and ``finish`` needs neither the lock nor a thread.
        """
        self._check_open()
        proc = self.cluster.env.process(
            self._at_arrival(arrival, _captured(gen, after), cancellation)
        )
        proc.callbacks.append(partial(self._settle_ticket, ticket, cancellation))
        self._tickets.add(ticket)
        self._wake.notify_all()

    def _at_arrival(
        self,
        arrival: float,
        gen: Generator[simpy.Event, Any, T],
        cancellation: _Cancellation | None,
    ) -> Generator[simpy.Event, Any, T]:
        """Realtime mode: ``gen`` as a process that starts at ``arrival``, when its call arrived.

        A call started while the model is behind the wall clock (a long run,
        a busy lock) first waits in virtual time until the model reaches the
        instant it arrived: its stamps (a claim's ``requested``, an ``endAt``
        of now plus the timeout) are never before the request, and calls take
        their places among the model's events in the order they arrived. A
        model already past ``arrival`` (a ``locked()`` caller ran it) starts
        it at once. ``cancellation`` stops it from its start only: an
        interrupt of the wait would skip the call's own cleanup and record.
        """
        env = self.cluster.env
        if arrival > env.now:
            yield env.timeout(arrival - env.now)
        if cancellation is not None:
            proc = env.active_process
            assert proc is not None  # this generator runs as a process
            self._register(cancellation, proc)
            if cancellation.requested:  # cancelled before it started: it lands now
                self._schedule_cancels()
        return (yield from gen)

    def _settle_ticket(
        self, ticket: _Ticket, cancellation: _Cancellation | None, event: simpy.Event
    ) -> None:
        # In the model, under the lock: a failed process nobody yields on must
        # not crash the driver; the caller re-raises the error from finish().
        if not event.ok:
            event.defused = True
        self._tickets.discard(ticket)
        self._unregister(cancellation)
        ticket.settle(event.ok, event.value)

    def _deferred(
        self, call: Callable[[], T], cancellation: _Cancellation, arrived: float
    ) -> Pending[T]:
        """Realtime mode, the lock busy: the clock driver starts ``call`` between two slices.

        ``arrived`` (``time.monotonic()`` at the attempt) is its arrival: it
        starts in the model then, however late the driver gets to it.
        """
        ticket = _Ticket()
        self._queued.append((ticket, call, cancellation, arrived))
        if self._closed:
            # close() may have emptied the queue before this call joined it.
            ticket.settle(False, RuntimeError("the backend is closed"))
        return Pending(ticket.result, cancellation.request, ticket.when_ready)

    def _begin_queued(self) -> None:
        """The driver, under the lock: start the calls :meth:`_deferred` queued."""
        while self._queued:
            ticket, call, cancellation, arrived = self._queued.popleft()
            self._inline.deadline = time.perf_counter()  # inside an attempt: start, never wait
            self._inline.cancellation = cancellation
            self._inline.ticket = ticket
            self._inline.arrival = arrived
            try:
                value = call()
            except _Unfinished:
                continue  # started: its process settles the ticket
            except Exception as exc:  # the call's own error, for whoever finishes it
                ticket.settle(False, exc)
                continue
            finally:
                self._inline.deadline = None
                self._inline.cancellation = None
                self._inline.ticket = None
                self._inline.arrival = None
            ticket.settle(True, value)

    def _finish(
        self,
        proc: simpy.Process,
        after: Callable[[Any], T],
        what: str,
        cancellation: _Cancellation | None,
        limit: _CallBound | None,
    ) -> T:
        """The rest of an operation :meth:`attempt` started: run on until ``proc`` ends (or ``limit``)."""
        with self._lock:
            try:
                self._check_open()
                self._step(proc, None, what, limit)
            finally:
                self._unregister(cancellation)
            return after(_outcome(proc))

    def attempt(self, call: Callable[[], T], *, cancelled: bool = False) -> T | Pending[T]:
        """``call()`` answered on this thread if it can be at once, else the rest as :class:`Pending`.

        ``call`` is one of this backend's methods with its arguments bound. It
        runs here only if the lock is free (never waited for), holding it
        throughout; a call that runs the model (create, kill, pause, ...) must
        end within the backend's ``inline_budget_s``, in virtual mode only.
        Past the budget the process keeps its progress and
        ``Pending.finish`` runs it on to its end. In realtime mode a call that
        waits for the clock is started here (or by the clock driver, if the
        lock is busy) and ``Pending.when_ready`` says when ``finish`` can answer
        without waiting. Errors of a call answered here are raised here.
        ``Pending.cancel`` stops a create (see :meth:`create_sandbox`).
        ``cancelled`` (its client is gone already) starts it with the cancel
        requested: the process starts, and the interrupt lands once it has, in
        virtual mode in the first batch of events, in realtime mode at its
        arrival (:meth:`_at_arrival`).
        """
        if getattr(self._inline, "deadline", None) is not None:
            return call()  # already inside an attempt on this thread
        arrived = time.monotonic()  # realtime: the call's model time (see _at_arrival)
        cancellation = _Cancellation()
        if cancelled:
            cancellation.request()
        if not self._lock.acquire(blocking=False):
            if self._mode == "realtime":
                return self._deferred(call, cancellation, arrived)
            return Pending(partial(self._cancellable, cancellation, call), cancellation.request)
        self._inline.deadline = time.perf_counter() + self._budget
        self._inline.cancellation = cancellation
        self._inline.arrival = arrived
        try:
            return call()
        except _Unfinished as unfinished:
            return Pending(
                partial(self._cancellable, cancellation, unfinished.finish),
                cancellation.request,
                unfinished.when_ready,
            )
        finally:
            self._inline.deadline = None
            self._inline.cancellation = None
            self._inline.arrival = None
            self._lock.release()

    def _cancellable(self, cancellation: _Cancellation, call: Callable[[], T]) -> T:
        """``call()`` on this thread, whose cancellable operation ``cancellation`` may stop."""
        self._inline.cancellation = cancellation
        try:
            return call()
        finally:
            self._inline.cancellation = None

    @contextmanager
    def locked(self) -> Iterator[Cluster]:
        """Hold the model's lock and use :attr:`cluster` directly, safe from the server's threads.

        In realtime mode the clock driver waits meanwhile; a call that runs the
        simulation moves virtual time ahead of the wall clock, which the
        driver then lets catch up.
        """
        with self._lock:
            self._check_open()
            yield self.cluster

    @contextmanager
    def unlocked(self) -> Iterator[None]:
        """Inside :meth:`locked`: let the model's lock go for the body, then take it back.

        Other threads (the E2B server's) may call the model meanwhile. Raises
        ``RuntimeError`` after the body if the backend was closed meanwhile.
        """
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
        self._check_open()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run an instant operation under the lock."""
        with self._lock:
            self._check_open()
            return fn()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the backend is closed")

    # -- resources --------------------------------------------------------------------------

    def apply(self, source: Any) -> builtins.list[KubeObject]:
        """Create or update objects (``kubectl apply``).

        Parsed and checked before the lock is taken. A lone UTF-16 surrogate
        in a string (``"\\ud800"`` in JSON or YAML) is stored as U+FFFD, as
        the Kubernetes API server's Go decoder does: kept, it would fail every
        answer that shows the object (an E2B list of its sandboxes, the admin API).
        """
        objs = [_go_strings(obj) for obj in load_manifests(source)]
        return self._call(lambda: self.cluster.apply(objs))

    @overload
    def get(self, kind: SandboxKind, name: str, namespace: str = "default") -> Sandbox: ...
    @overload
    def get(self, kind: SandboxSetKind, name: str, namespace: str = "default") -> SandboxSet: ...
    @overload
    def get(
        self, kind: SandboxClaimKind, name: str, namespace: str = "default"
    ) -> SandboxClaim: ...
    @overload
    def get(
        self, kind: SandboxTemplateKind, name: str, namespace: str = "default"
    ) -> SandboxTemplate: ...
    @overload
    def get(self, kind: PodKind, name: str, namespace: str = "default") -> Pod: ...
    @overload
    def get(self, kind: str, name: str, namespace: str = "default") -> KubeObject: ...
    def get(self, kind: str, name: str, namespace: str = "default") -> KubeObject:
        """One object, or :class:`ResourceNotFound`; typed by ``kind`` as :meth:`Backend.get
        <pytest_kruise_agents.backends.base.Backend.get>` (``"sbx"``: a Sandbox)."""
        try:
            obj: KubeObject = self._call(lambda: self.cluster.get(kind, name, namespace))
        except NotFoundError as exc:
            raise ResourceNotFound(exc.kind, namespace, name) from exc
        return obj

    @overload
    def list(self, kind: SandboxKind, namespace: str | None = None) -> builtins.list[Sandbox]: ...
    @overload
    def list(
        self, kind: SandboxSetKind, namespace: str | None = None
    ) -> builtins.list[SandboxSet]: ...
    @overload
    def list(
        self, kind: SandboxClaimKind, namespace: str | None = None
    ) -> builtins.list[SandboxClaim]: ...
    @overload
    def list(
        self, kind: SandboxTemplateKind, namespace: str | None = None
    ) -> builtins.list[SandboxTemplate]: ...
    @overload
    def list(self, kind: PodKind, namespace: str | None = None) -> builtins.list[Pod]: ...
    @overload
    def list(self, kind: str, namespace: str | None = None) -> builtins.list[KubeObject]: ...
    def list(
        self, kind: str, namespace: str | None = None
    ) -> builtins.list[Any]:  # list is invariant: the overloads say what it holds
        """Objects of ``kind``, sorted by namespace and name; typed by ``kind`` as :meth:`get`."""
        objs: builtins.list[KubeObject] = self._call(lambda: self.cluster.list(kind, namespace))
        return objs

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        """Delete one object, or :class:`ResourceNotFound` / :class:`ResourceForbidden`.

        A pod a sandbox made is the Sandbox controller's to delete: the
        pod-delete webhook refuses the caller (403) and nothing changes.
        """
        try:
            self._call(lambda: self.cluster.delete(kind, name, namespace))
        except NotFoundError as exc:
            raise ResourceNotFound(exc.kind, namespace, name) from exc
        except ForbiddenError as exc:
            raise ResourceForbidden(exc.message) from exc

    def table(self, kind: str, namespace: str | None = None) -> str:
        """``kubectl get``-style table."""
        return self._call(lambda: self.cluster.table(kind, namespace))

    # -- E2B operations -----------------------------------------------------------------------

    def _resolved(self, obj: Sandbox | SandboxSet) -> dict[str, Any] | None:
        """The pod template a view of a ``templateRef`` object reads its resources from.

        A sandbox is described as it runs: by its pod, made from the template
        as it was then (an edit or a delete since reaches only later pods). One
        with no pod now (pending, paused) by the template in the manager's cache,
        which its next pod is made from; a SandboxSet by that template too.
        """
        # Only a templateRef needs a lookup: an inline template is the object's own.
        if obj.spec.template_ref is None:
            return None
        world = self.cluster.world
        if isinstance(obj, Sandbox):
            info = obj.status.pod_info
            pod = world.api.peek("Pod", obj.metadata.namespace, obj.metadata.name)
            # Only the sandbox's own pod (a replaced one has another UID).
            if pod is not None and (info is None or info.pod_uid in (None, pod.metadata.uid)):
                return {"spec": pod.spec}
        return world.pod_template(obj, world.manager_cache)

    def _view(self, sbx: Sandbox) -> SandboxView:
        view = sandbox_view(sbx, self.cluster.now_dt(), self._resolved(sbx))
        if view is None:
            # The manager returned a sandbox it no longer shows (it just died).
            raise ClaimNotFound(f"Sandbox {sandbox_id(sbx)} not found")
        return view

    def create_sandbox(self, caller: Caller, request: CreateRequest) -> SandboxView:
        """Claim a sandbox through the sandbox-manager; wait until answered.

        Handed back by :meth:`attempt` as :class:`Pending`, the create stops
        when cancelled: the manager's claim ends with
        :class:`~pytest_kruise_agents.claiming.errors.ClaimCanceledError`
        after cleaning up what its attempt had locked. A caller or request
        field of the wrong kind (``timeout="300"``, ``auto_pause="no"``, a
        user that is no label value) raises :class:`InvalidError` naming it,
        as :meth:`Cluster.create_sandbox` does, and nothing starts. In virtual
        mode a create whose claim has no timeout of its own gives up as
        ``Cluster``'s does, after :data:`~simulator.manager.CREATE_CALL_BOUND_S`.
        """
        # The check every create path runs: from Python (JSON is typed by the server's
        # models) a wrong kind was a TypeError from deep inside, a 500 record, or a
        # value taken as another ("no" as allowing internet access).
        spec = create_spec(caller.namespace, caller.user, request)
        return self._op(
            _captured(self.cluster.manager.create(spec), self._delivered),
            self._written_view,
            f"create of template {request.template!r}",
            cancellable=True,
            check=partial(self.cluster.manager.refuse_create, spec),
            bound=self.cluster.manager.call_bound(spec),
        )

    def _delivered(self, sbx: Sandbox) -> tuple[Sandbox, SandboxView]:
        """In the model, the instant the manager delivers ``sbx``: the sandbox and its view."""
        return sbx, self._view(sbx)

    def _written_view(self, delivered: tuple[Sandbox, SandboxView]) -> SandboxView:
        """Under the lock: the view of a sandbox as delivered, answered once the manager's cache holds it.

        The view was taken in the model at the instant of delivery (see
        :func:`_captured`): the answer is built later, after a watch lag spent
        waiting for the cache, or after another client's clock advance that
        took the lock first, and a sandbox whose timeout ends meanwhile would
        otherwise be answered as not found (a 404 to a create that was delivered).
        """
        sbx, view = delivered
        if self._mode == "virtual":
            self.cluster.await_own_write(sbx)
        return view

    def _await_cached(self, sandbox_id: str) -> None:
        """Under the lock, after a write to ``sandbox_id`` (a kill, a timeout change, a resume).

        Virtual mode runs on until the manager's cache shows it, as the
        :class:`Cluster`'s own calls do (:meth:`Cluster.await_cached
        <simulator.cluster.Cluster.await_cached>` says why). A realtime
        clock moves on by itself: an ``after`` must not run the model there.
        """
        if self._mode == "virtual":
            self.cluster.await_cached(sandbox_id)

    def describe(self, caller: Caller, sandbox_id: str) -> SandboxView:
        """``GET /sandboxes/{id}``."""
        check_caller(sandbox_id, caller.namespace, caller.user)

        def op() -> SandboxView:
            sbx = self.cluster.manager.describe(caller.namespace, caller.user, sandbox_id)
            return self._view(sbx)

        return self._call(op)

    def kill(self, caller: Caller, sandbox_id: str) -> None:
        """``DELETE /sandboxes/{id}``; answered once the manager's cache has seen it."""
        check_caller(sandbox_id, caller.namespace, caller.user)
        self._op(
            self.cluster.manager.kill(caller.namespace, caller.user, sandbox_id),
            partial(_then, self._await_cached, sandbox_id),
            f"kill of {sandbox_id}",
            check=partial(
                self.cluster.manager.check_kill, caller.namespace, caller.user, sandbox_id
            ),
        )

    def set_timeout(self, caller: Caller, sandbox_id: str, timeout: int) -> None:
        """``POST /sandboxes/{id}/timeout``; answered once the manager's cache has seen it.

        Arguments of the wrong kind raise :class:`InvalidError` naming them, as
        :class:`Cluster`'s calls do, and change nothing (``True`` was taken as
        1 s, and ``45.5`` kept as a fraction no JSON request can carry).
        """
        check_caller(sandbox_id, caller.namespace, caller.user)
        check_timeout_seconds(timeout)
        self._op(
            self.cluster.manager.set_timeout(caller.namespace, caller.user, sandbox_id, timeout),
            partial(_then, self._await_cached, sandbox_id),
            f"timeout change of {sandbox_id}",
            check=partial(
                self.cluster.manager.check_set_timeout,
                caller.namespace,
                caller.user,
                sandbox_id,
                timeout,
            ),
        )

    def pause(self, caller: Caller, sandbox_id: str, retention: timedelta | None = None) -> None:
        """``POST /sandboxes/{id}/pause`` (waits until paused; a cancel stops the wait)."""
        check_caller(sandbox_id, caller.namespace, caller.user)
        check_retention(retention)
        self._op(
            self.cluster.manager.pause(caller.namespace, caller.user, sandbox_id, retention),
            _discard,
            f"pause of {sandbox_id}",
            cancellable=True,
            check=partial(
                self.cluster.manager.check_pause,
                caller.namespace,
                caller.user,
                sandbox_id,
                retention,
            ),
        )

    def connect(
        self, caller: Caller, sandbox_id: str, timeout: int | None
    ) -> tuple[SandboxView, bool]:
        """``POST /sandboxes/{id}/connect``: ``(sandbox, resumed)``; a cancel stops the wait."""
        _check_sandbox_call(caller, sandbox_id, timeout)
        seconds = int(self.cluster.profile.default_timeout_s) if timeout is None else timeout
        return self._op(
            _captured(
                self.cluster.manager.connect(caller.namespace, caller.user, sandbox_id, seconds),
                self._connect_delivered,
            ),
            self._connected,
            f"connect to {sandbox_id}",
            cancellable=True,
            check=partial(
                self.cluster.manager.check_connect,
                caller.namespace,
                caller.user,
                sandbox_id,
                seconds,
            ),
        )

    def _connect_delivered(
        self, answer: tuple[Sandbox, bool]
    ) -> tuple[tuple[Sandbox, SandboxView], bool]:
        """In the model, the instant the manager answers a connect: as :meth:`_delivered`."""
        sbx, resumed = answer
        return self._delivered(sbx), resumed

    def _connected(
        self, answer: tuple[tuple[Sandbox, SandboxView], bool]
    ) -> tuple[SandboxView, bool]:
        delivered, resumed = answer
        return self._written_view(delivered), resumed

    def resume(self, caller: Caller, sandbox_id: str, timeout: int | None) -> None:
        """``POST /sandboxes/{id}/resume``; answered once the manager's cache has seen it."""
        _check_sandbox_call(caller, sandbox_id, timeout)
        seconds = int(self.cluster.profile.default_timeout_s) if timeout is None else timeout
        self._op(
            self.cluster.manager.resume(caller.namespace, caller.user, sandbox_id, seconds),
            partial(_then, self._await_cached, sandbox_id),
            f"resume of {sandbox_id}",
            cancellable=True,
        )

    def list_sandboxes(
        self, caller: Caller, query: ListQuery
    ) -> tuple[builtins.list[SandboxView], str | None]:
        """One page of the caller's sandboxes and the next-page token.

        A query field of the wrong kind raises :class:`InvalidError` naming it
        (the same as :meth:`Cluster.list_sandboxes
        <simulator.cluster.Cluster.list_sandboxes>` for the fields it shares),
        and ``states="running"`` is that one state.
        """
        states = check_list_query(
            caller.namespace,
            caller.user,
            query.states,
            query.metadata,
            query.limit,
            query.next_token,
        )
        _check_list_extras(query)

        def op() -> tuple[builtins.list[SandboxView], str | None]:
            # A page sorts all of the caller's sandboxes (as upstream lists its cache):
            # with the default collector thresholds those allocations set off full
            # collections, a walk of the whole heap, on every page (Cluster's list does this).
            with simulation_gc():
                items, token = self.cluster.manager.list_sandboxes(
                    caller.namespace,
                    caller.user,
                    states=states,
                    metadata=query.metadata,
                    limit=query.limit,
                    next_token=query.next_token,
                    order=query.order,
                    template=query.template,
                    started_after=query.started_after,
                )
            now = self.cluster.now_dt()
            views = [
                v for v in (sandbox_view(s, now, self._resolved(s)) for s in items) if v is not None
            ]
            return views, token

        return self._call(op)

    def templates(self, caller: Caller) -> builtins.list[TemplateView]:
        """The SandboxSets in the caller's namespace (admin: all) that the sandbox-manager's
        cache holds, sorted by namespace and name.

        Upstream's manager knows SandboxSets only from its informer cache, for its
        templates API as for a create (``HasTemplate``): a SandboxSet just applied is
        listed once a create can claim from it, and one deleted stays listed while a
        create still finds it. What is shown of each (counts, ``deleting``) is the
        stored SandboxSet, the newest there is (the cache's copy once the API server
        has none): the cache is a watch lag behind the status the controller wrote.
        """

        def op() -> builtins.list[TemplateView]:
            world = self.cluster.world
            cached = world.manager_cache.list("SandboxSet", caller.namespace or None)
            views: builtins.list[TemplateView] = []
            for pool in sorted(cached, key=listing_order):
                meta = pool.metadata
                stored = world.api.peek("SandboxSet", meta.namespace or "", meta.name)
                if stored is not None and stored.metadata.uid == meta.uid:
                    pool = stored
                views.append(_template_view(pool, self._resolved(pool)))
            return views

        return self._call(op)

    def route(self, sandbox_id: str) -> Route | None:
        """The route of a claimed sandbox (no auth), or ``None``."""

        def op() -> Route | None:
            if split_sandbox_id(sandbox_id) is None:
                return None
            sbx = self.cluster.manager.lookup(sandbox_id)
            if sbx is None or not sbx.metadata.annotations.get(keys.ANN_OWNER):
                return None
            # Killed to be recycled: no traffic from the kill on (served_state).
            state, _ = served_state(sbx, self.cluster.now_dt())
            init = init_request(sbx)
            return Route(
                sandbox_id=sandbox_id,
                namespace=sbx.metadata.namespace or "",
                name=sbx.metadata.name,
                state=_ROUTE_STATES[state],  # type: ignore[arg-type]
                access_token=init.access_token if init else "",
                env_vars=dict(init.env_vars) if init else {},
                owner=sbx.metadata.annotations.get(keys.ANN_OWNER, ""),
            )

        return self._call(op)

    def subscribe(self, listener: SandboxListener) -> None:
        """Call ``listener(sandbox_id, state)`` on every E2B state change of a claimed sandbox."""
        with self._lock:
            self._listeners.append(listener)

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        if not obj.metadata.annotations.get(keys.ANN_OWNER) and (
            old is None or not old.metadata.annotations.get(keys.ANN_OWNER)
        ):
            return
        sid = sandbox_id(obj)
        state: str | None = None
        if new is not None and new.metadata.deletion_timestamp is None:
            state = e2b_state(new, self.cluster.now_dt())
        if self._states.get(sid) == state:
            return
        if state is None:
            self._states.pop(sid, None)
        else:
            self._states[sid] = state
        for listener in list(self._listeners):
            listener(sid, state)

    # -- time ------------------------------------------------------------------------------

    @property
    def clock_mode(self) -> ClockMode:
        """``virtual`` or ``realtime``."""
        return self._mode

    @property
    def speed(self) -> float:
        """Virtual seconds per wall second (realtime mode)."""
        return self._speed

    @property
    def epoch(self) -> datetime:
        """The date of virtual time 0: record times (:meth:`records`) are seconds since it."""
        return self.cluster.ctx.epoch

    def now(self) -> datetime:
        """The cluster's current time (UTC)."""
        return self._call(self.cluster.now_dt)

    def lag(self) -> ClockLag | None:
        """Realtime mode: how far the model runs behind the wall clock; ``None`` on a virtual clock.

        Read without the lock (a snapshot), so that it answers while the model
        runs. Calls are stamped at their arrival however far behind it is.
        """
        if self._mode != "realtime":
            return None
        now = max(self._target() - self.cluster.env.now, 0.0) / self._speed
        return ClockLag(now_s=now, max_s=max(self._most_behind, now))

    def advance(self, seconds: float) -> None:
        """Move virtual time forward; timers due meanwhile fire. Refused in realtime mode.

        ``advance(0)`` runs what is due now without moving time, as
        :meth:`Cluster.advance <simulator.cluster.Cluster.advance>` does.
        """
        if self._mode != "virtual":
            raise InvalidError("clock", "time follows the wall clock in realtime mode")
        check_seconds("seconds", seconds)
        self._call(partial(self._advance, seconds))

    def _advance(self, seconds: float) -> None:
        # Cancels requested so far stop their creates first, as a model run by
        # any other call would (_step): a claim must not run on for a client that left.
        _deliver(self._cancels)
        self.cluster.advance(seconds)

    # -- faults, latency, records -------------------------------------------------------------

    def inject(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Inject a fault; return it with its id (a snapshot: see :meth:`inject_fault`)."""
        return self._call(lambda: self._inject(kind, fields).model_dump(mode="json"))

    def inject_fault(self, kind: str, **fields: Any) -> Fault:
        """:meth:`inject`, returning the cluster's read-only, live view of the fault.

        Its ``fired`` counts as the fault acts (``Cluster.inject`` returns the same).
        """
        return self._call(partial(self._inject, kind, fields))

    def _inject(self, kind: str, fields: dict[str, Any]) -> Fault:
        # The inject runs what is due now: cancels requested so far stop their
        # creates first, as a model run by any other call would (_advance). On the
        # realtime clock each lands when its client left (a model behind the wall
        # clock must not stop a claim before that): they are scheduled, not delivered.
        if self._mode == "realtime":
            self._schedule_cancels()
        else:
            _deliver(self._cancels)
        return self.cluster.inject(kind, **fields)

    def clear_faults(self, fault_id: str | None = None) -> None:
        """Clear one fault by id (:class:`ResourceNotFound` if unknown), or all."""

        def op() -> None:
            try:
                self.cluster.clear_faults(fault_id)
            except NotFoundError as exc:
                raise ResourceNotFound("Fault", None, str(fault_id)) from exc

        self._call(op)

    def clear_fault(self, fault: Fault) -> bool:
        """Clear ``fault`` (as :meth:`inject_fault` gave it) if it is still in force; whether it was.

        By identity, as ``Cluster.fault``'s block ends: once it is cleared, its
        id is free, and a later fault that took it is another fault, left in force.
        """

        return self._call(lambda: self.cluster.clear_fault(fault))

    def faults(self) -> builtins.list[dict[str, Any]]:
        """The faults in force."""
        return self._call(lambda: [f.model_dump(mode="json") for f in self.cluster.faults])

    def set_latency(self, name: str, value: Any) -> None:
        """Replace one named latency distribution."""
        self._call(lambda: self.cluster.set_latency(name, value))

    def latencies(self) -> builtins.list[dict[str, Any]]:
        """Every named latency, in the profile's order: see :meth:`latency`."""
        return self._call(lambda: [self._latency_view(n) for n in self.cluster.profile.latencies])

    def latency(self, name: str) -> dict[str, Any]:
        """One latency: ``name``, ``value`` in force, ``profile`` (the value the backend
        opened with) and whether they differ (``changed``); distributions in their text
        form (``"exp(2s)"``), which :meth:`set_latency` reads back.

        An unknown ``name`` raises :class:`InvalidError` (field ``name``).
        """
        return self._call(partial(self._latency_view, name))

    def restore_latency(self, name: str | None = None) -> None:
        """Put one latency (or, for ``None``, every one) back to the value it opened with.

        Faults are not touched (:meth:`clear_faults` clears those). An unknown
        ``name`` raises :class:`InvalidError` (field ``name``) and changes nothing.
        """

        def op() -> None:
            names = [name] if name is not None else list(self._opening_latencies)
            for each in names:
                self._check_latency(each)
            for each in names:
                opening = self._opening_latencies[each]
                if self.cluster.profile.latency(each) != opening:
                    self.cluster.set_latency(each, opening)

        self._call(op)

    def _check_latency(self, name: str) -> None:
        if not isinstance(name, str):
            raise InvalidError("name", f"must be a latency name such as 'image.pull', got {name!r}")
        if name not in self._opening_latencies:
            try:
                self.cluster.profile.latency(name)  # says what is known, and what is near
            except ValueError as exc:
                raise InvalidError("name", str(exc)) from None
            raise InvalidError("name", f"unknown latency {name!r}")

    def _latency_view(self, name: str) -> dict[str, Any]:
        self._check_latency(name)
        value = self.cluster.profile.latency(name)
        opening = self._opening_latencies[name]
        return {
            "name": name,
            "value": str(value),
            "profile": str(opening),
            "changed": value != opening,
        }

    def records(self) -> builtins.list[dict[str, Any]]:
        """One mapping per claim."""
        return self._call(lambda: [r.as_dict() for r in self.cluster.records])

    def metrics_text(self) -> str:
        """The cluster's Prometheus metrics (``Cluster.metrics_text``), read under the lock.

        As of the model's now: on a realtime clock, what the driver has run so far.
        The counts are copied under the lock and formatted after it is let go: a
        long text does not hold up the model's other callers.
        """
        from simulator.exposition import cluster_registry, exposition_text

        snapshot = self._call(self.cluster.metrics_snapshot)
        return exposition_text(cluster_registry(snapshot))

    def close(self) -> None:
        """Stop the realtime driver; later calls fail."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            for done in self._waiting:
                done.set()
            closed = RuntimeError("the backend is closed")
            while self._queued:
                self._queued.popleft()[0].settle(False, closed)
            for ticket in self._tickets:
                ticket.settle(False, closed)
            self._tickets.clear()
        if self._driver is not None and self._driver is not threading.current_thread():
            self._driver.join(timeout=5)


class _Cancellation:
    """One call's cancel request (any thread) and the process it stops (under the lock)."""

    __slots__ = ("at", "delivered", "order", "proc", "requested")

    def __init__(self) -> None:
        self.requested = False
        self.delivered = False
        self.order = 0  # when it was requested, among all requests (see _deliver)
        self.at = 0.0  # the wall clock (time.monotonic()) then: a realtime clock's landing
        self.proc: simpy.Process | None = None

    def request(self) -> None:
        """Ask for the stop: three stores, so it never blocks and is safe from any thread.

        ``at`` and ``order`` are stored before ``requested``: whoever sees the
        request sees them too. ``next`` on an ``itertools.count`` is atomic under the GIL.
        """
        if not self.requested:
            self.at = time.monotonic()
            self.order = next(_REQUESTS)
            self.requested = True

    def deliver(self) -> None:
        """Under the lock: interrupt the process once, if asked and it still runs."""
        proc = self.proc
        if self.requested and not self.delivered and proc is not None and proc.is_alive:
            self.delivered = True
            proc.interrupt("client gone")


_REQUESTS: Final = itertools.count(1)
"""Numbers the cancel requests of every backend, in the order they are made."""


def _deliver(cancels: Collection[_Cancellation]) -> None:
    """Under the lock: interrupt the processes of the cancels requested so far, in request order.

    The interrupts of one delivery land at one virtual instant, but the
    process interrupted first runs (and draws from the seed) first: the
    order the clients left in decides the run, as DESIGN.md's same seed,
    same calls, same log asks, whatever the memory layout or the hash seed.
    """
    due = [c for c in cancels if c.requested and not c.delivered]
    if len(due) > 1:
        due.sort(key=_requested_order)
    for cancellation in due:
        cancellation.deliver()


def _requested_order(cancellation: _Cancellation) -> int:
    return cancellation.order


def _land(cancellation: _Cancellation, _event: simpy.Event) -> None:
    """A realtime cancel's event, at the virtual instant it was asked for: the interrupt."""
    cancellation.deliver()


class _Unfinished(BaseException):
    """Inside :meth:`SimBackend.attempt`: the call cannot end at once; ``finish`` completes it.

    A ``BaseException``: nothing between the attempt and the operation may swallow it.
    """

    def __init__(
        self,
        finish: Callable[[], Any],
        when_ready: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        super().__init__()
        self.finish = finish
        self.when_ready = when_ready


class _Ticket:
    """A realtime call's answer: settled once, by the model's thread; read by any thread."""

    __slots__ = ("_callbacks", "_done", "_guard", "_ok", "_outcome")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._guard = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._ok = False
        self._outcome: Any = None

    def settle(self, ok: bool, outcome: Any) -> None:
        """Record the answer (the first one only) and call the waiting callbacks."""
        with self._guard:
            if self._done.is_set():
                return
            self._ok, self._outcome = ok, outcome
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def when_ready(self, callback: Callable[[], None]) -> None:
        """``callback()`` once settled: later, from the settling thread, or now."""
        with self._guard:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def result(self) -> Any:
        """Wait until settled; the answer, or raise its error."""
        self._done.wait()
        if not self._ok:
            raise self._outcome
        return self._outcome


def _go_strings(obj: KubeObject) -> KubeObject | dict[str, Any]:
    """``obj``, or its manifest with lone surrogates replaced by U+FFFD if it holds any."""
    data = to_manifest_dict(obj)
    clean = replace_surrogates(data)
    return obj if clean is data else clean


def _check_sandbox_call(caller: Caller, sandbox_id: object, timeout: object) -> None:
    """Refuse a connect's or resume's arguments of the wrong kind (``None``: the default timeout)."""
    check_caller(sandbox_id, caller.namespace, caller.user)
    if timeout is not None:
        check_timeout_seconds(timeout)


def _check_list_extras(query: ListQuery) -> None:
    """Refuse the list fields :meth:`Cluster.list_sandboxes` has no counterpart of, if of the wrong kind.

    ``order="up"`` listed in ascending order, a ``template`` that is no text
    matched nothing, and a ``started_after`` that is no date failed deep inside.
    """
    if query.order not in ("asc", "desc"):
        raise InvalidError("order", f"must be 'asc' or 'desc', got {query.order!r}")
    if query.template is not None and not isinstance(query.template, str):
        raise InvalidError("template", f"must be a template name or None, got {query.template!r}")
    if query.started_after is not None and not isinstance(query.started_after, datetime):
        raise InvalidError(
            "started_after", f"must be a datetime or None, got {query.started_after!r}"
        )


def _discard(_value: object) -> None:
    """The ``after`` of an operation that answers nothing."""


def _then(action: Callable[[str], None], sandbox_id: str, _value: object) -> None:
    """The ``after`` of an operation that answers nothing: ``action(sandbox_id)``."""
    action(sandbox_id)


def _captured(
    gen: Generator[simpy.Event, Any, V], capture: Callable[[V], T]
) -> Generator[simpy.Event, Any, T]:
    """``gen`` as a process whose value is ``capture(value)``, taken as ``gen`` returns.

    ``capture`` runs in the model, at the virtual instant the operation ends,
    whichever thread steps it: the caller's answer is built later, once it
    holds the lock again, and by then another call (a clock advance) may have
    moved time on. Interrupts reach ``gen`` through ``yield from``.
    """
    value = yield from gen
    return capture(value)


def _defuse(event: simpy.Event) -> None:
    # A failed process must not crash whichever thread happens to step the
    # model when it ends; _outcome re-raises its error for the caller.
    if not event.ok:
        event.defused = True


def _outcome(proc: simpy.Process) -> Any:
    """The value of a processed process, or raise its error."""
    value: Any = proc.value
    if not proc.ok:
        raise value
    return value


def _settle(event: simpy.Event, done: threading.Event) -> None:
    # A failed process nobody yields on would make SimPy raise in the driver
    # thread; the caller re-raises the error in its own thread instead.
    if not event.ok:
        event.defused = True
    done.set()


def _template_view(pool: SandboxSet, resolved: dict[str, Any] | None) -> TemplateView:
    template = pool.spec.template if pool.spec.template is not None else resolved
    cpu_count, memory_mb, disk_size_mb = template_resources(template)
    return TemplateView(
        template_id=pool.metadata.name,
        namespace=pool.metadata.namespace or "",
        cpu_count=cpu_count,
        memory_mb=memory_mb,
        disk_size_mb=disk_size_mb,
        created_at=pool.metadata.creation_timestamp,
        replicas=pool.spec.replicas,
        available=pool.status.available_replicas if pool.status else 0,
        deleting=pool.metadata.deletion_timestamp is not None,
    )
