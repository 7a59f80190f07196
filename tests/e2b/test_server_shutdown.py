"""A server stopping with requests still open: each answers JSON, none is logged as a crash."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from e2b import Sandbox
from e2b_code_interpreter import Sandbox as CodeSandbox

from pytest_kruise_agents.backends import Caller, CreateRequest, SimBackend
from pytest_kruise_agents.e2b.server import GRACEFUL_SHUTDOWN_S

from ..threads import in_thread
from .conftest import ALICE, Served, serve

NO_STOCK_WAIT = {
    "e2b.agents.kruise.io/create-on-no-stock": "false",
    "e2b.agents.kruise.io/claim-timeout-seconds": "600",
}


@contextmanager
def uvicorn_errors() -> Iterator[list[logging.LogRecord]]:
    """The records uvicorn's error logger writes meanwhile (it does not propagate to the root)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.ERROR)
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _empty_realtime_backend() -> SimBackend:
    """A realtime cluster whose pool ``base`` is empty and stays so (pods never start)."""
    backend = SimBackend.default(seed=4, replicas=1, clock="realtime")
    backend.create_sandbox(Caller("default", "alice"), CreateRequest("base"))
    backend.inject("pod_start_failure", selector={"template": "base"})
    return backend


def _waiting_creates(served: Served, want: int) -> None:
    """Return once ``want`` claims have started (they now wait for stock)."""
    deadline = time.monotonic() + 30
    while len(served.admin("GET", "/records").json()) < want + 1:  # +1: the one that emptied it
        assert time.monotonic() < deadline, "the creates never started"
        time.sleep(0.05)


def test_a_request_cut_by_the_shutdown_answers_json_and_logs_no_traceback(
    tmp_path: Path,
) -> None:
    """docs/server.md: every error is JSON; a stop logs uvicorn's "Cancel N running task(s)".

    Requests still open after the graceful period are cancelled by uvicorn;
    one that has not started its answer is answered 503 ``the server is
    shutting down``, not to be retried (the SDK reports that, not a JSON
    decode error), and no "Exception in ASGI application" traceback is logged.
    """
    backend = _empty_realtime_backend()
    thread, served = serve(tmp_path, backend=backend)
    body = {"templateID": "base", "metadata": NO_STOCK_WAIT}
    raw, raw_outcome = in_thread(
        lambda: httpx.post(
            served.url + "/v2/sandboxes", json=body, headers={"X-API-Key": ALICE}, timeout=30
        )
    )
    sdk, sdk_outcome = in_thread(
        lambda: Sandbox.create("base", metadata=NO_STOCK_WAIT, request_timeout=30, **served.sdk())
    )
    try:
        _waiting_creates(served, 2)
        with uvicorn_errors() as errors:
            thread.stop(timeout=GRACEFUL_SHUTDOWN_S + 10)
            raw.join(timeout=10)
            sdk.join(timeout=10)
    finally:
        backend.close()
    response = raw_outcome[0]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 503
    assert response.json()["message"] == "the server is shutting down"
    assert response.headers["should-retry"] == "false"  # nobody will be there to answer
    error = sdk_outcome[0]
    assert isinstance(error, Exception) and "the server is shutting down" in str(error), error
    messages = [r.getMessage() for r in errors]
    assert not any("Exception in ASGI application" in m for m in messages), messages
    assert [m for m in messages if m.startswith("Cancel ")] == [
        "Cancel 2 running task(s), timeout graceful shutdown exceeded"
    ]


def test_a_run_code_cut_by_the_shutdown_raises_the_sdks_transport_error(tmp_path: Path) -> None:
    """docs/server.md, Exit codes: a ``run_code`` still running when the grace ends is cut
    as a stop cuts it, and no error is logged for the cut. The SDK words a cut as "the
    sandbox was killed" only when its health probe then finds the sandbox gone; a server
    that stopped accepting cannot answer the probe, so the SDK raises the transport's error."""
    thread, served = serve(tmp_path)
    sbx = CodeSandbox.create(**served.sdk())
    started: list[bool] = []
    running, outcome = in_thread(
        lambda: sbx.run_code(
            "import time\nprint('started', flush=True)\ntime.sleep(60)",
            on_stdout=lambda _: started.append(True),
        )
    )
    try:
        deadline = time.monotonic() + 30
        while not started:
            assert time.monotonic() < deadline, "the code never started"
            time.sleep(0.05)
        with uvicorn_errors() as errors:
            thread.stop(timeout=GRACEFUL_SHUTDOWN_S + 10)
            running.join(timeout=10)
    finally:
        served.backend.close()
    error = outcome[0]
    assert isinstance(error, httpx.RemoteProtocolError), error
    assert "killed" not in str(error)
    messages = [r.getMessage() for r in errors]
    assert messages == ["Cancel 1 running task(s), timeout graceful shutdown exceeded"], messages
