"""``create_app``: what an app holds on to once it is dropped."""

from __future__ import annotations

import asyncio
import gc
import weakref

import httpx

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.app import create_app
from simulator.cluster import Cluster


def _serve_and_drop() -> weakref.ref[Cluster]:
    cluster = Cluster(seed=0, log=False)
    app = create_app(SimBackend(cluster))

    async def ask() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            return [(await client.get(path)).status_code for path in ("/health", "/metrics")]

    assert asyncio.run(ask()) == [200, 200]
    return weakref.ref(cluster)


def test_a_dropped_app_frees_its_cluster() -> None:
    # The plugin builds an app per test: one kept alive by a library cache (FastAPI's
    # classification of route handlers, 4,096 entries) kept every test's cluster.
    refs = [_serve_and_drop() for _ in range(3)]
    # Until nothing more is freed: the last app's asyncio finalizers free it only then.
    while gc.collect():
        pass
    assert [ref() is None for ref in refs] == [True, True, True]
