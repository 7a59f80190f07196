"""``kruise_clock``: what ``advance`` runs and refuses (docs/plugin.md, "Time")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.plugin.clock import KruiseClock


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
