"""SimBackend's realtime clock under load: calls stamped at their arrival, lag said, slices.

The realtime driver can fall behind the wall clock (a long run, a lock held by
another caller, more events than the wall clock times the speed allows). These
tests put it behind on purpose, by holding the model's lock for a while, and
check ordering invariants that hold however loaded the machine is: a call's
model time is never before its arrival (the wall clock at ``attempt``, mapped
to virtual time), a cancel never lands before the client left, and the lag is
reported at least as large as the model was kept behind.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from functools import partial

import httpx
import pytest
import simpy

from pytest_kruise_agents.backends import Caller, CreateRequest, Pending, SandboxView, SimBackend
from pytest_kruise_agents.backends.sim import ClockLag
from pytest_kruise_agents.claiming.errors import ClaimCanceledError
from pytest_kruise_agents.claiming.timeouts import truncate
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

from ..threads import held_elsewhere, outcome_within

ALICE = Caller("default", "alice")
BOB = Caller("default", "bob")
NO_STOCK_WAIT = {
    "e2b.agents.kruise.io/create-on-no-stock": "false",
    "e2b.agents.kruise.io/claim-timeout-seconds": "600",
}
HELD_S = 0.2
"""How long a test keeps the driver from running: the model is then at least this far behind."""


def _arrival(backend: SimBackend) -> float:
    """The virtual time the wall clock reads now: a lower bound of a call's arrival made next."""
    return backend._virtual_at(time.monotonic())


def _finished(outcome: object) -> object:
    return outcome.finish() if isinstance(outcome, Pending) else outcome


def test_a_call_queued_while_the_model_is_behind_is_requested_at_its_arrival() -> None:
    """docs/server.md: ``epoch + requested`` is the date of the request, and ``endAt`` is
    its arrival plus the timeout, even when the driver was held up.

    The create is attempted while another caller holds the lock (the driver
    starts it later, from its queue): it waits in virtual time until the
    model reaches the moment it arrived, rather than start at the model's
    stale clock.
    """
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime", speed=50.0)
    try:
        create = partial(backend.create_sandbox, ALICE, CreateRequest("base", timeout=300))
        with held_elsewhere(backend):
            time.sleep(HELD_S)  # the model stands still, HELD_S * speed virtual s behind
            arrived = _arrival(backend)
            pending = backend.attempt(create)
        assert isinstance(pending, Pending)
        view = outcome_within(30, pending.finish)
        assert isinstance(view, SandboxView) and view.end_at is not None
        assert backend.records()[-1]["requested"] >= arrived
        assert view.end_at >= truncate(backend.epoch + timedelta(seconds=arrived + 300))
    finally:
        backend.close()


def test_a_call_that_takes_the_lock_after_a_long_hold_starts_at_its_arrival() -> None:
    """A call answered on the caller's thread right after the model was held up (a long
    run, ``locked()``) starts at its arrival too: a timeout change counts from then."""
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime", speed=50.0)
    try:
        view = backend.create_sandbox(ALICE, CreateRequest("base"))
        with backend.locked():
            time.sleep(HELD_S)  # the driver waits for the lock meanwhile
            arrived = _arrival(backend)
            pending = backend.attempt(partial(backend.set_timeout, ALICE, view.sandbox_id, 600))
        assert outcome_within(30, partial(_finished, pending)) is None
        end = backend.describe(ALICE, view.sandbox_id).end_at
        assert end is not None
        assert end >= truncate(backend.epoch + timedelta(seconds=arrived + 600))
    finally:
        backend.close()


def test_a_direct_call_while_the_model_is_behind_starts_at_its_arrival() -> None:
    """A call made from Python (no ``attempt``, as a test or the plugin makes it) too."""
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime", speed=50.0)
    try:
        with held_elsewhere(backend):
            time.sleep(HELD_S)
            arrived = _arrival(backend)
            create = partial(backend.create_sandbox, ALICE, CreateRequest("base"))
            thread_outcome: list[object] = []
            caller = threading.Thread(target=lambda: thread_outcome.append(create()))
            caller.start()
        caller.join(timeout=30)
        assert thread_outcome, "the create was not answered"
        assert backend.records()[-1]["requested"] >= arrived
    finally:
        backend.close()


@pytest.mark.parametrize("then_inject", [False, True], ids=["cancel", "cancel-then-inject"])
def test_a_cancel_lands_when_the_client_left_never_before(then_inject: bool) -> None:
    """The claim of a client that left ends at the virtual instant it left (its record's
    ``failed``), even when the model was behind then: not at the model's stale clock.

    Also when a fault is injected right after the cancel, before the driver runs again:
    before, the inject delivered the cancels asked for so far at once (a review saw them
    land 2.9 virtual s before the client left, 5 times in 5).
    """
    backend = SimBackend.default(seed=4, replicas=1, clock="realtime", speed=20.0)
    try:
        backend.create_sandbox(ALICE, CreateRequest("base"))  # the pool is now empty
        create = partial(backend.create_sandbox, BOB, CreateRequest("base", metadata=NO_STOCK_WAIT))
        pending = backend.attempt(create)
        assert isinstance(pending, Pending) and pending.cancel is not None
        deadline = time.monotonic() + 30
        while len(backend.records()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the claim has started and waits for stock
        with backend.locked():  # the driver stands still: the model falls behind
            time.sleep(HELD_S)
            left = _arrival(backend)
            pending.cancel()
            if then_inject:  # it takes the lock before the driver does
                backend.inject("api_latency", latency="1ms", probability=0.0)
        error = outcome_within(30, pending.finish)
        assert isinstance(error, ClaimCanceledError), error
        record = backend.records()[-1]
        assert record["error"] == "context canceled"
        assert record["failed"] >= left
    finally:
        backend.close()


def test_a_call_cancelled_before_it_started_still_arrives_then_stops() -> None:
    """A create queued (the lock was busy) and cancelled before the driver started it:
    the claim starts at its arrival, as any request that reached the server, and stops
    at once with ``context canceled``; the wait for its arrival is never cut short."""
    backend = SimBackend.default(seed=4, replicas=0, clock="realtime", speed=20.0)
    try:
        create = partial(backend.create_sandbox, BOB, CreateRequest("base", metadata=NO_STOCK_WAIT))
        with held_elsewhere(backend):
            time.sleep(HELD_S)
            arrived = _arrival(backend)
            pending = backend.attempt(create)
            assert isinstance(pending, Pending) and pending.cancel is not None
            pending.cancel()
        error = outcome_within(30, pending.finish)
        assert isinstance(error, ClaimCanceledError), error
        (record,) = backend.records()
        assert record["error"] == "context canceled"
        assert record["failed"] >= record["requested"] >= arrived
    finally:
        backend.close()


def test_the_lag_says_how_far_behind_the_wall_clock_the_model_has_been() -> None:
    """``lag()``: wall seconds the model is behind now, and the most it has been."""
    backend = SimBackend.default(seed=2, replicas=1, clock="realtime", speed=50.0)
    try:
        with backend.locked():
            time.sleep(HELD_S)
            lag = backend.lag()
            assert isinstance(lag, ClockLag)
            assert lag.now_s >= HELD_S and lag.max_s >= lag.now_s
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the driver catches up
            lag = backend.lag()
            assert lag is not None
            if lag.now_s < HELD_S / 2:
                break
            time.sleep(0.01)
        assert lag.now_s < HELD_S / 2 and lag.max_s >= HELD_S
    finally:
        backend.close()


def test_a_virtual_clock_has_no_lag() -> None:
    backend = SimBackend.default(seed=2, replicas=1)
    try:
        assert backend.lag() is None
    finally:
        backend.close()


def test_the_admin_clock_says_the_lag() -> None:
    """``GET /_kruise/clock`` of a realtime server: its speed, and ``lag.now`` and ``lag.max``
    in wall seconds."""
    admin = "e2b_admin_key_0000000000000000000000000000000d"
    backend = SimBackend.default(seed=2, replicas=1, clock="realtime", speed=50.0)
    try:
        with backend.locked():
            time.sleep(HELD_S)
        app = create_app(backend, Settings(api_keys=[ApiKey(key=admin, admin=True, id="admin")]))
        with ServerThread(app) as server:
            answer = httpx.get(f"{server.url}/_kruise/clock", headers={"X-API-Key": admin})
        body = answer.json()
        assert (body["mode"], body["speed"]) == ("realtime", 50.0)
        assert set(body["lag"]) == {"now", "max"}
        assert body["lag"]["max"] >= HELD_S and body["lag"]["now"] >= 0
    finally:
        backend.close()


BACKLOG = 20_000
"""Model events due at once, each taking :data:`EVENT_S` of wall time: half a second of driver work."""
EVENT_S = 25e-6


def test_a_get_is_answered_between_slices_of_a_long_backlog() -> None:
    """docs/server.md: another client's get is answered while the model works through a
    backlog (the driver runs it in slices and starts the calls queued between two), not
    once the whole backlog has run. Each event takes wall time, busy machine or not."""
    backend = SimBackend.default(seed=2, replicas=1, clock="realtime", speed=1.0)
    try:
        view = backend.create_sandbox(ALICE, CreateRequest("base"))
        ran = [0]

        def slow(_event: simpy.Event) -> None:
            ran[0] += 1
            busy_until = time.perf_counter() + EVENT_S
            while time.perf_counter() < busy_until:
                pass

        with backend.locked() as cluster:
            for _ in range(BACKLOG):
                cluster.env.timeout(0).callbacks.append(slow)
        deadline = time.monotonic() + 30
        while ran[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.0005)  # the driver has started on the backlog
        answered_after: list[int] = []
        outcome = backend.attempt(partial(backend.describe, ALICE, view.sandbox_id))
        if isinstance(outcome, Pending):  # the driver held the lock: it answers between slices
            assert outcome.when_ready is not None
            outcome.when_ready(lambda: answered_after.append(ran[0]))
            found = outcome_within(30, outcome.finish)
            assert isinstance(found, SandboxView) and found.sandbox_id == view.sandbox_id
        else:  # answered here, in a gap between two slices
            answered_after.append(ran[0])
        assert answered_after and answered_after[0] < BACKLOG
    finally:
        backend.close()
