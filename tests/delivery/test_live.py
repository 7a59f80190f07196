"""The live runner: the real E2B SDK against a real server, wall-clock create to first command."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.delivery import Burst, Rate, run_on_server
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

KEY = "e2b_delivery_live_test_000000000000000000"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, SimBackend]]:
    backend = SimBackend.default(seed=2, replicas=3, nodes=2)
    thread = ServerThread(create_app(backend, Settings(api_keys=[ApiKey(KEY)]))).start()
    yield thread.url, backend
    thread.stop()
    backend.close()


def test_a_burst_measures_create_to_first_command(server: tuple[str, SimBackend]) -> None:
    url, backend = server
    result = run_on_server(Burst(2), url=url, api_key=KEY)
    assert result.clock == "wall" and result.target == url
    assert len(result.delivered) == 2
    for d in result.deliveries:
        assert 0 < d.phases["created"] <= d.phases["first_command"] == d.latency
        assert d.warm == (d.latency is not None and d.latency <= 1.0)
    for d in result.deliveries:  # measured, then killed
        assert d.sandbox_id is not None
        route = backend.route(d.sandbox_id)
        assert route is None or route.state == "dead"


def test_a_failed_create_is_a_failed_delivery(server: tuple[str, SimBackend]) -> None:
    url, _ = server
    result = run_on_server(Burst(1), url=url, api_key="e2b_wrong_key_0000000000000000000000")
    assert len(result.failed) == 1
    assert "AuthenticationException" in (result.failed[0].error or "")


def test_only_the_e2b_path_exists_against_a_server(server: tuple[str, SimBackend]) -> None:
    url, _ = server
    with pytest.raises(ValueError, match="path: only 'e2b' can be measured"):
        run_on_server(Rate(1, 1, path="sandboxclaim"), url=url, api_key=KEY)


def test_a_workload_with_no_arrivals_sends_nothing(server: tuple[str, SimBackend]) -> None:
    """A short Poisson window may hold no arrival at all: an empty result, not a crash."""
    url, _ = server
    workload = Rate(0.1, 1, arrivals_mode="poisson")
    assert workload.arrivals(random.Random(0)) == []
    result = run_on_server(workload, url=url, api_key=KEY, seed=0)
    assert result.deliveries == ()
