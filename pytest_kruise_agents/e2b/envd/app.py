"""The fake envd ASGI app: what answers on port 49983 of every sandbox.

One app serves every sandbox: the router puts the sandbox's
:class:`~pytest_kruise_agents.e2b.workspace.SandboxWorkspace` in
``scope["state"]["kruise_workspace"]`` and this app dispatches:

* ``GET /health`` -> 204 (no auth);
* ``POST /init`` -> store ``envVars`` / ``accessToken`` on the workspace, 204
  (400, nothing stored, for an env var no process can carry);
* ``GET``/``POST /files`` -> download / upload (token or signed URL);
* ``POST /process.Process/*`` and ``/filesystem.Filesystem/*`` -> the Connect
  services, built on the server stubs shipped in the ``e2b`` wheel, after the
  ``X-Access-Token`` check; the user comes from ``Authorization: Basic``.

A request routed just before its sandbox stopped (paused or killed) gets
what the proxy answers after the stop: 502 ``"The sandbox was not found ..."``
on ``/init`` and ``/files``, ``unavailable`` on RPCs that start or list
something.

A streaming request body cut inside an envelope, or one that does not inflate
under its gzip encoding, is ``invalid_argument`` as connect-go answers it
(:mod:`~pytest_kruise_agents.e2b.envd.envelopes`).

An RPC request message larger than :data:`DEFAULT_MAX_MESSAGE_BYTES` (a huge
``send_stdin``) is refused with ``invalid_argument`` naming the limit, before
any of it is used. connect-go, under envd, reads messages of any size; the
bound keeps one client from filling the server's memory. Not
``resource_exhausted``, connectrpc's own answer: the SDK reads that as "Rate
limit exceeded, please try again later", and a retry cannot help. Only the
calls that carry a command's input (``SendInput``, ``StreamInput``) may be
that big: every other call's message (paths, a command line) is bounded by
:data:`DEFAULT_MAX_CALL_BYTES`, so that a small gzip body cannot make the
server inflate, parse and answer a path of a hundred megabytes. Gzip bodies
are inflated incrementally and refused as soon as they pass the call's bound.

Every error is JSON (``{"code": int, "message"}`` on HTTP routes, Connect's
``{"code": "<code>", "message"}`` on unary RPCs), or, on a streaming RPC,
Connect's streaming error: HTTP 200 and an end-of-stream message
``{"error": {"code", "message"}}``, even when the call is refused before its
handler runs (a bad token, an unknown user, a ``Connect-Timeout-Ms`` or
``Connect-Protocol-Version`` header connect-go refuses). No request can crash it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from connectrpc.code import Code
from connectrpc.codec import proto_binary_codec, proto_json_codec
from connectrpc.compression.gzip import GzipCompression
from connectrpc.errors import ConnectError
from e2b.envd.filesystem.filesystem_connect import FilesystemASGIApplication
from e2b.envd.process.process_connect import ProcessASGIApplication
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.e2b.drain import DrainBeforeErrorMiddleware
from pytest_kruise_agents.e2b.envd import context
from pytest_kruise_agents.e2b.envd.auth import AuthError, check_token, user_from_basic
from pytest_kruise_agents.e2b.envd.envelopes import EnvelopeFraming
from pytest_kruise_agents.e2b.envd.errors import (
    GuardedCodec,
    GuardedCompression,
    http_error,
    message_too_large,
)
from pytest_kruise_agents.e2b.envd.files import DEFAULT_MAX_UPLOAD_BYTES, download, upload
from pytest_kruise_agents.e2b.envd.filesystem import FilesystemService
from pytest_kruise_agents.e2b.envd.process import ProcessService
from pytest_kruise_agents.e2b.envvars import env_vars_problem
from pytest_kruise_agents.e2b.nesting import depth_over, too_deep_message
from pytest_kruise_agents.e2b.workspace import SandboxStopped, SandboxWorkspace, Workspaces

__all__ = [
    "DEFAULT_MAX_CALL_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INPUT_RPCS",
    "WORKSPACE_KEY",
    "EnvdApp",
    "make_envd_app",
]

_log = logging.getLogger(__name__)

WORKSPACE_KEY = "kruise_workspace"
"""Key of the sandbox workspace in ``scope["state"]`` (set by the router)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MAX_INIT_BYTES = 1024 * 1024

DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""Largest RPC request message envd reads (a ``send_stdin`` chunk, a path), inflated.

Above the 100 MiB of an upload, eight times the 16 MiB this used to be:
messages are read whole into memory, so it bounds one request's share.
Only the stdin calls (:data:`INPUT_RPCS`) take that much; see :data:`DEFAULT_MAX_CALL_BYTES`.
"""

DEFAULT_MAX_CALL_BYTES = 4 * 1024 * 1024
"""Largest request message of every other RPC, inflated.

A path is at most 4096 bytes, and a command with its arguments and env vars
at most what ``exec`` takes (``ARG_MAX``, 2 MiB on a default Linux stack):
4 MiB refuses nothing that could work, and keeps a 4 KB gzip body from
costing more than 4 MiB of inflating and parsing on the event loop.
"""

INPUT_RPCS = frozenset({"/process.Process/SendInput", "/process.Process/StreamInput"})
"""The RPCs that carry a command's stdin: their messages may reach ``max_message_bytes``."""


async def _send_response(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    await response(scope, receive, send)


class EnvdApp:
    """ASGI app of envd for the workspaces of one :class:`Workspaces`."""

    def __init__(
        self,
        workspaces: Workspaces,
        *,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_call_bytes: int = DEFAULT_MAX_CALL_BYTES,
    ) -> None:
        self.workspaces = workspaces
        self.max_upload_bytes = max_upload_bytes
        self.max_message_bytes = max_message_bytes
        self.max_call_bytes = max_call_bytes
        codecs = [GuardedCodec(proto_json_codec()), GuardedCodec(proto_binary_codec())]
        compressions = [GuardedCompression(GzipCompression())]
        self._rpc: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            "/process.Process/": ProcessASGIApplication(
                ProcessService(),
                codecs=codecs,
                compressions=compressions,
                read_max_bytes=max_message_bytes,
            ),
            "/filesystem.Filesystem/": FilesystemASGIApplication(
                FilesystemService(),
                codecs=codecs,
                compressions=compressions,
                read_max_bytes=max_message_bytes,
            ),
        }

        self._entry = DrainBeforeErrorMiddleware(self._serve)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Standalone (tests, a sidecar) as well as under the E2B server's router.
        await self._entry(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        ws = (scope.get("state") or {}).get(WORKSPACE_KEY)
        path: str = scope["path"]
        if not isinstance(ws, SandboxWorkspace):
            response: Response = http_error(
                500, f"envd: no sandbox workspace in scope['state'][{WORKSPACE_KEY!r}]"
            )
        else:
            for prefix, app in self._rpc.items():
                if path.startswith(prefix):
                    await self._call_rpc(app, ws, scope, receive, send)
                    return
            try:
                response = await self._http(scope, receive, ws)
            except SandboxStopped as exc:
                # Routed just before its sandbox stopped: answered as the proxy
                # answers a request sent after the stop (the SDK: not running).
                response = http_error(502, str(exc))
            except ClientDisconnect:
                # The client left before its body arrived (it gave up, or was stopped):
                # its own doing, no server error; the answer is for nobody.
                _log.debug("client went away on envd %s %s", scope["method"], path)
                response = http_error(400, "the client disconnected before its body was complete")
            except Exception as exc:
                # A bug must cost one request a JSON 500, never the server.
                _log.exception("envd %s %s failed", scope["method"], path)
                response = http_error(500, f"internal error: {type(exc).__name__}")
        await _send_response(response, scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, ws: SandboxWorkspace) -> Response:
        """The plain HTTP routes: ``/health``, ``/init``, ``/files``.

        ``/init`` and ``/files`` raise :class:`SandboxStopped` once the sandbox stopped.
        """
        path = scope["path"]
        if path == "/health":
            return self._health(scope)
        if path in ("/init", "/files"):
            ws.require_running()
        if path == "/init":
            return await self._init(Request(scope, receive), ws)
        if path == "/files":
            return await self._files(Request(scope, receive), ws)
        return http_error(404, f"no envd route {scope['method']} {path}")

    @staticmethod
    def _health(scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return http_error(
                405, f"method {scope['method']} not allowed on /health", allow="GET, HEAD"
            )
        return Response(status_code=204)

    async def _files(self, request: Request, ws: SandboxWorkspace) -> Response:
        if request.method in ("GET", "HEAD"):
            return await download(request, ws)
        if request.method == "POST":
            return await upload(request, ws, limit=self.max_upload_bytes)
        return http_error(
            405, f"method {request.method} not allowed on /files", allow="GET, HEAD, POST"
        )

    async def _init(self, request: Request, ws: SandboxWorkspace) -> Response:
        """``POST /init {"envVars", "accessToken", ...}``: configure the sandbox, 204.

        Once a sandbox has a token, changing it needs the current one (in
        ``X-Access-Token`` or as ``accessToken``): a stranger must not be
        able to take a sandbox over.
        """
        if request.method != "POST":
            return http_error(405, f"method {request.method} not allowed on /init", allow="POST")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_INIT_BYTES:
                return http_error(413, f"/init body exceeds {_MAX_INIT_BYTES} bytes")
        depth = depth_over(body)
        if depth is not None:
            # Before the parser, which recurses once a level (RecursionError, a 500).
            return http_error(400, f"/init body: {too_deep_message(depth)}")
        try:
            # Lone surrogates ("\ud800") read as U+FFFD, as envd's Go decoder reads them:
            # kept, they would make every command's environment unencodable.
            data = replace_surrogates(json.loads(body or b"{}"))
        except ValueError as exc:
            return http_error(400, f"/init body is not JSON: {exc}")
        if not isinstance(data, dict):
            return http_error(400, "/init body must be a JSON object")
        env_vars = data.get("envVars")
        if env_vars is not None and not (
            isinstance(env_vars, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())
        ):
            return http_error(400, "envVars: must be an object of string values")
        # Stored, they would fail every later command of the sandbox (see envvars).
        problem = env_vars_problem("envVars", env_vars or {})
        if problem is not None:
            return http_error(400, problem.message)
        token = data.get("accessToken")
        if token is not None and not isinstance(token, str):
            return http_error(400, "accessToken: must be a string")
        if (
            ws.access_token
            and not check_token(ws, request.headers.get("x-access-token"))
            and not check_token(ws, token)
        ):
            return http_error(401, "/init needs the sandbox's current access token")
        # Again: the sandbox may have stopped while the body came in, and its
        # next life's workspace (a fresh object) would never see this one's change.
        ws.require_running()
        if env_vars:
            ws.env_vars.update(env_vars)
        if token is not None:
            ws.access_token = token
        return Response(status_code=204)

    async def _call_rpc(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        ws: SandboxWorkspace,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        headers = Request(scope).headers
        stream = _stream_media_type(headers.get("content-type"))
        user = _rpc_user(ws, headers, stream)
        if isinstance(user, Response):
            await _send_response(user, scope, receive, send)
            return
        problem = _connect_header_problem(headers)
        if problem is not None:
            # Refused here, not by connectrpc: it answers a stream's with a bare
            # HTTP 400, which no streaming client reads (see _rpc_error).
            refused = _rpc_error(stream, 400, "invalid_argument", problem)
            await _send_response(refused, scope, receive, send)
            return
        stdin = scope["path"] in INPUT_RPCS
        limit = (
            self.max_message_bytes if stdin else min(self.max_message_bytes, self.max_call_bytes)
        )
        state = context.RequestState(ws, user, max_message_bytes=None if stdin else limit)
        started = False
        held: Message | None = None
        framing = EnvelopeFraming() if stream is not None else None
        broken: ConnectError | None = None
        unary_bytes = 0

        async def watch_receive() -> Message:
            nonlocal broken, unary_bytes
            if broken is not None:
                raise broken
            message = await receive()
            if message["type"] == "http.disconnect":
                state.mark_disconnected()
            elif message["type"] != "http.request":
                pass
            elif framing is None:
                # Ahead of connectrpc's own check, which answers resource_exhausted.
                unary_bytes += len(message.get("body", b""))
                if unary_bytes > limit:
                    raise message_too_large(limit, stdin=stdin)
            else:
                framing.feed(message.get("body", b""))
                if framing.largest > limit:
                    raise message_too_large(limit, stdin=stdin)
                problem = None if message.get("more_body") else framing.problem()
                if problem is not None:
                    # Handed on as not the last part: the reader takes the whole
                    # messages before the break, then its next read fails, as
                    # connect-go's does (see envelopes).
                    broken = ConnectError(Code.INVALID_ARGUMENT, problem)
                    message = {**message, "more_body": True}
            return message

        async def track_send(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400 and not _has_content_type(message):
                    held = message  # connectrpc's bare HTTP error: give it a JSON body
                    return
            elif held is not None:
                start, held = held, None
                if not message.get("body") and not message.get("more_body"):
                    status = int(start["status"])
                    code, why = _BARE_ERRORS.get(status, ("unknown", "request refused"))
                    await _send_response(
                        _rpc_error(
                            stream, status, code, f"{why}: {scope['method']} {scope['path']}"
                        ),
                        scope,
                        receive,
                        send,
                    )
                    return
                await send(start)
            if stream is not None and _cut_by_shutdown(message):
                message = {**message, "body": _stopped_by_shutdown(ws.sandbox_id)}
            await send(message)

        with context.bound(state):
            try:
                await app(scope, watch_receive, track_send)
            except ConnectError as exc:
                # connectrpc turns the cancellation of a stream's task (a stopping
                # server cancels the requests still open) into CANCELED, after
                # ending the stream with it: expected, not a failure to log.
                _log.debug("envd RPC %s ended: %s", scope["path"], exc)
                if not started:
                    await _send_response(
                        _rpc_error(stream, 499, "canceled", "request cancelled"),
                        scope,
                        receive,
                        send,
                    )
            except Exception:
                # connectrpc already answered (it re-raises non-Connect errors
                # for the server to log); never let one request take us down.
                _log.exception("envd RPC %s failed", scope["path"])
                if not started:
                    await _send_response(
                        _rpc_error(stream, 500, "internal", "internal error"),
                        scope,
                        receive,
                        send,
                    )
            finally:
                # The stream is over: nobody listens any more.
                state.mark_disconnected()


def _rpc_user(ws: SandboxWorkspace, headers: Headers, stream: str | None) -> str | Response:
    """The user an RPC acts as, or the error refusing it (a bad token, an unknown user)."""
    if not check_token(ws, headers.get("x-access-token")):
        return _rpc_error(stream, 401, "unauthenticated", "missing or invalid X-Access-Token")
    try:
        return user_from_basic(headers.get("authorization"))
    except AuthError as exc:
        return _rpc_error(stream, 401, "unauthenticated", str(exc))


_MAX_TIMEOUT_DIGITS = 10
"""Most characters of a ``Connect-Timeout-Ms`` value (the Connect protocol's bound)."""

_GO_INT = re.compile(r"[+-]?[0-9]+")
"""What Go's ``strconv.ParseInt(s, 10, 64)`` reads: ASCII digits, an optional sign (no
underscores, spaces or other digits, which Python's ``int`` takes)."""


def _connect_header_problem(headers: Headers) -> str | None:
    """Why connect-go (under envd) refuses the call's Connect headers, or ``None``.

    The checks connectrpc makes before the handler runs, made first so that
    a stream's refusal is a Connect stream (and its message closes its quotes):
    a ``Connect-Protocol-Version`` other than ``1`` (absent is fine), and a
    ``Connect-Timeout-Ms`` longer than 10 characters or not a whole number. The
    SDK sends 11 digits by itself: ``commands.run(timeout=10**7)``.
    """
    version = headers.get("connect-protocol-version")
    if version is not None and version != "1":
        return f"Connect-Protocol-Version must be {_go_quote('1')}: got {_go_quote(version)}"
    timeout = headers.get("connect-timeout-ms")
    if not timeout:
        return None
    if len(timeout) > _MAX_TIMEOUT_DIGITS:
        return f"Connect-Timeout-Ms {_go_quote(timeout)} has more than 10 digits"
    if _GO_INT.fullmatch(timeout) is None:
        return f"Connect-Timeout-Ms {_go_quote(timeout)} is not a whole number of milliseconds"
    return None


def _go_quote(text: str) -> str:
    """``text`` quoted as Go's ``%q`` shows it (close enough: JSON's escapes, Unicode kept)."""
    return json.dumps(text, ensure_ascii=False)


# The bare HTTP errors connectrpc answers before a handler runs.
_BARE_ERRORS = {
    404: ("unimplemented", "no such RPC method"),
    405: ("unimplemented", "method not allowed"),
    415: ("invalid_argument", "unsupported Content-Type (streams take application/connect+json)"),
}


_END_OF_STREAM = b"\x02"
"""The flags byte of a Connect end-of-stream envelope (uncompressed)."""


def _cut_by_shutdown(message: Message) -> bool:
    """Whether ``message`` is the plain end of a stream that a stopping server cancelled.

    uvicorn cancels the requests still open once its graceful shutdown has
    passed; connectrpc then ends the stream with an end-of-stream message
    carrying no error, as if the command had ended without its ``end``
    event: the SDK raises a bare ``Exception("Command ended without an end
    event")``. Only a shutdown cancels a request's task.
    """
    if message["type"] != "http.response.body" or message.get("more_body", False):
        return False
    body = bytes(message.get("body", b""))
    if not body or not body[0] & _END_OF_STREAM[0]:  # compressed (0x03) or not
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _stopped_by_shutdown(sandbox_id: str) -> bytes:
    """The end-of-stream message of a stream cut by the server's shutdown: ``unavailable``.

    What a stop of the sandbox ends its streams with ("The sandbox was not
    found", ``SandboxNotRunningException``): the shutdown stops every sandbox
    right after, killing the commands the streams followed. JSON and
    uncompressed whatever the stream's codec, as Connect's end-of-stream is.
    """
    error = {
        "error": {
            "code": "unavailable",
            "message": f"The sandbox was not found: {sandbox_id} was stopped: "
            "the server is shutting down",
        }
    }
    payload = json.dumps(error).encode()
    return _END_OF_STREAM + struct.pack(">I", len(payload)) + payload


def _has_content_type(start: Message) -> bool:
    return any(name.lower() == b"content-type" for name, _ in start.get("headers", ()))


# The Connect streaming content types of the codecs envd serves.
_STREAM_MEDIA_TYPES = ("application/connect+json", "application/connect+proto")
# Flags of the envelope that ends a Connect stream (and carries its error).
_END_STREAM = 0b10


def _stream_media_type(content_type: str | None) -> str | None:
    """The request's Connect streaming media type, or ``None`` for a unary call."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media if media in _STREAM_MEDIA_TYPES else None


def _rpc_error(stream: str | None, status: int, code: str, message: str) -> Response:
    """A Connect error answered before (or instead of) the handler.

    A unary call gets HTTP ``status`` and the JSON error body. A streaming
    call (``stream``, its media type) gets what a Connect server sends: HTTP
    200 and one end-of-stream envelope ``{"error": {...}}`` (JSON whatever
    the codec). Connect streaming clients (connect-es, under the JS SDK) read
    no body of a non-200 stream: the error would reach the user as the bare
    "HTTP 401".
    """
    if stream is None:
        return JSONResponse({"code": code, "message": message}, status_code=status)
    end = json.dumps({"error": {"code": code, "message": message}}).encode()
    envelope = struct.pack(">BI", _END_STREAM, len(end)) + end
    return Response(envelope, status_code=200, media_type=stream)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_envd_app(
    workspaces: Workspaces,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_call_bytes: int = DEFAULT_MAX_CALL_BYTES,
) -> EnvdApp:
    """The envd ASGI app serving the sandboxes of ``workspaces``."""
    return EnvdApp(
        workspaces,
        max_upload_bytes=max_upload_bytes,
        max_message_bytes=max_message_bytes,
        max_call_bytes=max_call_bytes,
    )
