"""Workloads: streams of claims arriving over virtual time, each held then released.

A workload drives the sandbox-manager the way clients do: each arrival is an
E2B create; a delivered sandbox is held for a drawn time and then killed, so
node capacity is recycled and long runs reach a steady state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import simpy

from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.latency import Latency, parse_latency
from simulator.manager import SandboxManager

__all__ = ["PoissonWorkload", "WorkloadStats"]


@dataclass
class WorkloadStats:
    """Counters of a workload run."""

    arrivals: int = 0
    delivered: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class PoissonWorkload:
    """Claims arriving as a Poisson process at ``rate`` per second.

    :param count: stop after this many arrivals (or use ``duration``).
    :param hold: how long a delivered sandbox lives before it is killed
        (a latency spec such as ``"exp(10s)"``); ``None`` keeps it.
    """

    def __init__(
        self,
        manager: SandboxManager,
        *,
        template: str,
        rate: float,
        count: int | None = None,
        duration: float | None = None,
        hold: Latency | str | float | Mapping[str, Any] | None = None,
        namespace: str = "default",
        user: str = "00000000-0000-4000-8000-000000000001",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate: must be > 0")
        if count is None and duration is None:
            raise ValueError("count or duration is required")
        self.manager = manager
        self.ctx = manager.world.ctx
        self.template = template
        self.rate = rate
        self.count = count
        self.duration = duration
        self.hold = None if hold is None else parse_latency(hold)
        self.namespace = namespace
        self.user = user
        self.metadata = dict(metadata) if metadata else None
        self.stats = WorkloadStats()
        self._pending: list[simpy.Process] = []

    def start(self) -> simpy.Process:
        """Start the arrival process; returns it (it ends after the last arrival)."""
        return self.ctx.env.process(self._arrivals())

    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        env = self.ctx.env
        rng = self.ctx.rng
        end = None if self.duration is None else env.now + self.duration
        while True:
            if self.count is not None and self.stats.arrivals >= self.count:
                return
            gap = rng.expovariate(self.rate)
            if end is not None and env.now + gap > end:
                yield env.timeout(end - env.now)
                return
            yield env.timeout(gap)
            self.stats.arrivals += 1
            env.process(self._claim())

    def _claim(self) -> Generator[simpy.Event, Any, None]:
        manager = self.manager
        try:
            sbx = yield from manager.create_sandbox(
                namespace=self.namespace,
                user=self.user,
                template=self.template,
                metadata=self.metadata,
            )
        except ClaimError as err:
            self.stats.failed += 1
            self.stats.errors[err.reason] = self.stats.errors.get(err.reason, 0) + 1
            return
        self.stats.delivered += 1
        if self.hold is None:
            return
        yield self.ctx.env.timeout(self.hold.sample(self.ctx.rng))
        sandbox_id = f"{sbx.metadata.namespace}--{sbx.metadata.name}"
        # Already gone (e.g. a node loss killed it): nothing to release.
        with contextlib.suppress(ClaimError):
            yield from manager.kill(self.namespace, self.user, sandbox_id)
