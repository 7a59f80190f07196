"""A real E2B server per test: the fake cluster behind ``create_app`` on uvicorn, on 127.0.0.1.

Keys: alice and bob share team ``default``; carol is team ``other``; the admin
key spans every namespace. :class:`Served` bundles the URL, the backend and
the calls tests need (SDK options, raw HTTP, the admin API).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.app import E2BApp, create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings
from pytest_kruise_agents.e2b.workspace import Workspaces

ALICE = "e2b_alice_key_0000000000000000000000000000000a"
BOB = "e2b_bob_key_00000000000000000000000000000000000b"
CAROL = "e2b_carol_key_0000000000000000000000000000000c"
ADMIN = "e2b_admin_key_0000000000000000000000000000000d"

KEYS = (
    ApiKey(key=ALICE, team="default", id="alice"),
    ApiKey(key=BOB, team="default", id="bob"),
    ApiKey(key=CAROL, team="other", id="carol"),
    ApiKey(key=ADMIN, admin=True, id="admin"),
)


async def answer_without_reading(scope: Scope, receive: Receive, send: Send) -> None:
    """``/refuse`` answers 401, ``/bad`` 400, any other path 200 ``ok``, from the headers alone
    (the body unread)."""
    if scope["type"] == "lifespan":
        await receive()  # startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    status = {"/refuse": 401, "/bad": 400}.get(scope["path"], 200)
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"no"})


def answer(sock: socket.socket, within: float = 5) -> bytes:
    """The status line of the next whole response on ``sock``.

    b"" if nothing came ``within`` seconds or the server closed the connection.
    """
    sock.settimeout(within)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            data += chunk
    except TimeoutError:
        if not data:
            return b""
        raise
    except ConnectionResetError:
        return b""
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:  # the body may come in a later segment than the head
        body += sock.recv(65536)
    return head.split(b"\r\n")[0]


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A stand-in sandbox port: answers what it was asked and which workspace it got.

    ``/touch`` writes a file in the workspace (so that it exists on disk).
    """
    ws = scope["state"]["kruise_workspace"]
    if scope["path"] == "/touch":
        ws.ensure()
        (ws.home / "touched.txt").write_text("x")
    body = json.dumps(
        {
            "path": scope["path"],
            "method": scope["method"],
            "sandbox": ws.sandbox_id,
            "workspace": type(ws).__name__,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def eventually(check: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Wait (bounded) for something the server does asynchronously; fail naming ``what``."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


@dataclass
class Served:
    """One running server: its URL, backend, app and workspaces."""

    url: str
    backend: SimBackend
    app: E2BApp
    workspaces: Workspaces

    def sdk(self, key: str = ALICE) -> dict[str, Any]:
        """The connection options the E2B SDK takes (what the E2B_* variables set)."""
        return {"api_key": key, "api_url": self.url, "sandbox_url": self.url}

    def request(
        self, method: str, path: str, *, key: str | None = ALICE, **kwargs: Any
    ) -> httpx.Response:
        """A raw HTTP request with ``key`` as ``X-API-Key`` (none if ``None``)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["X-API-Key"] = key
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the admin API with the admin key."""
        return self.request(method, "/_kruise" + path, key=ADMIN, **kwargs)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock through the admin API."""
        r = self.admin("POST", "/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    def apply(self, manifest: str) -> list[dict[str, Any]]:
        """Apply YAML through the admin API, then let the informer caches catch up (1 s)."""
        r = self.admin("POST", "/apply", content=manifest.encode())
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        self.advance(1)
        return items


def pool_yaml(name: str, replicas: int, *, namespace: str = "default") -> str:
    """A SandboxSet with an agent runtime (as the default pools have)."""
    return f"""apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  runtimes:
  - name: agent-runtime
  template:
    spec:
      containers:
      - name: sandbox
        image: registry.example.com/e2b/{name}:v1
        resources:
          limits: {{cpu: "1", memory: 512Mi}}
"""


def serve(
    tmp_path: Path,
    *,
    backend: SimBackend | None = None,
    settings: Settings | None = None,
    sandbox_apps: bool = False,
) -> tuple[ServerThread, Served]:
    """Start a server on a free loopback port (echo apps on the sandbox ports if asked)."""
    backend = backend if backend is not None else SimBackend.default(seed=3, replicas=4)
    settings = settings if settings is not None else Settings(api_keys=KEYS)
    workspaces = Workspaces(tmp_path / "workspaces")
    extra: dict[str, Any] = {}
    if sandbox_apps:
        extra = {"envd_app": echo_app, "interpreter_app": echo_app}
    app = create_app(backend, settings, workspaces=workspaces, **extra)
    thread = ServerThread(app).start()
    return thread, Served(url=thread.url, backend=backend, app=app, workspaces=workspaces)


class LogErrors(logging.Handler):
    """Keeps every record at WARNING or above, and any with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING or record.exc_info:
            self.records.append(record)


@contextmanager
def serve_logged(tmp_path: Path) -> Iterator[tuple[Served, LogErrors]]:
    """:func:`serve` for a state machine's examples, with every warning logged kept.

    The handler listens on the root and ``uvicorn.error`` loggers until the
    server stops, so a machine can require that nothing went wrong server-side.
    """
    thread, served = serve(tmp_path)
    handler = LogErrors()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield served, handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        thread.stop()
        served.backend.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    """A server with the default pools (4 ready sandboxes each) and the real sandbox apps."""
    thread, served = serve(tmp_path)
    try:
        yield served
    finally:
        thread.stop()
        served.backend.close()


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[Served]:
    """A server whose sandbox ports are :func:`echo_app` (routing tests)."""
    thread, served = serve(tmp_path, sandbox_apps=True)
    try:
        yield served
    finally:
        thread.stop()
        served.backend.close()
