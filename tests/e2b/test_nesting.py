"""JSON nested too deeply: measured before any parser recurses, refused in each route's own shape.

The server behaviour is checked on a real ``kruise-agents serve`` process over
HTTP on 127.0.0.1: a parser that recursed without a limit crashed the whole
process (SIGSEGV), which must never take the test run down with it.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pytest_kruise_agents.e2b.nesting import MAX_JSON_DEPTH, depth_over, json_depth

from .conftest import pool_yaml
from .test_serve import read_exports, serve_command, stop, write_config

USER_KEY = "e2b_nesting_user_00000000000000000000000000001"
ADMIN_KEY = "e2b_nesting_admin_0000000000000000000000000002"

DEEP = 100_000
"""A depth far past every limit: 100 KB of ``[``, which crashed protobuf-py's parser."""


def nested(depth: int) -> bytes:
    """A JSON array nested ``depth`` levels deep (closed: valid JSON)."""
    return b"[" * depth + b"]" * depth


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
    text = '{"a": [[["\u5b5b"]]]}'  # a character whose UTF-16 bytes are two "["
    assert json_depth(text.encode(encoding)) == 4


def test_depth_over_names_only_a_depth_past_the_limit() -> None:
    assert depth_over(nested(MAX_JSON_DEPTH)) is None
    assert depth_over(nested(MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1
    assert depth_over(b"[" * DEEP) == DEEP
    # Many brackets, none deep: measured, and passed.
    assert depth_over(b"[" + b"[]," * 10_000 + b"[]]") is None


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

    def envd(self, port: int = 49983, **headers: str) -> dict[str, str]:
        """The headers of sandbox traffic to ``port`` (envd by default) with the access token."""
        return {
            "E2b-Sandbox-Id": self.sandbox["sandboxID"],
            "E2b-Sandbox-Port": str(port),
            "X-Access-Token": self.sandbox["envdAccessToken"],
            **headers,
        }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One virtual-clock server for the module, with a sandbox created from pool ``base``."""
    config = write_config(
        tmp_path_factory.mktemp("nesting"),
        seed=4,
        nodes=1,
        sandboxsets=[pool_yaml("base", 2)],
        apiKeys=[
            {"key": USER_KEY, "id": "user", "team": "default"},
            {"key": ADMIN_KEY, "id": "root", "admin": True},
        ],
    )
    with subprocess.Popen(
        serve_command(config, "--clock", "virtual"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            url = read_exports(proc)["E2B_API_URL"]
            created = httpx.post(
                url + "/v2/sandboxes",
                headers={"X-API-Key": USER_KEY},
                json={"templateID": "base"},
                timeout=60,
            )
            assert created.status_code == 201, created.text
            yield Server(proc=proc, url=url, sandbox=created.json())
        finally:
            errors = stop(proc)
    assert proc.returncode in (0, 130), errors


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
        headers=alive.envd(**{"Content-Type": "application/json"}),
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
            **{"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
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
        headers=alive.envd(**{"Content-Type": "application/json"}),
        content=message,
    )

    assert r.status_code == 200, r.text
    assert r.json()["entry"]["path"] == "/"
