"""Sandbox traffic on the API port: header and host routing, the proxy's 502s, workspace lifecycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2b import Sandbox
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.e2b.traffic import sandbox_target
from pytest_kruise_agents.e2b.workspace import Workspaces

from .conftest import ALICE, KEYS, Served, echo_app, eventually


def via_headers(server: Served, sid: str, port: int | str, path: str = "/") -> httpx.Response:
    headers = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": str(port)}
    return httpx.get(server.url + path, headers=headers, timeout=30)


def via_host(server: Served, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(server.url + path, headers={"Host": host}, timeout=30)


@pytest.fixture
def sid(echo_server: Served) -> str:
    return Sandbox.create(template="base", **echo_server.sdk()).sandbox_id


@pytest.mark.parametrize("port", [49983, 49999])
def test_headers_route_to_the_port_app_with_the_sandbox_workspace(
    echo_server: Served, sid: str, port: int
) -> None:
    r = via_headers(echo_server, sid, port, "/files?path=x")

    assert r.status_code == 200, r.text
    assert r.json() == {
        "path": "/files",
        "method": "GET",
        "sandbox": sid,
        "workspace": "SandboxWorkspace",
    }


def test_the_host_names_port_and_sandbox(echo_server: Served, sid: str) -> None:
    r = via_host(echo_server, f"49999-{sid}.sandboxes.test:8080", "/contexts")

    assert r.status_code == 200, r.text
    assert r.json()["sandbox"] == sid
    assert r.json()["path"] == "/contexts"


def test_headers_win_over_the_host(echo_server: Served, sid: str) -> None:
    r = httpx.get(
        echo_server.url + "/",
        headers={
            "E2b-Sandbox-Id": sid,
            "E2b-Sandbox-Port": "49983",
            "Host": "1234-default--base-other.sandboxes.test",
        },
        timeout=30,
    )

    assert r.json()["sandbox"] == sid


def test_a_repeated_routing_header_counts_with_its_first_value(
    echo_server: Served, sid: str
) -> None:
    """As Go's ``Header.Get`` reads it in the infra proxy, and as ``X-API-Key`` is read."""
    first_sid = [("E2b-Sandbox-Id", sid), ("E2b-Sandbox-Id", "default--nope")]
    last_sid = [("E2b-Sandbox-Id", "default--nope"), ("E2b-Sandbox-Id", sid)]
    port = [("E2b-Sandbox-Port", "49999"), ("E2b-Sandbox-Port", "8080")]

    r = httpx.get(echo_server.url + "/contexts", headers=first_sid + port, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["sandbox"] == sid
    assert r.json()["path"] == "/contexts"
    r = httpx.get(echo_server.url + "/contexts", headers=last_sid + port, timeout=30)
    assert r.status_code == 502
    assert r.json()["sandboxId"] == "default--nope"


def test_requests_without_a_sandbox_go_to_the_control_plane(echo_server: Served) -> None:
    assert via_host(echo_server, "api.sandboxes.test", "/health").text == "OK"
    assert via_host(echo_server, "127.0.0.1:1", "/health").text == "OK"


def test_the_path_based_kruise_routing_is_not_served(echo_server: Served, sid: str) -> None:
    """docs/fidelity.md: upstream's customized protocol also routes ``/kruise/<id>/<port>/...``
    to the sandbox (reference §6.8); here that path reaches the control plane, which has no
    such route: a 404 JSON error, and the sandbox's port app never sees it."""
    r = httpx.get(f"{echo_server.url}/kruise/{sid}/49983/health", timeout=30)

    assert r.status_code == 404, r.text
    assert r.json()["message"] == f"no route GET /kruise/{sid}/49983/health"


def test_an_unknown_sandbox_is_502_not_found(echo_server: Served) -> None:
    for r in (
        via_headers(echo_server, "default--base-ghost", 49983, "/health"),
        via_host(echo_server, "49983-default--base-ghost.sandboxes.test", "/health"),
        via_headers(echo_server, "not-an-id", 49983),
    ):
        assert r.status_code == 502
        assert r.json()["message"] == "The sandbox was not found"
        assert r.json()["code"] == 502
    assert via_headers(echo_server, "default--base-ghost", 49983).json()["sandboxId"] == (
        "default--base-ghost"
    )


def test_a_paused_or_killed_sandbox_is_502_and_not_running_for_the_sdk(
    echo_server: Served,
) -> None:
    paused = Sandbox.create(template="base", **echo_server.sdk())
    killed = Sandbox.create(template="base", **echo_server.sdk())
    assert paused.is_running() and killed.is_running()

    paused.pause()
    killed.kill()

    for sbx in (paused, killed):
        r = via_headers(echo_server, sbx.sandbox_id, 49983, "/health")
        assert r.status_code == 502
        assert "was not found" in r.json()["message"]
        assert sbx.is_running() is False
    Sandbox.connect(paused.sandbox_id, **echo_server.sdk())
    assert paused.is_running() is True


@pytest.mark.parametrize("port", [8080, 1, 65535])
def test_another_port_is_502_port_not_open(echo_server: Served, sid: str, port: int) -> None:
    r = via_headers(echo_server, sid, port)

    assert r.status_code == 502
    assert r.json() == {
        "sandboxId": sid,
        "message": "The sandbox is running but port is not open",
        "code": 502,
        "port": port,
    }


@pytest.mark.parametrize(
    "port",
    [None, "", "http", "0", "70000", "65536", b"\xb2", b"\xb9\xb3", "4" * 5000],
    ids=[
        "missing",
        "empty",
        "word",
        "zero",
        "too-big",
        "one-too-big",
        "superscript",
        "superscripts",
        "5000-digits",
    ],
)
def test_a_bad_port_header_is_400(echo_server: Served, sid: str, port: str | bytes | None) -> None:
    """No port header, or anything but ASCII digits naming 1-65535, is the documented 400,
    never a 500.

    ``b"\\xb2"`` (``²`` in latin-1) passes ``str.isdigit`` but not ``int``; 5000 digits
    pass both checks but exceed ``int``'s default digit limit.
    """
    # Raw header bytes: a bytes port goes on the wire as it is (not encoded from a str).
    headers = [(b"E2b-Sandbox-Id", sid.encode())]
    if port is not None:
        headers.append((b"E2b-Sandbox-Port", port if isinstance(port, bytes) else port.encode()))
    r = httpx.get(
        echo_server.url + "/",
        headers=headers,
        timeout=30,
    )

    assert r.status_code == 400
    assert r.json()["code"] == 400
    text = "" if port is None else port.decode("latin-1") if isinstance(port, bytes) else port
    assert r.json()["message"] == (
        f"invalid sandbox port {text!r}: set the E2b-Sandbox-Port header"
    )


@pytest.mark.parametrize("port", ["049983", "0049999", "0" * 100 + "49983"])
def test_a_port_header_with_leading_zeros_names_the_same_port(
    echo_server: Served, sid: str, port: str
) -> None:
    """ASCII digits naming 1-65535 route whatever zeros lead them (Go's ``strconv.Atoi``
    under upstream's proxy reads ``049983`` as 49983): ``00080`` did, ``049983`` was a 400."""
    r = via_headers(echo_server, sid, port, "/files?path=x")

    assert r.status_code == 200, r.text
    assert r.json()["sandbox"] == sid


def test_a_host_whose_port_has_leading_zeros_names_the_same_port(
    echo_server: Served, sid: str
) -> None:
    r = via_host(echo_server, f"049999-{sid}.sandboxes.test", "/contexts")

    assert r.status_code == 200, r.text
    assert r.json()["sandbox"] == sid


@pytest.mark.parametrize("port", ["", "http", "70000"], ids=["missing", "word", "too-big"])
def test_a_sandbox_not_running_is_502_whatever_the_port_header(
    echo_server: Served, port: str
) -> None:
    """The proxy looks the route up before it reads the port (reference §6.8): 502, not 400."""
    paused = Sandbox.create(template="base", **echo_server.sdk())
    paused.pause()

    for sandbox_id in ("default--no-such-sandbox", paused.sandbox_id):
        r = httpx.get(
            echo_server.url + "/",
            headers={"E2b-Sandbox-Id": sandbox_id, **({"E2b-Sandbox-Port": port} if port else {})},
            timeout=30,
        )

        assert r.status_code == 502, r.text
        assert r.json()["message"] == "The sandbox was not found"


def test_pause_stops_the_workspace_and_kill_removes_it(echo_server: Served) -> None:
    sbx = Sandbox.create(template="base", **echo_server.sdk())
    stopped: list[str] = []

    async def hook(sandbox_id: str) -> None:
        stopped.append(sandbox_id)

    echo_server.workspaces.add_stop_hook(hook)
    assert via_headers(echo_server, sbx.sandbox_id, 49983, "/touch").status_code == 200
    ws = echo_server.workspaces.peek(sbx.sandbox_id)
    assert ws is not None and (ws.home / "touched.txt").exists()

    sbx.pause()
    eventually(lambda: stopped == [sbx.sandbox_id], "the workspace stops on pause")
    assert (ws.home / "touched.txt").exists()  # files survive a pause

    Sandbox.connect(sbx.sandbox_id, **echo_server.sdk())
    sbx.kill()
    echo_server.advance(1)  # the deletion reaches the manager's cache
    eventually(lambda: not ws.root.exists(), "the workspace directory is removed")
    assert sbx.sandbox_id not in echo_server.workspaces


def test_nothing_is_created_for_a_sandbox_until_its_files_are_used(
    echo_server: Served, sid: str
) -> None:
    assert sid not in echo_server.workspaces

    via_headers(echo_server, sid, 49983, "/health")

    ws = echo_server.workspaces.peek(sid)
    assert ws is not None and not ws.materialized
    assert not ws.root.exists()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"e2b-sandbox-id", b"ns--a"), (b"e2b-sandbox-port", b"49983")], ("ns--a", "49983")),
        ([(b"E2B-SANDBOX-ID", b" ns--a "), (b"host", b"1-x.d")], ("ns--a", "")),
        ([(b"host", b"49999-ns--a.example.test:443")], ("ns--a", "49999")),
        (
            [
                (b"e2b-sandbox-id", b"ns--a"),
                (b"e2b-sandbox-id", b"ns--b"),
                (b"e2b-sandbox-port", b"1"),
                (b"e2b-sandbox-port", b"2"),
            ],
            ("ns--a", "1"),
        ),
        ([(b"host", b"1-ns--a.d"), (b"host", b"2-ns--b.d")], ("ns--a", "1")),
        # The first value is the one read, even empty: then the host routes.
        (
            [(b"e2b-sandbox-id", b""), (b"e2b-sandbox-id", b"ns--b"), (b"host", b"1-x.d")],
            ("x", "1"),
        ),
        ([(b"e2b-sandbox-id", b"ns--a"), (b"e2b-sandbox-port", b"1"), (b"x-api-key", b"k")], None),
        ([(b"host", b"api.example.test")], None),
        ([(b"host", b"127.0.0.1:8080")], None),
        ([(b"host", b"49999-ns--a")], None),
        # <port>-<id>. only at the start of the host, as the proxy matches it.
        ([(b"host", b"api.49999-ns--a.example.test")], None),
        ([], None),
    ],
)
def test_sandbox_target_reads_headers_then_host(
    headers: list[tuple[bytes, bytes]], expected: Any
) -> None:
    assert sandbox_target(headers) == expected


async def broken_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the sandbox app broke")


def test_a_failing_sandbox_app_is_a_500_json(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=6, replicas=1)
    workspaces = Workspaces(tmp_path)
    app = create_app(backend, Settings(api_keys=KEYS), workspaces=workspaces, envd_app=broken_app)
    with ServerThread(app) as thread:
        sid = Sandbox.create(template="base", api_key=ALICE, api_url=thread.url).sandbox_id
        r = httpx.get(
            thread.url + "/health",
            headers={"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49983"},
            timeout=30,
        )
        assert r.status_code == 500
        assert r.json()["code"] == 500
        assert "the sandbox app broke" in r.json()["message"]
    backend.close()


def test_shutting_down_stops_every_workspace(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=6, replicas=1)
    workspaces = Workspaces(tmp_path)
    stopped: list[str] = []

    async def hook(sandbox_id: str) -> None:
        stopped.append(sandbox_id)

    workspaces.add_stop_hook(hook)
    app = create_app(
        backend,
        Settings(api_keys=KEYS),
        workspaces=workspaces,
        envd_app=echo_app,
        interpreter_app=echo_app,
    )
    with ServerThread(app) as thread:
        sid = Sandbox.create(template="base", api_key=ALICE, api_url=thread.url).sandbox_id
        headers = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49983"}
        assert httpx.get(thread.url + "/touch", headers=headers, timeout=30).status_code == 200
        assert stopped == []

    assert stopped == [sid]
    assert (tmp_path / sid / "home" / "user" / "touched.txt").exists()  # files stay
    backend.close()


def test_an_api_call_with_sandbox_headers_reaches_the_control_plane(echo_server: Served) -> None:
    # SDK 2.8's connect sends E2b-Sandbox-Id/-Port with its X-API-Key.
    sbx = Sandbox.create(template="base", **echo_server.sdk())
    sbx.pause()

    r = echo_server.request(
        "POST",
        f"/sandboxes/{sbx.sandbox_id}/connect",
        json={"timeout": 300},
        headers={"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983"},
    )

    assert r.status_code == 201, r.text
    assert r.json()["sandboxID"] == sbx.sandbox_id


def test_a_resumed_sandbox_is_served_only_after_its_pause_cleanup(server: Served) -> None:
    # The cleanup runs on the server's loop after the pause is answered; were a
    # resumed sandbox served before it ended, it would kill the new commands.
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.commands.run("true")
    ended: list[float] = []

    async def slow_cleanup(sandbox_id: str) -> None:
        await asyncio.sleep(0.3)
        ended.append(time.monotonic())

    server.workspaces.add_stop_hook(slow_cleanup)
    sbx.pause()
    resumed = Sandbox.connect(sbx.sandbox_id, **server.sdk())
    assert resumed.commands.run("echo back").stdout == "back\n"
    assert ended and ended[0] <= time.monotonic()


def test_commands_of_a_resumed_sandbox_survive_its_pause(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())
    for _ in range(15):
        sbx.commands.run("sleep 30", background=True)  # the pause must kill this one
        sbx.pause()
        sbx = Sandbox.connect(sbx.sandbox_id, **server.sdk())
        assert sbx.commands.run("echo alive").stdout == "alive\n"


def test_a_signed_files_url_that_names_no_sandbox_is_a_400_saying_what_is_missing(
    server: Served,
) -> None:
    """Under ``E2B_SANDBOX_URL`` the SDK signs ``/files`` URLs on the server's one address: the
    URL carries ``path`` and ``signature`` but no sandbox. Before, it answered the control
    plane's 404 "no route GET /files"; an upload was lost the same way."""
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.files.write("/home/user/c.txt", "signed")
    download, upload = sbx.download_url("/home/user/c.txt"), sbx.upload_url("/home/user/up.txt")
    assert "signature=" in download and "signature=" in upload

    refusals = [
        httpx.get(download, timeout=30),
        httpx.post(upload, files={"file": ("up.txt", b"uploaded")}, timeout=30),
    ]

    for r in refusals:
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == 400
        assert body["message"] == (
            "a signed /files URL must name its sandbox: send the headers E2b-Sandbox-Id and "
            "E2b-Sandbox-Port: 49983, or use the host 49983-<sandboxID>.<domain> "
            "(the SDK builds these URLs on E2B_SANDBOX_URL, which names no sandbox)"
        )
    assert not sbx.files.exists("/home/user/up.txt")
    named = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983"}
    assert httpx.get(download, headers=named, timeout=30).text == "signed"


def test_a_served_sandbox_takes_uploads_of_up_to_100_mib(server: Served) -> None:
    """docs/fidelity.md: the server's envd takes 100 MiB of file data in one upload and
    answers 413 beyond, writing nothing (a body without ``Content-Length`` is counted as it
    streams in)."""
    created = server.request("POST", "/sandboxes", json={"templateID": "base"}).json()
    sbx = Sandbox.connect(created["sandboxID"], **server.sdk())
    headers = {
        "E2b-Sandbox-Id": sbx.sandbox_id,
        "E2b-Sandbox-Port": "49983",
        "X-Access-Token": created["envdAccessToken"],
        "Content-Type": "application/octet-stream",
    }

    def mebibytes(count: int) -> Iterator[bytes]:
        for _ in range(count):
            yield b"x" * (1 << 20)

    def upload(name: str, count: int) -> httpx.Response:
        return httpx.post(
            f"{server.url}/files",
            params={"path": f"/home/user/{name}"},
            headers=headers,
            content=mebibytes(count),
            timeout=120,
        )

    over = upload("over.bin", 101)
    assert over.status_code == 413, over.text
    assert over.json()["message"] == f"upload exceeds the limit of {100 * 1024 * 1024} bytes"
    assert not sbx.files.exists("/home/user/over.bin")
    assert upload("full.bin", 100).status_code == 200
    assert sbx.files.get_info("/home/user/full.bin").size == 100 * 1024 * 1024
