"""The live runner: the real E2B SDK against a real server, wall-clock create to first command."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.delivery import Burst, Rate, run_on_server
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

KEY = "e2b_delivery_live_test_000000000000000000"

DOMAIN = "bench.localhost"
"""The sandboxes' domain in the per-sandbox-host tests: the SDK's resolver sends ``*.localhost`` to loopback."""


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, SimBackend]]:
    backend = SimBackend.default(seed=2, replicas=3, nodes=2)
    thread = ServerThread(create_app(backend, Settings(api_keys=[ApiKey(KEY)]))).start()
    yield thread.url, backend
    thread.stop()
    backend.close()


def test_a_burst_measures_create_to_first_command(server: tuple[str, SimBackend]) -> None:
    url, backend = server
    result = run_on_server(Burst(2), url=url, api_key=KEY, sandbox_url=url)
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
    result = run_on_server(
        Burst(1), url=url, api_key="e2b_wrong_key_0000000000000000000000", sandbox_url=url
    )
    assert len(result.failed) == 1
    assert "AuthenticationException" in (result.failed[0].error or "")


def test_a_create_that_hangs_fails_at_the_deadline_and_leaves_nothing() -> None:
    """On the wall clock, a pool that cannot fill in time: the claim fails at ``deadline_s``
    (not at the SDK's own request timeout), and the server cancels it, delivering nothing."""
    backend = SimBackend.default(seed=2, replicas=0, nodes=1, clock="realtime")
    backend.set_latency("pod.create", "200s")
    thread = ServerThread(create_app(backend, Settings(api_keys=[ApiKey(KEY)]))).start()
    try:
        started = time.monotonic()
        result = run_on_server(
            Burst(1), url=thread.url, api_key=KEY, sandbox_url=thread.url, deadline_s=2
        )
        took = time.monotonic() - started
        assert len(result.failed) == 1, result.deliveries
        assert took < 20
        # The server cancels what reached it (a create it never saw leaves nothing either).
        assert eventually_true(
            lambda: all(
                r["delivered"] is None and r["error"] == "context canceled"
                for r in backend.records()
            )
        )
    finally:
        thread.stop()
        backend.close()


def eventually_true(check: Callable[[], bool], within: float = 30.0) -> bool:
    """Whether ``check()`` holds within ``within`` wall seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


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


# -- per-sandbox hosts ---------------------------------------------------------------------


def _openssl(cwd: Path, command: str) -> None:
    subprocess.run(["openssl", *command.split()], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a certificate for ``*.bench.localhost`` signed by it (PEM files)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a TLS certificate")
    d = tmp_path_factory.mktemp("tls")
    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    _openssl(
        d,
        f"req -x509 {new_key} -keyout ca.key -out ca.pem -days 2 -subj /CN=delivery-test-ca "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
    )
    _openssl(d, f"req {new_key} -keyout host.key -out host.csr -subj /CN={DOMAIN}")
    (d / "host.ext").write_text(
        f"subjectAltName=DNS:*.{DOMAIN}\nextendedKeyUsage=serverAuth\n", encoding="utf-8"
    )
    _openssl(
        d,
        "x509 -req -in host.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 2 "
        "-extfile host.ext -out host.pem",
    )
    return {"ca": d / "ca.pem", "cert": d / "host.pem", "key": d / "host.key"}


class HostLog:
    """ASGI middleware: notes the ``Host`` of every HTTP request, then passes it on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hosts: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.hosts.append(dict(scope["headers"]).get(b"host", b"").decode())
        await self.app(scope, receive, send)


_CLIENT = """
import json, sys
from pytest_kruise_agents.delivery import Burst, run_on_server
result = run_on_server(Burst(2), url=sys.argv[1], api_key=sys.argv[2], deadline_s=20)
print(json.dumps([[d.sandbox_id, d.error] for d in result.deliveries]))
"""


def _run_client(url: str, ca: Path) -> list[list[str | None]]:
    """``run_on_server(Burst(2), url=url)`` with the SDK unconfigured but for trusting ``ca``.

    In a process of its own: the SDK's HTTP pools (and the trusted certificates
    they read from ``SSL_CERT_FILE``) are made once per process.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env["SSL_CERT_FILE"] = str(ca)
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, url, KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out: list[list[str | None]] = json.loads(done.stdout)
    return out


@pytest.mark.parametrize(
    "named",
    [True, False],
    ids=["domain-from-the-server", "domain-from-the-url"],
)
def test_sandboxes_are_reached_at_their_own_hosts(
    certificates: dict[str, Path], named: bool
) -> None:
    """Without ``sandbox_url``, sandbox traffic goes to ``https://49983-<id>.<domain>`` as
    the SDK sends it to E2B cloud: the domain the create response names, else the
    API's host without ``api.``."""
    backend = SimBackend.default(seed=3, replicas=2, nodes=1)
    # Settings.domain None: the server names the domain of the request's Host; "": none.
    app = HostLog(
        create_app(backend, Settings(api_keys=[ApiKey(KEY)], domain=None if named else ""))
    )
    thread = ServerThread(
        app, ssl_certfile=str(certificates["cert"]), ssl_keyfile=str(certificates["key"])
    ).start()
    try:
        api_host = f"api.{DOMAIN}:{thread.port}"
        deliveries = _run_client(f"https://{api_host}", certificates["ca"])
    finally:
        thread.stop()
        backend.close()
    assert [error for _, error in deliveries] == [None, None]
    own_hosts = {f"49983-{sandbox_id}.{DOMAIN}:{thread.port}" for sandbox_id, _ in deliveries}
    assert set(app.hosts) == {api_host} | own_hosts
