"""JSON nested too deeply: measured before any parser recurses, refused in each route's own shape.

The server behaviour is checked on a real ``kruise-agents serve`` process over
HTTP on 127.0.0.1: a parser that recursed without a limit crashed the whole
process (SIGSEGV), which must never take the test run down with it.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from pytest_kruise_agents.e2b import admin, control
from pytest_kruise_agents.e2b.nesting import (
    GO_JSON_DEPTH,
    MAX_JSON_DEPTH,
    depth_over,
    json_depth,
    yaml_depth,
    yaml_depth_over,
)

from .conftest import pool_yaml
from .test_serve import serve_command, write_config

USER_KEY = "e2b_nesting_user_00000000000000000000000000001"
ADMIN_KEY = "e2b_nesting_admin_0000000000000000000000000002"

DEEP = 100_000
"""A depth far past every limit: 100 KB of ``[``, which crashed protobuf-py's parser."""


def nested(depth: int) -> bytes:
    """A JSON array nested ``depth`` levels deep (closed: valid JSON)."""
    return b"[" * depth + b"]" * depth


def block_yaml(depth: int, indent: int = 0) -> str:
    """Block mappings nested ``depth`` levels deep by indentation alone, ``indent`` spaces in."""
    return "".join(" " * (indent + 2 * i) + "a:\n" for i in range(depth - 1)) + (
        " " * (indent + 2 * (depth - 1)) + "a: 1\n"
    )


# --------------------------------------------------------------------------- the measure


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b'"[[["', 0),
        (b"[]", 1),
        (b'{"a": [{}, [1, 2]], "b": {}}', 3),
        (nested(5000), 5000),
        (b"[" * DEEP, DEEP),  # unclosed: as deep as a parser would go before failing
    ],
)
def test_json_depth_is_the_deepest_nesting_of_arrays_and_objects(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize(
    "body",
    [
        b'["[[[", "\\"[[[", "\\\\", "{{"]',  # escaped quotes and backslashes end no string early
        b'["\\u0022[[["]',  # an escaped quote is still inside the string
    ],
)
def test_brackets_inside_strings_nest_nothing(body: bytes) -> None:
    assert json_depth(body) == 1


def test_an_unclosed_string_runs_to_the_end_of_the_body() -> None:
    assert json_depth(b'[["abc[[[[[') == 2
    assert json_depth(b'[["abc\\') == 2


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_json_in_another_unicode_encoding_is_measured_as_its_text(encoding: str) -> None:
    """``json.loads`` reads UTF-16 and UTF-32 bytes too: so does the measure."""
    # Characters whose UTF-16 or UTF-32 bytes hold a '"' and a '[' (U+5B22, U+225B) or two
    # '[' (U+5B5B): read as bytes, the quotes pair otherwise and the brackets count.
    text = '{"a": [[["\u5b22\u5b5b\u225b"]]]}'
    assert json_depth(text.encode(encoding)) == 4


def test_depth_over_names_only_a_depth_past_the_limit() -> None:
    assert depth_over(nested(MAX_JSON_DEPTH)) is None
    assert depth_over(nested(MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1
    assert depth_over(b"[" * DEEP) == DEEP
    # Many brackets, none deep: measured, and passed.
    assert depth_over(b"[" + b"[]," * 10_000 + b"[]]") is None
    # Objects alone nest as deep as arrays.
    objects = b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1)
    assert depth_over(objects) == MAX_JSON_DEPTH + 1


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("a: 1", 1),
        ("a: [1, {b: 2}]", 3),
        ("- - - x", 3),  # compact block sequences
        ("a:\n  b:\n    c: 1\n", 3),  # indentation
        ("x: &a [[[1]]]\ny: [[*a]]\n", 6),  # an alias is as deep as its node, where it stands
        ("x: &a [[[1]], 2]\ny: [[*a]]\n", 6),  # its node's deepest child counts, not its last
        ("a: 1\n---\n- [[1]]\n", 3),  # the deepest document
        ("a: [[[ oops", 4),  # no YAML: as deep as it parses
    ],
)
def test_yaml_depth_is_the_deepest_nesting_of_sequences_and_mappings(text: str, depth: int) -> None:
    assert yaml_depth(text) == depth


def test_yaml_depth_over_names_only_a_depth_past_the_limit() -> None:
    assert yaml_depth_over(block_yaml(MAX_JSON_DEPTH)) is None
    assert yaml_depth_over(block_yaml(MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1
    # Brackets and dashes in strings and comments nest nothing.
    assert yaml_depth_over("a: '" + "[" * 500 + "'  # " + "{" * 500 + "\nb: " + "-" * 500) is None
    # Explicit keys ("? k") open mappings with no ":" at all.
    assert yaml_depth_over("? " * (MAX_JSON_DEPTH + 1) + "x") == MAX_JSON_DEPTH + 1


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    """A running ``kruise-agents serve`` and one sandbox of it."""

    proc: subprocess.Popen[str]
    url: str
    sandbox: dict[str, Any]

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a server that died answering it fails the test naming its exit code."""
        try:
            return httpx.request(method, self.url + path, timeout=60, **kwargs)
        except httpx.TransportError as exc:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            pytest.fail(f"no answer ({exc!r}); the server's exit code: {code}")

    def envd(self, port: int = 49983, headers: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers of sandbox traffic to ``port`` (envd by default) with the access token,
        and ``headers``."""
        return {
            "E2b-Sandbox-Id": self.sandbox["sandboxID"],
            "E2b-Sandbox-Port": str(port),
            "X-Access-Token": self.sandbox["envdAccessToken"],
            **(headers or {}),
        }


def _api_url(proc: subprocess.Popen[str], log: Path) -> str:
    """The ``E2B_API_URL`` a starting ``serve`` prints, read until it serves."""
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        url = line.strip().removeprefix("export E2B_API_URL=") if "E2B_API_URL=" in line else url
        if line.startswith("# fake sandboxes run code on this host"):
            return url
    pytest.fail(f"serve exited early ({proc.wait()}): {log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One virtual-clock server for the module, with a sandbox created from pool ``base``.

    Its log goes to a file, not a pipe nobody reads while the tests run (a
    full pipe would block the server), and must hold no traceback at the end.
    """
    tmp = tmp_path_factory.mktemp("nesting")
    config = write_config(
        tmp,
        seed=4,
        nodes=1,
        sandboxsets=[pool_yaml("base", 2)],
        apiKeys=[
            {"key": USER_KEY, "id": "user", "team": "default"},
            {"key": ADMIN_KEY, "id": "root", "admin": True},
        ],
    )
    log = tmp / "server.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            serve_command(config, "--clock", "virtual"),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as proc,
    ):
        try:
            url = _api_url(proc, log)
            created = httpx.post(
                url + "/v2/sandboxes",
                headers={"X-API-Key": USER_KEY},
                json={"templateID": "base"},
                timeout=60,
            )
            assert created.status_code == 201, created.text
            yield Server(proc=proc, url=url, sandbox=created.json())
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    errors = log.read_text()
    assert proc.returncode in (0, 130), errors
    assert "Traceback" not in errors


@pytest.fixture
def alive(server: Server) -> Iterator[Server]:
    """The server, checked to be still serving after the test."""
    yield server
    assert server.proc.poll() is None, f"the server died (exit code {server.proc.returncode})"
    assert server.call("GET", "/health").text == "OK"


# --------------------------------------------------------------------------- envd RPCs


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"[" * DEEP, id="a top-level array"),
        pytest.param(b'{"path": ' + b"[" * DEEP, id="in a known field"),
        pytest.param(b'{"zz": ' + nested(DEEP) + b"}", id="in an unknown field"),
    ],
)
def test_an_envd_rpc_refuses_a_message_nested_too_deeply_as_invalid_argument(
    alive: Server, message: bytes
) -> None:
    r = alive.call(
        "POST",
        "/filesystem.Filesystem/Stat",
        headers=alive.envd(headers={"Content-Type": "application/json"}),
        content=message,
    )

    assert r.status_code == 400
    assert r.json()["code"] == "invalid_argument"
    assert r.json()["message"].startswith("invalid StatRequest message: nested too deeply: ")


def test_an_envd_stream_refuses_a_message_nested_too_deeply_at_its_end(alive: Server) -> None:
    message = b"[" * DEEP
    r = alive.call(
        "POST",
        "/process.Process/Start",
        headers=alive.envd(
            headers={"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
        ),
        content=b"\x00" + struct.pack(">I", len(message)) + message,
    )

    assert r.status_code == 200  # Connect streams answer errors in their end-of-stream message
    flags, length = struct.unpack(">BI", r.content[:5])
    assert flags & 0x02, "an end-of-stream message"
    error = httpx.Response(200, content=r.content[5 : 5 + length]).json()["error"]
    assert error["code"] == "invalid_argument"
    assert "nested too deeply" in error["message"]


def test_an_envd_rpc_reads_a_message_nested_as_deep_as_the_limit(alive: Server) -> None:
    message = b'{"path": "/", "zz": ' + nested(MAX_JSON_DEPTH - 1) + b"}"
    r = alive.call(
        "POST",
        "/filesystem.Filesystem/Stat",
        headers=alive.envd(headers={"Content-Type": "application/json"}),
        content=message,
    )

    assert r.status_code == 200, r.text
    assert r.json()["entry"]["path"] == "/"


# --------------------------------------------------------------------------- control plane, admin


def _control_calls(sid: str) -> list[tuple[str, str, bytes]]:
    """``(method, path, body prefix)`` of every control-plane and admin route that reads a body.

    The body is the prefix, then a deeply nested value, then ``}``: a valid body
    but for its depth (Go's decoder ignores the unknown key ``x``; the apply
    reads a ``List`` by its ``items``). ``/pause`` reads no body (see
    :func:`test_every_route_that_reads_a_body_is_bounded`).
    """
    return [
        ("POST", "/v2/sandboxes", b'{"templateID": "base", "x": '),
        ("POST", "/sandboxes", b'{"templateID": "base", "x": '),
        ("POST", f"/kruise/api/v2/sandboxes/{sid}/connect", b'{"timeout": 100, "x": '),
        ("POST", f"/sandboxes/{sid}/connect", b'{"timeout": 100, "x": '),
        ("POST", f"/sandboxes/{sid}/timeout", b'{"timeout": 100, "x": '),
        ("POST", f"/sandboxes/{sid}/resume", b'{"x": '),
        ("POST", "/_kruise/apply", b'{"apiVersion": "v1", "kind": "List", "items": [], "x": '),
        ("POST", "/_kruise/clock/advance", b'{"seconds": 0, "x": '),
        ("POST", "/_kruise/faults", b'{"kind": "pod_kill", "x": '),
        ("PUT", "/_kruise/latency/image.pull", b'{"value": '),
    ]


READS_NO_BODY = {("POST", "/sandboxes/{sandboxID}/pause")}
"""Routes taking a ``POST`` or ``PUT`` that ignore its body, as upstream's handler does."""


def test_every_route_that_reads_a_body_is_bounded() -> None:
    """Each ``POST``/``PUT``/``PATCH`` route is measured below, or reads no body at all.

    (The routes under ``/kruise/api`` are the same routes.)
    """
    measured = {(m, p.removeprefix("/kruise/api")) for m, p, _ in _control_calls("{sandboxID}")}
    for route in [*control.router.routes, *admin.router.routes]:
        assert isinstance(route, APIRoute)
        for method in (route.methods or set()) & {"POST", "PUT", "PATCH"}:
            if (method, route.path) in READS_NO_BODY:
                assert route.body_field is None, route.path
            else:
                assert (method, route.path.replace("{name}", "image.pull")) in measured, (
                    f"{method} {route.path} reads a body no test here measures"
                )


CONTROL_ROUTES = [f"{m} {p.replace('{sid}', 'ID')}" for m, p, _ in _control_calls("{sid}")]


def _control_call(server: Server, index: int, value: bytes) -> httpx.Response:
    method, path, prefix = _control_calls(server.sandbox["sandboxID"])[index]
    key = ADMIN_KEY if path.startswith("/_kruise/") else USER_KEY
    return server.call(method, path, headers={"X-API-Key": key}, content=prefix + value + b"}")


def _state(server: Server) -> tuple[Any, ...]:
    """What a refused call must leave as it was: the sandboxes, faults, latencies and clock."""
    user, admin = {"X-API-Key": USER_KEY}, {"X-API-Key": ADMIN_KEY}
    return (
        server.call("GET", "/v2/sandboxes", headers=user).json(),
        server.call("GET", "/_kruise/faults", headers=admin).json(),
        server.call("GET", "/_kruise/latency/image.pull", headers=admin).json(),
        server.call("GET", "/_kruise/clock", headers=admin).json()["now"],
        server.call("GET", "/_kruise/resources/sbs", headers=admin).json(),
        server.call("GET", "/_kruise/resources/pods", headers=admin).json(),
    )


@pytest.mark.parametrize("index", range(len(CONTROL_ROUTES)), ids=CONTROL_ROUTES)
def test_a_control_plane_body_nested_past_the_limit_answers_400_naming_body(
    alive: Server, index: int
) -> None:
    """Also where upstream answers a bad body 500 (create, ``/timeout``, ``/resume``):
    upstream's decoder reads this body, so it is not malformed, only past this server's limit."""
    before = _state(alive)

    r = _control_call(alive, index, nested(600))

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"
    assert r.json()["message"] == (
        "body: nested too deeply: 601 levels of arrays and objects, "
        f"more than the {MAX_JSON_DEPTH} this server reads"
    )
    assert _state(alive) == before


@pytest.mark.parametrize("index", range(len(CONTROL_ROUTES)), ids=CONTROL_ROUTES)
def test_a_control_plane_body_deeper_than_go_decodes_is_malformed_json(
    alive: Server, index: int
) -> None:
    """Past 10,000 levels Go's decoder fails: the route answers as for any malformed body."""
    r = _control_call(alive, index, b"[" * DEEP)

    _, path, _ = _control_calls("ID")[index]
    upstream_500 = path in ("/v2/sandboxes", "/sandboxes") or path.endswith(("timeout", "resume"))
    assert r.status_code == (500 if upstream_500 else 400), r.text
    assert r.json()["field"] == "body"
    assert r.json()["message"] == "body: malformed JSON: exceeded max depth (10000 levels)"


def test_a_body_as_deep_as_go_decodes_is_past_this_servers_limit_not_malformed(
    alive: Server,
) -> None:
    """Go's decoder reads 10,000 levels: such a create body is the 400 naming ``body``,
    not the 500 upstream answers a body its decoder fails on."""
    r = alive.call(
        "POST", "/v2/sandboxes", headers={"X-API-Key": USER_KEY}, content=b"[" * GO_JSON_DEPTH
    )

    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"body: nested too deeply: {GO_JSON_DEPTH} levels")


def test_a_create_body_nested_as_deep_as_the_limit_is_read(alive: Server) -> None:
    r = alive.call(
        "POST",
        "/v2/sandboxes",
        headers={"X-API-Key": USER_KEY},
        content=b'{"templateID": "base", "x": ' + nested(MAX_JSON_DEPTH - 1) + b"}",
    )

    assert r.status_code == 201, r.text
    alive.call("DELETE", f"/sandboxes/{r.json()['sandboxID']}", headers={"X-API-Key": USER_KEY})


# --------------------------------------------------------------------------- envd /init, interpreter


@pytest.mark.parametrize("depth", [600, DEEP])
def test_envd_init_refuses_a_body_nested_too_deeply_with_400(alive: Server, depth: int) -> None:
    r = alive.call(
        "POST",
        "/init",
        headers=alive.envd(headers={"Content-Type": "application/json"}),
        content=b'{"envVars": {"A": "1"}, "x": ' + nested(depth) + b"}",
    )

    assert r.status_code == 400, r.text
    assert r.json() == {
        "code": 400,
        "message": f"/init body: nested too deeply: {depth + 1} levels of arrays and objects, "
        f"more than the {MAX_JSON_DEPTH} this server reads",
    }


def test_envd_init_reads_a_body_nested_as_deep_as_the_limit(alive: Server) -> None:
    r = alive.call(
        "POST",
        "/init",
        headers=alive.envd(headers={"Content-Type": "application/json"}),
        content=b'{"x": ' + nested(MAX_JSON_DEPTH - 1) + b"}",
    )

    assert r.status_code == 204, r.text


@pytest.mark.parametrize("route", ["/execute", "/contexts"])
@pytest.mark.parametrize("depth", [600, DEEP])
def test_the_code_interpreter_refuses_a_body_nested_too_deeply_with_400(
    alive: Server, route: str, depth: int
) -> None:
    r = alive.call(
        "POST",
        route,
        headers=alive.envd(49999, headers={"Content-Type": "application/json"}),
        content=b'{"code": "1", "x": ' + nested(depth) + b"}",
    )

    assert r.status_code == 400, r.text
    assert r.json() == {
        "code": 400,
        "message": f"body: nested too deeply: {depth + 1} levels of arrays and objects, "
        f"more than the {MAX_JSON_DEPTH} this server reads",
    }


# --------------------------------------------------------------------------- the admin apply


POOL = {
    "apiVersion": "agents.kruise.io/v1alpha1",
    "kind": "SandboxSet",
    "metadata": {"name": "deep", "namespace": "default"},
    "spec": {
        "replicas": 1,
        "template": {"spec": {"containers": [{"name": "c", "image": "registry.example.com/x:v1"}]}},
    },
}

POD_USER = """\
apiVersion: v1
kind: Pod
metadata: {name: deep, namespace: default}
spec:
  containers: [{name: c, image: "registry.example.com/x:v1"}]
status:
  containerStatuses:
  - name: c
    user:
"""
"""A Pod whose container status ``user`` (kept as written) is its 5th level."""


def _pool_in_arrays(depth: int) -> bytes:
    """The SandboxSet ``deep`` (6 levels) wrapped in arrays: ``depth`` levels in all."""
    return b"[" * (depth - 6) + json.dumps(POOL).encode() + b"]" * (depth - 6)


def _pod_user_nested(depth: int) -> str:
    """The Pod ``deep`` with its ``user`` nested to ``depth`` levels in all, in block YAML."""
    return POD_USER + block_yaml(depth - 4, indent=6)


APPLY_TOO_DEEP = [
    pytest.param(_pool_in_arrays(250), 250, id="json in 244 arrays"),
    pytest.param(_pool_in_arrays(900), 900, id="json in 894 arrays"),
    pytest.param(b"[" * 201 + b"]" * 201, 201, id="json empty arrays"),
    pytest.param(_pod_user_nested(300).encode(), 300, id="yaml indentation"),
    pytest.param(
        (POD_USER + "      a: " + "[" * 250 + "1" + "]" * 250 + "\n").encode(),
        255,
        id="yaml flow",
    ),
    pytest.param(
        (
            POD_USER
            + "      x: &x "
            + "[" * 100
            + "1"
            + "]" * 100
            + "\n      y: "
            + "[" * 100
            + "*x"
            + "]" * 100
            + "\n"
        ).encode(),
        205,
        id="yaml aliases",
    ),
]


@pytest.mark.parametrize(("body", "depth"), APPLY_TOO_DEEP)
def test_an_applied_manifest_nested_past_the_limit_answers_400_naming_body(
    alive: Server, body: bytes, depth: int
) -> None:
    """JSON or YAML alike: the apply reads its body itself, and measures it as it reads it.

    A SandboxSet wrapped in 244 arrays was applied, and a Pod 300 levels deep
    in YAML answered a 500 (pydantic serialises 255 levels at most).
    """
    before = _state(alive)

    r = alive.call("POST", "/_kruise/apply", headers={"X-API-Key": ADMIN_KEY}, content=body)

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"
    assert r.json()["message"] == (
        f"body: nested too deeply: {depth} levels of arrays and objects, "
        f"more than the {MAX_JSON_DEPTH} this server reads"
    )
    assert _state(alive) == before


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        pytest.param(_pool_in_arrays(MAX_JSON_DEPTH), "sbs", id="json"),
        pytest.param(_pod_user_nested(MAX_JSON_DEPTH).encode(), "pods", id="yaml"),
    ],
)
def test_a_manifest_nested_as_deep_as_the_limit_is_applied(
    alive: Server, body: bytes, kind: str
) -> None:
    admin_key = {"X-API-Key": ADMIN_KEY}

    r = alive.call("POST", "/_kruise/apply", headers=admin_key, content=body)

    assert r.status_code == 200, r.text
    assert [item["metadata"]["name"] for item in r.json()["items"]] == ["deep"]
    alive.call("DELETE", f"/_kruise/resources/{kind}/default/deep", headers=admin_key)
