"""While the simulation runs, young objects are collected rarely (simulator.collector)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.cluster import Cluster
from simulator.collector import YOUNG_THRESHOLD, simulation_gc


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    """Each test starts from CPython's defaults and leaves the process as it found it."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_young_threshold_is_raised_inside_and_restored_after() -> None:
    with simulation_gc():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_and_concurrent_runs_restore_only_when_the_last_ends() -> None:
    inside = threading.Event()
    leave = threading.Event()

    def other_run() -> None:
        with simulation_gc():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other_run)
    with simulation_gc():
        thread.start()
        assert inside.wait(5)
        with simulation_gc():
            pass
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the other thread still runs
    leave.set()
    thread.join(5)
    assert gc.get_threshold() == (700, 10, 10)


def test_an_error_in_the_run_still_restores() -> None:
    with pytest.raises(RuntimeError), simulation_gc():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("young", [0, 100_000])
def test_a_process_choice_of_a_higher_or_no_threshold_is_kept(young: int) -> None:
    """0 disables automatic collection; a higher first threshold was someone's choice."""
    gc.set_threshold(young, 10, 10)
    with simulation_gc():
        assert gc.get_threshold()[0] == young
    assert gc.get_threshold()[0] == young


def test_cluster_runs_hold_the_simulation_thresholds() -> None:
    """advance, run_until and run all run the model under the raised threshold."""
    cluster = Cluster(seed=1, nodes=1, log=False)
    seen: list[int] = []

    def probe() -> Any:
        while True:
            seen.append(gc.get_threshold()[0])
            yield cluster.env.timeout(1)

    cluster.env.process(probe())
    cluster.advance(2)
    cluster.run_until(lambda: cluster.now >= 4)

    def wait() -> Any:
        yield cluster.env.timeout(2)

    cluster.run(wait())
    assert len(seen) >= 5 and set(seen) == {YOUNG_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)
