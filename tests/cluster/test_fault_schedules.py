"""Scheduled faults (a chaos schedule): a fault whose window is ahead waits, unconsulted.

A run may inject many faults up front (a scenario's schedule) or for ever (a chaos
process). What each API call and each inject costs must not grow with the faults still
to come nor with those that have ended: these tests count the faults the injector
examines, on a deterministic schedule, rather than time anything.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulator.cluster import Cluster
from simulator.faults import Fault, FaultInjector


@pytest.fixture
def examined(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts of the calls of Fault's window predicates (``active``, ``ended``,
    ``window_closed``): each is a fault examined by the injector."""
    counts: Counter[str] = Counter()
    for name in ("active", "ended", "window_closed"):
        original: Callable[[Fault, float], bool] = getattr(Fault, name)

        def counting(
            self: Fault, now: float, _name: str = name, _fn: Callable[..., bool] = original
        ) -> bool:
            counts[_name] += 1
            return _fn(self, now)

        monkeypatch.setattr(Fault, name, counting)
    yield counts


class _Clock:
    """A hand-moved virtual clock for a bare :class:`FaultInjector`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _injector() -> tuple[FaultInjector, _Clock]:
    clock = _Clock()
    return FaultInjector(clock, random.Random(0)), clock


def _claim_and_kill(cluster: Cluster) -> None:
    sbx = cluster.create_sandbox("base", timeout=600)
    cluster.kill(cluster.sandbox_id(sbx))


def test_a_claim_examines_no_fault_whose_window_is_ahead(
    pooled: Cluster, examined: Counter[str]
) -> None:
    """A claim made before any window of a schedule opens examines no fault, however many
    are scheduled (each API call consulted all of them: a chaos schedule cost quadratic time)."""
    _claim_and_kill(pooled)
    assert sum(examined.values()) == 0  # no fault at all
    t0 = pooled.now
    for i in range(200):
        pooled.inject("api_latency", start=t0 + 3600 + 10 * i, duration=1, latency="10ms")
        pooled.inject("pod_start_failure", start=t0 + 3605 + 10 * i, duration=1, probability=0.5)
    examined.clear()
    _claim_and_kill(pooled)
    assert sum(examined.values()) == 0
    assert len(pooled.faults) == 400  # all listed, as injected


def test_an_inject_examines_no_fault_already_injected(examined: Counter[str]) -> None:
    """The 500th fault of a schedule costs its inject what the first did: an inject does not
    walk the faults already waiting."""
    injector, _ = _injector()
    batches = []
    for batch in range(5):
        examined.clear()
        for i in range(100):
            start = 3600.0 + 10 * (100 * batch + i)
            injector.inject(kind="api_latency", start=start, duration=1, latency="10ms")
        batches.append(sum(examined.values()))
    assert batches == [0] * 5
    assert len(injector) == 500


def test_a_consult_examines_only_the_windows_open_now(examined: Counter[str]) -> None:
    """Through a schedule of 300 one-second windows, each consult examines the one window
    open (or none): the windows ahead wait, the windows past have left."""
    injector, clock = _injector()
    for i in range(300):
        injector.inject(kind="api_latency", start=10.0 * i, duration=1, latency="fixed(10ms)")
    per_consult = []
    for i in range(300):
        for offset in (0.5, 5.0):  # inside window i, then between windows i and i + 1
            clock.now = 10.0 * i + offset
            examined.clear()
            extra = injector.extra_latency("api_latency", verb="get", kind="Pod", client="x")
            assert extra == (pytest.approx(0.01) if offset == 0.5 else 0.0)
            per_consult.append(sum(examined.values()))
    assert max(per_consult) <= 2  # the window open, and its retirement once closed
    assert sum(f.fired for f in injector.faults) == 300


def test_windows_open_in_injection_order_whatever_their_start() -> None:
    """Faults are consulted in the order they were injected, not the order their windows
    opened: the first injected that fires decides (and draws first)."""
    injector, clock = _injector()
    late = injector.inject(kind="api_error", start=50.0, duration=100)
    early = injector.inject(kind="api_error", start=10.0, duration=100)
    middle = injector.inject(kind="api_error", start=30.0)
    now = injector.inject(kind="api_error", code=503)
    seen: dict[float, tuple[list[Fault], Fault | None]] = {}
    for t in (0.0, 10.0, 30.0, 50.0, 150.0):
        clock.now = t
        seen[t] = (injector.consulted("api_error"), injector.check("api_error"))
    assert seen == {
        0.0: ([now], now),
        10.0: ([early, now], early),
        30.0: ([early, middle, now], early),
        50.0: ([late, early, middle, now], late),
        150.0: ([middle, now], middle),  # the two windows have closed
    }


def test_a_probability_fault_draws_in_injection_order() -> None:
    """The draws of probability faults come in injection order once their windows are open,
    as if every fault had been consulted from its inject (the event log of a seed is unchanged)."""
    draws: list[float] = []

    class Recording(random.Random):
        def random(self) -> float:
            value = super().random()
            draws.append(value)
            return value

    clock = _Clock()
    injector = FaultInjector(clock, Recording(3))
    second = injector.inject(kind="api_latency", start=20.0, latency="fixed(2s)", probability=0.5)
    first = injector.inject(kind="api_latency", start=10.0, latency="fixed(1s)", probability=0.5)
    totals = []
    for t in (5.0, 15.0, 25.0, 25.0, 25.0, 25.0):
        clock.now = t
        totals.append(injector.extra_latency("api_latency"))
    replay = random.Random(3)
    expected = [0.0, 0.0]
    expected[1] = 1.0 if replay.random() < 0.5 else 0.0  # only `first` is open at 15
    for _ in range(4):  # both open: `second` (injected first) draws first
        total = 2.0 if replay.random() < 0.5 else 0.0
        total += 1.0 if replay.random() < 0.5 else 0.0
        expected.append(total)
    assert totals == expected
    assert len(draws) == 1 + 2 * 4
    assert second.fired + first.fired == sum(1 for x in draws if x < 0.5)


def test_a_fault_cleared_or_retired_before_its_start_never_opens() -> None:
    """A fault cleared (or retired, as an acting fault whose moment passed) while it waits for
    its window is never consulted; the others wait on."""
    injector, clock = _injector()
    cleared = injector.inject(kind="api_conflict", start=10.0, duration=5)
    retired = injector.inject(kind="api_conflict", start=10.0, duration=5)
    kept = injector.inject(kind="api_conflict", start=10.0, duration=5)
    injector.clear(cleared.id)
    injector.retire(retired)
    clock.now = 12.0
    assert injector.consulted("api_conflict") == [kept]
    assert injector.faults == [retired, kept]  # retired: still listed until cleared
    clock.now = 15.0
    assert injector.consulted("api_conflict") == []


def test_clearing_every_fault_drops_the_schedule() -> None:
    """``clear()`` of all faults drops those still waiting for their window too."""
    injector, clock = _injector()
    for i in range(10):
        injector.inject(kind="watch_lag", start=5.0 + i, latency="1ms")
    injector.clear()
    clock.now = 100.0
    assert (injector.faults, injector.consulted("watch_lag")) == ([], [])
    assert injector.extra_latency("watch_lag", informer="sandbox-manager") == 0.0


def test_a_stall_ahead_holds_nothing_until_its_start() -> None:
    """A ``controller_stall`` scheduled ahead holds its controller from its start to its end."""
    injector, clock = _injector()
    stall = injector.inject(
        kind="controller_stall", start=10.0, duration=5, selector={"controller": "sandboxset"}
    )
    held: dict[float, Any] = {}
    for t in (0.0, 9.0, 10.0, 14.0, 15.0):
        clock.now = t
        held[t] = injector.stalled_until("sandboxset")
    assert held == {0.0: None, 9.0: None, 10.0: 15.0, 14.0: 15.0, 15.0: None}
    assert injector.stall_of("sandbox") is None and stall.fired == 0


def test_clearing_most_of_a_schedule_one_by_one_keeps_the_rest() -> None:
    """Faults cleared one by one, waiting or open, leave the others acting in their windows
    (the injector drops what it kept of the cleared ones as they come to outnumber the rest)."""
    injector, clock = _injector()
    schedule = [
        injector.inject(kind="api_latency", start=2.0 * i, duration=3, latency="fixed(1s)")
        for i in range(100)
    ]
    clock.now = 11.0  # windows 4 and 5 are open
    injector.extra_latency("api_latency")
    kept = schedule[::10]
    for f in schedule:
        if all(f is not k for k in kept):
            injector.clear(f.id)
    assert injector.faults == kept
    totals = {}
    for t in (11.0, 21.0, 100.0, 180.0, 181.0, 200.0):
        clock.now = t
        totals[t] = injector.extra_latency("api_latency")
    # Fault 10 * k is open over [20k, 20k + 3): only starts at multiples of 20 remain.
    assert totals == {11.0: 0.0, 21.0: 1.0, 100.0: 1.0, 180.0: 1.0, 181.0: 1.0, 200.0: 0.0}
    assert [f.fired for f in kept] == [0, 1, 0, 0, 0, 1, 0, 0, 0, 2]
