"""``kruise-agents serve``: the fake cluster and its E2B server on uvicorn, in the foreground.

Builds the backend from a config file (or the default config), refuses to
expose fake sandboxes beyond loopback without authentication, raises the soft
limit of open files to the hard one, binds the socket (port 0 picks a free
one), prints the environment a client exports, and serves until interrupted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import resource
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal, TextIO
from urllib.parse import urlsplit

import uvicorn
from uvicorn.config import LOG_LEVELS

from pytest_kruise_agents.backends.base import Caller
from pytest_kruise_agents.backends.sim import MAX_SPEED
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.config import (
    ClusterConfig,
    ConfigError,
    build,
    default_config,
    load_config,
)
from pytest_kruise_agents.e2b.server import uvicorn_config
from pytest_kruise_agents.e2b.settings import Settings, is_loopback
from pytest_kruise_agents.loopback import NO_PROXY_VARIABLES

__all__ = [
    "ACCEPT_OUT_OF_RESOURCE",
    "CLIENT_MAX_CONNECTIONS",
    "LISTEN_BACKLOG",
    "AcceptErrorLog",
    "BuildError",
    "ServeOptions",
    "base_url",
    "bind",
    "client_exports",
    "configure",
    "raise_open_files_limit",
    "serve",
]

CLIENT_MAX_CONNECTIONS: Final = 10_000
"""The connections one client may open, in the printed client environment.

The value of ``E2B_MAX_CONNECTIONS`` (the Python SDK's pool, 200 by default,
``e2b/api/__init__.py``), ``E2B_ENVD_RPC_CONNECTIONS`` (the JavaScript SDK's
envd RPC pool, 200 by default) and ``E2B_API_CONNECTIONS`` (its control-plane
pool, 100 by default). The SDKs speak HTTP/1.1 over plain ``http://`` (HTTP/2
only through TLS's ALPN), one request per connection at a time, and cap
connections per address. With ``E2B_SANDBOX_URL`` every sandbox is that one
address: a client holding 200 streams (background commands, watches) would
have every later call wait for a free connection until it times out. Against
E2B, HTTP/2 over TLS carries ~100 streams per connection. What binds then is
each side's open-files limit. The JavaScript SDK's pool for envd's REST calls
(``files.read``/``files.write``, ``isRunning``) stays at 10 connections: no
variable sets it.
"""

ACCEPT_OUT_OF_RESOURCE: Final = "socket.accept() out of system resource"
"""asyncio's message for an accept that failed at the descriptor (or memory) limit."""

_OPEN_FILES_CAP: Final = 1 << 20
"""The soft limit taken when the hard one is unlimited (Linux's default ``nr_open``)."""

_log = logging.getLogger("uvicorn.error")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """The command line of ``kruise-agents serve`` (``None``: keep the config's value)."""

    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    clock: Literal["virtual", "realtime"] | None = None
    speed: float | None = None
    seed: int | None = None
    log_level: str = "info"


class BuildError(Exception):
    """The cluster of a config that passed every check could not be built: a bug.

    ``cause`` is the error the build raised; the message names the config and
    says so, for the one line ``serve`` ends with (after ``cause``'s traceback).
    """

    def __init__(self, source: str, cause: Exception) -> None:
        self.source = source
        self.cause = cause
        super().__init__(
            f"{source}: the cluster could not be built: {type(cause).__name__}: {cause} "
            "(a bug of pytest-kruise-agents: the config passed every check; the traceback "
            "above is for its report)"
        )


def configure(opts: ServeOptions) -> tuple[ClusterConfig, str]:
    """The config with the command line's overrides, and its name for messages.

    Raise :class:`ConfigError` for a bad file, a bad override (a port outside
    0-65535, a speed that is not a finite number > 0, an unknown log level), or
    a host the config may not be exposed on (non-loopback without auth; a config with
    auth and no API key is refused by :func:`~pytest_kruise_agents.e2b.config.parse_config`).
    """
    # Checked before anything else: uvicorn would only fail on it once the server starts.
    if opts.log_level not in LOG_LEVELS:
        raise ConfigError(
            "--log-level",
            "",
            f"must be one of {', '.join(LOG_LEVELS)}, got {opts.log_level!r}",
        )
    source = str(opts.config) if opts.config is not None else "<default config>"
    cfg = load_config(opts.config) if opts.config is not None else default_config()
    clock = cfg.clock
    if opts.clock is not None:
        clock = clock.model_copy(update={"mode": opts.clock})
    if not 0 <= opts.port <= 65535:
        raise ConfigError("--port", "", f"must be between 0 and 65535, got {opts.port}")
    if opts.speed is not None:
        if not (opts.speed > 0 and math.isfinite(opts.speed) and opts.speed <= MAX_SPEED):
            # inf would have the realtime clock run every timer at once, forever; a huge
            # finite speed would move it past the last date a timestamp holds at once.
            raise ConfigError(
                "--speed",
                "",
                f"must be a finite number > 0 and at most {MAX_SPEED:g}, got {opts.speed!r}",
            )
        clock = clock.model_copy(update={"speed": opts.speed})
    update: dict[str, object] = {"clock": clock}
    if opts.seed is not None:
        update["seed"] = opts.seed
    cfg = cfg.model_copy(update=update)
    if not is_loopback(opts.host) and not cfg.auth:
        raise ConfigError(
            source,
            "auth",
            f"refusing to listen on {opts.host!r} with authentication disabled: fake "
            "sandboxes run code on this host; bind to 127.0.0.1 or enable auth",
        )
    return cfg, source


LISTEN_BACKLOG: Final = 2048
"""Connections the kernel queues before the server accepts them (uvicorn's default)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: a free port).

    Listening already, before the server runs: its URL is printed before the
    startup (pools filled, the event loop's server made), and a client that
    connects on reading it must wait in the backlog, not be refused.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket's proto says TCP (without it every response waits ~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        # asyncio's create_server(sock=...) listens again, with the same backlog: harmless.
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return it (before, after).

    A busy sandbox holds about 6 descriptors (a command's pipes, its stream's
    connection, a watch's directory): the common soft limit of 1024 runs out
    near 150 sandboxes, while the hard limit is usually far higher. Servers
    raise it at start for that reason (Go's runtime, nginx's
    ``worker_rlimit_nofile``). Left as it is if the system refuses.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, _OPEN_FILES_CAP)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


class AcceptErrorLog:
    """An event loop exception handler logging accepts failed at the limit once per ``interval``.

    At the open-files limit asyncio logs every failed ``accept()`` with a
    traceback, up to the listen backlog's times per retry (59,174 lines in
    20 s were seen). The connections wait in the backlog meanwhile and are
    served once descriptors free up: one line per ``interval`` says so, with
    how many failures it stands for. Everything else goes to the loop's
    default handler.
    """

    def __init__(
        self, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._failures = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _retry_of_a_closed_listener(context):
            return
        if context.get("message") != ACCEPT_OUT_OF_RESOURCE:
            loop.default_exception_handler(context)
            return
        self._failures += 1
        now = self._clock()
        if now < self._next:
            return
        exc = context.get("exception")
        _log.error(
            "%s: %s (%d accept(s) failed since the last report; connections wait in the "
            "backlog until descriptors free up; raise `ulimit -n`)",
            ACCEPT_OUT_OF_RESOURCE,
            exc,
            self._failures,
        )
        self._failures = 0
        self._next = now + self.interval


def _retry_of_a_closed_listener(context: dict[str, Any]) -> bool:
    """Whether ``context`` is asyncio's accept retry firing after its listener closed.

    After a failed ``accept()`` asyncio schedules ``_start_serving`` again a
    second later and does not cancel it when the server closes: a shutdown in
    that second makes the retry fail on the closed socket (``Invalid file
    descriptor: -1``). Nothing is lost (the server is gone), so it is no error.
    """
    handle = context.get("handle")
    callback = getattr(handle, "_callback", None)
    if getattr(callback, "__name__", None) != "_start_serving":
        return False
    if not isinstance(context.get("exception"), ValueError):
        return False
    args = getattr(handle, "_args", ()) or ()
    return any(isinstance(a, socket.socket) and a.fileno() == -1 for a in args)


class _Server(uvicorn.Server):
    """uvicorn's server, with :class:`AcceptErrorLog` on its event loop."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(AcceptErrorLog())
        await super().serve(sockets)


def base_url(host: str, port: int) -> str:
    """``http://host:port`` with IPv6 hosts bracketed; a wildcard host is shown as loopback."""
    shown = host.strip("[]")
    if shown in ("0.0.0.0", ""):
        shown = "127.0.0.1"
    elif shown == "::":
        shown = "::1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def client_exports(settings: Settings, url: str) -> list[str]:
    """The shell lines a client runs to point the E2B SDK at the server (POSIX shell: the
    server's host is appended to ``NO_PROXY`` and ``no_proxy`` as the shell has them)."""
    users = [k for k in settings.api_keys if not k.admin]
    admin = settings.admin_key
    key = users[0].key if users else (admin.key if admin else "anonymous")
    lines = [
        f"export E2B_API_URL={url}",
        f"export E2B_SANDBOX_URL={url}",
        f"export E2B_API_KEY={key}",
    ]
    if admin is not None:
        lines.append(f"export KRUISE_ADMIN_KEY={admin.key}")
    for other in users[1:]:
        lines.append(f"# another key: {other.key} (id {other.id}, team {other.team})")
    if not settings.auth_enabled:
        lines.append("# authentication is disabled: any E2B_API_KEY is accepted")
    # Plain HTTP/1.1 is one connection per open stream: the SDKs' default caps on
    # connections to the one server address would hang the client's 201st stream
    # (Python: E2B_MAX_CONNECTIONS; JavaScript: E2B_ENVD_RPC_CONNECTIONS for envd's
    # RPCs and E2B_API_CONNECTIONS, 100, for the control plane).
    lines.append(f"export E2B_MAX_CONNECTIONS={CLIENT_MAX_CONNECTIONS}")
    lines.append(f"export E2B_ENVD_RPC_CONNECTIONS={CLIENT_MAX_CONNECTIONS}")
    lines.append(f"export E2B_API_CONNECTIONS={CLIENT_MAX_CONNECTIONS}")
    # A proxy in the client's HTTP_PROXY would get every call, and cannot reach this
    # host's loopback: the server's host goes after the hosts the shell already lists.
    host = urlsplit(url).hostname or url
    for name in NO_PROXY_VARIABLES:
        lines.append(f'export {name}="${{{name}:+${name},}}{host}"')
    return lines


def serve(
    opts: ServeOptions,
    *,
    out: TextIO | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Build everything, print the client environment and serve until interrupted.

    Raise :class:`ConfigError` for a bad config or option, and :class:`BuildError`
    when a config that passed every check cannot be built.
    """
    stream = out if out is not None else sys.stdout
    cfg, source = configure(opts)
    before, limit = raise_open_files_limit()
    try:
        backend, settings = build(cfg, source=source)
    except ConfigError:
        raise
    except Exception as exc:
        # parse_config refuses what the build would: anything else is a check it misses.
        raise BuildError(source, exc) from exc
    try:
        settings = dataclasses.replace(settings, host=opts.host)
        settings.check_exposure()
        sock = bind(opts.host, opts.port)
        url = base_url(opts.host, sock.getsockname()[1])
        app = create_app(backend, settings)
        pools = ", ".join(t.template_id for t in backend.templates(Caller(namespace="", user="")))
        print(
            f"# kruise-agents E2B server on {url} "
            f"(clock {backend.clock_mode}, seed {cfg.seed}, "
            f"profile {backend.cluster.profile.summary()}, pools: {pools or 'none'})",
            file=stream,
        )
        for line in client_exports(settings, url):
            print(line, file=stream)
        if limit != before:
            print(f"# open files: soft limit raised from {before} to {limit}", file=stream)
        print("# fake sandboxes run code on this host: they are not isolation", file=stream)
        stream.flush()
        if on_ready is not None:
            on_ready(url)
        server = _Server(
            uvicorn_config(app, log_level=opts.log_level, access_log=False, backlog=LISTEN_BACKLOG)
        )
        server.run(sockets=[sock])
    finally:
        backend.close()
