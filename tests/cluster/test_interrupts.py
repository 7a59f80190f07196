"""Ctrl-C (SIGINT in the main thread) while the model runs stops between two events.

The signal is real: ``signal.raise_signal`` from inside the model, at a chosen
virtual time, sends it to this process as a kernel interrupt or a terminal's
Ctrl-C does. Python's own handler raises ``KeyboardInterrupt`` at the next
bytecode, which without the deferral is inside SimPy's step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster
from simulator.interrupts import sigint_deferred

from .conftest import pool_yaml

pytestmark = pytest.mark.usefixtures("python_sigint_handler")


def sigint_at(cluster: Cluster, at: float) -> None:
    """A SIGINT sent to this process while the model processes its event at ``at``."""
    cluster.env.timeout(at - cluster.now).callbacks.append(
        lambda _ev: signal.raise_signal(signal.SIGINT)
    )


def in_process(cluster: Cluster, at: float, after: Callable[[], None]) -> None:
    """A SIGINT sent from inside a SimPy process at ``at``, which then waits a second and calls
    ``after``: the process must live on."""

    def proc() -> Generator[simpy.Event, Any, None]:
        yield cluster.env.timeout(at - cluster.now)
        signal.raise_signal(signal.SIGINT)
        yield cluster.env.timeout(1)
        after()

    cluster.env.process(proc())


def filled(seed: int = 3) -> Cluster:
    cluster = Cluster(seed=seed, nodes=4)
    cluster.apply(pool_yaml(replicas=40))
    return cluster


def test_advance_interrupted_stops_between_events_and_the_model_runs_on_unchanged() -> None:
    plain = filled()
    plain.env.timeout(5.0)  # the same events as the interrupted run's signal
    plain.advance(505)
    cluster = filled()
    sigint_at(cluster, 5.0)
    with pytest.raises(KeyboardInterrupt):
        cluster.advance(300)
    assert cluster.now == 5.0
    # No stop event of the interrupted run is left to end this one at 300.
    cluster.advance(500)
    assert cluster.now == 505
    assert cluster.log.text() == plain.log.text()
    assert cluster.table("sbs") == plain.table("sbs")


def test_a_process_that_the_interrupt_lands_in_lives_on() -> None:
    cluster = filled()
    ran: list[float] = []
    in_process(cluster, 2.0, lambda: ran.append(cluster.now))
    with pytest.raises(KeyboardInterrupt):
        cluster.advance(100)
    assert cluster.now == 2.0
    cluster.advance(100)
    assert ran == [3.0]
    assert cluster.get("sbs", "base").status.available_replicas == 40


def test_run_until_interrupted_stops_between_events() -> None:
    cluster = filled()
    ran: list[float] = []
    in_process(cluster, 1.5, lambda: ran.append(cluster.now))
    with pytest.raises(KeyboardInterrupt):
        cluster.run_until(lambda: False, timeout=50)
    assert cluster.now == 1.5
    assert cluster.run_until(lambda: False, timeout=2000) is False
    assert cluster.now == 2001.5
    assert ran == [2.5]
    assert cluster.get("sbs", "base").status.available_replicas == 40


def test_advance_zero_interrupted_raises_between_events() -> None:
    cluster = filled()
    cluster.advance(1)
    ran: list[float] = []
    in_process(cluster, 1.0, lambda: ran.append(cluster.now))
    with pytest.raises(KeyboardInterrupt):
        cluster.advance(0)
    assert cluster.now == 1.0
    cluster.advance(1.5)
    assert ran == [2.0]


def test_interrupted_create_sandbox_cancels_its_claim() -> None:
    cluster = Cluster(seed=3, nodes=4)
    cluster.apply(pool_yaml("small", replicas=1))
    cluster.wait_for_pool("small")
    cluster.create_sandbox("small", timeout=600)  # the only one: the next create waits
    sigint_at(cluster, cluster.now + 0.5)
    with pytest.raises(KeyboardInterrupt):
        cluster.create_sandbox("small", timeout=600)
    record = cluster.last_record()
    assert record.delivered is None
    cluster.advance(120)
    assert record.delivered is None
    assert record.error_reason == "Canceled"
    assert record.failed is not None
    sandboxes, _ = cluster.list_sandboxes()
    assert len(sandboxes) == 1  # only the first create's: the interrupted one locked none


def test_interrupted_create_sandboxes_cancels_every_claim_still_running() -> None:
    cluster = Cluster(seed=3, nodes=4)
    cluster.apply(pool_yaml("small", replicas=2))
    cluster.wait_for_pool("small")
    sigint_at(cluster, cluster.now + 0.5)
    with pytest.raises(KeyboardInterrupt):
        cluster.create_sandboxes(5, "small", timeout=600)
    cluster.advance(120)
    records = list(cluster.records)
    assert len(records) == 5
    assert all(r.failed is not None or r.delivered is not None for r in records)
    cancelled = [r for r in records if r.error_reason == "Canceled"]
    delivered = [r for r in records if r.delivered is not None]
    assert len(cancelled) >= 3
    # A claim the interrupt caught after it was delivered keeps its sandbox, and only that.
    sandboxes, _ = cluster.list_sandboxes()
    assert len(sandboxes) == len(delivered)


def test_sigint_after_the_model_runs_is_python_own_again() -> None:
    cluster = filled()
    cluster.advance(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_a_handler_someone_installed_is_left_alone() -> None:
    seen: list[int] = []

    def theirs(signum: int, frame: object) -> None:
        seen.append(signum)

    signal.signal(signal.SIGINT, theirs)
    cluster = filled()
    sigint_at(cluster, 5.0)
    cluster.advance(10)  # their handler took it: nothing raised
    assert seen == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is theirs


def test_outside_the_main_thread_nothing_changes() -> None:
    flags: list[object] = []

    def other() -> None:
        with sigint_deferred() as hits:
            flags.append(hits)
            flags.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert flags == [(), signal.default_int_handler]


def test_nested_runs_share_one_flag_and_one_handler() -> None:
    with sigint_deferred() as outer:
        handler = signal.getsignal(signal.SIGINT)
        with sigint_deferred() as inner:
            assert inner is outer
            assert signal.getsignal(signal.SIGINT) is handler
        assert signal.getsignal(signal.SIGINT) is handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_in_the_last_event_is_raised_on_the_way_out() -> None:
    with pytest.raises(KeyboardInterrupt), sigint_deferred() as hits:
        signal.raise_signal(signal.SIGINT)
        assert hits  # noted, not raised
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_sigint_before_the_first_is_answered_raises_at_once() -> None:
    with sigint_deferred() as hits:
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        hits.clear()  # type: ignore[union-attr]  # answered: the way out raises nothing


def test_types_of_results_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not interrupted, create_sandbox(es) answer as before."""
    cluster = Cluster(seed=3, nodes=4)
    cluster.apply(pool_yaml("small", replicas=2))
    cluster.wait_for_pool("small")
    assert isinstance(cluster.create_sandbox("small"), Sandbox)
    results = cluster.create_sandboxes(2, "small", timeout=60)
    assert isinstance(results[0], Sandbox)
    assert isinstance(results[1], Sandbox | ClaimError)
