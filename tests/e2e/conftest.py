"""One real server per module: the fake cluster behind the E2B app on uvicorn, on 127.0.0.1.

Tests talk to it with the unmodified SDKs, configured the way a user would:
``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY`` in the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

ALICE_KEY = "e2b_alice_0000000000000000000000000000000000000a"
BOB_KEY = "e2b_bob_00000000000000000000000000000000000000b"
ADMIN_KEY = "e2b_admin_000000000000000000000000000000000000"


@dataclass
class Server:
    """A running server and its backend."""

    url: str
    backend: SimBackend

    def admin(self, method: str, path: str, json: object = None) -> httpx.Response:
        """Call the admin API with the admin key (and ``json`` as the body, if given)."""
        return httpx.request(
            method, self.url + path, headers={"X-API-Key": ADMIN_KEY}, timeout=30, json=json
        )

    def advance(self, seconds: float) -> None:
        """Move the cluster's virtual clock through the admin API."""
        r = self.admin("POST", "/_kruise/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text


def start_server(backend: SimBackend) -> tuple[ServerThread, Server]:
    """Serve ``backend`` with keys for alice, bob (both team ``default``) and an admin."""
    settings = Settings(
        api_keys=[
            ApiKey(key=ALICE_KEY, team="default", id="alice"),
            ApiKey(key=BOB_KEY, team="default", id="bob"),
            ApiKey(key=ADMIN_KEY, admin=True, id="admin"),
        ]
    )
    thread = ServerThread(create_app(backend, settings)).start()
    return thread, Server(url=thread.url, backend=backend)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    backend = SimBackend.default(seed=11, replicas=8)
    thread, srv = start_server(backend)
    try:
        yield srv
    finally:
        thread.stop()
        backend.close()


@pytest.fixture
def e2b_env(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The environment a user exports to point the SDK at the server."""
    monkeypatch.setenv("E2B_API_URL", server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.setenv("E2B_API_KEY", ALICE_KEY)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    return server
