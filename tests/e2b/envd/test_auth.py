"""Specification of envd's authentication: ``X-Access-Token``, signed file URLs, ``/init``, ``/health``, users."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from e2b import AuthenticationException, PtySize

from pytest_kruise_agents.e2b.envd.auth import file_signature
from tests.e2b.conftest import eventually
from tests.e2b.envd.conftest import Envd

TOKEN = "envd-token-123"


@pytest.fixture
def guarded(envd: Envd) -> Envd:
    """``envd`` with sandbox ``sbx-tok`` created with an access token."""
    envd.add("sbx-tok", token=TOKEN, env_vars={"FROM": "route"})
    return envd


def test_with_the_token_everything_works(guarded: Envd) -> None:
    sbx = guarded.sandbox("sbx-tok", token=TOKEN)
    assert sbx.commands.run("echo $FROM").stdout == "route\n"
    sbx.files.write("f.txt", "x")
    assert sbx.files.read("f.txt") == "x"
    assert [e.name for e in sbx.files.list("/home/user")] == ["f.txt"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_wrong_token_is_unauthenticated(guarded: Envd, token: str | None) -> None:
    sbx = guarded.sandbox("sbx-tok", token=token)
    with pytest.raises(AuthenticationException):
        sbx.commands.run("true")
    with pytest.raises(AuthenticationException):
        sbx.commands.list()
    with pytest.raises(AuthenticationException):
        sbx.files.list("/home/user")
    with pytest.raises(AuthenticationException):
        sbx.files.read("f.txt")
    with pytest.raises(AuthenticationException):
        sbx.files.write("f.txt", "x")
    assert not guarded.workspace("sbx-tok").home.exists()


def test_the_rpc_refusal_is_a_connect_error(guarded: Envd) -> None:
    with guarded.http("sbx-tok") as http:
        r = http.post("/process.Process/List", json={})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"


def test_health_needs_no_token(guarded: Envd) -> None:
    assert guarded.sandbox("sbx-tok").is_running()
    with guarded.http("sbx-tok") as http:
        r = http.get("/health")
        assert (r.status_code, r.content) == (204, b"")
        assert http.post("/health").status_code == 405


def test_signed_urls_work_without_the_token_header(guarded: Envd) -> None:
    sbx = guarded.sandbox("sbx-tok", token=TOKEN)
    upload = sbx.upload_url("/home/user/signed.txt", use_signature_expiration=60)
    download = sbx.download_url("/home/user/signed.txt")
    headers = {"E2b-Sandbox-Id": "sbx-tok"}
    r = httpx.post(upload, files={"file": ("signed.txt", b"via url")}, headers=headers)
    assert r.status_code == 200, r.text
    r = httpx.get(download, headers=headers)
    assert (r.status_code, r.content) == (200, b"via url")


def test_a_signature_for_another_path_operation_or_token_is_refused(guarded: Envd) -> None:
    guarded.sandbox("sbx-tok", token=TOKEN).files.write("/home/user/a.txt", "a")
    path = "/home/user/a.txt"
    wrong = [
        {"path": path, "signature": file_signature("/home/user/b.txt", "read", "", TOKEN, None)},
        {"path": path, "signature": file_signature(path, "write", "", TOKEN, None)},
        {"path": path, "signature": file_signature(path, "read", "", "other-token", None)},
        {"path": path, "signature": file_signature(path, "read", "root", TOKEN, None)},
        {"path": path, "signature": "v1_garbage"},
    ]
    with guarded.http("sbx-tok") as http:
        for params in wrong:
            r = http.get("/files", params=params)
            assert r.status_code == 401, params
            assert r.json() == {"code": 401, "message": "invalid file URL signature"}


def test_an_expired_signature_is_refused(guarded: Envd) -> None:
    guarded.sandbox("sbx-tok", token=TOKEN).files.write("/home/user/a.txt", "a")
    path = "/home/user/a.txt"
    past = int(time.time()) - 10
    future = int(time.time()) + 600
    with guarded.http("sbx-tok") as http:
        expired = http.get(
            "/files",
            params={
                "path": path,
                "signature": file_signature(path, "read", "", TOKEN, past),
                "signature_expiration": str(past),
            },
        )
        valid = http.get(
            "/files",
            params={
                "path": path,
                "signature": file_signature(path, "read", "", TOKEN, future),
                "signature_expiration": str(future),
            },
        )
        stretched = http.get(
            "/files",
            params={
                "path": path,
                "signature": file_signature(path, "read", "", TOKEN, past),
                "signature_expiration": str(future),
            },
        )
    assert (expired.status_code, expired.json()["message"]) == (
        401,
        "the file URL signature has expired",
    )
    assert (valid.status_code, valid.content) == (200, b"a")
    assert stretched.status_code == 401


def test_init_stores_env_vars_and_a_token(envd: Envd) -> None:
    with envd.http("sbx-init") as http:
        r = http.post("/init", json={"envVars": {"INIT": "yes"}, "accessToken": "new-token"})
        assert r.status_code == 204
        assert http.post("/process.Process/List", json={}).status_code == 401
    sbx = envd.sandbox("sbx-init", token="new-token")
    assert sbx.commands.run("echo $INIT").stdout == "yes\n"


def test_init_reads_a_lone_surrogate_as_u_fffd(envd: Envd) -> None:
    """``"\\ud800"`` (valid JSON) is stored as U+FFFD, as envd's Go decoder reads it: kept as
    is, no command could start (its environment cannot be encoded)."""
    with envd.http("sbx-odd") as http:
        r = http.post(
            "/init",
            content=b'{"envVars": {"ODD": "a\\ud800", "\\udc00K": "v"}}',
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 204
    assert envd.workspace("sbx-odd").env_vars == {"ODD": "a\ufffd", "\ufffdK": "v"}
    assert envd.sandbox("sbx-odd").commands.run('printf %s "$ODD"').stdout == "a\ufffd"


def test_init_cannot_take_over_a_sandbox_that_has_a_token(guarded: Envd) -> None:
    with guarded.http("sbx-tok") as http:
        stranger = http.post("/init", json={"accessToken": "mine-now"})
        assert stranger.status_code == 401
        owner = http.post(
            "/init",
            json={"accessToken": "rotated", "envVars": {"X": "1"}},
            headers={"X-Access-Token": TOKEN},
        )
        assert owner.status_code == 204
    ws = guarded.workspace("sbx-tok")
    assert (ws.access_token, ws.env_vars) == ("rotated", {"FROM": "route", "X": "1"})


def test_init_that_carries_the_current_token_in_its_body_is_taken(guarded: Envd) -> None:
    """The current token as ``accessToken`` (no header) proves the caller knows it: a
    re-init with it (new env vars, the same token) is taken, as the header would be."""
    with guarded.http("sbx-tok") as http:
        r = http.post("/init", json={"accessToken": TOKEN, "envVars": {"AGAIN": "1"}})
    assert r.status_code == 204, r.text
    ws = guarded.workspace("sbx-tok")
    assert (ws.access_token, ws.env_vars) == (TOKEN, {"FROM": "route", "AGAIN": "1"})


def test_init_with_an_empty_token_and_the_current_one_clears_it(guarded: Envd) -> None:
    """``accessToken: ""`` is a token too: the sandbox then takes requests without one."""
    with guarded.http("sbx-tok") as http:
        r = http.post("/init", json={"accessToken": ""}, headers={"X-Access-Token": TOKEN})
        assert r.status_code == 204, r.text
        assert http.post("/process.Process/List", json={}).status_code == 200
    assert guarded.workspace("sbx-tok").access_token == ""


def test_an_init_body_of_up_to_one_mib_is_read_and_a_larger_one_is_413(envd: Envd) -> None:
    limit = 1024 * 1024
    body = b'{"envVars": {"A": "1"}}'
    with envd.http("sbx-big") as http:
        too_big = http.post("/init", content=body + b" " * (limit + 1 - len(body)))
        assert (too_big.status_code, too_big.json()["code"]) == (413, 413)
        assert envd.workspace("sbx-big").env_vars == {}
        fits = http.post("/init", content=body + b" " * (limit - len(body)))
        assert fits.status_code == 204, fits.text
    assert envd.workspace("sbx-big").env_vars == {"A": "1"}


def test_an_init_whose_client_left_mid_body_is_no_server_error(
    envd: Envd, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes its connection half-way through the ``/init`` body is noted at
    debug level: no "failed" error with a traceback, and the sandbox is unchanged."""
    caplog.set_level(logging.DEBUG, logger="pytest_kruise_agents.e2b")
    host, port = envd.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /init HTTP/1.1\r\nHost: x\r\nE2b-Sandbox-Id: sbx-left\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            b'{"envVars": {"A":'
        )
    eventually(
        lambda: any("client went away" in r.getMessage() for r in caplog.records),
        "envd noticed the client went away",
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert envd.workspace("sbx-left").env_vars == {}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"envVars": {"A": 1}}', "envVars"),
        (b'{"accessToken": 5}', "accessToken"),
    ],
)
def test_a_bad_init_body_is_a_400_and_changes_nothing(envd: Envd, body: bytes, says: str) -> None:
    with envd.http("sbx-bad") as http:
        r = http.post("/init", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == 400 and says in r.json()["message"]
    ws = envd.workspace("sbx-bad")
    assert (ws.env_vars, ws.access_token) == ({}, "")


@pytest.mark.parametrize(
    ("env_vars", "says"),
    [
        ({"A=B": "1"}, "envVars: invalid variable name 'A=B': a name must not contain '='"),
        ({"A\0": "1"}, "envVars: invalid variable name 'A\\x00'"),
        ({"": "1"}, "envVars: invalid variable name '': a name must not be empty"),
        ({"A": "x\0y"}, "envVars.A: must not contain a NUL character"),
    ],
)
def test_init_refuses_env_vars_no_process_can_carry_and_applies_nothing(
    envd: Envd, env_vars: dict[str, str], says: str
) -> None:
    """Stored, they would fail every later command of the sandbox (see the create's check)."""
    with envd.http("sbx-poison") as http:
        r = http.post("/init", json={"envVars": {"GOOD": "1", **env_vars}, "accessToken": "tok"})
    assert r.status_code == 400
    assert r.json()["code"] == 400 and r.json()["message"].startswith(says)
    ws = envd.workspace("sbx-poison")
    assert (ws.env_vars, ws.access_token) == ({}, "")
    assert envd.sandbox("sbx-poison").commands.run("echo ok").stdout == "ok\n"


def test_files_take_the_user_from_the_username_parameter(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.write("mine.txt", "root's", user="root")
    assert (envd.workspace().root / "root" / "mine.txt").read_text() == "root's"
    assert sbx.files.read("/root/mine.txt") == "root's"


def test_an_unknown_user_is_unauthenticated(envd: Envd) -> None:
    sbx = envd.sandbox()
    with pytest.raises(AuthenticationException, match="unknown user"):
        sbx.commands.run("true", user="nobody")
    with pytest.raises(AuthenticationException, match="unknown user"):
        sbx.files.read("x", user="nobody")


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC"])
def test_the_basic_scheme_is_read_whatever_its_case(envd: Envd, scheme: str) -> None:
    """RFC 9110 §11.1: auth schemes are case-insensitive (Go's ``Request.BasicAuth`` too)."""
    with envd.http() as http:
        r = http.post(
            "/process.Process/Start",
            content=_envelope(0, b'{"process": {"cmd": "/bin/sh", "args": ["-c", "echo $USER"]}}'),
            headers={
                "Content-Type": "application/connect+json",
                "Authorization": f"{scheme} " + base64.b64encode(b"root:").decode(),
            },
        )
    assert r.status_code == 200, r.text
    assert b'"stdout":"' + base64.b64encode(b"root\n") + b'"' in r.content


@pytest.mark.parametrize("credentials", ["cm9vdDo=!", "cm9v dDo=", "cm9vdDo"])
def test_basic_credentials_that_are_not_strict_base64_are_unauthenticated(
    envd: Envd, credentials: str
) -> None:
    """Go's ``base64.StdEncoding`` refuses stray characters and missing padding, which a
    lenient decoder would skip (``cm9vdDo=!`` read as ``root:``)."""
    with envd.http() as http:
        r = http.post(
            "/process.Process/List", json={}, headers={"Authorization": f"Basic {credentials}"}
        )
    assert r.status_code == 401, r.text
    assert r.json() == {
        "code": "unauthenticated",
        "message": "Authorization Basic credentials are not valid base64",
    }


def test_refused_uploads_always_reach_the_sdk_as_401(guarded: Envd) -> None:
    # envd refuses from the headers; before DrainBeforeErrorMiddleware about one
    # refusal in 200 reached the SDK as an httpx.ReadError (the hyper client drops
    # a connection answered while it still sends the body).
    sbx = guarded.sandbox("sbx-tok")
    for _ in range(200):
        with pytest.raises(AuthenticationException):
            sbx.files.write("f.txt", "x")
    assert not guarded.workspace("sbx-tok").home.exists()


# -- refusals of streaming calls --------------------------------------------------------------


def _envelope(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


@pytest.mark.parametrize(
    ("path", "message", "authorization", "token", "says"),
    [
        (
            "/process.Process/Start",
            b'{"process": {"cmd": "true"}}',
            "nobody:",
            TOKEN,
            "unknown user",
        ),
        (
            "/filesystem.Filesystem/WatchDir",
            b'{"path": "/home/user"}',
            "nobody:",
            TOKEN,
            "unknown user",
        ),
        (
            "/process.Process/Start",
            b'{"process": {"cmd": "true"}}',
            "user:",
            "wrong",
            "X-Access-Token",
        ),
        ("/process.Process/Connect", b'{"process": {"pid": 1}}', "user:", None, "X-Access-Token"),
    ],
)
@pytest.mark.parametrize("codec", ["json", "proto"])
def test_a_refused_stream_answers_200_and_an_end_of_stream_error(
    guarded: Envd,
    path: str,
    message: bytes,
    authorization: str,
    token: str | None,
    says: str,
    codec: str,
) -> None:
    """Connect sends a stream's error in its end-of-stream message; a streaming client
    (connect-es, under the JS SDK) reads no body of a non-200 stream."""
    media_type = f"application/connect+{codec}"
    body = message if codec == "json" else b""  # an empty proto message: refused before decoding
    headers = {
        "Content-Type": media_type,
        "Connect-Protocol-Version": "1",
        "Authorization": "Basic " + base64.b64encode(authorization.encode()).decode(),
    }
    with guarded.http("sbx-tok", token=token) as http:
        r = http.post(path, content=_envelope(0, body), headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media_type
    flags, length = struct.unpack(">BI", r.content[:5])
    assert (flags, len(r.content)) == (0b10, 5 + length)
    end = json.loads(r.content[5:])
    assert end["error"]["code"] == "unauthenticated"
    assert says in end["error"]["message"]


def test_a_streams_media_type_is_read_whatever_its_case(guarded: Envd) -> None:
    """Media types are case-insensitive (RFC 9110 §8.3.1): connectrpc runs such a stream,
    so its refusal is the stream's end-of-stream error too, not a bare JSON 401."""
    message = b'{"process": {"cmd": "true"}}'
    with guarded.http("sbx-tok") as http:
        r = http.post(
            "/process.Process/Start",
            content=_envelope(0, message),
            headers={"Content-Type": "Application/Connect+JSON"},
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/connect+json"
    assert json.loads(r.content[5:])["error"]["code"] == "unauthenticated"


def test_an_init_whose_sandbox_stopped_while_its_body_came_in_changes_nothing(
    envd: Envd,
) -> None:
    """Checked again once the body is read: the stopped sandbox's next life must not get it."""
    envd.workspace("sbx-late")
    host, port = envd.url.removeprefix("http://").split(":")
    body = b'{"envVars": {"LATE": "1"}}'
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /init HTTP/1.1\r\nHost: x\r\nE2b-Sandbox-Id: sbx-late\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5]
        )
        time.sleep(0.3)  # the server has checked the sandbox and waits for the rest
        envd.run(envd.workspaces.stop("sbx-late"))
        sock.sendall(body[5:])
        sock.settimeout(10)
        answer = b""
        # The head, then (a 502's) JSON body.
        while b"\r\n\r\n" not in answer or (b" 502 " in answer and not answer.endswith(b"}")):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 502"), answer
    assert b"was not found" in answer
    assert envd.workspace("sbx-late").env_vars == {}


def test_a_refused_unary_call_stays_a_401_json_error(guarded: Envd) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(b"nobody:").decode()}
    with guarded.http("sbx-tok", token=TOKEN) as http:
        r = http.post("/filesystem.Filesystem/ListDir", json={"path": "/"}, headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"
    assert "unknown user" in r.json()["message"]


def test_the_python_sdk_reads_refused_streams(guarded: Envd) -> None:
    sbx = guarded.sandbox("sbx-tok", token=TOKEN)
    with pytest.raises(AuthenticationException, match="unknown user"):
        sbx.files.watch_dir("/home/user", user="nobody")
    with pytest.raises(AuthenticationException, match="unknown user"):
        sbx.pty.create(PtySize(rows=24, cols=80), user="nobody")
    with pytest.raises(AuthenticationException, match="X-Access-Token"):
        guarded.sandbox("sbx-tok", token="wrong").commands.run("true")


JS_SDK = Path(__file__).resolve().parents[3] / ".sdk" / "js" / "node_modules" / "e2b"


def test_the_js_sdk_shows_why_a_stream_was_refused(guarded: Envd) -> None:
    """Before, the JS SDK's streaming calls said only "[unauthenticated] HTTP 401"."""
    node = shutil.which("node")
    if node is None or not JS_SDK.is_dir():
        pytest.skip("needs Node.js and the JavaScript SDK (`make sdks`)")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "E2B_JS_SDK": (JS_SDK / "dist" / "index.mjs").as_uri(),
        "ENVD_URL": guarded.url,
        "SANDBOX_ID": "sbx-tok",
        "TOKEN": TOKEN,
    }
    script = Path(__file__).with_name("js_stream_errors.mjs")
    proc = subprocess.run(
        [node, str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    errors = {line["call"]: line["error"] for line in map(json.loads, proc.stdout.splitlines())}
    unknown_user = "AuthenticationError: [unauthenticated] unknown user 'nobody'"
    for call in ("commands.run user", "files.watchDir user", "pty.create user"):
        assert errors[call].startswith(unknown_user), errors
    assert errors["commands.run token"] == (
        "AuthenticationError: [unauthenticated] missing or invalid X-Access-Token"
    ), errors
