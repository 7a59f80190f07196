"""Creating sandboxes through the real SDK: warm, cold, no stock, bad templates and extensions."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException, TimeoutException
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.backends import Caller, CreateRequest, SimBackend
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.e2b.workspace import Workspaces
from simulator.cluster import Cluster

from .conftest import ALICE, CAROL, KEYS, Served, answer, eventually, pool_yaml, serve

NO_STOCK_OFF = "e2b.agents.kruise.io/create-on-no-stock"
CLAIM_TIMEOUT = "e2b.agents.kruise.io/claim-timeout-seconds"


def last_record(server: Served) -> dict[str, Any]:
    r = server.admin("GET", "/records")
    assert r.status_code == 200, r.text
    records: list[dict[str, Any]] = r.json()
    return records[-1]


def test_create_takes_a_warm_sandbox_from_the_pool(server: Served) -> None:
    sbx = Sandbox.create(template="base", metadata={"user": "alice"}, **server.sdk())

    assert sbx.sandbox_id.startswith("default--base-")
    info = sbx.get_info()
    assert info.template_id == "base"
    assert info.metadata["user"] == "alice"
    assert info.metadata["e2b.agents.kruise.io/sandbox-resource"].startswith("default/base-")
    assert info.state.value == "running"
    assert (info.end_at - info.started_at).total_seconds() == 300  # the server default
    assert last_record(server)["warm"] is True


def test_return_sandbox_ip_adds_the_pod_ip_to_the_metadata_it_is_answered_with(
    server: Served,
) -> None:
    """``return-sandbox-ip: "true"`` makes every answer's metadata carry
    ``e2b.agents.kruise.io/sandbox-ip``, the pod's IP (reference §5.5), while the request key
    itself, reserved, is never shown; without it no IP is shown."""
    ip_key = "e2b.agents.kruise.io/sandbox-ip"
    sbx = Sandbox.create(
        template="base", metadata={"e2b.agents.kruise.io/return-sandbox-ip": "true"}, **server.sdk()
    )
    name = sbx.sandbox_id.split("--", 1)[1]
    pod_ip = server.backend.cluster.get("pod", name).status.pod_ip
    assert pod_ip
    created = sbx.get_info()
    (listed,) = [
        i for i in Sandbox.list(**server.sdk()).next_items() if i.sandbox_id == sbx.sandbox_id
    ]
    for info in (created, listed):
        assert info.metadata[ip_key] == pod_ip
        assert "e2b.agents.kruise.io/return-sandbox-ip" not in info.metadata
    plain = Sandbox.create(template="base", **server.sdk())
    assert ip_key not in plain.get_info().metadata


def test_cpu_extensions_resize_the_sandbox_in_place(server: Served) -> None:
    """``cpu-request``/``cpu-limit`` resize the warm sandbox's pod before the create answers."""
    sbx = Sandbox.create(
        template="base",
        metadata={
            "e2b.agents.kruise.io/cpu-request": "1500m",
            "e2b.agents.kruise.io/cpu-limit": "4",
        },
        **server.sdk(),
    )

    assert sbx.get_info().cpu_count == 4
    name = sbx.sandbox_id.split("--", 1)[1]
    pod = server.admin("GET", f"/resources/pods/default/{name}").json()
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "1500m"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "4"
    conditions = server.admin("GET", f"/resources/sbx/default/{name}").json()["status"][
        "conditions"
    ]
    assert {"type": "InplaceUpdate", "status": "True", "reason": "Succeeded"}.items() <= next(
        c for c in conditions if c["type"] == "InplaceUpdate"
    ).items()
    assert last_record(server)["warm"] is True


def test_create_answers_201_with_the_fields_the_sdk_needs(server: Served) -> None:
    r = server.request(
        "POST", "/v2/sandboxes", json={"templateID": "base", "metadata": {}, "envVars": {}}
    )

    assert r.status_code == 201, r.text
    body = r.json()
    for field in ("templateID", "sandboxID", "clientID", "envdVersion", "envdAccessToken"):
        assert isinstance(body[field], str), field
    assert body["envdVersion"] == "0.6.13"
    assert body["trafficAccessToken"] is None
    assert body["state"] == "running"
    assert body["domain"] == server.url.removeprefix("http://")


def test_the_v1_route_and_the_customized_prefix_create_too(server: Served) -> None:
    v1 = {"templateID": "base", "timeout": 300, "secure": True, "metadata": {}, "envVars": {}}

    native = server.request("POST", "/sandboxes", json=v1)
    prefixed = server.request("POST", "/kruise/api/sandboxes", json=v1)
    prefixed_v2 = server.request("POST", "/kruise/api/v2/sandboxes", json={"templateID": "base"})

    assert [native.status_code, prefixed.status_code, prefixed_v2.status_code] == [201, 201, 201]
    ids = {r.json()["sandboxID"] for r in (native, prefixed, prefixed_v2)}
    assert len(ids) == 3


def test_the_domain_is_the_host_without_api_natively_and_as_is_under_the_prefix(
    server: Served,
) -> None:
    host = {"Host": "api.sandboxes.example:8080"}
    native = server.request("POST", "/v2/sandboxes", json={"templateID": "base"}, headers=host)
    prefixed = server.request(
        "POST", "/kruise/api/v2/sandboxes", json={"templateID": "base"}, headers=host
    )

    assert native.json()["domain"] == "sandboxes.example:8080"
    assert prefixed.json()["domain"] == "api.sandboxes.example:8080"


def test_create_on_an_empty_pool_creates_a_cold_sandbox(server: Served) -> None:
    server.apply(pool_yaml("empty", 0))

    sbx = Sandbox.create(template="empty", **server.sdk())

    assert sbx.get_info().template_id == "empty"
    record = last_record(server)
    assert record["warm"] is False
    assert record["error"] is None


def test_no_stock_with_create_on_no_stock_off_fails_after_the_claim_timeout(
    server: Served,
) -> None:
    server.apply(pool_yaml("empty", 0))
    before = server.admin("GET", "/clock").json()["now"]

    with pytest.raises(SandboxException) as info:
        Sandbox.create(
            template="empty", metadata={NO_STOCK_OFF: "false", CLAIM_TIMEOUT: "5"}, **server.sdk()
        )

    assert str(info.value).startswith("500: ")
    assert "no stock" in str(info.value)
    record = last_record(server)
    assert record["error_code"] == 500
    assert record["failed"] - record["requested"] == pytest.approx(5, abs=0.5)
    assert server.admin("GET", "/clock").json()["now"] > before


def test_an_unknown_template_is_a_400(server: Served) -> None:
    with pytest.raises(SandboxException) as info:
        Sandbox.create(template="no-such-pool", **server.sdk())
    assert str(info.value) == "400: Template or Checkpoint not found"


def test_a_pool_of_another_namespace_is_not_a_template_of_this_team(server: Served) -> None:
    with pytest.raises(SandboxException) as info:
        Sandbox.create(template="base", **server.sdk(CAROL))
    assert str(info.value).startswith("400: ")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({CLAIM_TIMEOUT: "soon"}, CLAIM_TIMEOUT),
        ({"e2b.agents.kruise.io/never-timeout": "maybe"}, "never-timeout"),
        ({"e2b.agents.kruise.io/sandbox-name": "mine"}, "sandbox-name"),
        ({"agents.kruise.io/owner": "x"}, "agents.kruise.io/owner"),
    ],
)
def test_bad_extension_values_are_400_naming_the_key(
    server: Served, metadata: dict[str, str], expected: str
) -> None:
    before = len(server.admin("GET", "/records").json())

    with pytest.raises(SandboxException) as info:
        Sandbox.create(template="base", metadata=metadata, **server.sdk())

    assert str(info.value).startswith("400: ")
    assert expected in str(info.value)
    pool = server.admin("GET", "/resources/sbs/default/base").json()
    assert pool["status"]["availableReplicas"] == 4  # nothing was claimed
    assert len(server.admin("GET", "/records").json()) <= before + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"templateID": "base", "timeout": "abc"}, "timeout"),
        ({"templateID": "base", "metadata": {"a": 1}}, "metadata.a"),
    ],
)
def test_a_body_that_never_decodes_is_a_400_and_no_claim(
    server: Served, body: dict[str, Any], field: str
) -> None:
    """A wrong-typed field is refused while the body is read, naming it: no claim starts, so
    no record is made (upstream's Go decoder fails such a body before any claim, with a 500;
    docs/fidelity.md). A create the manager refuses has its failed record instead."""
    records = len(server.admin("GET", "/records").json())

    r = server.request("POST", "/sandboxes", json=body)

    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert len(server.admin("GET", "/records").json()) == records


def test_a_timeout_outside_30s_to_30d_is_a_400(server: Served) -> None:
    with pytest.raises(SandboxException) as info:
        Sandbox.create(template="base", timeout=10, **server.sdk())
    assert str(info.value).startswith("400: ")


def test_every_sdk_field_is_accepted(server: Served) -> None:
    body = {
        "templateID": "base",
        "timeout": 600,
        "autoPause": False,
        "autoPauseMemory": True,
        "autoResume": {"enabled": False},
        "allow_internet_access": True,
        "network": {"allowOut": ["1.1.1.1"], "denyOut": [], "dnsServers": ["8.8.8.8"]},
        "metadata": {"label:app": "demo"},
        "envVars": {"A": "1"},
        "mcp": {"servers": {}},
        "iam": {"tokens": {"t": {"audience": "a", "tokenType": "jwt"}}},
        "volumeMounts": [{"name": "vol", "path": "/mnt/data"}],
        "somethingNewer": 1,
    }

    r = server.request("POST", "/v2/sandboxes", json=body)

    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["app"] == "demo"  # label: keys become labels


def test_body_keys_match_the_fields_whatever_their_case(server: Served) -> None:
    """As upstream's Go decoder matches them: a client other than the SDK may send any case."""
    body = {"templateid": "base", "Timeout": 600, "MetaData": {"team": "x"}}

    r = server.request("POST", "/v2/sandboxes", json=body)

    assert r.status_code == 201, r.text
    info = server.request("GET", f"/sandboxes/{r.json()['sandboxID']}").json()
    assert info["metadata"]["team"] == "x"
    started, ended = (datetime.fromisoformat(info[k]) for k in ("startedAt", "endAt"))
    assert (ended - started).total_seconds() == 600


@pytest.mark.parametrize("path", ["/v2/sandboxes", "/sandboxes"])
def test_a_null_field_or_map_value_is_its_zero_value_as_go_decodes_it(
    server: Served, path: str
) -> None:
    """Go's decoder leaves a non-pointer field at its zero value on a JSON ``null`` and stores
    ``""`` for a ``null`` in a ``map[string]string``: upstream takes this body as a claim with
    ``autoPause`` false, an empty ``a`` annotation and an empty ``A`` env var. It answered 400
    ``autoPause: Input should be a valid boolean`` and claimed nothing."""
    body = {
        "templateID": "base",
        "autoPause": None,
        "secure": None,
        "metadata": {"a": None, "b": "x"},
        "envVars": {"A": None},
        "network": {"allowOut": [None, "10.0.0.0/8"]},
    }

    r = server.request("POST", path, json=body)

    assert r.status_code == 201, r.text
    sid = r.json()["sandboxID"]
    info = server.request("GET", f"/sandboxes/{sid}").json()
    assert (info["metadata"]["a"], info["metadata"]["b"]) == ("", "x")
    assert info["lifecycle"]["onTimeout"] == "kill"
    assert info["network"]["allowOut"] == ["", "10.0.0.0/8"]
    route = server.backend.route(sid)
    assert route is not None and route.env_vars["A"] == ""


def test_a_null_timeout_of_a_timeout_change_is_zero_and_out_of_range(server: Served) -> None:
    """``{"timeout": null}`` decodes as 0 upstream, outside 1...max: the range's 500, naming
    the value, as ``{"timeout": 0}`` gets; the sandbox keeps its end."""
    sid = server.request("POST", "/v2/sandboxes", json={"templateID": "base"}).json()["sandboxID"]
    before = server.request("GET", f"/sandboxes/{sid}").json()["endAt"]

    r = server.request("POST", f"/sandboxes/{sid}/timeout", json={"timeout": None})

    assert r.status_code == 500, r.text
    assert r.json()["message"] == "timeout: must be between 1 and 2592000 seconds, got 0"
    assert server.request("GET", f"/sandboxes/{sid}").json()["endAt"] == before


def test_envs_reach_the_sandbox_route(server: Served) -> None:
    sbx = Sandbox.create(template="base", envs={"GREETING": "hi"}, **server.sdk(ALICE))

    route = server.backend.route(sbx.sandbox_id)

    assert route is not None and route.env_vars["GREETING"] == "hi"
    assert route.access_token  # what envd will check as X-Access-Token


@pytest.mark.parametrize(
    ("env_vars", "field", "message"),
    [
        (
            {"A=B": "1"},
            "envVars",
            "envVars: invalid variable name 'A=B': a name must not contain '='",
        ),
        ({"A\0": "1"}, "envVars", "envVars: invalid variable name 'A\\x00'"),
        ({"": "1"}, "envVars", "envVars: invalid variable name '': a name must not be empty"),
        ({"OK": "1", "A": "x\0y"}, "envVars.A", "envVars.A: must not contain a NUL character"),
    ],
)
@pytest.mark.parametrize("path", ["/v2/sandboxes", "/sandboxes", "/kruise/api/v2/sandboxes"])
def test_env_vars_no_process_can_carry_are_a_400_naming_the_key_and_claim_nothing(
    server: Served, path: str, env_vars: dict[str, str], field: str, message: str
) -> None:
    """A NUL cannot reach a process (execve takes C strings; Go's exec refuses it too) and
    ``A=B`` would reach it as ``A`` = ``B=1``: kept, every command and kernel of the sandbox
    would fail. The create refuses them before claiming anything, with the manager's other
    400s (so in their order, and with a failed record as theirs)."""
    records = len(server.admin("GET", "/records").json())

    r = server.request("POST", path, json={"templateID": "base", "envVars": env_vars})

    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(message)
    assert r.json()["field"] == field
    listed = server.admin("GET", "/records").json()
    assert len(listed) == records + 1 and listed[-1]["error_code"] == 400
    assert listed[-1].get("sandbox") is None  # nothing was claimed
    pool = server.admin("GET", "/resources/sbs/default/base").json()
    assert pool["status"]["availableReplicas"] == 4


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"timeout": 5}, "timeout: must be between 30 and 2592000 seconds, got 5"),
        ({"templateID": "nope"}, "Template or Checkpoint not found"),
    ],
    ids=["timeout", "template"],
)
def test_a_bad_env_var_name_is_checked_in_the_managers_order(
    server: Served, body: dict[str, Any], says: str
) -> None:
    """A create with a bad timeout (or template) and a bad env var name answers what the
    in-process create answers: the timeout's (the template's) 400, checked first.

    Before, the HTTP route checked the env vars ahead of everything.
    """
    r = server.request(
        "POST", "/v2/sandboxes", json={"templateID": "base", **body, "envVars": {"A=B": "1"}}
    )
    assert r.status_code == 400 and says in r.json()["message"], r.text


def test_the_sdk_reports_a_bad_env_var_name_at_create(server: Served) -> None:
    with pytest.raises(SandboxException) as info:
        Sandbox.create(template="base", envs={"A=B": "1"}, **server.sdk())

    assert str(info.value).startswith("400: envVars: invalid variable name 'A=B'")


def test_auto_pause_shows_in_the_lifecycle(server: Served) -> None:
    sbx = Sandbox.create(template="base", lifecycle={"on_timeout": "pause"}, **server.sdk())
    plain = Sandbox.create(template="base", **server.sdk())

    assert sbx.get_info().lifecycle == {"on_timeout": "pause", "auto_resume": False}
    assert plain.get_info().lifecycle == {"on_timeout": "kill", "auto_resume": False}


# -- network and volumeMounts: what upstream's detail reports ----------------------------------


def test_the_network_of_the_create_shows_in_the_detail(server: Served) -> None:
    """Upstream reports the create's ``network`` (allowOut, denyOut) in ``GET /sandboxes/{id}``.

    It enforces them with TrafficPolicy objects, which are not modelled: the
    rules are reported, not applied. Fields its model lacks (allowPublicTraffic,
    dnsServers, ...) are dropped, as its Go decoder drops them.
    """
    network: Any = {
        "allow_out": ["1.1.1.1", "example.com"],
        "deny_out": ["0.0.0.0/0"],
        "allow_public_traffic": False,
        "dns_servers": ["8.8.8.8"],
    }
    sbx = Sandbox.create(template="base", network=network, **server.sdk())
    plain = Sandbox.create(template="base", **server.sdk())

    assert sbx.get_info().network == {
        "allow_out": ["1.1.1.1", "example.com"],
        "deny_out": ["0.0.0.0/0"],
    }
    assert plain.get_info().network is None
    raw = server.request("GET", f"/kruise/api/sandboxes/{sbx.sandbox_id}").json()
    assert raw["network"] == {"allowOut": ["1.1.1.1", "example.com"], "denyOut": ["0.0.0.0/0"]}


def test_a_network_without_rules_shows_as_an_empty_one(server: Served) -> None:
    sbx = Sandbox.create(template="base", network={"allow_public_traffic": False}, **server.sdk())

    assert sbx.get_info().network == {}


def test_the_network_is_forgotten_with_its_sandbox(server: Served) -> None:
    sbx = Sandbox.create(template="base", network={"deny_out": ["10.0.0.0/8"]}, **server.sdk())
    assert sbx.sandbox_id in server.app.state.networks

    sbx.kill()

    eventually(lambda: sbx.sandbox_id not in server.app.state.networks, "the network forgotten")


def test_volume_mounts_are_taken_and_not_reported_as_upstream(server: Served) -> None:
    """Upstream turns ``volumeMounts`` into CSI mounts and its Sandbox has no ``volumeMounts``.

    The fake cluster models the mount's time and failures on the claim path;
    the server mounts nothing (docs/server.md).
    """
    sbx = Sandbox.create(template="base", volume_mounts={"/mnt/vol": "shared-vol"}, **server.sdk())

    info = sbx.get_info()
    assert info.volume_mounts == []
    assert "volumeMounts" not in server.request("GET", f"/sandboxes/{sbx.sandbox_id}").json()
    assert last_record(server)["mounted"] is not None  # the CSI mount was modelled


# -- the client going away -------------------------------------------------------------------


def _owned_by(backend: SimBackend, user: str) -> list[str]:
    return [
        o.metadata.name
        for o in backend.list("Sandbox")
        if o.metadata.annotations.get(keys.ANN_OWNER) == user
    ]


@pytest.mark.parametrize("clock", ["realtime", "virtual"])
def test_a_create_whose_client_gives_up_is_cancelled(tmp_path: Path, clock: str) -> None:
    """The SDK's request timeout closes the connection: the claim stops and deletes its sandbox.

    The pool is empty and new pods never pull their image, so the claim
    would go on for about 3,100 s of simulated time. In virtual mode the
    model is held meanwhile by another call (``locked``), as a long admin
    call or a busy server would.
    """
    backend = SimBackend.default(seed=4, replicas=1, clock=clock)  # type: ignore[arg-type]
    backend.create_sandbox(Caller("default", "bob"), CreateRequest("base"))  # the pool is empty
    backend.inject("image_pull_failure", selector={"image": "registry.example.com/e2b/base:v1"})
    thread, served = serve(tmp_path, backend=backend)
    try:
        with contextlib.ExitStack() as stack:
            if clock == "virtual":
                stack.enter_context(backend.locked())
            # The SDK lets its HTTP stack's timeout through for a create.
            with pytest.raises((httpx.TimeoutException, TimeoutException)):
                Sandbox.create(template="base", request_timeout=1.0, **served.sdk())
            if clock == "virtual":
                # Free the model only once the server has seen the client go: the
                # claim would deliver after ~300 s of simulated time, a blink of wall time.
                eventually(lambda: thread.connections == 0, "the server sees the client go")
                assert served.request("GET", "/health").status_code == 200  # a turn of its loop
        eventually(lambda: bool(backend.records()[-1].get("error")), "the claim ends")
        record = backend.records()[-1]
        assert record["owner"] == "alice"
        assert record["error"] == "context canceled", record
        if clock == "virtual":
            backend.advance(5)
        eventually(lambda: _owned_by(backend, "alice") == [], "the claim's sandbox is deleted")
    finally:
        thread.stop()
        backend.close()


def _busy_loop_server(
    tmp_path: Path, backend: SimBackend
) -> tuple[ServerThread, str, threading.Event, threading.Event]:
    """A server whose ``GET /_busy`` holds its event loop until ``release`` is set.

    What a burst of requests answered on the loop does to the ones behind
    them: they are read, and handled, only once the loop is free again.
    ``busy`` is set once the loop is held.
    """
    app = create_app(backend, Settings(api_keys=KEYS), workspaces=Workspaces(tmp_path / "ws"))
    busy, release = threading.Event(), threading.Event()

    async def holding(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_busy":
            busy.set()
            release.wait(timeout=30)  # blocks the loop on purpose
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    thread = ServerThread(holding).start()
    return thread, thread.url, busy, release


@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_a_create_whose_client_left_while_it_waited_is_cancelled(
    tmp_path: Path, clock: str
) -> None:
    """docs/server.md, How a request runs: six creates sent, then their connections closed,
    while the server's loop is busy; handled afterwards, each finds its client gone.

    Their claims stop as upstream's whose request's context is cancelled:
    records ``context canceled``, no sandbox claimed, the warm pool untouched
    (before, on the virtual clock, the four warm ones were claimed for nobody).
    """
    backend = SimBackend.default(seed=3, replicas=4, clock=clock)  # type: ignore[arg-type]
    thread, url, busy, release = _busy_loop_server(tmp_path, backend)
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"templateID": "base", "timeout": 300}).encode()
    request = (
        f"POST /v2/sandboxes HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {ALICE}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection((host, int(port))) as holder:
            holder.sendall(f"GET /_busy HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert busy.wait(timeout=30)
            for _ in range(6):
                with socket.create_connection((host, int(port))) as sock:
                    sock.sendall(request)
            release.set()
            assert answer(holder) == b"HTTP/1.1 204 No Content"

        eventually(lambda: len(backend.records()) == 6, "the six creates reach the model")
        eventually(
            lambda: all(r["error"] or r["delivered"] for r in backend.records()), "the claims end"
        )
        assert [r["error"] for r in backend.records()] == ["context canceled"] * 6
        assert [r["owner"] for r in backend.records()] == ["alice"] * 6
        if clock == "virtual":
            backend.advance(5)
        eventually(lambda: _owned_by(backend, "alice") == [], "nothing is claimed")
        with httpx.Client(base_url=url, headers={"X-API-Key": ALICE}) as client:
            assert client.get("/v2/sandboxes").json() == []
            created = client.post("/v2/sandboxes", json={"templateID": "base"})
        assert created.status_code == 201, created.text
        assert backend.records()[-1]["warm"]  # the pool was left alone
    finally:
        release.set()
        thread.stop()
        backend.close()


def test_a_create_nothing_can_ever_answer_gets_a_json_500_and_is_cancelled(
    tmp_path: Path,
) -> None:
    """Virtual clock: a pool whose image never pulls and a create whose sandbox never times
    out (HEAD: no claim timeout) leave the model with no event that could answer it. The
    server answers the backend's ``NoAnswerError`` (500, naming the create), not an internal
    ``RuntimeError``, and the claim is cancelled: no sandbox stays claimed."""
    backend = SimBackend(Cluster(seed=1, nodes=1))
    thread, served = serve(tmp_path, backend=backend)
    try:
        served.apply(pool_yaml("p", 0).replace("registry.example.com/e2b/p:v1", '"Bad Image"'))
        r = served.request(
            "POST",
            "/v2/sandboxes",
            json={"templateID": "p", "metadata": {"e2b.agents.kruise.io/never-timeout": "true"}},
        )

        assert r.status_code == 500, r.text
        message = r.json()["message"]
        assert message.startswith("create of template 'p': no event is left"), message
        assert "RuntimeError" not in message
        record = last_record(served)
        assert record["error_code"] == 500 and record["delivered"] is None
        with backend.locked() as cluster:
            sandboxes = cluster.list("sbx")
        assert record["sandbox"] is not None  # it had locked one, cleaned up since
        assert [s for s in sandboxes if s.metadata.labels.get(keys.LABEL_SANDBOX_CLAIMED)] == []
    finally:
        thread.stop()
        backend.close()


def test_a_sandbox_without_init_runtime_answers_no_envd_access_token(server: Served) -> None:
    """openkruise-agents.md §6.3: ``skip-init-runtime: "true"`` means no ``/init`` and no
    ``envdAccessToken``: the field is omitted from the create, connect and describe answers."""
    created = server.request(
        "POST",
        "/v2/sandboxes",
        json={"templateID": "base", "metadata": {"e2b.agents.kruise.io/skip-init-runtime": "true"}},
    )
    assert created.status_code == 201, created.text
    sid = created.json()["sandboxID"]
    connected = server.request("POST", f"/v2/sandboxes/{sid}/connect", json={"timeout": 60})
    described = server.request("GET", f"/sandboxes/{sid}")

    assert connected.status_code == 200, connected.text
    for body in (created.json(), connected.json(), described.json()):
        assert "envdAccessToken" not in body
