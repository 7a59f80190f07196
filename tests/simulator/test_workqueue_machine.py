"""A controller's work queue and error back-off as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` runs a real :class:`~simulator.controllers.base.Reconciler`
(its workers, its :class:`~simulator.workqueue.WorkQueue`, its per-key back-off) on
SimPy time, with a ``_reconcile`` that holds each key until the machine ends it:
the way a controller meets its keys. Its rules add keys as watch events do
(``Add``), add them after a delay (``AddAfter``), end a reconcile in each way a
controller does (done; ``RequeueAfter``; an error, which ``AddRateLimited``; a
return of ``_backoff`` as the SandboxSet controller's), delete a key's object
(the Sandbox controller's ``queue.forget`` and ``queue.add`` at a DELETED event)
and let time pass. Workers are started up front, as upstream does, or on
demand, as the controllers do (the module says the two hand out the same keys
at the same moments); keys may wait before the workers start (the controllers
queue their cached objects first).

The model is client-go's ``util/workqueue`` as written: ``Type`` (a FIFO
``queue``, the ``dirty`` set, the ``processing`` set: a key added while it is
processed waits for ``Done`` and comes once; a key goes to at most one worker
at a time), the delaying queue (one pending ready time per key, the earlier of
two kept; an add due at or before now is an ``Add``) and the rate-limiting
queue's ``ItemExponentialFailureRateLimiter`` (``When`` is ``base * 2**n`` for
the ``n``-th failure, ``NumRequeues`` is ``n``, ``Forget`` resets it), with
controller-runtime's ``reconcileHandler`` on top (an error: ``AddRateLimited``;
``RequeueAfter``: ``Forget`` then ``AddAfter``; success: ``Forget``). The
deliberate differences of docs/fidelity.md are the model's too: the back-off
caps at 30 s (client-go: 1000 s), the overall 10 qps / burst 100 bucket of the
default controller rate limiter is left out, a key the SandboxSet controller
reconciles without error keeps its failures, and ``WorkQueue.forget`` drops the
key's pending delayed add (client-go's delaying queue has no such call: the add
would fire later and find the object gone). Upstream leaves the order of two
adds due at the same instant open (a heap on the ready time alone); the model
takes them in the order their ready times were set, as the queue does.

Checked after every rule: the keys handed to workers, when, and in what order;
the waiting keys in order; the keys being processed; each key's pending ready
time; each key's failure count. The threshold of dead delayed adds at which the queue
rebuilds its heap is lowered to one, so that the machine rebuilds it often.

``derandomize=True`` keeps the suite deterministic (a few seconds of one core).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while
hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random and reports each distinct
failure.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import simpy
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simulator import workqueue as workqueue_module
from simulator.apiserver import ApiError
from simulator.context import SimContext
from simulator.controllers.base import BACKOFF_BASE_S, BACKOFF_MAX_S, Reconciler
from simulator.profile import get_profile
from tests.machines import machine_settings

KEYS = ("a", "b", "c")
DELAYS = (-1.0, 0.0, 0.25, 0.5, 1.0, 2.0, 7.5, 30.0, 1e-9)
"""Delays of ``AddAfter`` and ``RequeueAfter``: none (an ``Add``), short, long, and one
shorter than any step of time."""
STEPS = (0.001, 0.005, 0.01, 0.25, 0.5, 1.0, 2.5, 30.0, 600.0)
"""The times the machine lets pass."""
OUTCOMES = ("ok", "after", "now", "error", "backoff")
"""How a reconcile ends: fine; ``RequeueAfter`` a delay; ``Requeue`` at once; an error;
returning ``_backoff`` (as the SandboxSet controller does)."""

Op = Generator[simpy.Event, Any, Any]


@dataclass
class Ending:
    """How the machine ends one reconcile."""

    outcome: str
    delay: float = 0.0


class Harness(Reconciler[str]):
    """A controller whose reconciles last until the machine ends them."""

    stall_name: ClassVar[str] = "harness"

    def __init__(self, ctx: SimContext, *, reset_on_success: bool) -> None:
        super().__init__(ctx)
        self.reset_backoff_on_success = reset_on_success  # type: ignore[misc]
        self.running: dict[str, simpy.Event] = {}
        """The keys being reconciled, each with the event that ends its reconcile."""
        self.handed: list[tuple[float, str]] = []
        """Every key a worker took, with when."""

    def _reconcile(self, key: str) -> Op:
        env = self.ctx.env
        assert key not in self.running, f"{key} given to a second worker"
        self.handed.append((env.now, key))
        end = self.running[key] = env.event()
        ending: Ending = yield end
        del self.running[key]
        if ending.outcome == "error":
            raise ApiError(500, "InternalError", "the machine says so")
        if ending.outcome == "backoff":
            return self._backoff(key)
        if ending.outcome == "after":
            return ending.delay
        if ending.outcome == "now":
            return 0.0
        return None

    def start_up_front(self, count: int) -> None:
        """Start ``count`` workers now, as upstream does."""
        for _ in range(count):
            self.ctx.env.process(self._worker())


@dataclass
class Model:
    """client-go's workqueue (Type, delaying, rate limiting) under controller-runtime."""

    workers: int
    reset_on_success: bool
    now: float = 0.0
    queue: list[str] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    processing: set[str] = field(default_factory=set)
    waiting: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Per key, its pending ready time and when that was set (the order of a tie)."""
    failures: dict[str, int] = field(default_factory=dict)
    handed: list[tuple[float, str]] = field(default_factory=list)
    started: bool = False
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def dispatch(self) -> None:
        """Idle workers take the waiting keys, oldest first (all are blocked in ``Get``)."""
        while self.started and self.queue and len(self.processing) < self.workers:
            key = self.queue.pop(0)
            self.dirty.discard(key)
            self.processing.add(key)
            self.handed.append((self.now, key))

    def add(self, key: str) -> None:
        """``Type.Add``."""
        if key in self.dirty:
            return
        self.dirty.add(key)
        if key in self.processing:
            return
        self.queue.append(key)
        self.dispatch()

    def done(self, key: str) -> None:
        """``Type.Done``."""
        self.processing.discard(key)
        if key in self.dirty:
            self.queue.append(key)

    def add_after(self, key: str, delay: float) -> None:
        """``delayingType.AddAfter``: the earlier of two ready times is kept."""
        if delay <= 0:
            self.add(key)
            return
        at = self.now + delay
        pending = self.waiting.get(key)
        if pending is not None and pending[0] <= at:
            return
        self.waiting[key] = (at, next(self._seq))

    def when(self, key: str) -> float:
        """``ItemExponentialFailureRateLimiter.When`` (capped at 30 s, docs/fidelity.md)."""
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        return float(min(BACKOFF_BASE_S * 2**n, BACKOFF_MAX_S))

    def forget(self, key: str) -> None:
        """``Forget``: the key's failures go."""
        self.failures.pop(key, None)

    def advance(self, to: float) -> None:
        """Let time pass to ``to``: each add that comes due, in order, is an ``Add``."""
        while True:
            due = [(at, seq, k) for k, (at, seq) in self.waiting.items() if at <= to]
            if not due:
                break
            at, _, key = min(due)
            del self.waiting[key]
            self.now = max(self.now, at)
            self.add(key)
        self.now = to

    def end(self, key: str, ending: Ending) -> None:
        """controller-runtime's ``reconcileHandler``, then the ``Done`` deferred in
        ``processNextWorkItem``: the requeue is added while the key is still processed, so
        an immediate one merges with an ``Add`` that came during the reconcile."""
        if ending.outcome == "error":
            delay: float | None = self.when(key)
        elif ending.outcome == "backoff":
            delay = self.when(key)
            if self.reset_on_success:  # returned, not raised: a success for the worker
                self.forget(key)
        else:
            delay = {"after": ending.delay, "now": 0.0}.get(ending.outcome)
            if self.reset_on_success:
                self.forget(key)
        if delay is not None:
            self.add_after(key, delay)
        self.done(key)
        self.dispatch()


class WorkQueueMachine(RuleBasedStateMachine):
    """A Reconciler's workers and queue against client-go's workqueue."""

    def __init__(self) -> None:
        super().__init__()
        self._min_compact = workqueue_module._MIN_COMPACT
        workqueue_module._MIN_COMPACT = 1  # the heap is rebuilt within a few steps
        profile = get_profile("openkruise-head").with_overrides(
            latencies={"controller.reconcile": 0.0}
        )
        self.ctx = SimContext(seed=0, profile=profile)
        self.env = self.ctx.env
        self.harness: Harness | None = None
        self.model: Model | None = None

    def teardown(self) -> None:
        workqueue_module._MIN_COMPACT = self._min_compact

    @property
    def h(self) -> Harness:
        assert self.harness is not None
        return self.harness

    @property
    def m(self) -> Model:
        assert self.model is not None
        return self.model

    def _settle(self) -> None:
        """Run what this instant holds (workers taking keys, reconciles ending)."""
        env = self.env
        while env.peek() <= env.now:
            env.step()

    @initialize(
        workers=st.integers(1, 3),
        up_front=st.booleans(),
        reset_on_success=st.booleans(),
        backlog=st.lists(st.sampled_from(KEYS), max_size=4),
    )
    def start(
        self, workers: int, up_front: bool, reset_on_success: bool, backlog: list[str]
    ) -> None:
        """Queue the cached objects' keys, then start the workers (up front or on demand)."""
        self.harness = Harness(self.ctx, reset_on_success=reset_on_success)
        self.model = Model(workers, reset_on_success)
        for key in backlog:
            self.h.queue.add(key)
            self.m.add(key)
        if up_front:
            self.h.start_up_front(workers)
        else:
            self.h.start_workers(workers)
        self.m.started = True
        self.m.dispatch()
        self._settle()

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
    def add(self, keys: list[str]) -> None:
        """Watch events enqueue keys (``Add``), several in one instant."""
        for key in keys:
            self.h.queue.add(key)
            self.m.add(key)
        self._settle()

    @rule(key=st.sampled_from(KEYS), delay=st.sampled_from(DELAYS))
    def add_after(self, key: str, delay: float) -> None:
        """A key asked for later (``AddAfter``)."""
        self.h.queue.add_after(key, delay)
        self.m.add_after(key, delay)
        self._settle()

    @precondition(lambda self: self.harness is not None and bool(self.harness.running))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(OUTCOMES),
        delay=st.sampled_from(DELAYS),
    )
    def end_reconcile(self, data: st.DataObject, outcome: str, delay: float) -> None:
        """A reconcile ends: fine, with a requeue after a delay, with an error, or backing off."""
        key = data.draw(st.sampled_from(sorted(self.h.running)), label="key")
        ending = Ending(outcome, delay)
        self.h.running[key].succeed(ending)
        self._settle()
        self.m.end(key, ending)

    @rule(key=st.sampled_from(KEYS))
    def deleted(self, key: str) -> None:
        """The key's object is deleted: its pending delayed add and failures go, and it is
        added (the Sandbox controller at a DELETED event)."""
        self.h.queue.forget(key)
        self.h._failures.pop(key, None)
        self.h.queue.add(key)
        self.m.waiting.pop(key, None)
        self.m.forget(key)
        self.m.add(key)
        self._settle()

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: float) -> None:
        """Time passes: adds come due."""
        to = self.env.now + step
        if to > self.env.now:
            self.env.run(until=to)
        self._settle()
        self.m.advance(self.env.now)

    # -- checks ---------------------------------------------------------------------------

    @invariant()
    def same_keys_handed_at_the_same_times(self) -> None:
        if self.harness is None:
            return
        got = self.h.handed
        want = self.m.handed
        assert [k for _, k in got] == [k for _, k in want], (got, want)
        for (t_got, _), (t_want, _) in zip(got, want, strict=True):
            assert t_got == pytest.approx(t_want, rel=1e-12, abs=1e-12), (got, want)

    @invariant()
    def same_queue_and_processing(self) -> None:
        if self.harness is None:
            return
        q = self.h.queue
        assert list(q._queue) == self.m.queue
        assert q._processing == self.m.processing == set(self.h.running)
        assert q._dirty == self.m.dirty

    @invariant()
    def same_pending_ready_times(self) -> None:
        if self.harness is None:
            return
        want = {k: at for k, (at, _) in self.m.waiting.items()}
        assert self.h.queue._timers == want

    @invariant()
    def same_failures(self) -> None:
        """``NumRequeues`` of each key."""
        if self.harness is None:
            return
        assert {k: n for k, n in self.h._failures.items() if n} == self.m.failures


WorkQueueMachine.TestCase.settings = machine_settings(60, 40)
test_work_queue_machine = WorkQueueMachine.TestCase
