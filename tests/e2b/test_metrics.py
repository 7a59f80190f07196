"""``GET /metrics``: the cluster's Prometheus metrics on the server's port, without an API key,
as the sandbox-manager serves them (reference §6.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2b import Sandbox
from prometheus_client import CONTENT_TYPE_LATEST

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.backends.base import ClockMode
from tests.prometheus import Scrape

from .conftest import ALICE, Served, serve

BASE = {"namespace": "default", "template": "base"}


def scrape(served: Served, key: str | None = None) -> Scrape:
    r = served.request("GET", "/metrics", key=key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    return Scrape(r.text)


@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_an_sdk_create_and_kill_show_in_the_counters(tmp_path: Path, clock: ClockMode) -> None:
    backend = SimBackend.default(seed=2, replicas=2, clock=clock)
    thread, served = serve(tmp_path, backend=backend)
    try:
        before = scrape(served)
        assert (
            before.value("sandboxset_available_replicas", namespace="default", sandboxset="base")
            == 2
        )

        sbx = Sandbox.create("base", **served.sdk())
        sbx.kill()

        after = scrape(served)
        assert after.value("sandbox_claim_creation_responses_total", code="201", **BASE) == 1
        assert after.value("sandbox_claim_total", path="e2b", lock_type="update", **BASE) == 1
        assert (
            after.value(
                "sandbox_claim_duration_seconds_count", path="e2b", lock_type="update", **BASE
            )
            == 1
        )
        assert after.value("sandbox_delete_total", namespace="default", result="success") == 1
        assert (
            after.value(
                "sandboxset_sandboxes_claimed_total", namespace="default", sandboxset="base"
            )
            == 1
        )
    finally:
        thread.stop()
        backend.close()


def test_a_refused_create_shows_its_code(server: Served) -> None:
    r = server.request("POST", "/sandboxes", json={"templateID": "nope"})
    assert r.status_code == 400

    s = scrape(server)
    nope = {"namespace": "default", "template": "nope"}
    assert s.value("sandbox_claim_creation_responses_total", code="400", **nope) == 1


@pytest.mark.parametrize("key", [None, ALICE, "not-a-key"])
def test_metrics_need_no_api_key_and_ignore_one(server: Served, key: str | None) -> None:
    """Upstream serves ``/metrics`` outside the E2B routes' auth: Prometheus scrapes without a key."""
    s = scrape(server, key)

    assert s.types["sandbox_claim_duration_seconds"] == "histogram"


def test_metrics_are_served_on_the_native_path_only(server: Served) -> None:
    """Not an E2B route: there is no ``/kruise/api/metrics`` (upstream registers it once)."""
    assert server.request("GET", "/kruise/api/metrics", key=None).status_code == 404
