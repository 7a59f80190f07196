"""Run an ASGI app on uvicorn in a background thread (tests, fixtures, the demo, benchmarks).

>>> with ServerThread(app) as server:          # doctest: +SKIP
...     httpx.get(server.url + "/health")
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from functools import partial
from types import TracebackType
from typing import Any, Final, Literal

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pytest_kruise_agents.e2b.cuts import CutLogFilter
from pytest_kruise_agents.e2b.peer import CLIENT_GONE, peer_closed

__all__ = [
    "GRACEFUL_SHUTDOWN_S",
    "KEEP_ALIVE_S",
    "TCP_KEEPALIVE_PROBES",
    "TCP_KEEPALIVE_S",
    "QuickAckProtocol",
    "ServerThread",
    "enable_tcp_keepalive",
    "uvicorn_config",
]

KEEP_ALIVE_S: Final = 620.0
"""How long an idle connection stays open: longer than a client keeps one.

The e2b SDK keeps an idle connection in its pool for 300 s
(``E2B_KEEPALIVE_EXPIRY``), uvicorn by default only 5 s. A server closing an
idle connection races the client's next request on it, which then fails
(``httpx.WriteError`` "connection reset", ``RemoteProtocolError`` "connection
closed before message completed"): 3 requests in 10 made 5 s after the one
before on the same connection. The side that keeps connections shorter must
close them, and that is the client.
"""

GRACEFUL_SHUTDOWN_S: Final = 2
"""How long a stopping server waits for requests still open before it cancels them.

Streams stay open as long as their client wants (a background command's
output, a directory watch): without a bound, uvicorn waits for them forever
and the server never exits. The lifespan shutdown that follows the
cancellation stops every sandbox, killing the commands those streams followed.
"""


_CUT_FILTER: Final = CutLogFilter()


TCP_KEEPALIVE_S: Final = 15
"""Idle time before the first TCP keep-alive probe, and time between probes (Go's default)."""

TCP_KEEPALIVE_PROBES: Final = 9
"""Unanswered probes after which the kernel drops the connection (Go's default)."""

_STREAM_TYPE: Final = b"application/connect+"
"""The ``Content-Type`` prefix of a Connect streaming request, whose body may fall silent."""

_log = logging.getLogger(__name__)


def enable_tcp_keepalive(sock: socket.socket) -> None:
    """Probe ``sock``'s peer after :data:`TCP_KEEPALIVE_S` of silence, as Go's net/http does.

    A client gone without a FIN or a reset (a laptop asleep, a paused VM, a
    pulled cable) is then noticed within about 150 s on a connection that
    waits for it (a stream, a request held for stock), instead of never.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS keeps its own defaults
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, TCP_KEEPALIVE_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, TCP_KEEPALIVE_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, TCP_KEEPALIVE_PROBES)


class QuickAckProtocol(H11Protocol):
    """uvicorn's h11 protocol, acknowledging every segment at once (``TCP_QUICKACK``).

    The E2B SDK's HTTP stack writes a request's headers and body in two
    segments with Nagle's algorithm on: the body waits for the ACK of the
    headers, which Linux delays up to 40 ms while the server waits for the
    body. Acknowledging at once removes that stall from every SDK call over
    plain HTTP (measured in ``bench/e2b_server.py``).

    It bounds what uvicorn leaves unbounded, the wait for a client's bytes: a
    request head must be complete within the idle timeout
    (``timeout_keep_alive``, :data:`KEEP_ALIVE_S`) of the connection's
    opening or of the previous response, and a request body may not fall
    silent for longer (a Connect stream's may: its silence is the client's
    right). The connection is closed then; the request's app sees its client
    gone. Accepted sockets get TCP keep-alive (:func:`enable_tcp_keepalive`).

    A request asking for a protocol upgrade (``Upgrade: h2c``, ``websocket``)
    is served over HTTP/1.1 without uvicorn's warnings, and a request turning
    malformed after its answer only closes the connection. Each request's
    scope carries a probe of whether its client is gone
    (:data:`~pytest_kruise_agents.e2b.peer.CLIENT_GONE`), which asks the socket
    at once rather than wait for the loop to read the connection's end.
    """

    _read_timer: asyncio.TimerHandle | None = None
    _awaiting: Literal["head", "body"] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            enable_tcp_keepalive(sock)
        self._watch_reads()

    def data_received(self, data: bytes) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            # Linux resets quick-ack mode after a while: set it on every read.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        super().data_received(data)
        self._watch_reads(progress=True)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not cycle:
            # A request began: its app may ask whether its client is gone before
            # the loop has read the connection's end (see peer.py).
            extensions = self.cycle.scope.setdefault("extensions", {})
            extensions[CLIENT_GONE] = partial(peer_closed, self.transport)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_reads()

    def _unsupported_upgrade_warning(self) -> None:
        # ``curl --http2`` asks every request to become h2c; the request is served over
        # HTTP/1.1 all the same, and no route here speaks WebSocket: nothing to warn of, and
        # uvicorn's advice (install a WebSocket library) would be wrong.
        _log.debug("upgrade not supported, served over HTTP/1.1: %r", self._get_upgrade())

    def send_400_response(self, msg: str) -> None:
        """Answer a malformed request 400 (plain text, as Go's net/http does), then close.

        Once an answer has begun or ended (a request answered before its body
        was read, whose rest turns out malformed), no other can be sent: the
        connection is only closed. uvicorn tried, and asyncio logged h11's
        refusal as a "Fatal error" with a traceback.
        """
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            super().send_400_response(msg)
            return
        _log.debug("closing a connection whose request turned malformed after its answer")
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_timer()
        super().connection_lost(exc)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._awaiting = None

    def _watch_reads(self, *, progress: bool = False) -> None:
        """(Re)arm the read timer for what the connection now waits for, if anything.

        A head's timer runs from when the head is awaited (bytes trickling in do
        not extend it); a body's restarts with every ``progress``.
        """
        awaiting: Literal["head", "body"] | None = None
        if not self.transport.is_closing():
            state = self.conn.their_state
            if state is h11.IDLE:
                awaiting = "head"
            elif state is h11.SEND_BODY and not self._is_stream():
                awaiting = "body"
        if awaiting is None:
            self._stop_read_timer()
        elif awaiting != self._awaiting or (awaiting == "body" and progress):
            self._stop_read_timer()
            self._awaiting = awaiting
            self._read_timer = self.loop.call_later(self.timeout_keep_alive, self._read_timed_out)

    def _is_stream(self) -> bool:
        headers = self.headers or []
        return any(k == b"content-type" and v.startswith(_STREAM_TYPE) for k, v in headers)

    def _read_timed_out(self) -> None:
        awaiting, self._read_timer = self._awaiting, None
        if awaiting == "body" and self.flow.read_paused:
            # The app is the slow side (it has not taken what came): not the client's fault.
            self._awaiting = None
            self._watch_reads()
            return
        _log.debug(
            "closing a connection whose request %s did not arrive within %g s",
            awaiting,
            self.timeout_keep_alive,
        )
        self._awaiting = None
        if not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()


def uvicorn_config(app: Any, **config: Any) -> uvicorn.Config:
    """uvicorn's configuration for the servers of this package; ``config`` overrides it.

    Lifespan on, :class:`QuickAckProtocol`, idle connections kept
    :data:`KEEP_ALIVE_S`, requests still open at shutdown cancelled after
    :data:`GRACEFUL_SHUTDOWN_S`, and no colour in the log when ``NO_COLOR`` is
    set and not empty (https://no-color.org).
    """
    if os.environ.get("NO_COLOR"):
        # uvicorn colours its log levels whenever stderr is a terminal, whatever NO_COLOR says.
        config.setdefault("use_colors", False)
    config.setdefault("lifespan", "on")
    config.setdefault("http", QuickAckProtocol)
    config.setdefault("timeout_keep_alive", KEEP_ALIVE_S)
    config.setdefault("timeout_graceful_shutdown", GRACEFUL_SHUTDOWN_S)
    made = uvicorn.Config(app, **config)  # configures uvicorn's loggers
    # A response cut on purpose (a run_code whose sandbox stopped) is no app error.
    logging.getLogger("uvicorn.error").addFilter(_CUT_FILTER)
    return made


_RUNNING: weakref.WeakSet[ServerThread] = weakref.WeakSet()
"""The started servers not yet stopped."""
_exit_hook = False


def _stop_at_exit(server: ServerThread) -> None:
    """Stop ``server`` when the interpreter exits, if it still runs then.

    At the point where the interpreter starts to wait for its threads, not at
    ``atexit``: by then ``concurrent.futures`` refuses new work, and the
    lifespan shutdown needs ``asyncio.to_thread`` (to kill a sandbox's
    daemons, to remove its workspace). Hooks there run last registered
    first, so the thread pools' own hook is made sure of before this one.
    """
    global _exit_hook
    _RUNNING.add(server)
    if _exit_hook:
        return
    import concurrent.futures.thread  # noqa: F401  # registers its exit hook first

    register = getattr(threading, "_register_atexit", atexit.register)
    register(_stop_running)
    _exit_hook = True


def _stop_running() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):  # exiting: the others must stop too
            server.stop()


class ServerThread:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread.

    The socket is bound before the thread starts, so ``port=0`` picks a free
    port and :attr:`url` is known at once; :meth:`start` returns when the
    server accepts connections (after the app's lifespan startup).

    A server still running when the interpreter exits (a script's end, a
    Jupyter kernel shut down or restarted) is stopped then, as ``kruise-agents
    serve`` stops on SIGTERM: the lifespan shutdown stops the sandboxes'
    processes and removes their workspaces (see :func:`_stop_at_exit`). Left
    to its daemon thread, it would be frozen at exit with all of them behind.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        **config: Any,
    ) -> None:
        self.app = app
        self.host = host
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only
        # when the listening socket's proto says TCP (proto 0 costs ~40 ms per response).
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._config = uvicorn_config(app, log_level=log_level, **config)
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Set when the serving thread ends. Not Thread.join: on CPython 3.11 a join that a
        # signal interrupts (Ctrl-C) marks the thread stopped while it still runs, and
        # every later join, the exit hook's too, then returns at once.
        self._done = threading.Event()

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections are open now (a closed one is gone once the loop saw it)."""
        return len(self._server.server_state.connections)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._done.set()

    def start(self, timeout: float = 30.0) -> ServerThread:
        """Start serving; return once the server is up (raise if it failed to start)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self._serve, name=f"uvicorn-{self.port}", daemon=True
        )
        self._thread.start()
        _stop_at_exit(self)
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {self.url} did not start in {timeout:g}s")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (lifespan shutdown runs) and wait for the thread to end."""
        if self._thread is None:
            _RUNNING.discard(self)
            self._sock.close()
            return
        self._server.should_exit = True
        self._done.wait(timeout=timeout)
        # Only now: a Ctrl-C during the wait leaves the shutdown half done, and the
        # exit hook must still see this server to wait for it (processes, workspaces).
        _RUNNING.discard(self)
        self._thread = None
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
