"""Code contexts: one Jupyter kernel each, kept per sandbox and started lazily.

A sandbox has no context, kernel or file of the interpreter until its first
``/execute`` or ``/contexts`` request. The default context of a language is
created by the first ``/execute`` without a context; concurrent first requests
share one kernel start. :meth:`ContextRegistry.shutdown_sandbox` stops a
sandbox's kernels, kills what they left running (every kernel carries the
sandbox's marker, :mod:`pytest_kruise_agents.e2b.daemons`) and forgets its
contexts (pause, kill, timeout).
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import zmq.asyncio

from pytest_kruise_agents.e2b.daemons import MARKER_VAR, kill_sandbox_daemons
from pytest_kruise_agents.e2b.envvars import (
    SANDBOX_LOCALE_ENV,
    env_vars_problem,
    sandbox_identity_env,
)
from pytest_kruise_agents.e2b.interpreter.errors import InterpreterError
from pytest_kruise_agents.e2b.interpreter.kernels import Kernel
from pytest_kruise_agents.e2b.interpreter.workspace import InterpreterWorkspace

__all__ = [
    "DEFAULT_CWD",
    "DEFAULT_LANGUAGE",
    "SUPPORTED_LANGUAGES",
    "Context",
    "ContextRegistry",
    "kernel_env",
    "normalize_language",
]

log = logging.getLogger("pytest_kruise_agents.e2b.interpreter")

T = TypeVar("T")

DEFAULT_LANGUAGE: Final = "python"
DEFAULT_CWD: Final = "/home/user"
SUPPORTED_LANGUAGES: Final = ("python",)
"""Only ipykernel ships with the project; upstream also has javascript, r, java, bash, deno."""

_HOST_ENV: Final = ("PATH", "TMPDIR", "LD_LIBRARY_PATH")
"""Host variables a kernel inherits; everything else of the server's environment stays out
(the host's locale and time zone too: :data:`SANDBOX_LOCALE_ENV`, as for commands)."""


def normalize_language(language: str | None) -> str:
    """The context language for a request's ``language`` (``None`` or empty: Python).

    Raises a 400 :class:`InterpreterError` for a language without a kernel here.
    """
    if language is None or not language.strip():
        return DEFAULT_LANGUAGE
    name = language.strip().lower()
    if name not in SUPPORTED_LANGUAGES:
        raise InterpreterError(
            400,
            f"language: {language!r} is not supported; this code interpreter runs "
            f"Python kernels only (supported: {', '.join(SUPPORTED_LANGUAGES)})",
        )
    return name


def _matplotlib_cache_dir() -> str:
    """Where kernels keep matplotlib's font cache: the host's, else one directory per server.

    The host's cache spares each sandbox's fresh HOME a font-cache build
    (seconds) on its first chart. When it cannot be made or written (an
    unwritable or missing HOME: a CI user, a container with ``HOME=/``),
    matplotlib would warn on every kernel's stderr and build a throwaway cache
    each time; one temporary directory of this server process serves instead.
    """
    configured = os.environ.get("MPLCONFIGDIR")
    if configured:
        chosen = Path(configured)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        chosen = Path(cache) / "matplotlib"
    if _writable_dir(chosen):
        return str(chosen)
    return _fallback_matplotlib_dir()


def _writable_dir(path: Path) -> bool:
    """Whether ``path`` is, or can be made, a writable directory (matplotlib's own test)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK)


_fallback_lock = threading.Lock()
_fallback_dir: str | None = None


def _fallback_matplotlib_dir() -> str:
    """This process's temporary matplotlib directory: made once, removed at exit."""
    global _fallback_dir
    with _fallback_lock:
        if _fallback_dir is None:
            _fallback_dir = tempfile.mkdtemp(prefix="kruise-matplotlib-")
            atexit.register(shutil.rmtree, _fallback_dir, ignore_errors=True)
        return _fallback_dir


def kernel_env(workspace: InterpreterWorkspace, ipython_dir: Path) -> dict[str, str]:
    """The environment of a kernel: a few host variables, the sandbox's HOME and its env vars.

    Like a command's, it has ``E2B_SANDBOX=true`` and ``E2B_SANDBOX_ID``
    (:func:`sandbox_identity_env`), ``LANG=C.UTF-8`` and ``TZ=UTC``
    (:data:`SANDBOX_LOCALE_ENV`), not the host's locale and zone. Charts go through the inline backend, so ``plt.show()`` and a figure as
    the last expression produce ``image/png`` display data, as in Jupyter.
    IPython's profile lives in ``ipython_dir``, shared by the interpreter's
    kernels, so that no ``.ipython`` appears in the sandbox's home. The
    sandbox's marker goes last, so that no env var of the sandbox can hide a
    daemon the kernel starts from the sandbox's stop.
    """
    env = {name: os.environ[name] for name in _HOST_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(
        {
            "HOME": str(workspace.home),
            "USER": "user",
            "LOGNAME": "user",
            "SHELL": "/bin/bash",
            **SANDBOX_LOCALE_ENV,
            "IPYTHONDIR": str(ipython_dir),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": _matplotlib_cache_dir(),
            # debugpy warns on stderr about frozen modules at every kernel start.
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    env.update(sandbox_identity_env(workspace.sandbox_id))
    env.update(workspace.env_vars)
    env[MARKER_VAR] = str(workspace.root)
    return env


@dataclass(eq=False)
class Context:
    """One code context: a language, a working directory and (once started) a kernel."""

    id: str
    language: str
    cwd: str
    """The working directory as the client named it (a sandbox path)."""
    workspace: InterpreterWorkspace
    workdir: Path
    """:attr:`cwd` mapped into the workspace on the host."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by the running execution: one execution at a time per context."""
    kernel: Kernel | None = None
    starting: asyncio.Task[Kernel] | None = None
    removed: bool = False

    def to_json(self) -> dict[str, str]:
        """The wire form: ``{"id", "language", "cwd"}``."""
        return {"id": self.id, "language": self.language, "cwd": self.cwd}


@dataclass
class _SandboxContexts:
    root: Path
    """The sandbox's workspace root: the marker its kernels' processes carry."""
    contexts: dict[str, Context] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    """Language to the id of its default context."""


class ContextRegistry:
    """The contexts and kernels of every sandbox served by one interpreter app.

    Kernels are bound to the event loop that started the first one (the
    server's); :meth:`shutdown_sandbox` and :meth:`aclose` may be awaited from
    another loop and hop over to it. ``kernel_root`` holds the kernels'
    private directories (default: a fresh temporary directory, removed by
    :meth:`aclose`).
    """

    def __init__(self, kernel_root: Path | None = None) -> None:
        self._kernel_root_arg = kernel_root
        self._kernel_root: Path | None = None
        self._kernel_numbers = itertools.count(1)
        self._zmq: zmq.asyncio.Context | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sandboxes: dict[str, _SandboxContexts] = {}
        self._closed = False
        self.kernels_started = 0
        """How many kernel processes were started (diagnostics: starts are shared, not repeated)."""

    @property
    def kernel_root(self) -> Path | None:
        """The directory of the kernels' files, once the first kernel was started."""
        return self._kernel_root

    # -- lookups -----------------------------------------------------------------------------

    def list_contexts(self, workspace: InterpreterWorkspace) -> list[Context]:
        """The sandbox's contexts, oldest first."""
        entry = self._sandboxes.get(workspace.sandbox_id)
        return list(entry.contexts.values()) if entry else []

    def get(self, workspace: InterpreterWorkspace, context_id: str) -> Context:
        """The sandbox's context ``context_id``; 404 if it has none by that id."""
        _check_running(workspace)
        entry = self._sandboxes.get(workspace.sandbox_id)
        context = entry.contexts.get(context_id) if entry else None
        if context is None:
            raise InterpreterError(404, f"Context {context_id} not found")
        return context

    def kernel_pids(self, sandbox_id: str) -> list[int]:
        """Process ids of the sandbox's running kernels (for tests and diagnostics)."""
        entry = self._sandboxes.get(sandbox_id)
        if entry is None:
            return []
        pids = (c.kernel.pid for c in entry.contexts.values() if c.kernel is not None)
        return [pid for pid in pids if pid is not None]

    # -- creating and removing contexts ------------------------------------------------------

    def default_context(self, workspace: InterpreterWorkspace, language: str) -> Context:
        """The sandbox's default context of ``language``, made (without a kernel yet) if needed."""
        _check_running(workspace)
        entry = self._entry(workspace)
        context_id = entry.defaults.get(language)
        if context_id is not None and context_id in entry.contexts:
            return entry.contexts[context_id]
        workdir = _workdir(workspace, DEFAULT_CWD)
        context = self._new_context(workspace, language, DEFAULT_CWD, workdir)
        entry.defaults[language] = context.id
        return context

    async def create(
        self, workspace: InterpreterWorkspace, *, language: str, cwd: str | None
    ) -> Context:
        """A new context of the sandbox, its kernel started (errors: 400 bad cwd, 500 no kernel)."""
        _check_running(workspace)
        sandbox_cwd = cwd if cwd else DEFAULT_CWD
        context = self._new_context(
            workspace, language, sandbox_cwd, _workdir(workspace, sandbox_cwd)
        )
        try:
            await self.kernel(context)
        except BaseException:
            self._forget(context)
            raise
        return context

    async def remove(self, workspace: InterpreterWorkspace, context_id: str) -> None:
        """Stop the context's kernel and forget it (404 if unknown)."""
        context = self.get(workspace, context_id)
        self._forget(context)
        await self._stop_kernel(context)

    async def restart(self, workspace: InterpreterWorkspace, context_id: str) -> None:
        """Replace the context's kernel by a fresh one (its state is lost); 404 if unknown.

        An execution running in it ends with a ``DeadKernelError`` error line.
        """
        context = self.get(workspace, context_id)
        await self._stop_kernel(context)
        await self.kernel(context)

    def _entry(self, workspace: InterpreterWorkspace) -> _SandboxContexts:
        entry = self._sandboxes.get(workspace.sandbox_id)
        if entry is None:
            entry = self._sandboxes[workspace.sandbox_id] = _SandboxContexts(workspace.root)
        return entry

    def _new_context(
        self, workspace: InterpreterWorkspace, language: str, cwd: str, workdir: Path
    ) -> Context:
        if self._closed:
            raise InterpreterError(503, "the code interpreter is shut down")
        context = Context(
            id=str(uuid.uuid4()), language=language, cwd=cwd, workspace=workspace, workdir=workdir
        )
        self._entry(workspace).contexts[context.id] = context
        return context

    def _forget(self, context: Context) -> None:
        context.removed = True
        entry = self._sandboxes.get(context.workspace.sandbox_id)
        if entry is None:
            return
        entry.contexts.pop(context.id, None)
        if entry.defaults.get(context.language) == context.id:
            del entry.defaults[context.language]

    # -- kernels -----------------------------------------------------------------------------

    async def kernel(self, context: Context) -> Kernel:
        """The context's running kernel, started (once, however many callers wait) if needed.

        A kernel that died (the user's code exited the process) is replaced.
        Raises :class:`KernelStartError`, or :class:`InterpreterError` (404
        once the context was removed, 502 once its sandbox stopped).
        """
        _check_running(context.workspace)
        if context.removed:
            raise InterpreterError(404, f"Context {context.id} not found")
        kernel = context.kernel
        if kernel is not None and context.starting is None and await kernel.is_alive():
            return kernel
        if context.starting is None:
            self._bind_loop()
            task = asyncio.get_running_loop().create_task(self._start(context))
            # Read the outcome even if every waiter went away (no "never retrieved" log).
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            context.starting = task
        # Shielded: a waiter that is cancelled (client gone) must not cancel
        # the start the other waiters share.
        return await asyncio.shield(context.starting)

    async def _start(self, context: Context) -> Kernel:
        try:
            old, context.kernel = context.kernel, None
            if old is not None:
                await old.stop()
            workdir = _start_dir(context)
            # The create and /init refuse these; a SandboxClaim's envVars or the
            # Python API can still bring one, which no kernel could start with.
            problem = env_vars_problem("envVars", context.workspace.env_vars)
            if problem is not None:
                raise InterpreterError(400, f"the sandbox's {problem.message}")
            directory = self._kernel_dir()
            kernel = Kernel(
                directory=directory,
                cwd=workdir,
                env=kernel_env(context.workspace, directory.parent / "ipython"),
                zmq_context=self._zmq_context(),
            )
            self.kernels_started += 1
            try:
                await kernel.start()
            except BaseException as exc:
                await asyncio.shield(kernel.stop())
                if isinstance(exc, Exception):
                    # Killed as it came up by its sandbox's stop (the sweep of the
                    # sandbox's processes): answered as the stop, the proxy's 502, not as
                    # a kernel that cannot start (500).
                    _check_running(context.workspace)
                raise
            if context.removed:
                # Removed (or the sandbox stopped) while the kernel came up: a stop is
                # answered as the proxy answers a request to a stopped sandbox (the SDK
                # then reports the sandbox gone, not a context the client never named).
                await kernel.stop()
                _check_running(context.workspace)
                raise InterpreterError(404, f"Context {context.id} not found")
            context.kernel = kernel
            return kernel
        finally:
            context.starting = None

    async def _stop_kernel(self, context: Context) -> None:
        starting = context.starting
        if starting is not None:
            # Let a start in flight finish so that its kernel is stopped too.
            await asyncio.wait([starting])
        kernel, context.kernel = context.kernel, None
        if kernel is not None:
            await kernel.stop()

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("one code interpreter serves one event loop")

    def _kernel_dir(self) -> Path:
        if self._kernel_root is None:
            root = self._kernel_root_arg
            if root is None:
                # Short on purpose: the kernels' IPC socket paths must fit in sun_path.
                root = Path(tempfile.mkdtemp(prefix="kruise-kernels-"))
            root.mkdir(parents=True, exist_ok=True)
            self._kernel_root = root
        return self._kernel_root / f"k{next(self._kernel_numbers)}"

    def _zmq_context(self) -> zmq.asyncio.Context:
        if self._zmq is None:
            self._zmq = zmq.asyncio.Context()
        return self._zmq

    # -- shutdown ----------------------------------------------------------------------------

    async def shutdown_sandbox(self, sandbox_id: str) -> None:
        """Stop the sandbox's kernels and their daemons, forget its contexts (from any event loop)."""
        await self._on_owner_loop(
            lambda: self._stop_all(self._take(sandbox_id)),
            lambda: self._kill_all(self._take(sandbox_id)),
        )

    async def aclose(self) -> None:
        """Stop every kernel, close the ZeroMQ context and delete the kernel directories."""
        self._closed = True

        async def close_here() -> None:
            await self._stop_all(self._take(None))
            self._close_zmq()

        async def close_without_loop() -> None:
            await self._kill_all(self._take(None))
            self._close_zmq()

        await self._on_owner_loop(close_here, close_without_loop)
        if self._kernel_root is not None and self._kernel_root_arg is None:
            shutil.rmtree(self._kernel_root, ignore_errors=True)
        self._kernel_root = None

    def _take(self, sandbox_id: str | None) -> list[_SandboxContexts]:
        # Runs on the owner loop: the registry's dicts are only touched there.
        if sandbox_id is None:
            entries = list(self._sandboxes.values())
            self._sandboxes.clear()
        else:
            entry = self._sandboxes.pop(sandbox_id, None)
            entries = [entry] if entry is not None else []
        for context in _contexts_of(entries):
            context.removed = True
        return entries

    def _close_zmq(self) -> None:
        if self._zmq is not None:
            self._zmq.destroy(linger=0)
            self._zmq = None

    async def _stop_all(self, entries: list[_SandboxContexts]) -> None:
        results = await asyncio.gather(
            *(self._stop_kernel(c) for c in _contexts_of(entries)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("stopping a kernel failed: %r", result)
        await _kill_daemons(entries)

    async def _kill_all(self, entries: list[_SandboxContexts]) -> None:
        for context in _contexts_of(entries):
            kernel, context.kernel = context.kernel, None
            if kernel is not None:
                kernel.kill_now()
        await _kill_daemons(entries)

    async def _on_owner_loop(
        self,
        work: Callable[[], Awaitable[Any]],
        fallback: Callable[[], Awaitable[Any]],
    ) -> None:
        # Kernels' sockets and the registry belong to the loop that started
        # the first kernel; work elsewhere is handed over to it.
        owner = self._loop
        here = asyncio.get_running_loop()
        if owner is None or owner is here:
            await work()
        elif owner.is_running() and not owner.is_closed():
            future = asyncio.run_coroutine_threadsafe(_as_coroutine(work), owner)
            await asyncio.wrap_future(future)
        else:
            # The server's loop is gone with its zmq sockets: kill the processes directly.
            await fallback()


def _check_running(workspace: InterpreterWorkspace) -> None:
    """Refuse a request whose sandbox stopped after it was routed, as the proxy refuses one after.

    The stop's cleanup (:meth:`ContextRegistry.shutdown_sandbox`) has run or is
    running: a context or kernel made now would outlive the sandbox.
    """
    if workspace.stopped:
        raise InterpreterError(
            502, f"The sandbox was not found: {workspace.sandbox_id} was paused or killed"
        )


def _contexts_of(entries: list[_SandboxContexts]) -> list[Context]:
    return [context for entry in entries for context in entry.contexts.values()]


async def _kill_daemons(entries: list[_SandboxContexts]) -> None:
    """Kill what the sandboxes' kernels left running outside their process group.

    A kernel's stop kills its process group; a daemon in a session of its
    own (``Popen(start_new_session=True)``) is found by the marker it
    inherited. Every sandbox that had contexts is scanned: the kernels of
    contexts removed earlier may have left some too.
    """
    roots = sorted({entry.root for entry in entries})
    # Together: their sweeps of /proc are one (kill_sandbox_daemons).
    results = await asyncio.gather(
        *(kill_sandbox_daemons(root) for root in roots), return_exceptions=True
    )
    for root, result in zip(roots, results, strict=True):
        if isinstance(result, Exception):
            log.error("killing the daemons of %s failed", root, exc_info=result)


def _start_dir(context: Context) -> Path:
    """Where the context's kernel starts: its cwd if that is a directory, else home.

    Upstream's server starts every kernel in ``/home/user`` and runs ``%cd <cwd>``
    in it; IPython's ``%cd`` prints why it cannot change to a missing path or a
    file and stays. Nothing is created but home itself, which a sandbox has.
    """
    if context.workdir.is_dir():
        return context.workdir
    home = _workdir(context.workspace, DEFAULT_CWD)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InterpreterError(
            500, f"{DEFAULT_CWD} cannot be a working directory: {exc.strerror}"
        ) from exc
    return home


def _workdir(workspace: InterpreterWorkspace, cwd: str) -> Path:
    # PathEscapeError is a ValueError; OSError covers a path the host cannot stat.
    try:
        return workspace.resolve(cwd)
    except (ValueError, OSError) as exc:
        raise InterpreterError(400, f"cwd: {exc}") from exc


async def _as_coroutine(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
