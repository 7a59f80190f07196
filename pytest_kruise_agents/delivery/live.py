"""Run a delivery workload against any E2B-compatible server, with the real E2B SDK, on the wall clock.

Each claim is ``Sandbox.create(template)`` followed by a command
(``true``) repeated until it succeeds: the latency is the wall-clock time
from the create call to the first successful command, which is what an
agent waits for. Claims run concurrently in threads; a rate workload starts
each at its arrival time. The sandboxes are killed afterwards.

Only the E2B path exists here: SandboxClaims need the Kubernetes API, which
an E2B server does not offer.
"""

from __future__ import annotations

import contextlib
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

from pytest_kruise_agents.delivery.result import WARM_THRESHOLD_S, Delivery, DeliveryResult
from pytest_kruise_agents.delivery.workload import Workload

__all__ = ["FIRST_COMMAND", "run_on_server"]

_MAX_CLIENTS: Final = 1024
"""The most claims the live runner keeps in flight at once (one thread each)."""

FIRST_COMMAND: Final = "true"
"""The command whose first success marks a sandbox as delivered."""

COMMAND_RETRY_S: Final = 0.05
"""Pause between attempts of the first command."""


def _claim(
    index: int,
    t0: float,
    workload: Workload,
    connection: dict[str, Any],
    deadline_s: float,
    kill: bool,
) -> Delivery:
    from e2b import Sandbox

    start = time.perf_counter()
    sbx = None
    phases: dict[str, float] = {}
    error: str | None = None
    latency: float | None = None
    retries = 0
    try:
        sbx = Sandbox.create(workload.template, **connection)
        phases["created"] = time.perf_counter() - start
        while True:
            try:
                sbx.commands.run(FIRST_COMMAND, timeout=deadline_s)
                break
            except Exception as exc:  # any failure of the first command is retried
                if time.perf_counter() - start > deadline_s:
                    raise TimeoutError(
                        f"no successful command within {deadline_s:g}s: {exc}"
                    ) from exc
                retries += 1
                time.sleep(COMMAND_RETRY_S)
        latency = time.perf_counter() - start
        phases["first_command"] = latency
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if sbx is not None and kill:
            # The measurement is done; a failed kill changes nothing.
            with contextlib.suppress(Exception):
                sbx.kill()
    return Delivery(
        index=index,
        path="e2b",
        template=workload.template,
        requested=start - t0,
        latency=latency,
        warm=None if latency is None else latency <= WARM_THRESHOLD_S,
        sandbox_id=sbx.sandbox_id if sbx is not None else None,
        phases=phases,
        retries=retries,
        error=error,
    )


def run_on_server(
    workload: Workload,
    *,
    url: str,
    api_key: str,
    sandbox_url: str | None = None,
    name: str | None = None,
    deadline_s: float = 120.0,
    kill: bool = True,
    seed: int = 0,
) -> DeliveryResult:
    """Run ``workload`` against the E2B server at ``url`` (see the module docstring).

    :param sandbox_url: where sandbox traffic goes (``E2B_SANDBOX_URL``); ``url`` by default.
    :param deadline_s: a claim that has not run a command this long after its create fails.
    :param kill: kill each sandbox once measured.
    :param seed: seeds the Poisson arrivals of a ``Rate`` workload.
    """
    if workload.path != "e2b":
        raise ValueError(
            "path: only 'e2b' can be measured against an E2B server URL "
            "(SandboxClaims need the Kubernetes API)"
        )
    connection: dict[str, Any] = {
        "api_key": api_key,
        "api_url": url,
        "sandbox_url": sandbox_url or url,
    }
    times = workload.arrivals(random.Random(seed))
    t0 = time.perf_counter()
    futures: list[Future[Delivery]] = []
    # One thread per claim in flight, up to _MAX_CLIENTS: a burst is sent at
    # once (a claim queued behind the pool would start late, and that wait
    # would not be in its latency); a workload with no arrivals sends nothing.
    workers = max(1, min(len(times), _MAX_CLIENTS))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery") as pool:
        for i, at in enumerate(times, start=1):
            delay = t0 + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(_claim, i, t0, workload, connection, deadline_s, kill))
        deliveries = tuple(f.result() for f in futures)
    return DeliveryResult(
        name=name or workload.name,
        workload=workload,
        target=url,
        clock="wall",
        deliveries=deliveries,
    )
