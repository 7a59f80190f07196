"""Backend calls from the server: answered on the event loop when quick, else in worker threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from e2b import Sandbox

from pytest_kruise_agents.backends import SimBackend

from .conftest import serve


def test_calls_past_the_inline_budget_are_finished_in_a_worker_thread(tmp_path: Path) -> None:
    # A budget of 0: every create and kill that runs more than one batch of
    # model events leaves the loop half-way and is finished in a thread.
    backend = SimBackend.default(seed=3, replicas=1, inline_budget_s=0)
    thread, server = serve(tmp_path, backend=backend)
    try:
        sandboxes = [Sandbox.create(template="base", **server.sdk()) for _ in range(3)]
        assert len({s.sandbox_id for s in sandboxes}) == 3
        for sbx in sandboxes:
            assert sbx.get_info().state.value == "running"
            sbx.kill()
            assert not sbx.is_running()
        records = server.admin("GET", "/records").json()
        assert [r["error"] for r in records] == [None, None, None]
    finally:
        thread.stop()
        backend.close()


def test_a_backend_lock_held_elsewhere_never_blocks_the_event_loop(tmp_path: Path) -> None:
    thread, server = serve(tmp_path)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with server.backend.locked():
            held.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    try:
        holder.start()
        assert held.wait(timeout=30)
        with ThreadPoolExecutor(max_workers=1) as pool:
            creating = pool.submit(Sandbox.create, template="base", **server.sdk())
            time.sleep(0.2)  # let the create reach the server (if it has not, this proves less)
            # The create waits for the lock in a worker thread; the loop still answers.
            health = httpx.get(server.url + "/health", timeout=30)
            assert health.status_code == 200
            assert not creating.done()
            release.set()
            sbx = creating.result(timeout=60)
        assert sbx.get_info().state.value == "running"
    finally:
        release.set()
        holder.join(timeout=30)
        thread.stop()
        server.backend.close()
