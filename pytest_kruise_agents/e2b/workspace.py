"""Per-sandbox workspaces: the directory that plays each fake sandbox's ``/``.

A :class:`Workspaces` owns one host directory; sandbox ``<id>`` lives in
``<root>/<id>``, with ``home/user`` (the default working directory),
``root`` (root's home) and ``tmp`` inside it. Everything is lazy: :meth:`Workspaces.get`
only builds a small Python object, and nothing is created on disk until a
path is first resolved or a command first runs, so thousands of idle
sandboxes cost a few hundred bytes each.

Sandbox paths (what the SDK sends, e.g. ``/home/user/x.txt``) map into the
workspace with :meth:`SandboxWorkspace.resolve`, which refuses any path that
would leave the workspace: ``..`` above ``/``, symlinks (relative or absolute)
pointing outside, NUL bytes. Fake sandboxes are not isolation: commands run on
the host as the server's user; only the file API is confined.

Components that keep live state per sandbox (the envd process table, file
watchers, the code interpreter's kernels) either register it as an
*attachment* (:meth:`SandboxWorkspace.attachment`, closed on stop) or a stop
hook (:meth:`Workspaces.add_stop_hook`).

A :class:`SandboxWorkspace` is one running life of its sandbox: once stopped
(:meth:`SandboxWorkspace.release`, on pause or kill) it stays stopped, takes
no new attachment and makes no directory (:class:`SandboxStopped`), so a
request routed just before the stop cannot leave live state or files behind
it. The sandbox's next life (after a resume) gets a fresh object from
:meth:`Workspaces.get`, with the same files, env vars and token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar, cast

from pytest_kruise_agents.backends.base import Route

__all__ = [
    "PATH_MAX",
    "Attachment",
    "PathEscapeError",
    "SandboxStopped",
    "SandboxWorkspace",
    "StopHook",
    "Workspaces",
    "home_of",
    "shorten",
]

_log = logging.getLogger(__name__)

# Sandbox ids become directory names: keep them to one safe path component.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")

StopHook = Callable[[str], Awaitable[None]]
"""``async hook(sandbox_id)`` run when a sandbox stops (pause, kill, close)."""


PATH_MAX = 4096
"""Linux's ``PATH_MAX``, in bytes, counting the terminating NUL: a sandbox path (UTF-8) has
at most ``PATH_MAX - 1`` bytes; the kernel answers ``ENAMETOOLONG`` to envd's syscall
for a longer one, so it is malformed."""

# How much of a path an error message repeats: the rest is elided, so a huge
# path (a request inflated from a small gzip body) never makes a huge answer.
_SHOWN_CHARS = 200


class PathEscapeError(ValueError):
    """A sandbox path is malformed or would resolve outside its workspace."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"path {shorten(path)!r} {reason}")


def shorten(text: str, limit: int = _SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with what was left out said, for error messages."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class SandboxStopped(RuntimeError):
    """A request reached a sandbox's workspace after the sandbox was paused or killed.

    The message is what the sandbox proxy answers for a sandbox that is not
    running ("... was not found"), which the SDK reads as the sandbox being gone.
    """

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        super().__init__(f"The sandbox was not found: {sandbox_id} was paused or killed")


class Attachment(Protocol):
    """Live per-sandbox state that must be released when the sandbox stops.

    ``loop`` is the event loop the state belongs to (subprocess transports
    cannot be touched from another loop): :meth:`Workspaces.stop` runs
    :meth:`aclose` there when called from elsewhere.
    """

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    async def aclose(self) -> None: ...


A = TypeVar("A", bound=Attachment)


def home_of(user: str) -> str:
    """The sandbox home directory of ``user`` (``/root`` for root)."""
    return "/root" if user == "root" else f"/home/{user}"


class SandboxWorkspace:
    """One sandbox's workspace: its root directory, env vars, token and live state.

    ``env_vars`` and ``access_token`` start from the backend's :class:`Route`
    and may be replaced by envd's ``POST /init``. ``access_token == ""``
    means envd enforces no token.
    """

    __slots__ = (
        "_attachments",
        "_ready",
        "_stopped",
        "access_token",
        "env_vars",
        "root",
        "sandbox_id",
    )

    def __init__(
        self,
        sandbox_id: str,
        root: Path,
        *,
        env_vars: Mapping[str, str] | None = None,
        access_token: str = "",
    ) -> None:
        self.sandbox_id = sandbox_id
        self.root = root
        self.env_vars: dict[str, str] = dict(env_vars or {})
        self.access_token = access_token
        self._ready = False
        self._stopped = False
        self._attachments: dict[Callable[..., Attachment], Attachment] | None = None

    def __repr__(self) -> str:
        return f"SandboxWorkspace({self.sandbox_id!r}, root={str(self.root)!r})"

    @property
    def home(self) -> Path:
        """``root/home/user``: the default user's home and default working directory."""
        return self.root / "home" / "user"

    @property
    def stopped(self) -> bool:
        """Whether the sandbox stopped (paused or killed) since this workspace was handed out."""
        return self._stopped

    def require_running(self) -> None:
        """Raise :class:`SandboxStopped` if the sandbox stopped (paused or killed)."""
        if self._stopped:
            raise SandboxStopped(self.sandbox_id)

    def successor(self) -> SandboxWorkspace:
        """The workspace of the sandbox's next life: same files, env vars and token, nothing live."""
        nxt = SandboxWorkspace(
            self.sandbox_id, self.root, env_vars=self.env_vars, access_token=self.access_token
        )
        nxt._ready = self._ready
        return nxt

    @property
    def materialized(self) -> bool:
        """Whether the workspace directory has been created (first use happened)."""
        return self._ready

    def ensure(self) -> None:
        """Create the workspace directory tree on first use (idempotent).

        ``/home/user``, ``/root`` and ``/tmp``: what programs expect of any
        Linux sandbox (``commands.run(cwd="/tmp")``, ``files.write("/tmp/x")``).
        Raises :class:`SandboxStopped` instead once the sandbox stopped.
        """
        if self._ready:
            return
        # A killed sandbox's directory is deleted: a request routed before the
        # kill must not make it again, for nobody to delete.
        self.require_running()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.root / "root").mkdir(exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        self._ready = True

    def expand(self, path: str, *, user: str = "user") -> str:
        """The absolute sandbox path ``path`` names, as envd's ``ExpandAndResolve`` makes it.

        ``~`` and relative paths start at ``user``'s home and ``..`` applies
        lexically; no symlink is followed (``/home/user/link/x`` stays that),
        which is the path envd's answers name. Raises :class:`PathEscapeError`
        for a NUL byte or a climb above ``/``; touches nothing.
        """
        return "/" + "/".join(_parts(path, home_of(user)))

    def resolve(self, path: str, *, user: str = "user", follow_symlinks: bool = True) -> Path:
        """Map sandbox ``path`` to a host path inside :attr:`root`.

        Relative paths (and ``~``) are relative to ``user``'s home. ``..``
        is applied lexically and may not climb above ``/``. Symlinks are
        resolved (all of them, or all but the last component when
        ``follow_symlinks`` is false, so a link itself can be removed or
        stat-ed) and must stay inside the workspace. Raises
        :class:`PathEscapeError` otherwise; touches nothing but the
        workspace's own first-use directories (:meth:`ensure`). What to
        report back to the caller is :meth:`expand`'s path, not this one's.
        """
        parts = _parts(path, home_of(user))
        self.ensure()
        candidate = self.root.joinpath(*parts)
        if follow_symlinks or not parts:
            real = _realpath(candidate, path)
        else:
            real = _realpath(candidate.parent, path) / candidate.name
        if not self.contains(real):
            raise PathEscapeError(path, "resolves outside the sandbox (through a symlink)")
        return real

    def contains(self, host_path: Path) -> bool:
        """Whether ``host_path`` (already resolved) is the workspace root or inside it."""
        return host_path == self.root or self.root in host_path.parents

    def sandbox_path(self, host_path: Path) -> str:
        """The sandbox path of a host path inside the workspace (``/`` for the root)."""
        rel = host_path.relative_to(self.root).as_posix()
        return "/" if rel == "." else f"/{rel}"

    def attachment(self, factory: Callable[[SandboxWorkspace], A]) -> A:
        """The attachment made by ``factory`` (a class, usually), built as ``factory(self)`` once.

        Raises :class:`SandboxStopped` once the sandbox stopped: live state made
        then would outlive it (commands running on in a paused sandbox).
        """
        self.require_running()
        if self._attachments is None:
            self._attachments = {}
        found = self._attachments.get(factory)
        if found is None:
            found = factory(self)
            self._attachments[factory] = found
        return cast(A, found)

    def existing_attachment(self, factory: Callable[[SandboxWorkspace], A]) -> A | None:
        """The attachment made by ``factory`` if it was built (never builds one)."""
        return cast("A | None", (self._attachments or {}).get(factory))

    async def release(self) -> None:
        """Mark the workspace stopped, then close every attachment (on its own loop); keep the files.

        Stopped first: what the closing ends (a command killed, a stream woken)
        sees the sandbox stopped, and nothing attaches meanwhile.
        """
        self._stopped = True
        attachments, self._attachments = self._attachments, None
        for item in (attachments or {}).values():
            try:
                await _run_on(item.loop, item.aclose)
            except Exception:
                _log.exception("closing %r of sandbox %s failed", item, self.sandbox_id)


def _parts(path: str, home: str) -> list[str]:
    """The components of sandbox ``path`` made absolute from ``home``, ``..`` applied lexically."""
    # Before anything else looks at it: a path of megabytes costs every later step.
    if len(path) >= PATH_MAX or len(path.encode("utf-8", "surrogatepass")) >= PATH_MAX:
        raise PathEscapeError(path, f"is longer than {PATH_MAX - 1} bytes (PATH_MAX less its NUL)")
    if "\x00" in path:
        raise PathEscapeError(path, "contains a NUL byte")
    full = path
    if full == "~" or full.startswith("~/"):
        full = home + full[1:]
    elif not full.startswith("/"):
        full = f"{home}/{full}"
    parts: list[str] = []
    for part in full.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathEscapeError(path, "climbs above the sandbox root with '..'")
            parts.pop()
        else:
            parts.append(part)
    return parts


def _realpath(candidate: Path, path: str) -> Path:
    """``os.path.realpath``, retried if a link on the way changes while it reads it.

    realpath lstat-s a component, then reads the link: a command replacing the
    link by a file in between makes the read fail (``EINVAL``), which is a
    race, not a bad path. Refused as one if it keeps happening.
    """
    for _ in range(3):
        try:
            return Path(os.path.realpath(candidate))
        except OSError:
            continue
    raise PathEscapeError(path, "changed while in use (a symlink on it kept changing)")


async def _run_on(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[None]]) -> None:
    """Await ``fn()`` on ``loop``, hopping loops if it is not the running one."""
    if loop is asyncio.get_running_loop():
        await fn()
        return
    if loop.is_closed() or not loop.is_running():
        # The owning loop is gone (server stopped): its transports are dead
        # too, so there is nothing left to await there.
        return

    async def call() -> None:
        await fn()

    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), loop))


class Workspaces:
    """All sandbox workspaces under one host directory, created lazily.

    ``get`` is thread-safe and cheap (the router calls it on every request).
    ``stop``/``remove``/``close`` are coroutines; each attachment is closed
    on the event loop it belongs to.
    """

    def __init__(self, root: Path | str) -> None:
        # Resolved once so containment checks compare real paths.
        self.root = Path(os.path.realpath(root))
        self._by_id: dict[str, SandboxWorkspace] = {}
        self._lock = threading.Lock()
        self._hooks: list[StopHook] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, sandbox_id: object) -> bool:
        return sandbox_id in self._by_id

    def get(self, route: Route) -> SandboxWorkspace:
        """The workspace of ``route.sandbox_id``, made on first call from the route.

        Later calls return the same object unchanged (``POST /init`` may have
        replaced its env vars or token since) until it is stopped; then its
        :meth:`~SandboxWorkspace.successor` replaces it (the router asks only
        for a running sandbox, once the stop's cleanup has ended).
        """
        ws = self._by_id.get(route.sandbox_id)
        if ws is not None and not ws.stopped:
            return ws
        if not _SAFE_ID.fullmatch(route.sandbox_id):
            raise ValueError(
                f"sandbox_id {route.sandbox_id!r} is not a safe directory name "
                "(letters, digits, '.', '_', '-'; at most 255 characters)"
            )
        with self._lock:
            ws = self._by_id.get(route.sandbox_id)
            if ws is not None and ws.stopped:
                ws = self._by_id[route.sandbox_id] = ws.successor()
            elif ws is None:
                ws = SandboxWorkspace(
                    route.sandbox_id,
                    self.root / route.sandbox_id,
                    env_vars=route.env_vars,
                    access_token=route.access_token,
                )
                self._by_id[route.sandbox_id] = ws
            return ws

    def peek(self, sandbox_id: str) -> SandboxWorkspace | None:
        """The workspace of ``sandbox_id`` if one exists (never creates one)."""
        return self._by_id.get(sandbox_id)

    def add_stop_hook(self, hook: StopHook) -> None:
        """Run ``await hook(sandbox_id)`` whenever a known sandbox stops."""
        self._hooks.append(hook)

    async def stop(self, sandbox_id: str) -> None:
        """Pause: kill the sandbox's processes and live state, keep its files, run the hooks."""
        ws = self._by_id.get(sandbox_id)
        if ws is None:
            return
        await ws.release()
        for hook in list(self._hooks):
            try:
                await hook(sandbox_id)
            except Exception:
                _log.exception("stop hook %r failed for sandbox %s", hook, sandbox_id)

    async def remove(self, sandbox_id: str) -> None:
        """Gone: stop the sandbox, forget it and delete its directory."""
        await self.stop(sandbox_id)
        with self._lock:
            ws = self._by_id.pop(sandbox_id, None)
        if ws is None and not _SAFE_ID.fullmatch(sandbox_id):
            return  # never a directory of ours
        directory = ws.root if ws is not None else self.root / sandbox_id
        if not os.path.lexists(directory):
            return  # never used (the common case): no thread for nothing to delete
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def close(self) -> None:
        """Stop every sandbox at once (files stay on disk).

        Concurrently, not one after the other: a stop waits for its commands to
        die and sweeps ``/proc`` for its daemons, and stops made together share
        one sweep (:func:`~pytest_kruise_agents.e2b.daemons.kill_sandbox_daemons`).
        One by one, 300 sandboxes took 15 s, past the time a supervisor gives
        a stopping server before it kills it mid-cleanup.
        """
        await asyncio.gather(*(self.stop(sandbox_id) for sandbox_id in list(self._by_id)))
