"""The work queue's delayed adds (client-go's delaying queue)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import simpy

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
