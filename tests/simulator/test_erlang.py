"""Erlang-B and Erlang-C against published values."""

from __future__ import annotations

import pytest

from simulator.erlang import erlang_b, erlang_c, min_servers_for_loss


def test_erlang_b_known_values() -> None:
    """Erlang-B matches tabulated values (S=20, a=18 from the reference's check)."""
    assert erlang_b(20, 18.0) == pytest.approx(0.1092, abs=5e-4)
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(0, 3.0) == 1.0


def test_erlang_c_known_values() -> None:
    """Erlang-C matches the reference's S=20, a=18 value and saturates at capacity."""
    assert erlang_c(20, 18.0) == pytest.approx(0.5508, abs=5e-4)
    assert erlang_c(2, 2.0) == 1.0


def test_erlang_b_is_stable_for_large_pools() -> None:
    """The recurrence stays finite and monotone for thousands of servers."""
    values = [erlang_b(s, 500.0) for s in (500, 527, 555)]
    assert values[0] > values[1] > values[2] > 0


@pytest.mark.parametrize(
    ("load", "s1", "s01"), [(1, 5, 6), (10, 18, 21), (50, 64, 71), (500, 527, 555)]
)
def test_minimum_pool_table(load: float, s1: int, s01: int) -> None:
    """The minimum pools for 1% and 0.1% cold starts match the reference table."""
    assert min_servers_for_loss(load, 0.01) == s1
    assert min_servers_for_loss(load, 0.001) == s01


def test_bad_arguments() -> None:
    """Negative loads and empty pools are refused."""
    with pytest.raises(ValueError):
        erlang_b(-1, 1.0)
    with pytest.raises(ValueError):
        erlang_c(0, 1.0)
    with pytest.raises(ValueError):
        min_servers_for_loss(1.0, 0.0)


@pytest.mark.parametrize("load", [-5.0, float("nan")])
def test_a_negative_or_nan_load_is_refused_everywhere(load: float) -> None:
    """The three functions refuse a load below 0 or NaN with one ValueError naming the load
    (min_servers_for_loss once answered 15 for -5 and 1 for NaN)."""
    for call in (
        lambda: erlang_b(3, load),
        lambda: erlang_c(3, load),
        lambda: min_servers_for_loss(load, 0.01),
    ):
        with pytest.raises(ValueError, match=r"^load must be a number >= 0, got"):
            call()


def test_an_infinite_load_blocks_every_claim() -> None:
    """Erlang-B and Erlang-C of an infinite load are 1.0 (not NaN), so no pool size meets a
    target below 1: min_servers_for_loss refuses it rather than answer 1."""
    assert erlang_b(3, float("inf")) == 1.0
    assert erlang_b(0, float("inf")) == 1.0
    assert erlang_c(3, float("inf")) == 1.0
    with pytest.raises(ValueError, match="infinite load blocks every claim"):
        min_servers_for_loss(float("inf"), 0.01)
