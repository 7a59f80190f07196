"""Every error is JSON ``{code, message}``: auth, tenancy, bad bodies, unknown routes, limits."""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException, SandboxNotFoundException
from fastapi.routing import APIRoute

from pytest_kruise_agents.backends import Caller, SimBackend
from pytest_kruise_agents.e2b import admin, control, unserved
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

from .conftest import ADMIN, ALICE, BOB, CAROL, Served, answer, eventually, pool_yaml, serve


def assert_error(r: httpx.Response, code: int) -> dict[str, Any]:
    assert r.status_code == code, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["request_id"], str)
    return body


# --------------------------------------------------------------------------- auth and tenancy


@pytest.mark.parametrize("key", [None, "", "e2b_not_a_key"])
def test_a_missing_or_bad_key_is_401_invalid_api_key(server: Served, key: str | None) -> None:
    headers = {"X-API-Key": key} if key is not None else {}

    for method, path in [("POST", "/v2/sandboxes"), ("GET", "/v2/sandboxes")]:
        r = server.request(method, path, key=None, headers=headers, json={"templateID": "base"})
        body = assert_error(r, 401)
        assert body["message"] == "Invalid API Key"


def test_the_sdk_raises_authentication_errors(server: Served) -> None:
    with pytest.raises(AuthenticationException):
        Sandbox.create(template="base", **server.sdk("e2b_wrong"))


def test_another_keys_sandbox_is_not_found(server: Served) -> None:
    sid = Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id

    for key in (BOB, CAROL):
        with pytest.raises(SandboxNotFoundException):
            Sandbox.get_info(sid, **server.sdk(key))
        assert Sandbox.kill(sid, **server.sdk(key)) is False
        with pytest.raises(SandboxNotFoundException):
            Sandbox.set_timeout(sid, 60, **server.sdk(key))
        with pytest.raises(SandboxNotFoundException):
            Sandbox.pause(sid, **server.sdk(key))
        with pytest.raises(SandboxNotFoundException):
            Sandbox.connect(sid, **server.sdk(key))
        body = assert_error(server.request("GET", f"/sandboxes/{sid}", key=key), 404)
        assert sid in body["message"]

    assert Sandbox.get_info(sid, **server.sdk(ALICE)).state.value == "running"


def test_auth_disabled_makes_every_caller_the_admin_team(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=5, replicas=2)
    thread, served = serve(tmp_path, backend=backend, settings=Settings(auth_enabled=False))
    try:
        r = served.request("POST", "/v2/sandboxes", key=None, json={"templateID": "base"})
        assert r.status_code == 201, r.text
        listed = served.request("GET", "/v2/sandboxes", key="anything at all")
        assert [s["sandboxID"] for s in listed.json()] == [r.json()["sandboxID"]]
    finally:
        thread.stop()
        backend.close()


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("path", ["/v2/sandboxes", "/sandboxes", "/kruise/api/v2/sandboxes"])
@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[1, 2]", b'"base"'],
    ids=["malformed", "empty", "array", "string"],
)
def test_an_unreadable_create_body_is_500_as_upstream(
    server: Served, path: str, content: bytes
) -> None:
    r = server.request("POST", path, content=content, headers={"content-type": "application/json"})

    body = assert_error(r, 500)
    assert body["field"] == "body"
    assert server.admin("GET", "/records").json() == []  # nothing was claimed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"templateID": 7}, "templateID"),
        ({"templateID": "base", "timeout": "300"}, "timeout"),
        ({"templateID": "base", "metadata": {"k": 1}}, "metadata.k"),
        ({"templateID": "base", "envVars": ["A=1"]}, "envVars"),
        ({"templateID": "base", "volumeMounts": [{"name": "v"}]}, "volumeMounts.0.path"),
        ({"timeout": 60}, "templateID"),
    ],
)
def test_wrong_types_in_create_are_400_naming_the_field(
    server: Served, body: dict[str, Any], field: str
) -> None:
    r = server.request("POST", "/v2/sandboxes", json=body)

    err = assert_error(r, 400)
    assert err["field"] == field
    assert err["message"].startswith(f"{field}: ")


def test_a_bad_timeout_body_is_500_as_upstream(server: Served) -> None:
    sid = Sandbox.create(template="base", **server.sdk()).sandbox_id
    path = f"/sandboxes/{sid}/timeout"

    assert_error(server.request("POST", path, content=b"{oops"), 500)
    err = assert_error(server.request("POST", path, json={"timeout": "soon"}), 500)
    assert err["message"].startswith("timeout: ")
    assert_error(server.request("POST", path, json={"timeout": -1}), 500)


def test_a_malformed_connect_body_is_400(server: Served) -> None:
    sid = Sandbox.create(template="base", **server.sdk()).sandbox_id

    r = server.request(
        "POST",
        f"/v2/sandboxes/{sid}/connect",
        content=b"{oops",
        headers={"content-type": "application/json"},
    )

    assert_error(r, 400)


def test_an_oversized_body_is_413(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=5, replicas=1)
    settings = Settings(api_keys=[ApiKey(key=ALICE, id="alice")], max_body_bytes=1000)
    thread, served = serve(tmp_path, backend=backend, settings=settings)
    try:
        big = {"templateID": "base", "metadata": {"k": "x" * 2000}}
        declared = served.request("POST", "/v2/sandboxes", json=big)

        def chunks() -> Any:
            yield b'{"templateID": "base", "metadata": {"k": "'
            for _ in range(10):
                yield b"x" * 200
            yield b'"}}'

        streamed = served.request("POST", "/v2/sandboxes", content=chunks())

        for r in (declared, streamed):
            error = assert_error(r, 413)
            assert "larger than the limit of 1000 bytes" in error["message"]
            assert error["field"] == "body"
            # The rest of the body is never read: the connection cannot carry another request.
            assert r.headers["connection"] == "close"
        assert served.backend.records() == []
    finally:
        thread.stop()
        backend.close()


def test_a_body_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    """The limit is the largest body accepted: one byte more is the 413 above."""
    backend = SimBackend.default(seed=5, replicas=1)
    settings = Settings(api_keys=[ApiKey(key=ALICE, id="alice")], max_body_bytes=1000)
    thread, served = serve(tmp_path, backend=backend, settings=settings)
    try:
        head, tail = b'{"templateID": "base", "metadata": {"k": "', b'"}}'
        body = head + b"x" * (1000 - len(head) - len(tail)) + tail
        assert len(body) == 1000

        declared = served.request("POST", "/v2/sandboxes", content=body)
        streamed = served.request("POST", "/v2/sandboxes", content=iter([body[:500], body[500:]]))

        for r in (declared, streamed):
            assert r.status_code == 201, r.text
    finally:
        thread.stop()
        backend.close()


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/json"],
    ids=["none", "form (curl -d)", "text", "json"],
)
def test_a_json_body_is_read_as_json_whatever_its_content_type_says(
    server: Served, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = server.request("POST", "/v2/sandboxes", content=b'{"templateID": "base"}', headers=headers)
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- routes


def test_an_unknown_route_is_404_json(server: Served) -> None:
    body = assert_error(server.request("GET", "/no/such/route"), 404)
    assert body["message"] == "no route GET /no/such/route"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/sandboxes/"),
        ("POST", "/v2/sandboxes/"),
        ("GET", "/templates/"),
        ("GET", "/kruise/api/v2/sandboxes/"),
    ],
)
def test_a_trailing_slash_is_an_unknown_route_not_a_redirect(
    server: Served, method: str, path: str
) -> None:
    """``/sandboxes/`` is no route: a JSON 404, not an empty 307 (the SDK follows no redirect)."""
    body = assert_error(server.request(method, path), 404)
    assert body["message"] == f"no route {method} {path}"


def test_a_wrong_method_is_405_json(server: Served) -> None:
    body = assert_error(server.request("PUT", "/v2/sandboxes"), 405)
    assert "PUT" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/sandboxes/default--base-x", "GET, DELETE"),
        ("POST", "/sandboxes/default--base-x", "GET, DELETE"),
        ("OPTIONS", "/sandboxes/default--base-x", "GET, DELETE"),
        ("PATCH", "/kruise/api/sandboxes/default--base-x", "GET, DELETE"),
        ("DELETE", "/v2/sandboxes", "GET, POST"),
        ("DELETE", "/kruise/api/v2/sandboxes", "GET, POST"),
        ("PUT", "/sandboxes", "GET, POST"),
        ("GET", "/sandboxes/default--base-x/timeout", "POST"),
        ("PUT", "/_kruise/faults", "GET, POST, DELETE"),
        ("POST", "/health", "GET"),
    ],
)
def test_a_405_allows_every_method_of_the_resource(
    server: Served, method: str, path: str, allow: str
) -> None:
    """RFC 9110 §15.5.6: ``Allow`` lists every method the resource supports, not only
    those of the first route that matched the path."""
    r = server.request(method, path)

    assert_error(r, 405)
    assert r.headers["allow"] == allow


def _route_methods() -> dict[str, set[str]]:
    """Every control-plane and admin path template with the methods routes declare for it."""
    table: dict[str, set[str]] = {}
    mounts = [("", control.router), (control.CUSTOMIZED_PREFIX, control.router), ("", admin.router)]
    for prefix, router in mounts:
        for route in router.routes:
            if isinstance(route, APIRoute):
                table.setdefault(prefix + route.path, set()).update(route.methods or ())
    # Unserved E2B routes take their methods too (a PATCH of /templates/x answers 501).
    for prefix in ("", control.CUSTOMIZED_PREFIX):
        for first in (True, False):
            for route in unserved.routes(prefix, first=first):
                if route.path in table:
                    table[route.path].update(route.methods or ())
    return table


def test_every_route_answers_405_with_all_of_its_methods(server: Served) -> None:
    for template, methods in _route_methods().items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        wrong = next(m for m in ("PATCH", "PUT", "OPTIONS") if m not in methods)

        r = server.request(wrong, path, key=ADMIN)

        assert r.status_code == 405, (wrong, path, r.text)
        assert set(r.headers["allow"].split(", ")) == methods, (wrong, path)


def test_the_request_id_is_echoed_in_errors(server: Served) -> None:
    r = server.request("GET", "/sandboxes/nope", headers={"X-Request-ID": "req-42"})

    assert assert_error(r, 404)["request_id"] == "req-42"


def test_a_request_id_is_echoed_cut_to_its_first_128_characters(server: Served) -> None:
    """A caller's id is echoed, not stored: one as long as a header may be does not grow
    every error body by as much."""
    rid = "r" * 128 + "s" * 4000
    r = server.request("GET", "/sandboxes/nope", headers={"X-Request-ID": rid})

    assert assert_error(r, 404)["request_id"] == "r" * 128


def test_health_answers_ok(server: Served) -> None:
    r = server.request("GET", "/health", key=None)

    assert r.status_code == 200
    assert r.text == "OK"


def test_templates_list_the_teams_sandboxsets(server: Served) -> None:
    mine = server.request("GET", "/templates").json()
    other = server.request("GET", "/templates", key=CAROL).json()

    assert sorted(t["templateID"] for t in mine) == ["base", "code-interpreter-v1"]
    assert other == []
    base = server.request("GET", "/kruise/api/templates/base").json()
    assert base["buildStatus"] == "ready"
    assert base["builds"][0]["buildID"] == base["buildID"]
    # docs/fidelity.md: a uuid5 build id (the same on every call), no spawns, one build.
    assert {uuid.UUID(t["buildID"]).version for t in mine} == {5}
    Sandbox.create(template="base", **server.sdk())  # spawns are not counted
    again = server.request("GET", "/templates").json()
    assert [t["buildID"] for t in again] == [t["buildID"] for t in mine]
    assert {(t["spawnCount"], t["buildCount"]) for t in [*mine, *again]} == {(0, 1)}
    # The manager's static template envd version (§6.4), not the sandboxes' envd's.
    assert {t["envdVersion"] for t in mine} == {base["envdVersion"]} == {"0.1.1"}
    assert base["builds"][0]["envdVersion"] == "0.1.1"
    # Reference: aliases and names are [the SandboxSet's name].
    assert all(t["aliases"] == t["names"] == [t["templateID"]] for t in [*mine, base])
    assert_error(server.request("GET", "/templates/nope"), 404)


def test_a_template_is_listed_while_a_create_can_find_it(server: Served) -> None:
    """docs/fidelity.md (virtual clock): ``GET /templates`` lists what the manager's cache holds,
    as a create finds it (upstream reads its cache for both, ``HasTemplate``, §5.3): a
    SandboxSet just applied is listed once time moves, and one just deleted until it does."""
    applied = server.admin("POST", "/apply", content=pool_yaml("fresh", 1).encode())
    assert applied.status_code == 200

    listed = [t["templateID"] for t in server.request("GET", "/templates").json()]
    early = server.request("POST", "/sandboxes", json={"templateID": "fresh"})

    assert "fresh" not in listed
    assert server.request("GET", "/templates/fresh").status_code == 404
    assert assert_error(early, 400)["message"] == "Template or Checkpoint not found"
    server.advance(1)
    assert "fresh" in [t["templateID"] for t in server.request("GET", "/templates").json()]
    created = server.request("POST", "/sandboxes", json={"templateID": "fresh"})
    assert created.status_code == 201, created.text

    assert server.admin("DELETE", "/resources/sbs/default/fresh").status_code == 200
    assert server.request("GET", "/templates/fresh").status_code == 200
    server.advance(1)
    assert server.request("GET", "/templates/fresh").status_code == 404
    late = server.request("POST", "/sandboxes", json={"templateID": "fresh"})
    assert assert_error(late, 400)["message"] == "Template or Checkpoint not found"


def test_a_template_being_deleted_has_build_status_deleting(server: Served) -> None:
    """§6.4: a SandboxSet kept by a finalizer after its delete is listed ``deleting``."""
    held = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": "held", "namespace": "default", "finalizers": ["example.com/hold"]},
        "spec": {
            "replicas": 0,
            "template": {"spec": {"containers": [{"name": "main", "image": "python:3.12"}]}},
        },
    }
    assert server.admin("POST", "/apply", content=json.dumps(held).encode()).status_code == 200
    server.advance(1)  # into the manager's cache, which the templates are listed from
    assert server.request("GET", "/templates/held").json()["buildStatus"] == "ready"

    assert server.admin("DELETE", "/resources/sbs/default/held").status_code == 200

    listed = {t["templateID"]: t["buildStatus"] for t in server.request("GET", "/templates").json()}
    assert listed == {"base": "ready", "code-interpreter-v1": "ready", "held": "deleting"}
    assert server.request("GET", "/templates/held").json()["buildStatus"] == "deleting"


# --------------------------------------------------------------------------- domain, schema


def test_the_domain_is_derived_from_the_host(server: Served) -> None:
    native = server.request(
        "POST", "/v2/sandboxes", json={"templateID": "base"}, headers={"Host": "api.fake.test:9"}
    )
    customized = server.request(
        "POST",
        "/kruise/api/v2/sandboxes",
        json={"templateID": "base"},
        headers={"Host": "api.fake.test:9"},
    )

    assert native.json()["domain"] == "fake.test:9"
    assert customized.json()["domain"] == "api.fake.test:9"


def test_a_configured_domain_is_reported(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=5, replicas=1)
    settings = Settings(api_keys=[ApiKey(key=ALICE, id="alice")], domain="sandboxes.test")
    thread, served = serve(tmp_path, backend=backend, settings=settings)
    try:
        sbx = Sandbox.create(template="base", **served.sdk())
        assert sbx.get_info().sandbox_domain == "sandboxes.test"
    finally:
        thread.stop()
        backend.close()


def test_a_domain_configured_empty_is_reported_as_null(tmp_path: Path) -> None:
    """An empty configured domain means none: ``domain`` is null, not ``""`` nor the Host."""
    backend = SimBackend.default(seed=5, replicas=1)
    settings = Settings(api_keys=[ApiKey(key=ALICE, id="alice")], domain="")
    thread, served = serve(tmp_path, backend=backend, settings=settings)
    try:
        r = served.request("POST", "/v2/sandboxes", json={"templateID": "base"})
        assert r.status_code == 201, r.text
        assert r.json()["domain"] is None
    finally:
        thread.stop()
        backend.close()


def test_the_openapi_schema_describes_the_control_plane(server: Served) -> None:
    schema = server.request("GET", "/openapi.json", key=None).json()

    paths = schema["paths"]
    assert set(paths) >= {
        "/sandboxes",
        "/v2/sandboxes",
        "/sandboxes/{sandboxID}",
        "/sandboxes/{sandboxID}/timeout",
        "/sandboxes/{sandboxID}/pause",
        "/sandboxes/{sandboxID}/connect",
        "/v2/sandboxes/{sandboxID}/connect",
        "/templates",
    }
    assert "201" in paths["/v2/sandboxes"]["post"]["responses"]
    assert "204" in paths["/sandboxes/{sandboxID}"]["delete"]["responses"]
    assert {"200", "201", "404"} <= paths["/v2/sandboxes/{sandboxID}/connect"]["post"][
        "responses"
    ].keys()
    assert all("422" not in op["responses"] for p in paths.values() for op in p.values())
    assert "ApiKeyAuth" in schema["components"]["securitySchemes"]
    assert {"Error", "SandboxResponse", "NewSandboxV2"} <= schema["components"]["schemas"].keys()


def test_every_control_route_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()

    for route in control.router.routes:
        assert isinstance(route, APIRoute)
        path = route.path.replace("{sandboxID}", "{id}").replace("{templateID}", "{id}")
        for method in route.methods or ():
            assert f"| {method} | `{path}` |" in doc, f"{method} {route.path}"


def test_an_unexpected_failure_is_a_500_json_and_the_server_lives_on(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=5, replicas=1)
    thread, served = serve(tmp_path, backend=backend)
    try:
        backend.close()  # every backend call now raises RuntimeError

        body = assert_error(served.request("POST", "/v2/sandboxes", json={"templateID": "t"}), 500)
        assert "RuntimeError" in body["message"]
        assert served.request("GET", "/health", key=None).text == "OK"
    finally:
        thread.stop()


def test_a_client_gone_before_its_body_arrived_is_no_server_error(
    server: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A create whose client closes the connection half-way through the body (it gave up, or
    was stopped by a Ctrl-C) is noted at debug level: no "unhandled error" with a traceback."""
    caplog.set_level(logging.DEBUG, logger="pytest_kruise_agents.e2b")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v2/sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + ALICE.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
    eventually(
        lambda: any("client went away" in r.getMessage() for r in caplog.records),
        "the server noticed the client went away",
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert server.request("GET", "/health", key=None).text == "OK"


def test_authentication_is_checked_before_the_body(server: Served) -> None:
    r = server.request(
        "POST",
        "/v2/sandboxes",
        key=None,
        content=b"{oops",
        headers={"content-type": "application/json"},
    )
    admin = server.request("POST", "/_kruise/clock/advance", key=ALICE, json={"seconds": "x"})

    assert assert_error(r, 401)["message"] == "Invalid API Key"
    assert assert_error(admin, 403)["code"] == 403


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/v2/sandboxes", "wrong", b"HTTP/1.1 401 Unauthorized"),
        ("/kruise/api/sandboxes", None, b"HTTP/1.1 401 Unauthorized"),
        ("/sandboxes/sbx-nobody-has/timeout", ALICE, b"HTTP/1.1 404 Not Found"),
        ("/_kruise/clock/advance", ALICE, b"HTTP/1.1 403 Forbidden"),
    ],
)
def test_a_request_expecting_100_continue_is_refused_before_its_body_is_asked_for(
    server: Served, path: str, key: str | None, status: bytes
) -> None:
    """As upstream's auth middleware answers before any handler reads the body: the client
    waiting for ``100 Continue`` gets its error at once and sends no body (it was asked for
    one, up to 1 MiB, to be refused after it)."""
    host, port = server.url.removeprefix("http://").split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
    head += f"X-API-Key: {key}\r\n" if key is not None else ""
    head += "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode())
        sock.settimeout(5)
        assert sock.recv(100).split(b"\r\n")[0] == status  # not "100 Continue"


def test_a_request_expecting_100_continue_with_a_good_key_is_asked_for_its_body(
    server: Served,
) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    body = b'{"templateID": "base"}'
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v2/sandboxes HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-API-Key: "
            + ALICE.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        sock.settimeout(5)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert answer(sock) == b"HTTP/1.1 201 Created"


SANDBOX_REQUESTS = [
    pytest.param("POST", "/sandboxes/{sid}/timeout", {"content": b"{oops"}, id="timeout-malformed"),
    pytest.param("POST", "/sandboxes/{sid}/timeout", {"json": {"timeout": "x"}}, id="timeout-type"),
    pytest.param("POST", "/sandboxes/{sid}/resume", {"content": b"{oops"}, id="resume-malformed"),
    pytest.param("POST", "/sandboxes/{sid}/resume", {"json": {"timeout": "x"}}, id="resume-type"),
    pytest.param("POST", "/sandboxes/{sid}/resume", {"json": {"timeout": -3}}, id="resume-range"),
    pytest.param("POST", "/sandboxes/{sid}/connect", {"json": {}}, id="connect-v1-no-timeout"),
    pytest.param(
        "POST", "/v2/sandboxes/{sid}/connect", {"content": b"{"}, id="connect-v2-malformed"
    ),
    pytest.param("POST", "/sandboxes/{sid}/pause", {"json": {"memory": "x"}}, id="pause-body"),
    pytest.param(
        "POST",
        "/sandboxes/{sid}/pause",
        {"headers": {control.PAUSE_RETENTION_HEADER: "bogus"}},
        id="pause-retention-header",
    ),
    pytest.param(
        "POST", "/kruise/api/sandboxes/{sid}/timeout", {"content": b"{"}, id="customized-timeout"
    ),
    pytest.param("PUT", "/sandboxes/{sid}/network", {"content": b"{oops"}, id="unserved-network"),
]
"""Requests to a sandbox's routes whose body or header is bad, which upstream never reads."""


@pytest.mark.parametrize(("method", "path", "kwargs"), SANDBOX_REQUESTS)
@pytest.mark.parametrize("whose", ["unknown", "another-keys"])
def test_a_sandbox_not_the_callers_is_404_before_the_body_or_header_is_read(
    server: Served, method: str, path: str, kwargs: dict[str, Any], whose: str
) -> None:
    """Upstream's auth middleware checks the route table before any handler reads the request.

    So the answer is the route's 404 whatever the body or header holds: not
    the 500 or 400 a bad body or header of the caller's own sandbox gets.
    """
    sid = Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id
    target = "default--no-such-sandbox" if whose == "unknown" else sid
    extra = dict(kwargs)
    headers = {"content-type": "application/json", **extra.pop("headers", {})}

    r = server.request(method, path.format(sid=target), key=BOB, headers=headers, **extra)

    body = assert_error(r, 404)
    assert body["message"] == f"Sandbox route not found, maybe it is crashed or killed: {target}"
    assert Sandbox.get_info(sid, **server.sdk(ALICE)).state.value == "running"


def test_a_bad_body_or_header_of_the_callers_own_sandbox_is_still_refused(server: Served) -> None:
    """The route check lets the owner through to the body's own error."""
    sid = Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id

    timeout = server.request("POST", f"/sandboxes/{sid}/timeout", content=b"{oops")
    connect = server.request("POST", f"/sandboxes/{sid}/connect", json={})
    pause = server.request(
        "POST", f"/sandboxes/{sid}/pause", headers={control.PAUSE_RETENTION_HEADER: "bogus"}
    )

    assert assert_error(timeout, 500)["field"] == "body"
    assert assert_error(connect, 400)["field"] == "timeout"
    assert assert_error(pause, 400)["field"] == control.PAUSE_RETENTION_HEADER
    assert Sandbox.get_info(sid, **server.sdk(ALICE)).state.value == "running"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{oops", id="malformed"),
        pytest.param(b'{"memory": "false"}', id="wrong-type"),
        pytest.param(b'{"requireHealthyGuest": 1, "memory": []}', id="wrong-types"),
        pytest.param(b"[" * 600 + b"]" * 600, id="nested-600-deep"),
    ],
)
def test_pause_ignores_its_body_as_upstream_reads_none(server: Served, body: bytes) -> None:
    """Reference §6.2: the pause request is only the retention header; the SDK sends ``{}``.

    The sandbox-manager's handler decodes no body, so whatever one holds, the
    sandbox is paused (204), where this server answered 400 naming its field.
    """
    sid = Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id

    r = server.request(
        "POST",
        f"/sandboxes/{sid}/pause",
        content=body,
        headers={"content-type": "application/json"},
    )

    assert r.status_code == 204, r.text
    assert Sandbox.get_info(sid, **server.sdk(ALICE)).state.value == "paused"


def test_an_empty_pause_retention_header_is_taken_as_not_given(server: Served) -> None:
    """An empty retention header is no retention (as Go's ``Header.Get`` reads it): it pauses."""
    sid = Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id

    r = server.request(
        "POST", f"/sandboxes/{sid}/pause", headers={control.PAUSE_RETENTION_HEADER: ""}
    )

    assert r.status_code == 204, r.text
    assert Sandbox.get_info(sid, **server.sdk(ALICE)).state.value == "paused"


def test_auth_disabled_acts_as_the_configured_admin_key(tmp_path: Path) -> None:
    """With auth disabled every caller is the admin team as the first admin key's id."""
    backend = SimBackend.default(seed=5, replicas=2)
    settings = Settings(auth_enabled=False, api_keys=[ApiKey(key="k", id="root", admin=True)])
    thread, served = serve(tmp_path, backend=backend, settings=settings)
    try:
        r = served.request("POST", "/v2/sandboxes", key=None, json={"templateID": "base"})
        assert r.status_code == 201, r.text
        view = backend.describe(Caller(namespace="", user="root"), r.json()["sandboxID"])
        assert view.owner == "root"
    finally:
        thread.stop()
        backend.close()
