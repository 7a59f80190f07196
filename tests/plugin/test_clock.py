"""``kruise_clock``: what ``advance`` and ``run_until`` run and refuse (docs/plugin.md, `kruise_clock`)."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.plugin.clock import STALL_S, KruiseClock, Waited


@pytest.fixture
def backend() -> Iterator[SimBackend]:
    b = SimBackend.default(seed=1, replicas=1)
    yield b
    b.close()


def test_advance_zero_runs_what_is_due_now_without_moving_time(backend: SimBackend) -> None:
    """``advance(0)`` runs what is due, as documented (and as ``Cluster.advance(0)`` does)."""
    clock = KruiseClock(backend)
    with backend.locked() as cluster:
        fired: list[float] = []
        cluster.env.timeout(0).callbacks.append(lambda _ev: fired.append(cluster.now))
    before = clock.now()
    clock.advance(0)
    assert fired == [before]
    assert clock.now() == before


@pytest.mark.parametrize("seconds", ["5", "1_000", True, float("nan"), -1])
def test_advance_refuses_what_is_not_a_number_of_seconds(
    backend: SimBackend, seconds: object
) -> None:
    """As the admin route does: one error naming ``seconds``, and time stays put."""
    clock = KruiseClock(backend)
    before = clock.now()
    with pytest.raises(InvalidError, match="seconds"):
        clock.advance(seconds)  # type: ignore[arg-type]
    assert clock.now() == before


@pytest.mark.parametrize("mode", ["virtual", "realtime"])
@pytest.mark.parametrize("timeout", [0, 10])
@pytest.mark.parametrize("predicate", [5, True, None, "ready"])
def test_run_until_refuses_a_predicate_that_is_no_function(
    mode: str, timeout: float, predicate: object
) -> None:
    """As ``Cluster.run_until(5)`` does: one error naming ``predicate``, on either clock and
    with any timeout, and time stays put (the virtual clock's wrapper hid it from the
    cluster's check, and the realtime loop called it: a bare ``TypeError``)."""
    backend = SimBackend.default(seed=1, replicas=1, clock=mode)  # type: ignore[arg-type]
    try:
        clock = KruiseClock(backend)
        before = clock.now()
        with pytest.raises(InvalidError) as caught:
            clock.run_until(predicate, timeout=timeout)  # type: ignore[arg-type]
        assert caught.value.field == "predicate"
        assert str(caught.value) == (
            f"predicate: must be a function returning true or false, got {predicate!r}"
        )
        if mode == "virtual":
            assert clock.now() == before
    finally:
        backend.close()


def test_run_until_stops_at_the_clocks_end_as_the_cluster_does(backend: SimBackend) -> None:
    """A timeout past 9900-01-24 is refused, naming ``timeout``, as ``Cluster.run_until`` refuses it.

    An idle cluster's clock stays where it was, and reads as a date after it.
    """
    clock = KruiseClock(backend)
    clock.advance(3600)  # the pool filled, nothing is due any more
    before, before_dt = clock.now(), clock.now_dt()
    for timeout in (2.5e11, 3e11):  # past the clock's end; past the year 9999
        with pytest.raises(
            InvalidError, match=r"^timeout: the call needs the clock past 9900-01-24"
        ):
            clock.run_until(lambda: False, timeout=timeout)
        assert clock.now() == before
        assert clock.now_dt() == before_dt


def test_run_until_runs_its_predicate_outside_the_models_lock(backend: SimBackend) -> None:
    """Another thread (the E2B server's) may call the model while the predicate runs."""
    clock = KruiseClock(backend)
    answered: list[object] = []

    def asks_from_another_thread() -> bool:
        thread = threading.Thread(target=lambda: answered.append(backend.now()))
        thread.start()
        thread.join(timeout=10)
        return not thread.is_alive()

    assert clock.run_until(asks_from_another_thread, timeout=5)
    assert len(answered) == 1


@pytest.fixture
def realtime() -> Iterator[SimBackend]:
    b = SimBackend.default(seed=1, replicas=1, clock="realtime", speed=1000)
    yield b
    b.close()


def test_realtime_run_until_counts_its_timeout_on_the_models_clock(realtime: SimBackend) -> None:
    """The timeout is virtual seconds under a realtime clock too: a model that falls behind the
    wall clock still gets them (one virtual second is a millisecond of wall time at speed 1000;
    the predicate holds the model for 50 ms, the wall-clock deadline gave up after it)."""
    clock = KruiseClock(realtime)
    start = clock.now()
    calls: list[float] = []

    def moved() -> bool:
        with realtime.locked() as cluster:
            calls.append(cluster.now)
            if len(calls) == 1:
                # "Not yet", whatever the driver did before this first look (a busy machine
                # may let it run between ``start`` and here).
                time.sleep(0.05)  # the model stands still meanwhile, behind the wall clock
                return False
            return cluster.now > start

    assert clock.run_until(moved, timeout=1)
    assert len(calls) >= 2


def test_realtime_run_until_gives_up_when_the_models_clock_stands_still(
    realtime: SimBackend, monkeypatch: pytest.MonkeyPatch, stop_clock: Callable[[SimBackend], None]
) -> None:
    """A model whose clock never moves cannot reach the deadline: the wait ends after
    ``STALL_S`` wall seconds of it, saying so, instead of waiting for ever."""
    monkeypatch.setattr("pytest_kruise_agents.plugin.clock.STALL_S", 0.2)
    clock = KruiseClock(realtime)
    stop_clock(realtime)
    began = time.monotonic()
    waited = clock.wait(lambda: False, timeout=3600)
    assert 0.2 <= time.monotonic() - began < 5
    assert not waited.held
    assert waited.seconds == 0
    assert waited.stalled_s is not None and waited.stalled_s >= 0.2
    # How much past STALL_S the wait noticed is the machine's doing (the format: below).
    assert re.fullmatch(
        r"after 0s \(the model's clock stood still for \d+\.\d wall seconds\)", waited.after()
    )
    assert not clock.run_until(lambda: False, timeout=3600)


def test_a_wait_says_the_virtual_seconds_it_ran_and_how_long_the_clock_stood_still() -> None:
    """The end of a wait's error message: ``after 60s``; ``after 0s (the model's clock stood
    still for 0.2 wall seconds)`` when a stall ended it, to a tenth of a second."""
    assert Waited(False, 60.0).after() == "after 60s"
    assert Waited(False, 12.5).stall() is None
    stalled = Waited(False, 0.0, stalled_s=0.2437)
    assert stalled.stall() == "the model's clock stood still for 0.2 wall seconds"
    assert stalled.after() == "after 0s (the model's clock stood still for 0.2 wall seconds)"
    assert Waited(False, 3.0, stalled_s=31.96).after() == (
        "after 3s (the model's clock stood still for 32.0 wall seconds)"
    )


def test_run_until_with_a_zero_timeout_runs_nothing_not_even_what_is_due(
    backend: SimBackend,
) -> None:
    """docs/plugin.md: ``timeout=0`` only checks the predicate (``advance(0)`` runs what is due)."""
    clock = KruiseClock(backend)
    with backend.locked() as cluster:
        fired: list[float] = []
        cluster.env.timeout(0).callbacks.append(lambda _ev: fired.append(cluster.now))
    assert clock.run_until(lambda: True, timeout=0)
    assert not clock.run_until(lambda: False, timeout=0)
    assert fired == []
    clock.advance(0)
    assert len(fired) == 1


def test_run_until_waits_an_hour_of_virtual_time_by_default(backend: SimBackend) -> None:
    """docs/plugin.md: ``run_until(predicate, timeout=3600)``, ``wait`` the same."""
    clock = KruiseClock(backend)
    start = clock.now()
    assert not clock.run_until(lambda: False)
    assert clock.now() == pytest.approx(start + 3600)
    waited = clock.wait(lambda: False)
    assert waited.held is False
    assert waited.seconds == pytest.approx(3600)


class _SteppedClocks:
    """The two clocks a realtime wait's stall detector compares, both moved by the test.

    The backend's driver runs the model only as far as the test lets it; the
    detector reads :meth:`monotonic` as its wall clock and calls :meth:`sleep`
    between two looks. Each sleep lasts ``wall`` seconds on the detector's wall
    clock; every ``every``-th one also lets the model run ``virtual`` seconds
    more, and returns once the driver has run it there. What the detector sees
    at each look is the test's doing, however the machine schedules the threads.
    """

    def __init__(
        self,
        backend: SimBackend,
        monkeypatch: pytest.MonkeyPatch,
        *,
        virtual: float,
        every: int,
        wall: float,
    ) -> None:
        self.backend = backend
        self.virtual = virtual
        self.every = every
        self.wall = wall
        self.now = 0.0
        """The detector's wall clock."""
        self.sleeps = 0
        self.allowed = -math.inf
        """How far the driver may run the model: nowhere until it is let."""
        self._base: float | None = None
        run_slice = backend._run_slice

        def capped(target: float) -> bool:
            return run_slice(min(target, self.allowed))

        monkeypatch.setattr(backend, "_run_slice", capped)
        with backend.locked():
            pass  # a slice already running when the driver was capped has ended
        monkeypatch.setattr("pytest_kruise_agents.plugin.clock.time", self)

    def _model_now(self) -> float:
        with self.backend.locked() as cluster:
            return cluster.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self._base is None:
            self._base = self._model_now()  # where the wait started: the model stood still
        self.sleeps += 1
        self.now += self.wall
        if self.sleeps % self.every:
            return  # the model stays where it is
        self.allowed = self._base + self.sleeps // self.every * self.virtual
        deadline = time.monotonic() + 30
        while self._model_now() < self.allowed:
            assert time.monotonic() < deadline, "the driver never ran the model on"
            time.sleep(0.001)


def test_realtime_wait_on_a_moving_clock_is_no_stall(
    realtime: SimBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a clock that stands still for ``STALL_S`` ends a wait early: one that moves runs
    to the timeout however long in wall time. Here the wait looks every 0.3 ``STALL_S`` on the
    wall clock it reads, and the driver runs the model 50 virtual seconds on at every third
    look: it stands still for 0.9 ``STALL_S`` at a time, and 1,000 virtual seconds take 60
    looks after the first, eighteen times ``STALL_S`` (both clocks moved by the test, so no
    descheduled thread makes the moving clock look still for longer)."""
    clocks = _SteppedClocks(realtime, monkeypatch, virtual=50, every=3, wall=0.3 * STALL_S)
    clock = KruiseClock(realtime)
    waited = clock.wait(lambda: False, timeout=1000)
    assert not waited.held
    assert waited.stalled_s is None
    assert waited.seconds == pytest.approx(1000)
    assert waited.after() == "after 1000s"
    assert clocks.sleeps == 60
    assert clocks.now == pytest.approx(18 * STALL_S)


def test_realtime_wait_whose_predicate_holds_at_the_timeout_held(realtime: SimBackend) -> None:
    """The predicate is asked once more when the timeout is reached, as the virtual clock's
    wait asks it at its end: one that holds by then counts, not only one that held before."""
    clock = KruiseClock(realtime)
    start = clock.now()
    calls: list[float] = []

    def holds_after_the_timeout() -> bool:
        if not calls:
            # The first answer is "not yet", given once the model is past the timeout.
            while clock.now() < start + 1:
                time.sleep(0.005)
            calls.append(clock.now())
            return False
        calls.append(clock.now())
        return True

    waited = clock.wait(holds_after_the_timeout, timeout=1)
    assert waited.held
    assert len(calls) == 2
