"""The work queue's delayed adds (client-go's delaying queue), and how a controller's workers use it."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import simpy

from simulator.context import SimContext
from simulator.controllers.base import Reconciler
from simulator.profile import get_profile
from simulator.workqueue import WorkQueue


@dataclass
class Drained:
    """A work queue whose one worker records when each key reaches it."""

    env: simpy.Environment
    q: WorkQueue
    got: list[tuple[float, Any]] = field(default_factory=list)


@pytest.fixture
def drained() -> Drained:
    env = simpy.Environment()
    d = Drained(env, WorkQueue(env, "q"))

    def worker() -> Any:
        while True:
            key = yield d.q.get()
            d.got.append((env.now, key))
            d.q.done(key)

    env.process(worker())
    return d


def test_delayed_keys_arrive_at_their_ready_times_in_order(drained: Drained) -> None:
    """Each key reaches a worker at its ready time, earliest first, whatever the order of adds."""
    env, q, got = drained.env, drained.q, drained.got
    q.add_after("c", 30)
    q.add_after("a", 10)
    q.add_after("b", 20)
    q.add_after("now", 0)
    env.run()
    assert got == [(0, "now"), (10, "a"), (20, "b"), (30, "c")]


def test_a_key_keeps_the_earlier_of_two_ready_times_and_arrives_once(drained: Drained) -> None:
    """A later delayed add of a waiting key changes nothing; an earlier one replaces it."""
    env, q, got = drained.env, drained.q, drained.got
    q.add_after("a", 10)
    q.add_after("a", 50)  # later: ignored
    q.add_after("b", 40)
    q.add_after("b", 5)  # earlier: wins
    env.run()
    assert got == [(5, "b"), (10, "a")]


def test_forget_drops_a_pending_delayed_add(drained: Drained) -> None:
    """A forgotten key does not arrive; others still do, and the key may be delayed again."""
    env, q, got = drained.env, drained.q, drained.got
    q.add_after("a", 10)
    q.add_after("b", 20)
    q.forget("a")
    env.run(until=15)
    q.add_after("a", 10)
    env.run()
    assert got == [(20, "b"), (25, "a")]


def test_waiting_keys_share_one_timer_in_the_event_queue(drained: Drained) -> None:
    """A thousand delayed keys cost one pending simulation event, not a thousand.

    Every pooled sandbox waits for its shutdown time: a timer each would keep
    every deleted sandbox's timer in the event queue until it fired.
    """
    env, q, got = drained.env, drained.q, drained.got
    env.run(until=1)
    for i in range(1000):
        q.add_after(i, 300 + i)
    assert len(env._queue) <= 2  # the worker waits on get(), not on a timer
    for i in range(999):
        q.forget(i)
    env.run()
    assert got == [(1300, 999)]


def test_a_ready_time_the_clock_cannot_land_on_exactly_still_arrives(drained: Drained) -> None:
    """A wake-up set from a later time may land one rounding step before the ready time.

    ``now + (at - now)`` is not always ``at`` in floating point (here it is
    a hair less): the key is due at that wake-up all the same.
    """
    env, q, got = drained.env, drained.q, drained.got
    first, later = 7575.273728634538, 28503.14759188356
    assert first + (later - first) < later
    q.add_after("a", first)
    q.add_after("b", later)
    env.run()
    assert [key for _, key in got] == ["a", "b"]
    assert got[1][0] == pytest.approx(later)


def _churn(d: Drained, cycles: int) -> int:
    """``cycles`` keys added for later and forgotten, each after pulling a live key's ready
    time earlier, while other keys stay pending: the heap's size afterwards."""
    env, q = d.env, d.q
    for i in range(cycles):
        q.add_after(("gone", i), 3600.0)  # a sandbox deleted before its timeout
        q.add_after("live", 7200.0 - i)  # supersedes its earlier entry
        q.forget(("gone", i))
        env.run(until=env.now + 1.0)
    return len(q._delayed)


def test_forgotten_and_superseded_adds_do_not_pile_up(drained: Drained) -> None:
    """The heap of delayed adds stays within a bound of the pending ones: adds forgotten
    (a deleted sandbox's) or superseded by an earlier time are dropped, not kept until due."""
    drained.q.add_after("long-lived", 10**9)  # pending throughout, as a busy cluster's are
    after_40 = _churn(drained, 40)
    after_400 = _churn(drained, 360)
    bound = 2 + 16 + 1  # the pending keys, the dead entries tolerated, the last one pushed
    assert after_40 <= bound and after_400 <= bound
    assert drained.got == []  # nothing was due


def test_dropping_dead_adds_keeps_the_order_of_the_live_ones(drained: Drained) -> None:
    """Keys still pending after many forgotten ones arrive at their ready times, in order."""
    env, q, got = drained.env, drained.q, drained.got
    q.add_after("far", 500.0)
    for i in range(100):
        q.add_after(("gone", i), 50.0 + i)
        if i % 10 == 0:
            q.add_after(("kept", i), 100.0 - i)
        else:
            q.forget(("gone", i))
    env.run(until=600)
    kept = [key for _, key in got if isinstance(key, tuple) and key[0] == "kept"]
    assert kept == [("kept", i) for i in range(90, -1, -10)]
    assert got[-1] == (500.0, "far")
    assert [t for t, _ in got] == sorted(t for t, _ in got)


def test_a_key_added_while_a_worker_has_it_waits_for_that_worker_and_comes_once() -> None:
    """As client-go's queue: a key is never with two workers at once. Added (twice) while
    one worker reconciles it, it goes to a worker again only once that one is done, once."""
    env = simpy.Environment()
    q = WorkQueue(env, "q")
    busy: set[Any] = set()
    seen: list[tuple[float, str, Any]] = []

    def worker(name: str) -> Any:
        while True:
            key = yield q.get()
            assert key not in busy, f"{key} given to {name} while another worker has it"
            busy.add(key)
            seen.append((env.now, name, key))
            yield env.timeout(10)
            busy.discard(key)
            q.done(key)

    env.process(worker("w1"))
    env.process(worker("w2"))
    q.add("a")
    env.run(until=1)
    q.add("a")
    q.add("a")
    env.run(until=100)
    assert [(t, key) for t, _, key in seen] == [(0, "a"), (10, "a")]


class _Held(Reconciler[str]):
    """A controller whose reconciles wait for the test to end them with a requeue delay."""

    stall_name: ClassVar[str] = "held"

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.ends: dict[str, simpy.Event] = {}
        self.reconciled: list[tuple[float, str]] = []

    def _reconcile(self, key: str) -> Generator[simpy.Event, Any, Any]:
        self.reconciled.append((self.ctx.env.now, key))
        end = self.ends[key] = self.ctx.env.event()
        delay = yield end
        return delay


@pytest.mark.parametrize("requeue", [0.0, None])
def test_an_immediate_requeue_merges_with_an_add_made_during_the_reconcile(
    requeue: float | None,
) -> None:
    """As controller-runtime, which adds the requeue before the deferred ``Done``: a key
    a watch event added while it was reconciled, whose reconcile then asks to be requeued
    at once (``Requeue``, ``RequeueAfter: 0``), is reconciled once more, not twice, even
    with a worker free to take it at the ``Done``; as it is without the requeue."""
    profile = get_profile("openkruise-head").with_overrides(latencies={"controller.reconcile": 0})
    ctx = SimContext(seed=0, profile=profile)
    env = ctx.env
    ctl = _Held(ctx)
    ctl.start_workers(2)
    ctl.queue.add("a")
    env.run(until=1)
    ctl.queue.add("a")  # a watch event during the reconcile
    ctl.ends["a"].succeed(requeue)
    env.run(until=2)
    ctl.ends["a"].succeed(None)
    env.run(until=3)
    assert ctl.reconciled == [(0, "a"), (1, "a")]
    assert "a" not in ctl.queue._dirty
