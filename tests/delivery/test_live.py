"""The live runner: the real E2B SDK against a real server, wall-clock create to first command."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.delivery import Burst, Rate, run_on_server
from pytest_kruise_agents.delivery.live import MAX_DEADLINE_S
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

KEY = "e2b_delivery_live_test_000000000000000000"

DOMAIN = "bench.localhost"
"""The sandboxes' domain in the per-sandbox-host tests: the SDK's resolver sends ``*.localhost`` to loopback."""

OTHER_DOMAIN = "other.localhost"
"""A sandbox domain given as ``domain=``, in place of the one read from the API's URL."""


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


def test_a_server_on_loopback_is_measured_past_a_proxy_in_the_environment(
    server: tuple[str, SimBackend], dead_proxy: str
) -> None:
    """Behind a proxy (``HTTP_PROXY``) the SDK would send every call to it, and no proxy
    reaches this host's loopback: every claim failed. In a process of its own, as the SDK
    reads the proxy variables once per process."""
    url, _ = server
    code = (
        "import os, sys\n"
        "from pytest_kruise_agents.delivery import Burst, run_on_server\n"
        "url, key = sys.argv[1:]\n"
        "result = run_on_server(Burst(2), url=url, api_key=key, sandbox_url=url)\n"
        "print(len(result.delivered), [d.error for d in result.failed])\n"
        "print(os.environ.get('NO_PROXY'), os.environ.get('no_proxy'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, url, KEY], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The variables are as they were once the run is over.
    assert proc.stdout == "2 []\nNone None\n"


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
    """A CA and a certificate for ``*.bench.localhost`` and ``*.other.localhost`` signed by it."""
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
        f"subjectAltName=DNS:*.{DOMAIN},DNS:*.{OTHER_DOMAIN}\nextendedKeyUsage=serverAuth\n",
        encoding="utf-8",
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
domain = sys.argv[3] if len(sys.argv) > 3 else None
result = run_on_server(Burst(2), url=sys.argv[1], api_key=sys.argv[2], domain=domain, deadline_s=20)
print(json.dumps([[d.sandbox_id, d.error] for d in result.deliveries]))
"""


def _run_client(
    url: str, ca: Path, domain: str | None = None, debug: bool = False
) -> list[list[str | None]]:
    """``run_on_server(Burst(2), url=url, domain=domain)`` with the SDK unconfigured but for
    trusting ``ca`` (and ``E2B_DEBUG=true`` if ``debug``).

    In a process of its own: the SDK's HTTP pools (and the trusted certificates
    they read from ``SSL_CERT_FILE``) are made once per process.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env["SSL_CERT_FILE"] = str(ca)
    if debug:
        env["E2B_DEBUG"] = "true"
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, url, KEY, *([domain] if domain else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out: list[list[str | None]] = json.loads(done.stdout)
    return out


@pytest.mark.parametrize(
    ("named", "given", "debug"),
    [(True, False, False), (False, False, False), (False, True, False), (True, False, True)],
    ids=["domain-from-the-server", "domain-from-the-url", "domain-given", "E2B_DEBUG-set"],
)
def test_sandboxes_are_reached_at_their_own_hosts(
    certificates: dict[str, Path], named: bool, given: bool, debug: bool
) -> None:
    """Without ``sandbox_url``, sandbox traffic goes to ``https://49983-<id>.<domain>`` as
    the SDK sends it to E2B cloud: the domain the create response names, else ``domain=``,
    else the API's host without ``api.``. ``E2B_DEBUG`` in the environment changes nothing
    (the SDK would send sandbox traffic to ``localhost:49983``)."""
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
        domain = f"{OTHER_DOMAIN}:{thread.port}" if given else None
        deliveries = _run_client(f"https://{api_host}", certificates["ca"], domain, debug)
    finally:
        thread.stop()
        backend.close()
    assert [error for _, error in deliveries] == [None, None]
    sandbox_domain = OTHER_DOMAIN if given else DOMAIN
    own_hosts = {f"49983-{sbx}.{sandbox_domain}:{thread.port}" for sbx, _ in deliveries}
    assert set(app.hosts) == {api_host} | own_hosts


# -- the schedule sent, the deadline, bad arguments ------------------------------------------

_SCHEDULE_CLIENT = """
import json, sys, threading


class Importers:
    # Notes which thread imports each module of the e2b package; finds nothing itself.
    def __init__(self):
        self.threads = set()

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "e2b":
            self.threads.add(threading.current_thread().name)
        return None


importers = Importers()
sys.meta_path.insert(0, importers)
from pytest_kruise_agents.delivery import Rate, run_on_server
result = run_on_server(Rate(10, 2), url=sys.argv[1], api_key=sys.argv[2], sandbox_url=sys.argv[1])
print(json.dumps({
    "requested": [d.requested for d in result.deliveries],
    "importers": sorted(importers.threads),
}))
"""


def test_a_rate_is_sent_on_its_schedule_from_a_fresh_process(
    server: tuple[str, SimBackend],
) -> None:
    """The SDK is imported before the clock starts: in a process that has not imported it
    yet, the claims due during that import were held by it and all sent at once when it
    ended (a rate of one every 0.1 s was sent as a burst after 1-2 s).

    Checked at its cause, whatever the machine's load: no claim's thread imports the SDK,
    and no claim is sent before its time. (How late a thread the machine keeps waiting
    sends its claim is no property of the run: a bound of 0.5 s failed under load.)"""
    url, _ = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    done = subprocess.run(
        [sys.executable, "-c", _SCHEDULE_CLIENT, url, KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout)
    sent: list[float] = seen["requested"]
    asked = Rate(10, 2).arrivals()
    assert len(sent) == len(asked) == 20
    # Imported by the run's own thread before its clock started, not by a claim's.
    assert seen["importers"] == ["MainThread"], seen["importers"]
    late = [round(s - a, 3) for s, a in zip(sent, asked, strict=True)]
    assert min(late) >= 0, late  # none sent before its time


class Slow:
    """ASGI middleware: holds every HTTP request (the API's and the sandboxes') ``delay_s`` first."""

    def __init__(self, app: ASGIApp, delay_s: float) -> None:
        self.app = app
        self.delay_s = delay_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)


def test_a_first_command_done_after_the_deadline_is_a_failed_claim() -> None:
    """``deadline_s`` bounds the whole claim, create and command: a command that succeeds only
    after it does not make a delivery (the command gets the time left, not a deadline of
    its own: the create's 0.6 s and the command's 0.6 s made a delivery in 1.2 s)."""
    backend = SimBackend.default(seed=2, replicas=2, nodes=1)
    app = Slow(create_app(backend, Settings(api_keys=[ApiKey(KEY)])), 0.6)
    thread = ServerThread(app).start()
    try:
        started = time.monotonic()
        result = run_on_server(
            Burst(1), url=thread.url, api_key=KEY, sandbox_url=thread.url, deadline_s=1.0
        )
        took = time.monotonic() - started
    finally:
        thread.stop()
        backend.close()
    assert len(result.failed) == 1, result.describe()
    assert "within 1s" in (result.failed[0].error or "")
    assert took < 10


class FailCommands:
    """ASGI middleware: answers the first ``count`` commands started in a sandbox with a 502."""

    def __init__(self, app: ASGIApp, count: int) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the command's own RPC: after a 502 the SDK also asks envd's /health.
        if scope["type"] == "http" and self.count > 0 and scope["path"] == "/process.Process/Start":
            self.count -= 1
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"bad gateway"})
            return
        await self.app(scope, receive, send)


def test_a_first_command_that_fails_is_tried_again_and_counted_as_a_retry() -> None:
    backend = SimBackend.default(seed=2, replicas=2, nodes=1)
    thread = ServerThread(
        FailCommands(create_app(backend, Settings(api_keys=[ApiKey(KEY)])), 2)
    ).start()
    try:
        result = run_on_server(Burst(1), url=thread.url, api_key=KEY, sandbox_url=thread.url)
    finally:
        thread.stop()
        backend.close()
    assert [(d.delivered, d.retries) for d in result.deliveries] == [(True, 2)]


def test_each_claims_phases_count_from_its_own_create_and_kill_false_keeps_the_sandboxes() -> None:
    """A rate's later claims too: ``created`` and ``first_command`` are seconds after that
    claim's create, not after the run's start. ``kill=False`` leaves each sandbox running,
    and ``name=`` labels the result."""
    backend = SimBackend.default(seed=2, replicas=3, nodes=1)
    thread = ServerThread(create_app(backend, Settings(api_keys=[ApiKey(KEY)]))).start()
    try:
        result = run_on_server(
            Rate(4, 0.75),
            url=thread.url,
            api_key=KEY,
            sandbox_url=thread.url,
            kill=False,
            name="kept",
        )
        running = _running(thread.url)
    finally:
        thread.stop()
        backend.close()
    assert result.name == "kept"
    assert len(result.delivered) == 3, result.describe()
    assert result.deliveries[-1].requested >= 0.5
    for d in result.deliveries:
        assert 0 < d.phases["created"] <= d.phases["first_command"] == d.latency
    ids = [d.sandbox_id for d in result.deliveries if d.sandbox_id is not None]
    assert len(ids) == len(result.deliveries)  # every claim was delivered a sandbox
    assert sorted(running) == sorted(ids)


def test_poisson_arrivals_are_drawn_from_the_seed(server: tuple[str, SimBackend]) -> None:
    """``seed`` draws the arrivals: as many claims as its draw has, none sent before its
    drawn time. (How late a claim is sent is the machine's to say, the more so with the
    server in the test's own process: a bound of 0.5 s failed under load. The known cause
    of late sends, the SDK's import, is checked in the fresh-process test above.)"""
    url, _ = server
    rate = Rate(4, 1, arrivals_mode="poisson")
    drawn = rate.arrivals(random.Random(1))
    assert (len(drawn), len(rate.arrivals(random.Random(0)))) == (4, 3)  # the seed matters
    result = run_on_server(rate, url=url, api_key=KEY, sandbox_url=url, seed=1)
    assert len(result.deliveries) == 4
    requested = [d.requested for d in result.deliveries]
    assert all(sent >= at - 1e-9 for sent, at in zip(requested, drawn, strict=True)), (
        requested,
        drawn,
    )


class HoldSandboxTraffic:
    """ASGI middleware: holds each request to a sandbox (named by ``E2b-Sandbox-Id``) until
    :attr:`released`; when the ``count``-th is held, sends this process a SIGINT (a Ctrl-C)."""

    def __init__(self, app: ASGIApp, count: int) -> None:
        self.app = app
        self.count = count
        self.held = 0
        self.released = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(k == b"e2b-sandbox-id" for k, _ in scope["headers"]):
            self.held += 1
            if self.held == self.count:
                signal.raise_signal(signal.SIGINT)
            while not self.released.is_set():
                await asyncio.sleep(0.01)
        await self.app(scope, receive, send)


def _running(url: str) -> list[str]:
    """The ids of the running sandboxes of :data:`KEY`'s team on the server at ``url``."""
    resp = httpx.get(url + "/v2/sandboxes", headers={"X-API-Key": KEY}, timeout=30)
    resp.raise_for_status()
    return [item["sandboxID"] for item in resp.json()]


@pytest.mark.usefixtures("python_sigint_handler")
def test_ctrl_c_stops_the_run_at_once_and_kills_the_sandboxes_it_created() -> None:
    """A Ctrl-C while every claim waits for its first command (the server holds them): the
    interrupt is raised at once, not when the claims give up at ``deadline_s``, and the
    sandboxes created are killed before it is."""
    backend = SimBackend.default(seed=2, replicas=2, nodes=1)
    held = HoldSandboxTraffic(create_app(backend, Settings(api_keys=[ApiKey(KEY)])), count=2)
    thread = ServerThread(held).start()
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_on_server(
                Burst(2), url=thread.url, api_key=KEY, sandbox_url=thread.url, deadline_s=60
            )
        took = time.monotonic() - started
        assert took < 20
        assert held.held == 2
        assert _running(thread.url) == []
    finally:
        held.released.set()
        thread.stop()
        backend.close()


@pytest.mark.parametrize(
    "url", ["", "127.0.0.1:8080", "//127.0.0.1:8080", "ftp://example.com", "http://", 5]
)
def test_a_url_that_is_not_an_http_url_is_refused_up_front(url: object) -> None:
    """An empty ``url`` would make the SDK fall back to E2B's cloud with the caller's key; one
    without a scheme would fail each claim. Neither is sent."""
    with pytest.raises((ValueError, TypeError), match="url: must be an http:// or https:// URL"):
        run_on_server(Burst(1), url=url, api_key=KEY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sandbox_url: must be an http:// or https:// URL"):
        run_on_server(Burst(1), url="http://127.0.0.1:1", api_key=KEY, sandbox_url="localhost:1")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1", "url: not a URL (Invalid IPv6 URL)"),
        ("http://localhost:abc", "url: not a URL (Port could not be cast"),
        ("http://localhost:99999", "url: not a URL (Port out of range"),
        ("http://local host", "url: must be an http:// or https:// URL with a host"),
    ],
)
def test_a_url_that_could_only_fail_once_sent_is_refused_naming_url(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        run_on_server(Burst(1), url=url, api_key=KEY)


@pytest.mark.parametrize(
    ("deadline", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (-1.0, ValueError),
        (0, ValueError),
        (True, TypeError),
        ("2", TypeError),
    ],
)
def test_a_bad_deadline_is_refused_before_anything_is_sent(
    server: tuple[str, SimBackend], deadline: object, error: type[Exception]
) -> None:
    url, backend = server
    before = len(backend.records())
    with pytest.raises(error, match="deadline_s: must be a positive finite number of seconds"):
        run_on_server(Burst(1), url=url, api_key=KEY, sandbox_url=url, deadline_s=deadline)  # type: ignore[arg-type]
    assert len(backend.records()) == before


@pytest.mark.parametrize("deadline", [9_999_999.9999, 1e7, 1e9, 1e300])
def test_a_deadline_the_sdk_cannot_send_is_refused_naming_deadline_s(
    server: tuple[str, SimBackend], deadline: float
) -> None:
    """The SDK sends each try's time left as ``Connect-Timeout-Ms``, which holds at most 10
    digits: a deadline of 1e7 s or more would have every command refused and retried until the
    deadline (31 years for ``1e9``), the cause never shown."""
    url, backend = server
    before = len(backend.records())
    with pytest.raises(ValueError, match=r"^deadline_s: must be at most 9999999 seconds \("):
        run_on_server(Burst(1), url=url, api_key=KEY, sandbox_url=url, deadline_s=deadline)
    assert len(backend.records()) == before


def test_the_longest_deadline_the_sdk_can_send_delivers(server: tuple[str, SimBackend]) -> None:
    url, _ = server
    result = run_on_server(
        Burst(1), url=url, api_key=KEY, sandbox_url=url, deadline_s=MAX_DEADLINE_S
    )
    assert len(result.delivered) == 1, result.describe()


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        ({"api_key": 5}, TypeError, "api_key: must be a str, got 5"),
        ({"api_key": None}, TypeError, "api_key: must be a str, got None"),
        ({"api_key": b"k"}, TypeError, "api_key: must be a str, got b'k'"),
        ({"api_key": ""}, ValueError, "api_key: must not be empty"),
        ({"domain": 5}, TypeError, "domain: must be a str, got 5"),
        ({"domain": ""}, ValueError, "domain: must not be empty"),
    ],
)
def test_an_api_key_or_domain_that_cannot_be_sent_is_refused_naming_it(
    server: tuple[str, SimBackend],
    monkeypatch: pytest.MonkeyPatch,
    given: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    """Checked before anything is sent: a key of another type failed every claim with the
    SDK's ``Header value must be str or bytes``, and an empty key or domain was silently
    replaced by the SDK's (``E2B_API_KEY``, ``E2B_DOMAIN``)."""
    monkeypatch.setenv("E2B_API_KEY", KEY)
    url, backend = server
    before = len(backend.records())
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        run_on_server(Burst(1), url=url, **{"api_key": KEY, "sandbox_url": url, **given})  # type: ignore[arg-type]
    assert len(backend.records()) == before


@pytest.mark.parametrize("name", [5, b"run"])
def test_a_name_that_is_not_text_is_refused_before_anything_is_sent(
    server: tuple[str, SimBackend], name: object
) -> None:
    """``name`` labels the result and its report files: checked up front, not after the run."""
    url, backend = server
    before = len(backend.records())
    with pytest.raises(TypeError, match=r"^name: must be a str, got "):
        run_on_server(Burst(1), url=url, api_key=KEY, sandbox_url=url, name=name)  # type: ignore[arg-type]
    assert len(backend.records()) == before


def test_a_workload_of_the_wrong_kind_is_refused(server: tuple[str, SimBackend]) -> None:
    url, _ = server
    with pytest.raises(TypeError, match="workload: must be a Burst or a Rate"):
        run_on_server("burst", url=url, api_key=KEY)  # type: ignore[arg-type]
