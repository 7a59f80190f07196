"""Time at the server/backend boundary: the dates clients read, and calls racing a clock advance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.state import THREAD_BUDGETS

from .conftest import ALICE, Served, pool_yaml, serve


def test_a_realtime_server_answers_dates_of_the_clients_wall_clock(tmp_path: Path) -> None:
    """``endAt = now + timeout`` on the client's clock (e2b-protocol.md §2.5), ``startedAfter`` too.

    A realtime server's clock follows the wall clock (server.md): from its
    date, not from the virtual clock's fixed 2026-01-01.
    """
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime")
    thread, served = serve(tmp_path, backend=backend)
    try:
        sbx = Sandbox.create("base", timeout=120, **served.sdk())
        info = sbx.get_info()
        wall = datetime.now(UTC)
        assert abs((info.started_at - wall).total_seconds()) < 5
        assert (info.end_at - wall).total_seconds() == pytest.approx(120, abs=5)
        clock = datetime.fromisoformat(served.admin("GET", "/clock").json()["now"])
        assert abs((clock - wall).total_seconds()) < 5
        since = (wall - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        listed = served.request("GET", "/v2/sandboxes", params={"startedAfter": since})
        assert [s["sandboxID"] for s in listed.json()] == [sbx.sandbox_id]
        sbx.kill()
    finally:
        thread.stop()
        backend.close()


WAITING_CREATES = THREAD_BUDGETS["control"] + 12
EMPTY_POOL = "empty"
"""A pool of 0 replicas: creates from it that may not create on no stock wait their claim timeout."""
NO_STOCK_WAIT = {
    "e2b.agents.kruise.io/create-on-no-stock": "false",
    "e2b.agents.kruise.io/claim-timeout-seconds": "600",
}


def test_creates_waiting_on_a_realtime_clock_do_not_hold_up_other_calls(tmp_path: Path) -> None:
    """More creates waiting for stock than the control plane has threads: all of them start,
    and another client's timeout change, lookup and kill are answered while they wait.

    Upstream has no API rate limit beyond its claim workers, create limiter and
    quotas (reference §7): a wait for the wall clock must not use up a thread.
    The creates wait on a pool of 0 replicas, which never has stock, so they
    are still waiting however slowly the machine lets them start (a pool that
    refills would serve some of them a couple of wall seconds in).
    """
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime")
    with backend.locked() as cluster:
        cluster.apply(pool_yaml(EMPTY_POOL, 0))
        cluster.wait_for_pool(EMPTY_POOL)  # the manager knows it: no 400 for the template
    thread, served = serve(tmp_path, backend=backend)
    try:
        first, second = (
            served.request("POST", "/v2/sandboxes", json={"templateID": "base"}).json()["sandboxID"]
            for _ in range(2)
        )
        asyncio.run(_while_creates_wait(served, first, second))
    finally:
        thread.stop()
        backend.close()


async def _while_creates_wait(served: Served, first: str, second: str) -> None:
    headers = {"X-API-Key": ALICE}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=served.url, headers=headers, limits=limits) as client:
        body = {"templateID": EMPTY_POOL, "metadata": NO_STOCK_WAIT}
        creates = [
            asyncio.ensure_future(client.post("/v2/sandboxes", json=body, timeout=120))
            for _ in range(WAITING_CREATES)
        ]
        try:
            started = await _claims_requested(served, 2 + WAITING_CREATES)
            assert started == 2 + WAITING_CREATES  # not stuck at the thread budget
            timeout = await client.post(f"/sandboxes/{first}/timeout", json={"timeout": 100})
            info = await client.get(f"/sandboxes/{first}")
            kill = await client.delete(f"/sandboxes/{second}")
            assert (timeout.status_code, info.status_code, kill.status_code) == (204, 200, 204)
            assert not any(c.done() for c in creates)  # answered while every create waits
        finally:
            for create in creates:
                create.cancel()  # the clients go away: their claims are cancelled
            await asyncio.gather(*creates, return_exceptions=True)


async def _claims_requested(served: Served, want: int) -> int:
    """The number of claims the server has started, once ``want`` or after 60 wall seconds."""
    count = 0
    for _ in range(600):
        count = len(await asyncio.to_thread(lambda: served.admin("GET", "/records").json()))
        if count >= want:
            break
        await asyncio.sleep(0.1)
    return count
