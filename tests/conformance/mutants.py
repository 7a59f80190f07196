"""Servers a mutation test of the suite found it too lax for: one behaviour wrong, or one odd
but conforming, as an ASGI middleware around this project's E2B app.

Unlike the named breakages of :mod:`pytest_kruise_agents.e2b.breakage` (where each breaks
exactly one check), these are the test suite's own: each reproduces a server the suite used
to pass although it should fail (or fail although it should pass), and
``test_mutants.py`` shows which check now tells. :func:`serve <.conftest.serve>` builds
one with ``mutant=MUTANTS[name]``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, parse_qsl

import anyio

from pytest_kruise_agents.e2b.control import decode_metadata_filter
from pytest_kruise_agents.e2b.rewriting import (
    Answer,
    call,
    json_answer,
    read_body,
    replay,
    reply,
    with_query,
)
from pytest_kruise_agents.e2b.traffic import sandbox_target

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from pytest_kruise_agents.backends.base import Backend

Mutant = Callable[["ASGIApp", "Backend", str], "ASGIApp"]
"""Builds the mutant server from the app, its backend and a valid (user) API key."""

ENVD: Final = "49983"
JUPYTER: Final = "49999"
CHUNK: Final = 64 * 1024
BAD_TEXT: Final = "bad \ud800 and \uffff"
"""What :func:`sdk_create_bad_text` answers: a lone surrogate and U+FFFF (legal in JSON)."""


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), "")


def _with_header(scope: Scope, name: bytes, value: bytes) -> Scope:
    kept = [(k, v) for k, v in scope["headers"] if k.lower() != name]
    return {**scope, "headers": [*kept, (name, value)]}


def _api_path(scope: Scope) -> list[str] | None:
    """The control-plane path's parts (``/kruise/api`` dropped); ``None`` for sandbox traffic."""
    if sandbox_target(scope["headers"]) is not None:
        return None
    return [p for p in str(scope["path"]).removeprefix("/kruise/api").split("/") if p]


Middleware = Callable[["Scope", "Receive", "Send"], Any]


def _http_only(app: ASGIApp, handle: Middleware) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        await handle(scope, receive, send)

    return middleware


def envd_token_reads_only(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd checks the token on Stat and ``GET /files`` only; commands, uploads and every other
    filesystem RPC run for anyone."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        target = sandbox_target(scope["headers"])
        if target is not None and target[1] == ENVD:
            path, method = str(scope["path"]), scope["method"]
            checked = path == "/filesystem.Filesystem/Stat" or (path, method) == ("/files", "GET")
            route = await anyio.to_thread.run_sync(backend.route, target[0])
            if not checked and route is not None and route.access_token:
                scope = _with_header(scope, b"x-access-token", route.access_token.encode())
        await app(scope, receive, send)

    return _http_only(app, handle)


def auth_only_list_create(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """The API key is checked on ``GET``/``POST /v2/sandboxes`` only: get, kill, timeout, pause
    and connect of any sandbox act for the team whatever the key."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope)
        checked = parts in (["v2", "sandboxes"], ["sandboxes"])
        if parts and not checked and parts[0] in ("sandboxes", "v2"):
            scope = _with_header(scope, b"x-api-key", key.encode())
        await app(scope, receive, send)

    return _http_only(app, handle)


def auto_pause_immediate(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """A sandbox created with ``autoPause`` is paused as soon as it is created."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope)
        if scope["method"] != "POST" or parts not in (["v2", "sandboxes"], ["sandboxes"]):
            await app(scope, receive, send)
            return
        raw = await read_body(receive)
        answer = await call(app, scope, replay(raw, receive))
        created = answer.json()
        if answer.status == 201 and isinstance(created, dict) and json.loads(raw).get("autoPause"):
            path = f"/sandboxes/{created['sandboxID']}/pause"
            pause = {**scope, "path": path, "raw_path": path.encode(), "query_string": b""}
            await call(app, pause, replay(b"{}", receive))
        await reply(send, answer)

    return _http_only(app, handle)


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def order_stable_ties(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Conforming: the list is sorted by ``startedAt`` only, sandboxes started at the same
    instant in sandbox-id order whichever the ``order`` (E2B §2.3 says nothing of ties)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _api_path(scope) != ["v2", "sandboxes"] or scope["method"] != "GET":
            await app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        desc = query.get("order", ["desc"])[0] == "desc"
        answer = await call(app, scope, receive)
        items = answer.json()
        if answer.status == 200 and isinstance(items, list):
            by_id = sorted(items, key=lambda i: i["sandboxID"])
            # Stable, also with reverse=True: ties keep their id order both ways.
            listed = sorted(by_id, key=lambda i: _instant(i["startedAt"]), reverse=desc)
            answer = json_answer(answer, 200, listed)
        await reply(send, answer)

    return _http_only(app, handle)


_RFC_3339_Z: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z")


def _timestamps(form: Callable[[re.Match[str]], str]) -> Mutant:
    """``startedAt``/``endAt`` of the control plane's answers written in another ``form``."""

    def build(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
        def rewrite(item: Any) -> None:
            for name in ("startedAt", "endAt"):
                value = item.get(name) if isinstance(item, dict) else None
                m = _RFC_3339_Z.fullmatch(value) if isinstance(value, str) else None
                if m is not None:
                    item[name] = form(m)

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if _api_path(scope) is None or scope["method"] != "GET":
                await app(scope, receive, send)
                return
            answer = await call(app, scope, receive)
            body = answer.json()
            if answer.status == 200 and body is not None:
                for item in body if isinstance(body, list) else [body]:
                    rewrite(item)
                answer = json_answer(answer, 200, body)
            await reply(send, answer)

        return _http_only(app, handle)

    return build


def _week(m: re.Match[str]) -> str:
    year, week, day = dt.date(int(m[1]), int(m[2]), int(m[3])).isocalendar()
    return f"{year}-W{week:02d}-{day}T{m[4]}:{m[5]}:{m[6]}Z"


ts_basic = _timestamps(lambda m: f"{m[1]}{m[2]}{m[3]}T{m[4]}{m[5]}{m[6]}Z")
"""Timestamps in ISO 8601 basic format (``20260102T030405Z``): not RFC 3339."""
ts_week = _timestamps(_week)
"""Timestamps as ISO 8601 week dates (``2026-W01-5T03:04:05Z``): not RFC 3339."""
ts_lower_case = _timestamps(lambda m: f"{m[1]}-{m[2]}-{m[3]}t{m[4]}:{m[5]}:{m[6]}{m[7] or ''}z")
"""Conforming: timestamps with a lower-case ``t`` and ``z`` (RFC 3339 §5.6 NOTE)."""


def download_first_64k(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd's ``GET /files`` sends only the first 64 KiB of a file."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        target = sandbox_target(scope["headers"])
        download = (str(scope["path"]), scope["method"]) == ("/files", "GET")
        if target is None or target[1] != ENVD or not download:
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        answer.body = answer.body[:CHUNK]
        await reply(send, answer)

    return _http_only(app, handle)


def sdk_create_bad_text(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """The SDK's create answers 500 with an error message holding :data:`BAD_TEXT`."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        sdk = _header(scope, b"user-agent").startswith("e2b-python-sdk")
        if sdk and scope["method"] == "POST" and _api_path(scope) == ["v2", "sandboxes"]:
            await read_body(receive)
            body = json.dumps({"code": 500, "message": BAD_TEXT}).encode()  # \\ud800 escapes
            await reply(send, Answer(500, [(b"content-type", b"application/json")], body))
            return
        await app(scope, receive, send)

    return _http_only(app, handle)


def _connect_of(parts: list[str] | None) -> str | None:
    """The sandbox id of a connect route's path parts (either generation), else ``None``."""
    if parts and parts[-1] == "connect" and parts[:-2] in (["sandboxes"], ["v2", "sandboxes"]):
        return parts[-2]
    return None


def resume_ignores_timeout(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Connect resumes a paused sandbox (201) but leaves it 30 s to live, whatever timeout the
    connect asked for."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        sid = _connect_of(_api_path(scope)) if scope["method"] == "POST" else None
        if sid is None:
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        if answer.status == 201:
            path = f"/sandboxes/{sid}/timeout"
            shorten = {**scope, "path": path, "raw_path": path.encode(), "query_string": b""}
            await call(app, shorten, replay(b'{"timeout": 30}', receive))
        await reply(send, answer)

    return _http_only(app, handle)


def _error(status: int, message: str) -> Answer:
    body = json.dumps({"code": status, "message": message}).encode()
    return Answer(status, [(b"content-type", b"application/json")], body)


def kruise_prefix_partial(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Under ``/kruise/api`` only create, get, list and kill are served: the prefixed pause,
    timeout and connect of a sandbox answer 404."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope)
        prefixed = str(scope["path"]).startswith("/kruise/api/")
        if prefixed and parts and parts[-1] in ("pause", "timeout", "connect"):
            await read_body(receive)
            await reply(send, _error(404, "not found"))
            return
        await app(scope, receive, send)

    return _http_only(app, handle)


def _envd_call(scope: Scope) -> str | None:
    """The path of a request to envd (port 49983), else ``None``."""
    target = sandbox_target(scope["headers"])
    return str(scope["path"]) if target is not None and target[1] == ENVD else None


def _envelopes(raw: bytes) -> list[tuple[int, bytes]]:
    """The ``(flags, data)`` messages of a Connect stream body."""
    out: list[tuple[int, bytes]] = []
    while len(raw) >= 5:
        flags, size = struct.unpack(">BI", raw[:5])
        out.append((flags, raw[5 : 5 + size]))
        raw = raw[5 + size :]
    return out


def envd_ignore_cwd(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd's process Start drops the request's ``process.cwd``: every command runs in the
    user's home directory."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _envd_call(scope) != "/process.Process/Start":
            await app(scope, receive, send)
            return
        edited = b""
        for flags, data in _envelopes(await read_body(receive)):
            message = json.loads(data)
            message.get("process", {}).pop("cwd", None)
            data = json.dumps(message).encode()
            edited += struct.pack(">BI", flags, len(data)) + data
        scope = _with_header(scope, b"content-length", str(len(edited)).encode())
        await app(scope, replay(edited, receive), send)

    return _http_only(app, handle)


def envd_ignore_stdin(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd's ``Process/SendInput`` answers success and writes nothing to the process."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _envd_call(scope) != "/process.Process/SendInput":
            await app(scope, receive, send)
            return
        await read_body(receive)
        await reply(send, Answer(200, [(b"content-type", b"application/json")], b"{}"))

    return _http_only(app, handle)


def envd_connect_broken(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd does not implement ``Process/Connect`` (reconnecting to a running command)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _envd_call(scope) != "/process.Process/Connect":
            await app(scope, receive, send)
            return
        await read_body(receive)
        body = json.dumps({"code": "unimplemented", "message": "no"}).encode()
        await reply(send, Answer(501, [(b"content-type", b"application/json")], body))

    return _http_only(app, handle)


def envd_upload_needs_path(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd's ``POST /files`` refuses an upload without ``path``: the multi-file form the SDK
    sends for ``files.write_files`` of several files (each named by its part's filename)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode())
        upload = _envd_call(scope) == "/files" and scope["method"] == "POST"
        if not upload or "path" in query:
            await app(scope, receive, send)
            return
        await read_body(receive)
        await reply(send, _error(400, "path required"))

    return _http_only(app, handle)


def _list_without_config(app: ASGIApp) -> Middleware:
    """envd's ``Process/List`` answers each process without its command (empty ``cmd``, no
    ``args``)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _envd_call(scope) != "/process.Process/List":
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        body = answer.json()
        if answer.status == 200 and isinstance(body, dict):
            for process in body.get("processes", []):
                process["config"] = {"cmd": "", "args": [], "envs": {}}
            answer = json_answer(answer, 200, body)
        await reply(send, answer)

    return handle


def envd_list_no_config(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd's ``Process/List`` names no process's command (empty ``cmd``, no ``args``)."""
    return _http_only(app, _list_without_config(app))


def envd_no_deadline_list_no_config(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd ignores ``Connect-Timeout-Ms`` (a timed-out command lives on) and its
    ``Process/List`` names no process's command: a search of the list by command finds
    nothing, whether the process ended or not."""
    listing = _list_without_config(app)

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _envd_call(scope) == "/process.Process/Start":
            kept = [(k, v) for k, v in scope["headers"] if k.lower() != b"connect-timeout-ms"]
            scope = {**scope, "headers": kept}
        await listing(scope, receive, send)

    return _http_only(app, handle)


def _execute_lines(edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Mutant:
    """The code interpreter's ``POST /execute`` answer with each NDJSON line passed through
    ``edit`` (``None`` drops the line)."""

    def build(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            target = sandbox_target(scope["headers"])
            execute = target is not None and target[1] == JUPYTER and scope["path"] == "/execute"
            if not execute:
                await app(scope, receive, send)
                return
            answer = await call(app, scope, receive)
            if answer.status == 200:
                lines = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
                kept = [edited for edited in map(edit, lines) if edited is not None]
                answer.body = b"".join(json.dumps(line).encode() + b"\n" for line in kept)
            await reply(send, answer)

        return _http_only(app, handle)

    return build


code_drop_stderr = _execute_lines(lambda line: None if line.get("type") == "stderr" else line)
"""The code interpreter drops what a run writes to stderr."""
code_stderr_as_stdout = _execute_lines(
    lambda line: {**line, "type": "stdout"} if line.get("type") == "stderr" else line
)
"""The code interpreter sends what a run writes to stderr as stdout."""
code_text_only = _execute_lines(
    lambda line: (
        {k: v for k, v in line.items() if k in ("type", "text", "is_main_result")}
        if line.get("type") == "result"
        else line
    )
)
"""The code interpreter's results carry only their text: no html, png, json, ..."""
code_no_exec_count = _execute_lines(
    lambda line: None if line.get("type") == "number_of_executions" else line
)
"""The code interpreter never says how many executions its context has run."""


# -- hunt HC2: the list, auth on every mount, and unknown sandboxes ---------------------------

_JSON: Final = [(b"content-type", b"application/json")]
"""The headers of a JSON body."""


_LISTED_ONLY: Final = ("envdAccessToken", "domain", "network", "lifecycle", "pauseMode")
"""Fields of ``SandboxDetail`` a list item does not carry."""


def _is_list(scope: Scope) -> bool:
    return scope["method"] == "GET" and _api_path(scope) == ["v2", "sandboxes"]


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


def _sub_request(scope: Scope, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    """A request of the middleware's own to the app, on the connection of ``scope``."""
    return {
        **scope,
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }


def _same_caller(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The headers of a bodiless request by the caller of ``scope`` (its API key only)."""
    return [(k, v) for k, v in scope["headers"] if k.lower() == b"x-api-key"]


def _listed_in(item: dict[str, Any], query: dict[str, str]) -> bool:
    """Whether ``item`` matches the ``metadata`` and ``state`` filters of a list ``query``."""
    wanted = decode_metadata_filter(query.get("metadata", ""))
    meta = item.get("metadata") or {}
    states = query.get("state") or "running,paused"
    return item.get("state") in states.split(",") and all(
        meta.get(k) == v for k, v in wanted.items()
    )


def _list_keeps(paused_only: bool) -> Mutant:
    def build(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
        killed: dict[str, dict[str, Any]] = {}

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            parts = _api_path(scope)
            if (
                scope["method"] == "DELETE"
                and parts is not None
                and parts[:1] == ["sandboxes"]
                and len(parts) == 2
            ):
                # The sandbox as GET shows it before the kill: what the stale list keeps.
                get = _sub_request(scope, "GET", f"/sandboxes/{parts[1]}", _same_caller(scope))
                before = await call(app, get, replay(b"", receive))
                answer = await call(app, scope, receive)
                item = before.json()
                kept = isinstance(item, dict) and (item.get("state") == "paused" or not paused_only)
                if answer.status == 204 and before.status == 200 and kept:
                    killed[parts[1]] = {k: v for k, v in item.items() if k not in _LISTED_ONLY}
                await reply(send, answer)
                return
            query = _query(scope)
            if not _is_list(scope) or "limit" in query or "nextToken" in query:
                await app(scope, receive, send)  # pages are left alone: their sizes stay right
                return
            answer = await call(app, scope, receive)
            items = answer.json()
            if answer.status == 200 and isinstance(items, list):
                ids = {i.get("sandboxID") for i in items}
                stale = [i for s, i in killed.items() if s not in ids and _listed_in(i, query)]
                if stale:
                    # In the server's order (oldest first unless order=desc), as a cache would.
                    listed = sorted(
                        items + stale,
                        key=lambda i: (_instant(i["startedAt"]), i["sandboxID"]),
                        reverse=query.get("order") == "desc",
                    )
                    answer = json_answer(answer, 200, listed)
            await reply(send, answer)

        return _http_only(app, handle)

    return build


list_keeps_killed = _list_keeps(paused_only=False)
"""A sandbox killed with ``DELETE`` stays in the list (a list served from a cache that keeps
terminating sandboxes), as it was before the kill; GET answers 404."""


list_keeps_killed_paused = _list_keeps(paused_only=True)
"""As :data:`list_keeps_killed`, for sandboxes killed while paused only."""


def list_drops_metadata(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """List items carry no ``metadata`` (the filter still works; GET still shows it)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_list(scope):
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        items = answer.json()
        if answer.status == 200 and isinstance(items, list):
            for item in items:
                item.pop("metadata", None)
            answer = json_answer(answer, 200, items)
        await reply(send, answer)

    return _http_only(app, handle)


def list_default_running_only(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """A list without ``state`` lists running sandboxes only (the default is both)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _is_list(scope) and "state" not in _query(scope):
            scope = with_query(scope, lambda pairs: [*pairs, ("state", "running")])
        await app(scope, receive, send)

    return _http_only(app, handle)


FOREIGN: Final = {"owner": "someone-else"}
"""Metadata of the sandboxes :func:`next_page_drops_filter` makes: not the run's."""


def next_page_drops_filter(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Pages after the first ignore the ``metadata`` filter (a page token holding only a
    position); meanwhile, on the first such page, another client of the team creates two
    sandboxes."""
    foreign: list[str] = []

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_list(scope) or "nextToken" not in _query(scope):
            await app(scope, receive, send)
            return
        if not foreign:
            body = json.dumps({"templateID": "base", "metadata": FOREIGN, "envVars": {}}).encode()
            headers = [(b"x-api-key", key.encode()), *_JSON]
            create = _sub_request(scope, "POST", "/v2/sandboxes", headers)
            for _ in range(2):
                made = await call(app, create, replay(body, receive))
                foreign.append(str((made.json() or {}).get("sandboxID")))
        scope = with_query(scope, lambda pairs: [p for p in pairs if p[0] != "metadata"])
        await app(scope, receive, send)

    return _http_only(app, handle)


def auth_open_v1_create(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """``POST /sandboxes`` (the create route of e2b 2.20-2.50) needs no API key; every other
    route does."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        native = not str(scope["path"]).startswith("/kruise/api")
        if scope["method"] == "POST" and native and _api_path(scope) == ["sandboxes"]:
            scope = _with_header(scope, b"x-api-key", key.encode())
        await app(scope, receive, send)

    return _http_only(app, handle)


def auth_open_kruise_prefix(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Every route under ``/kruise/api`` answers without an API key (a second mount of the
    E2B routes that missed the auth middleware)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        prefixed = str(scope["path"]).startswith("/kruise/api/")
        if prefixed and _api_path(scope) is not None:
            scope = _with_header(scope, b"x-api-key", key.encode())
        await app(scope, receive, send)

    return _http_only(app, handle)


def unknown_404_500(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Connect and pause of a sandbox that does not exist answer 500, not 404."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope) or []
        sandbox = parts[1:] if parts[:1] == ["v2"] else parts
        acts = (
            len(sandbox) == 3 and sandbox[0] == "sandboxes" and sandbox[2] in ("connect", "pause")
        )
        if scope["method"] != "POST" or not acts:
            await app(scope, receive, send)
            return
        raw = await read_body(receive)
        get = _sub_request(scope, "GET", f"/sandboxes/{sandbox[1]}", _same_caller(scope))
        if (await call(app, get, replay(b"", receive))).status == 404:
            body = json.dumps({"code": 500, "message": "internal error"}).encode()
            await reply(send, Answer(500, list(_JSON), body))
            return
        await app(scope, replay(raw, receive), send)

    return _http_only(app, handle)


def list_metadata_substring(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """The ``metadata`` filter matches values by substring (``env=prod`` lists ``env=preprod``)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        query = _query(scope)
        paged = "limit" in query or "nextToken" in query
        if not _is_list(scope) or "metadata" not in query or paged:
            await app(scope, receive, send)
            return
        wanted = decode_metadata_filter(query["metadata"])
        scope = with_query(scope, lambda pairs: [p for p in pairs if p[0] != "metadata"])
        answer = await call(app, scope, receive)
        items = answer.json()
        if answer.status == 200 and isinstance(items, list):
            found = [
                i
                for i in items
                if all(v in str((i.get("metadata") or {}).get(k, "")) for k, v in wanted.items())
            ]
            answer = json_answer(answer, 200, found)
        await reply(send, answer)

    return _http_only(app, handle)


def paused_detail_no_end(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """``GET /sandboxes/{id}`` of a paused sandbox answers ``"endAt": null`` (a paused sandbox
    has no deadline running): the SDK's ``get_info()`` of it fails to parse the answer."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        parts = _api_path(scope) or []
        if scope["method"] != "GET" or len(parts) != 2 or parts[0] != "sandboxes":
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        body = answer.json()
        if answer.status == 200 and isinstance(body, dict) and body.get("state") == "paused":
            answer = json_answer(answer, 200, {**body, "endAt": None})
        await reply(send, answer)

    return _http_only(app, handle)


def connect_drops_token(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Connect answers (200 and 201, on either generation's route) leave out
    ``envdAccessToken``, which envd still wants: a sandbox from ``Sandbox.connect`` sends
    none and every envd call of it is refused."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST" or _connect_of(_api_path(scope)) is None:
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        body = answer.json()
        if answer.status in (200, 201) and isinstance(body, dict):
            body.pop("envdAccessToken", None)
            answer = json_answer(answer, answer.status, body)
        await reply(send, answer)

    return _http_only(app, handle)


def envd_user_only(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """envd knows one user, ``user``: a call naming another (``Authorization: Basic`` on an
    RPC, ``username=`` on ``/files``), as ``commands.run(..., user="root")`` does, is refused
    as unauthenticated."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if _envd_call(scope) is None:
            await app(scope, receive, send)
            return
        basic = _header(scope, b"authorization").partition(" ")[2]
        named = {base64.b64decode(basic).decode().partition(":")[0]} if basic else set()
        named.update(v for k, v in parse_qsl(scope["query_string"].decode()) if k == "username")
        if named - {"user"}:
            await read_body(receive)
            body = json.dumps({"code": "unauthenticated", "message": "unknown user"}).encode()
            await reply(send, Answer(401, list(_JSON), body))
            return
        await app(scope, receive, send)

    return _http_only(app, handle)


MUTANTS: Final[dict[str, Mutant]] = {
    "envd-token-reads-only": envd_token_reads_only,
    "auth-only-list-create": auth_only_list_create,
    "auto-pause-immediate": auto_pause_immediate,
    "order-stable-ties": order_stable_ties,
    "ts-basic": ts_basic,
    "ts-week": ts_week,
    "ts-lower-z": ts_lower_case,
    "download-first-64k": download_first_64k,
    "sdk-create-bad-text": sdk_create_bad_text,
    "list-keeps-killed": list_keeps_killed,
    "list-keeps-killed-paused": list_keeps_killed_paused,
    "list-drops-metadata": list_drops_metadata,
    "list-default-running-only": list_default_running_only,
    "next-page-drops-filter": next_page_drops_filter,
    "auth-open-v1-create": auth_open_v1_create,
    "auth-open-kruise-prefix": auth_open_kruise_prefix,
    "unknown-404-500": unknown_404_500,
    "list-metadata-substring": list_metadata_substring,
    "resume-ignores-timeout": resume_ignores_timeout,
    "kruise-prefix-partial": kruise_prefix_partial,
    "envd-ignore-cwd": envd_ignore_cwd,
    "envd-ignore-stdin": envd_ignore_stdin,
    "envd-connect-broken": envd_connect_broken,
    "envd-upload-needs-path": envd_upload_needs_path,
    "envd-list-no-config": envd_list_no_config,
    "envd-no-deadline-list-no-config": envd_no_deadline_list_no_config,
    "code-drop-stderr": code_drop_stderr,
    "code-stderr-as-stdout": code_stderr_as_stdout,
    "code-text-only": code_text_only,
    "code-no-exec-count": code_no_exec_count,
    "paused-detail-no-end": paused_detail_no_end,
    "connect-drops-token": connect_drops_token,
    "envd-user-only": envd_user_only,
}
"""Every mutant server by name."""
