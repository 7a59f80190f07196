"""200 concurrent creates from threads against a pool of 100: no double delivery, no hang."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from e2b import Sandbox
from e2b.exceptions import SandboxException

from pytest_kruise_agents.backends import SimBackend

from .conftest import ALICE_KEY, start_server


def test_200_concurrent_creates_against_a_pool_of_100() -> None:
    backend = SimBackend.default(seed=5, replicas=100)
    thread, srv = start_server(backend)
    try:

        def create(_: int) -> str | Exception:
            try:
                sbx = Sandbox.create(
                    template="base", api_key=ALICE_KEY, api_url=srv.url, sandbox_url=srv.url
                )
            except SandboxException as exc:
                return exc
            return sbx.sandbox_id

        def health() -> int:
            return httpx.get(srv.url + "/health", timeout=30).status_code

        with ThreadPoolExecutor(max_workers=32) as pool:
            futures = [pool.submit(create, i) for i in range(200)]
            # The server answers other requests while the claims run.
            assert health() == 200
            results = [f.result(timeout=120) for f in futures]
        ids = [r for r in results if isinstance(r, str)]
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(ids) == len(set(ids)), "a sandbox was given twice"
        # create-on-no-stock is on by default: the 100 beyond the pool are created cold.
        assert len(ids) + len(errors) == 200
        assert len(ids) == 200, errors[:3]
        records = backend.records()
        warm = sum(1 for r in records if r["warm"])
        assert warm >= 100
    finally:
        thread.stop()
        backend.close()
