"""Workloads of the delivery benchmark: a burst of N claims, or claims at a rate for a duration.

A workload says *what* is asked for (how many sandboxes, when, of which
template, through which path); the runners (:mod:`.sim`, :mod:`.live`) say
*where*. Arrival times are offsets in seconds from the start of the run:
virtual seconds on the fake cluster, wall seconds against a live server.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final, Literal

from pytest_kruise_agents.api.validation import dns_label_problem

__all__ = ["MAX_CLAIMS", "Burst", "DeliveryPath", "Rate", "Workload", "check_workload"]

MAX_CLAIMS: Final = 10_000_000
"""The most claims a workload may ask for: the capacity planner's limit per workload.

A run holds every arrival and every claim's record at once (a simulated claim is a
SimPy process; about 1.8 GiB per 1,000,000 in the planner's largest run): more
would not end on this kind of machine, and a size far beyond it would fail only
when drawn, with a ``MemoryError`` or an ``OverflowError`` naming nothing.
"""

DeliveryPath = Literal["e2b", "sandboxclaim"]
"""``e2b``: ``Sandbox.create`` through the sandbox-manager; ``sandboxclaim``: one SandboxClaim each."""

_PATHS = ("e2b", "sandboxclaim")


def _check_common(template: str, path: str, namespace: str) -> None:
    for field, value in (("template", template), ("namespace", namespace)):
        if not isinstance(value, str):
            raise ValueError(f"{field}: must be a string, got {value!r}")
        if not value:
            raise ValueError(f"{field}: must not be empty")
    # The claims' namespace, checked as the API server would check their manifests:
    # refused only there, a run would already have drawn its arrivals and moved the
    # clock, and the error would name an internal SandboxClaim instead of this field.
    why = dns_label_problem(namespace)
    if why is not None:
        raise ValueError(f"namespace: {why}")
    if path not in _PATHS:
        raise ValueError(f"path: must be 'e2b' or 'sandboxclaim', got {path!r}")


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` claims requested at the same moment.

    :param count: how many sandboxes (1 to :data:`MAX_CLAIMS`).
    :param template: the pool (SandboxSet) they are claimed from.
    :param path: ``e2b`` (``Sandbox.create``) or ``sandboxclaim`` (one SandboxClaim each).
    :param namespace: the namespace (E2B team) of the claims: a DNS-1123 label.
    """

    count: int
    template: str = "base"
    path: DeliveryPath = "e2b"
    namespace: str = "default"

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count: must be an integer >= 1, got {self.count!r}")
        if self.count > MAX_CLAIMS:
            raise ValueError(f"count: must be at most {MAX_CLAIMS:,} claims, got {self.count!r}")
        _check_common(self.template, self.path, self.namespace)

    @property
    def name(self) -> str:
        """A short label, e.g. ``burst-20-e2b``."""
        return f"burst-{self.count}-{self.path}"

    def arrivals(self, rng: random.Random | None = None) -> list[float]:
        """Arrival offsets in seconds: all at 0."""
        return [0.0] * self.count


@dataclass(frozen=True, slots=True)
class Rate:
    """Claims arriving at ``per_second`` for ``duration`` seconds.

    :param per_second: the arrival rate (> 0).
    :param duration: how long arrivals go on, in seconds (> 0; ``per_second * duration``
        at most :data:`MAX_CLAIMS`).
    :param arrivals_mode: ``uniform`` (one every ``1/per_second`` s, starting at 0) or
        ``poisson`` (exponential gaps drawn from the runner's generator: on the fake
        cluster, the cluster's seeded one).
    """

    per_second: float
    duration: float
    template: str = "base"
    path: DeliveryPath = "e2b"
    namespace: str = "default"
    arrivals_mode: Literal["uniform", "poisson"] = "uniform"

    def __post_init__(self) -> None:
        for field in ("per_second", "duration"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{field}: must be a number, got {value!r}")
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{field}: must be a positive finite number, got {value!r}")
        claims = self.per_second * self.duration  # the mean of a poisson rate; inf past floats
        if claims > MAX_CLAIMS:
            raise ValueError(
                f"per_second: {self.per_second:g}/s for {self.duration:g} s is about "
                f"{claims:.3g} claims, more than the {MAX_CLAIMS:,} a workload may ask for"
            )
        if self.arrivals_mode not in ("uniform", "poisson"):
            raise ValueError(
                f"arrivals_mode: must be 'uniform' or 'poisson', got {self.arrivals_mode!r}"
            )
        _check_common(self.template, self.path, self.namespace)

    @property
    def name(self) -> str:
        """A short label, e.g. ``rate-5x10s-e2b``."""
        return f"rate-{self.per_second:g}x{self.duration:g}s-{self.path}"

    def arrivals(self, rng: random.Random | None = None) -> list[float]:
        """Arrival offsets in seconds within ``[0, duration)``.

        ``poisson`` needs ``rng``: the caller decides whose randomness it is.
        """
        if self.arrivals_mode == "uniform":
            n = max(1, math.ceil(self.per_second * self.duration - 1e-9))
            return [i / self.per_second for i in range(n)]
        if rng is None:
            raise ValueError("arrivals_mode: poisson arrivals need a random generator")
        out: list[float] = []
        t = rng.expovariate(self.per_second)
        while t < self.duration:
            out.append(t)
            t += rng.expovariate(self.per_second)
        return out


Workload = Burst | Rate
"""What the delivery benchmark runs."""


def check_workload(workload: object) -> Workload:
    """``workload`` if it is a :class:`Burst` or a :class:`Rate`; else a :class:`TypeError` naming it.

    The runners call this before they send anything: a wrong kind would
    otherwise fail halfway, on whichever attribute is read first. A workload's
    own fields were checked when it was made (each error names its field);
    what only a runner knows it checks next, also before anything is drawn or sent
    (on the fake cluster, that the template can name a SandboxSet).
    """
    if not isinstance(workload, Burst | Rate):
        raise TypeError(f"workload: must be a Burst or a Rate, got {workload!r}")
    return workload
