"""``kruise_faults``' latencies, called directly: what ``reset`` (the teardown's) puts back."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.backends.base import ResourceNotFound
from pytest_kruise_agents.plugin.faults import KruiseFaults


def _delete(backend: SimBackend) -> str:
    return str(backend.latency("api.delete")["value"])


def test_reset_restores_a_latency_whose_block_is_still_open(sim_backend: SimBackend) -> None:
    """The teardown resets before the kills, while a yield fixture's block may still be open:
    the latency is restored then, and the block's end leaves it as the reset put it (not the
    value a ``set_latency`` before the block gave it)."""
    faults = KruiseFaults(sim_backend)
    opened = _delete(sim_backend)
    faults.set_latency("api.delete", "5s")
    with faults.latency("api.delete", "20s"):
        faults.reset()
        assert _delete(sim_backend) == opened
    assert _delete(sim_backend) == opened


def test_reset_restores_the_value_before_the_first_change_in_any_order(
    sim_backend: SimBackend,
) -> None:
    """A ``set_latency`` inside a block that ends before the reset: the block puts back its own
    start value, and the reset the latency's value before the test changed it at all."""
    faults = KruiseFaults(sim_backend)
    opened = _delete(sim_backend)
    with faults.latency("api.delete", "20s"):
        faults.set_latency("api.delete", "7s")
    assert _delete(sim_backend) == opened  # the block's end: its start value
    faults.set_latency("api.delete", "9s")
    with faults.latency("api.delete", "1s"):
        pass
    assert _delete(sim_backend) == "fixed(9s)"  # the block's end: its start value
    faults.reset()
    assert _delete(sim_backend) == opened


def test_reset_restores_the_value_before_the_first_of_several_changes(
    sim_backend: SimBackend,
) -> None:
    """Two ``set_latency`` calls: the reset puts back the value before the first, not the
    value the second replaced."""
    faults = KruiseFaults(sim_backend)
    opened = _delete(sim_backend)
    faults.set_latency("api.delete", "5s")
    faults.set_latency("api.delete", "7s")
    assert _delete(sim_backend) == "fixed(7s)"
    faults.reset()
    assert _delete(sim_backend) == opened


def test_clearing_a_fault_that_is_not_in_force_is_an_error_unless_missing_is_ok(
    sim_backend: SimBackend,
) -> None:
    faults = KruiseFaults(sim_backend)
    kept = faults.inject("api_error", id="kept", probability=0.5)
    with pytest.raises(ResourceNotFound, match="nope"):
        faults.clear("nope")
    faults.clear("nope", missing_ok=True)
    assert [f["id"] for f in faults.active()] == [kept["id"]]
    faults.clear("kept")
    assert faults.active() == []
