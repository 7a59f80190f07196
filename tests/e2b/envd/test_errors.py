"""Specification: every bad request to envd gets one clear JSON error and the server stays up."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import httpx
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b import InvalidArgumentException
from e2b.envd.process import process_connect, process_pb

from pytest_kruise_agents.e2b.envd import (
    DEFAULT_MAX_CALL_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    make_envd_app,
)
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.workspace import Workspaces
from tests.e2b.envd.conftest import Envd


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "says"),
    [
        ("/process.Process/List", b"{not json", 400, "invalid_argument", "ListRequest"),
        ("/process.Process/Start", b"{}", 415, "invalid_argument", "connect+json"),
        (
            "/process.Process/Update",
            b'{"process": {"pid": "abc"}}',
            400,
            "invalid_argument",
            "UpdateRequest",
        ),
        (
            "/process.Process/SendSignal",
            b'{"process": {"pid": 1}}',
            400,
            "invalid_argument",
            "signal",
        ),
        ("/process.Process/SendInput", b'{"process": {}}', 400, "invalid_argument", "pid or a tag"),
        ("/process.Process/CloseStdin", b'{"process": {"pid": 1}}', 404, "not_found", "pid 1"),
        ("/process.Process/Update", b'{"process": {"tag": "t"}}', 404, "not_found", "tag 't'"),
        (
            "/filesystem.Filesystem/Stat",
            b'{"path": "/home/user/none"}',
            404,
            "not_found",
            "/home/user/none",
        ),
        ("/filesystem.Filesystem/GetWatcherEvents", b'{"watcherId": "w9"}', 404, "not_found", "w9"),
        ("/filesystem.Filesystem/RemoveWatcher", b'{"watcherId": "w9"}', 404, "not_found", "w9"),
        ("/filesystem.Filesystem/Remove", b'{"path": "/"}', 403, "permission_denied", "root"),
        (
            "/filesystem.Filesystem/Move",
            b'{"source": "/home", "destination": "/"}',
            403,
            "permission_denied",
            "root",
        ),
        ("/filesystem.Filesystem/Nope", b"{}", 404, "unimplemented", "no such RPC method"),
    ],
)
def test_bad_rpcs_answer_connect_errors(
    envd: Envd, path: str, body: bytes, status: int, code: str, says: str
) -> None:
    with envd.http() as http:
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["code"] == code
        assert says in r.json()["message"]
        assert http.get("/health").status_code == 204


def test_a_bad_stream_request_ends_the_stream_with_an_error(envd: Envd) -> None:
    client = process_connect.ProcessClientSync(envd.url, http_client=None)
    request = process_pb.StartRequest(process=process_pb.ProcessConfig(cmd="/nonexistent/cmd"))
    with pytest.raises(Exception, match="failed to start"):
        list(client.start(request, headers={"E2b-Sandbox-Id": "sbx-default"}))


def _envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _frames(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        out.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


_START = _envelope(b'{"process": {"cmd": "/bin/echo", "args": ["x"]}}')
_STREAM = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
_GZIP_STREAM = {**_STREAM, "Connect-Content-Encoding": "gzip"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "says"),
    [
        ("/process.Process/Start", _START[:3], _STREAM, "protocol error: incomplete envelope"),
        (
            "/process.Process/Start",
            struct.pack(">BI", 0, 40) + b'{"process"',
            _STREAM,
            "protocol error: promised 40 bytes in enveloped message, got 10 bytes",
        ),
        (
            "/process.Process/StreamInput",
            _envelope(b'{"start": {"process": {"pid": 1}}}')[:8],
            _STREAM,
            "protocol error: promised 34 bytes in enveloped message, got 3 bytes",
        ),
        (
            "/process.Process/Start",
            _envelope(b"not gzip", flags=1),
            _GZIP_STREAM,
            "decompress: invalid gzip data",
        ),
        (
            "/process.Process/Start",
            _envelope(gzip.compress(_START[5:], mtime=0)[:12], flags=1),
            _GZIP_STREAM,
            "decompress: invalid gzip data",
        ),
    ],
)
def test_a_broken_stream_body_ends_the_stream_with_invalid_argument(
    envd: Envd, path: str, body: bytes, headers: dict[str, str], says: str
) -> None:
    """As connect-go answers a body cut short or not inflatable: the stream's end message
    carries ``invalid_argument`` naming the problem (not ``unimplemented`` "zero messages",
    not ``unknown``), and nothing ran."""
    with envd.http() as http:
        r = http.post(path, content=body, headers=headers)
        assert r.status_code == 200, r.text
        [(flags, end)] = _frames(r.content)
        assert flags == 0b10
        error = json.loads(end)["error"]
        assert error["code"] == "invalid_argument"
        assert error["message"].startswith(says)
        assert http.get("/health").status_code == 204


_BAD_CONNECT_HEADERS = [
    pytest.param(
        {"Connect-Timeout-Ms": "10000000000"},
        'Connect-Timeout-Ms "10000000000" has more than 10 digits',
        id="timeout-11-digits",
    ),
    pytest.param(
        {"Connect-Timeout-Ms": "1e3"},
        'Connect-Timeout-Ms "1e3" is not a whole number of milliseconds',
        id="timeout-not-a-number",
    ),
    # Python's int() reads these; Go's strconv.ParseInt, under envd, does not.
    pytest.param(
        {"Connect-Timeout-Ms": "1_000"},
        'Connect-Timeout-Ms "1_000" is not a whole number of milliseconds',
        id="timeout-underscore",
    ),
    pytest.param(
        {"Connect-Protocol-Version": "2"},
        'Connect-Protocol-Version must be "1": got "2"',
        id="protocol-version",
    ),
]


@pytest.mark.parametrize(("headers", "says"), _BAD_CONNECT_HEADERS)
def test_a_stream_with_a_bad_connect_header_ends_with_invalid_argument(
    envd: Envd, headers: dict[str, str], says: str
) -> None:
    """e2b-protocol.md §4.1, docs/server.md: a stream refused before it starts is still a
    Connect stream: HTTP 200 and an end-of-stream ``invalid_argument`` naming the header
    (connect-go's answer; connect-es reads no body of a non-200 stream), and nothing runs."""
    with envd.http() as http:
        r = http.post("/process.Process/Start", content=_START, headers={**_STREAM, **headers})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/connect+json"
        [(flags, end)] = _frames(r.content)
        assert flags == 0b10
        assert json.loads(end)["error"] == {"code": "invalid_argument", "message": says}
        assert http.post("/process.Process/List", json={}).json() == {}  # nothing started


@pytest.mark.parametrize(("headers", "says"), _BAD_CONNECT_HEADERS)
def test_a_unary_call_with_a_bad_connect_header_is_a_400_naming_it(
    envd: Envd, headers: dict[str, str], says: str
) -> None:
    with envd.http() as http:
        r = http.post("/process.Process/List", json={}, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json() == {"code": "invalid_argument", "message": says}


@pytest.mark.parametrize(
    "headers",
    [{"Connect-Timeout-Ms": "+5000"}, {"Connect-Timeout-Ms": "9999999999"}, {}],
    ids=["signed", "10-digits", "none"],
)
def test_a_stream_with_a_good_timeout_header_runs(envd: Envd, headers: dict[str, str]) -> None:
    with envd.http() as http:
        r = http.post("/process.Process/Start", content=_START, headers={**_STREAM, **headers})
    frames = _frames(r.content)
    assert r.status_code == 200 and frames[-1] == (0b10, b"{}"), r.content


def test_the_sdks_timeout_past_ten_digits_is_its_invalid_argument(envd: Envd) -> None:
    """``commands.run(timeout=10**7)`` sends ``Connect-Timeout-Ms: 10000000000`` (11 digits),
    which envd refuses: the SDK raises ``InvalidArgumentException`` naming the header."""
    with pytest.raises(InvalidArgumentException, match='Connect-Timeout-Ms "10000000000" has more'):
        envd.sandbox().commands.run("echo ok", timeout=10**7)


def test_a_stream_whose_last_message_is_cut_short_reads_the_complete_ones_first(
    envd: Envd,
) -> None:
    """connect-go reads the whole messages before the break, then fails the next read: the
    stream's complete start event attaches to the command, the broken data event ends it."""
    sbx = envd.sandbox()
    handle = sbx.commands.run("cat", background=True, stdin=True)
    start = _envelope(json.dumps({"start": {"process": {"pid": handle.pid}}}).encode())
    data = _envelope(b'{"data": {"input": {"stdin": "aGkK"}}}')
    with envd.http() as http:
        r = http.post("/process.Process/StreamInput", content=start + data[:-4], headers=_STREAM)
    [(flags, end)] = _frames(r.content)
    assert flags == 0b10
    assert json.loads(end)["error"]["code"] == "invalid_argument"
    assert "promised" in json.loads(end)["error"]["message"]
    sbx.commands.send_stdin(handle.pid, "after\n")
    sbx.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "after\n"  # the broken data event wrote nothing


@pytest.mark.parametrize(
    "body",
    [b'{"path": "/"}', gzip.compress(b'{"path": "/"}', mtime=0)[:12]],
    ids=["not-gzip", "truncated-gzip"],
)
def test_a_unary_body_that_does_not_inflate_is_a_400_invalid_argument(
    envd: Envd, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """``Content-Encoding: gzip`` over bytes that are not gzip: the client's error, no traceback."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with envd.http() as http:
        r = http.post("/filesystem.Filesystem/Stat", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_argument"
    assert r.json()["message"].startswith("decompress: invalid gzip data")
    assert not [rec for rec in caplog.records if rec.exc_info]


def test_a_unary_message_of_exactly_the_limit_is_read(envd: Envd, small_messages: int) -> None:
    def stat_body(size: int) -> bytes:
        body = b'{"path": "/home/user/none"}'
        return body + b" " * (size - len(body))

    headers = {"Content-Type": "application/json"}
    with envd.http() as http:
        fits = http.post(
            "/filesystem.Filesystem/Stat", content=stat_body(small_messages), headers=headers
        )
        over = http.post(
            "/filesystem.Filesystem/Stat", content=stat_body(small_messages + 1), headers=headers
        )
    assert (fits.status_code, fits.json()["code"]) == (404, "not_found"), fits.text
    assert (over.status_code, over.json()["code"]) == (400, "invalid_argument"), over.text
    assert f"limit of {small_messages} bytes" in over.json()["message"]


def test_a_stream_message_over_the_limit_is_refused_even_when_a_small_one_follows(
    envd: Envd, small_messages: int
) -> None:
    """The largest message promised so far counts, not the last: one body carrying a message
    over the limit and then a small one is still ``invalid_argument`` naming the limit, not
    connectrpc's ``resource_exhausted`` (which the SDK reads as a rate limit to wait out)."""
    big = b'{"start": {"process": {"pid": 1}}}'
    big += b" " * (small_messages + 100 - len(big))
    body = b"".join(struct.pack(">BI", 0, len(m)) + m for m in (big, b'{"keepalive": {}}'))
    with envd.http() as http:
        r = http.post(
            "/process.Process/StreamInput",
            content=body,
            headers={"Content-Type": "application/connect+json"},
        )
    assert r.status_code == 200, r.text
    [(flags, end)] = _frames(r.content)
    error = json.loads(end)["error"]
    assert (flags, error["code"]) == (0b10, "invalid_argument"), error
    assert f"limit of {small_messages} bytes" in error["message"]


def test_a_gzip_message_inflating_past_the_limit_is_invalid_argument(
    envd: Envd, small_messages: int
) -> None:
    """Measured after inflation, and refused for good (not connectrpc's rate-limit-like code)."""
    body = json.dumps({"path": "x" * (small_messages * 4)}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with envd.http() as http:
        r = http.post("/filesystem.Filesystem/Stat", content=gzip.compress(body), headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_argument"
    assert f"limit of {small_messages} bytes" in r.json()["message"]


def test_unknown_routes_and_methods_are_json_errors(envd: Envd) -> None:
    with envd.http() as http:
        unknown = http.get("/nowhere")
        assert (unknown.status_code, unknown.json()["code"]) == (404, 404)
        assert http.delete("/files", params={"path": "x"}).json() == {
            "code": 405,
            "message": "method DELETE not allowed on /files",
        }
        assert http.get("/init").status_code == 405
        missing = http.get("/files")
        assert (missing.status_code, missing.json()["code"]) == (400, 400)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/files", "GET, HEAD, POST"),
        ("GET", "/init", "POST"),
    ],
)
def test_a_405_lists_the_methods_of_the_route(
    envd: Envd, method: str, path: str, allow: str
) -> None:
    """RFC 9110 §15.5.6: a 405 carries ``Allow``."""
    with envd.http() as http:
        r = http.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow


def test_health_answers_get_and_head_with_an_empty_204(envd: Envd) -> None:
    with envd.http() as http:
        for method in ("GET", "HEAD"):
            r = http.request(method, "/health")
            assert (r.status_code, r.content) == (204, b""), method


def test_without_a_workspace_in_scope_the_app_answers_500_json(tmp_path: Path) -> None:
    with ServerThread(make_envd_app(Workspaces(tmp_path))) as server:
        r = httpx.get(server.url + "/health")
    assert r.status_code == 500
    assert "kruise_workspace" in r.json()["message"]


def gzip_path_body(size: int) -> bytes:
    """A ``{"path": "aaa..."}`` message of about ``size`` bytes, gzip-compressed (a thousandth)."""
    return gzip.compress(b'{"path": "' + b"a" * size + b'"}', compresslevel=9)


def test_a_small_gzip_body_cannot_make_the_server_read_a_huge_path(envd: Envd) -> None:
    """A Stat is bounded by DEFAULT_MAX_CALL_BYTES, not by the stdin calls' 128 MiB: a 5 KB body
    inflating to 5 MiB is refused as soon as inflation passes the bound, in a short answer."""
    body = gzip_path_body(DEFAULT_MAX_CALL_BYTES + 1024)
    assert len(body) < 64 * 1024
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with envd.http() as http:
        r = http.post("/filesystem.Filesystem/Stat", content=body, headers=headers)
    assert r.status_code == 400, r.text[:200]
    assert r.json()["code"] == "invalid_argument"
    assert f"limit of {DEFAULT_MAX_CALL_BYTES} bytes" in r.json()["message"]
    # No stdin hint: a Stat has no input to send in smaller pieces.
    assert r.json()["message"].endswith("(no such call needs more)")
    assert len(r.content) < 1024


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_path_longer_than_path_max_is_invalid_and_not_repeated_whole(
    envd: Envd, gzipped: bool
) -> None:
    """Checked before anything else looks at the path; the error shows only its start."""
    body = json.dumps({"path": "/home/user/" + "a" * 100_000}).encode()
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    with envd.http() as http:
        r = http.post("/filesystem.Filesystem/Stat", content=body, headers=headers)
    assert r.status_code == 400, r.text[:200]
    assert r.json()["code"] == "invalid_argument"
    assert "longer than 4095 bytes" in r.json()["message"]
    assert len(r.content) < 1024


def test_a_path_of_exactly_path_max_bytes_is_invalid_and_one_byte_less_is_a_path(
    envd: Envd,
) -> None:
    """Linux's PATH_MAX (4096) counts the terminating NUL: the kernel answers ENAMETOOLONG to
    envd's syscall for a path of 4096 bytes, so 4095 is the longest path there is."""
    path = "/home/user/" + "/".join(["d" * 200] * 19)
    path += "/" + "f" * (4096 - len(path) - 1)
    assert len(path.encode()) == 4096
    with envd.http() as http:
        r = http.post("/filesystem.Filesystem/Stat", json={"path": path})
        assert r.status_code == 400, r.text[:200]
        assert r.json()["code"] == "invalid_argument"
        assert "longer than 4095 bytes" in r.json()["message"]
        r = http.post("/filesystem.Filesystem/Stat", json={"path": path[:-1]})
    assert r.status_code == 404, r.text[:200]  # not there, but a path all right


def test_only_the_stdin_calls_take_messages_above_the_call_bound(envd: Envd) -> None:
    """``SendInput``/``StreamInput`` carry data (up to DEFAULT_MAX_MESSAGE_BYTES); every other
    call carries paths and command lines, refused beyond DEFAULT_MAX_CALL_BYTES."""
    assert DEFAULT_MAX_CALL_BYTES < DEFAULT_MAX_MESSAGE_BYTES
    big = "x" * (DEFAULT_MAX_CALL_BYTES + 1)
    sbx = envd.sandbox()
    with pytest.raises(InvalidArgumentException, match=f"limit of {DEFAULT_MAX_CALL_BYTES} bytes"):
        sbx.commands.run(f"echo {big}")
    handle = sbx.commands.run("wc -c", background=True, stdin=True)
    handle.send_stdin(big)
    handle.close_stdin()
    assert handle.wait().stdout.strip() == str(len(big))


def test_a_program_that_does_not_exist_stays_the_callers_mistake(envd: Envd) -> None:
    """Only the host running short is ``internal``: a missing program is ``invalid_argument``."""
    client = process_connect.ProcessClientSync(envd.url, http_client=None)
    request = process_pb.StartRequest(process=process_pb.ProcessConfig(cmd="/nonexistent/cmd"))
    with pytest.raises(ConnectError) as info:
        list(client.start(request, headers={"E2b-Sandbox-Id": "sbx-default"}))
    assert info.value.code == Code.INVALID_ARGUMENT
