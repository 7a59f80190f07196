"""Erlang-B and Erlang-C: the analytic oracles of warm-pool sizing.

A pool of ``S`` sandboxes whose every claim triggers one refill of mean
duration ``L``, with claims arriving as a Poisson process of rate ``λ``, is an
Erlang system of offered load ``a = λL``:

* claims that find no stock are created cold (create-on-no-stock): the share of
  cold deliveries is Erlang-B(S, a), whatever the refill-time distribution;
* claims that find no stock wait for a refill: with exponential refill the
  share of claims that wait is Erlang-C(S, a).
"""

from __future__ import annotations

import math

__all__ = ["erlang_b", "erlang_c", "min_servers_for_loss"]


def _check_load(load: float) -> None:
    """Refuse a load that is negative or NaN (NaN compares false with every bound)."""
    if not load >= 0:
        raise ValueError(f"load must be a number >= 0, got {load!r}")


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of M/G/S/S by the stable recurrence ``B_k = aB/(k + aB)``.

    An infinite load blocks every claim: 1.0 (the recurrence would give inf/inf).
    """
    if servers < 0:
        raise ValueError(f"servers must be >= 0, got {servers!r}")
    _check_load(load)
    if math.isinf(load):
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(servers: int, load: float) -> float:
    """Probability of waiting in M/M/S (1.0 when the load is at or above capacity)."""
    if servers <= 0:
        raise ValueError("servers must be >= 1")
    _check_load(load)
    if load >= servers:
        return 1.0
    b = erlang_b(servers, load)
    rho = load / servers
    return b / (1.0 - rho + rho * b)


def min_servers_for_loss(load: float, target: float) -> int:
    """The smallest ``S`` with Erlang-B(S, load) <= ``target``.

    A negative or NaN load is refused as :func:`erlang_b` refuses it. So is an
    infinite one: it blocks every claim whatever ``S`` (Erlang-B is 1.0), so no
    ``S`` meets a ``target`` below 1.
    """
    if not 0 < target < 1:
        raise ValueError("target must be in (0, 1)")
    _check_load(load)
    if math.isinf(load):
        raise ValueError(
            f"load must be finite: an infinite load blocks every claim, "
            f"so no number of servers meets a target of {target!r}"
        )
    b = 1.0
    k = 0
    while b > target:
        k += 1
        b = load * b / (k + load * b)
    return k
