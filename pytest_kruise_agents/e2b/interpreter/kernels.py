"""One Jupyter kernel: an ipykernel process of this interpreter, and the client that talks to it.

A :class:`Kernel` runs one cell at a time and hands the cell's IOPub messages
to a callback, in order and at the callback's pace: they are read off the
socket as they arrive, whatever that pace (:mod:`.spool`). Its connection file, IPC sockets and log live in
a private directory that :meth:`Kernel.stop` removes. Contexts
(:mod:`.contexts`) own kernels; executions (:mod:`.execution`) drive them.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from pytest_kruise_agents.e2b.interpreter.spool import Spool

__all__ = [
    "POLL_SECONDS",
    "START_TIMEOUT",
    "Kernel",
    "KernelDied",
    "KernelStartError",
    "MessageHandler",
]

POLL_SECONDS: Final = 0.25
"""How often a waiting cell checks that its kernel is still alive (or being stopped)."""

REPLY_WAIT_SECONDS: Final = 10.0
"""The most a finished cell waits for its ``execute_reply``, which ipykernel sends before the
cell's idle status: it is there at once, or moments later under load. A reply that ipykernel
failed to send is known sooner, by a later request's reply (see ``Kernel._read_reply``)."""

START_TIMEOUT: Final = 60.0
"""Seconds a kernel may take to answer its first ``kernel_info`` request."""

_LAUNCHER: Final = Path(__file__).with_name("kernel_launcher.py")
"""ipykernel without a high-water mark on its IOPub socket (see that module)."""

_UNIX_SOCKET_PATH_MAX: Final = 100
"""sun_path holds 108 bytes on Linux (104 on macOS); longer directories fall back to TCP."""

_STOPPED: Final = (
    "the kernel was stopped: the context was restarted or removed, or the sandbox stopped"
)
_ENDED: Final = (
    "the kernel process ended unexpectedly; the context's state is lost "
    "and the next execution starts a new kernel"
)

MessageHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
"""``await handler(msg_type, content)`` for each IOPub message of the running cell."""


class KernelStartError(Exception):
    """The kernel process did not come up; the message carries the end of its log."""


class KernelDied(Exception):
    """The kernel process ended (or was stopped) while a cell was running."""


class _NativeKernelSpecs(KernelSpecManager):
    """Always this interpreter's ipykernel, whatever kernelspecs the host has installed.

    A ``python3`` kernelspec in the user's Jupyter directories could point at
    another Python; the interpreter must run the ipykernel it was installed with,
    started by :mod:`.kernel_launcher` so that its IOPub socket drops nothing.
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            name=kernel_name,
            argv=[
                sys.executable,
                str(_LAUNCHER),
                "-f",
                "{connection_file}",
                # Kernels share one IPython directory: keep each one's history
                # in memory instead of contending for one SQLite file.
                "--HistoryManager.hist_file=:memory:",
            ],
            display_name="Python 3 (ipykernel)",
            language="python",
            interrupt_mode="signal",
            metadata={"debugger": False},
        )


class Kernel:
    """An ipykernel process started in ``cwd`` with exactly ``env``, and its client channels.

    ``directory`` is private to this kernel (connection file, IPC sockets, log)
    and is deleted by :meth:`stop`. ``zmq_context`` is shared by the kernels of
    one interpreter so that each does not get its own I/O thread.
    """

    def __init__(
        self,
        *,
        directory: Path,
        cwd: Path,
        env: Mapping[str, str],
        zmq_context: zmq.asyncio.Context,
    ) -> None:
        self.directory = directory
        self.cwd = cwd
        self.env = dict(env)
        self._zmq = zmq_context
        self._km: AsyncKernelManager | None = None
        self._kc: AsyncKernelClient | None = None
        self._stopping = False
        self._exit_asked = False
        # One cell at a time; its reader holds the channels lock while it
        # uses them, and stop() waits for that lock, so that the channels are
        # never closed under a reader (but stop() need not wait for a slow
        # client to take the cell's output).
        self._cell_lock = asyncio.Lock()
        self._channels_lock = asyncio.Lock()

    @property
    def log_path(self) -> Path:
        """The kernel process's stdout and stderr."""
        return self.directory / "kernel.log"

    @property
    def pid(self) -> int | None:
        """The kernel process id, while it runs."""
        process = getattr(self._km.provisioner, "process", None) if self._km else None
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait until it answers ``kernel_info``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ipc_prefix = self.directory / "ipc"
        # IPC sockets avoid picking free TCP ports (a race between parallel
        # test workers) and ipykernel's "running over TCP without encryption" warning.
        transport = "ipc" if len(str(ipc_prefix)) + 3 <= _UNIX_SOCKET_PATH_MAX else "tcp"
        km = AsyncKernelManager(
            kernel_name="python3",
            kernel_spec_manager=_NativeKernelSpecs(),
            connection_file=str(self.directory / "kernel.json"),
            transport=transport,
            ip=str(ipc_prefix) if transport == "ipc" else "127.0.0.1",
            context=self._zmq,
        )
        self._km = km
        with self.log_path.open("ab") as log:
            try:
                await km.start_kernel(
                    cwd=str(self.cwd),
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except Exception as exc:
                raise KernelStartError(f"cannot start the kernel: {exc}") from exc
        # The interpreter's shared context: the client would make one, and an
        # I/O thread, of its own.
        kc = km.client(context=self._zmq)
        self._kc = kc
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            log_tail = self._log_tail()
            await self.stop()
            raise KernelStartError(f"the kernel did not start: {exc}{log_tail}") from exc

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return f"; kernel log: {text[-limit:]}" if text.strip() else ""

    async def is_alive(self) -> bool:
        """Whether the kernel process runs (and is not being stopped, nor ending on ``exit()``).

        A cell that called ``exit()`` or ``quit()`` ends the kernel: ipykernel stops
        its event loop 0.1 s later and the process ends, whatever the next cell is
        doing then. Such a kernel is not alive for a new cell, which gets a new one.
        """
        if self._stopping or self._exit_asked or self._km is None:
            return False
        return bool(await self._km.is_alive())

    def send(self, code: str, *, silent: bool = False) -> str:
        """Queue ``code`` for execution without waiting; returns the request's message id.

        ``stop_on_error=False``: a failing cell must not make the kernel drop
        the requests queued behind it (the env-var restore cell, the next run).
        """
        kc = self._client()
        msg_id: str = kc.execute(
            code,
            silent=silent,
            store_history=not silent,
            allow_stdin=False,
            stop_on_error=False,
        )
        return msg_id

    async def run_cell(self, code: str, on_message: MessageHandler) -> None:
        """Execute ``code`` and pass its IOPub messages to ``on_message`` until the kernel is idle.

        A reader task drains the kernel's IOPub socket into a :class:`Spool`
        as fast as the kernel writes, and ``on_message`` is fed from there at
        its own pace: a slow ``on_message`` (a slow HTTP client) neither
        loses messages nor holds the kernel's output in ZeroMQ's queues.
        Raises :class:`KernelDied` if the process ends first, after the
        messages read before. Cancelling the caller stops the reading only;
        the kernel keeps running the cell (see :meth:`interrupt`).
        """
        async with self._cell_lock:
            spool = Spool(directory=self.directory)
            reader = asyncio.get_running_loop().create_task(self._read_cell(code, spool))
            try:
                while (record := await spool.get()) is not None:
                    msg_type, content = json.loads(record)
                    await on_message(msg_type, content)
            finally:
                # Discarded first: the wait below may itself be cancelled (the
                # client went away), and a late put then just fails.
                reader.cancel()
                spool.discard()
                await asyncio.wait([reader])

    async def _read_cell(self, code: str, spool: Spool) -> None:
        # Holds the channels until the cell's idle status: stop() closes them
        # only after, and never under a reader.
        try:
            async with self._channels_lock:
                kc = self._client()
                await self._drain_shell(kc)
                msg_id = self.send(code)
                await self._read_iopub(kc, msg_id, spool)
                await self._read_reply(kc, msg_id)
        except Exception as exc:  # KernelDied, or a socket closed under us
            spool.close(exc)
        else:
            spool.close()

    async def _read_iopub(self, kc: AsyncKernelClient, msg_id: str, spool: Spool) -> None:
        while True:
            if self._stopping:
                raise KernelDied(_STOPPED)
            try:
                msg = await kc.get_iopub_msg(timeout=POLL_SECONDS)
            except queue.Empty:
                if self._stopping:
                    raise KernelDied(_STOPPED) from None
                if not await self.is_alive():
                    raise KernelDied(_ENDED) from None
                continue
            # Messages of other requests (silent env-var cells, cells whose
            # caller went away) are dropped here.
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            msg_type = str(msg.get("msg_type", ""))
            content: dict[str, Any] = msg.get("content") or {}
            if msg_type == "status" and content.get("execution_state") == "idle":
                return
            spool.put(json.dumps([msg_type, content], default=str).encode())

    async def _read_reply(self, kc: AsyncKernelClient, msg_id: str) -> None:
        # The cell's execute_reply carries the payload of exit() and quit():
        # {"source": "ask_exit", "keepkernel": ...}. ipykernel sends the reply
        # before the idle status, so it is there or about to be, unless sending
        # it failed: ipykernel then logs "Exception in message handler" and
        # publishes the idle status all the same (a payload it cannot serialize
        # does that). If the reply is not there at the first poll, a
        # kernel_info request follows it on the shell channel: the kernel
        # answers its shell requests in order, so once that answer is here
        # this cell's reply will never come.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLY_WAIT_SECONDS
        later: str | None = None
        while loop.time() < deadline:
            try:
                msg = await kc.get_shell_msg(timeout=POLL_SECONDS)
            except queue.Empty:
                if not await self.is_alive():
                    return  # stopped or ended: the next cell gets a new kernel anyway
                if later is None:
                    later = kc.kernel_info()
                continue
            parent = msg.get("parent_header", {}).get("msg_id")
            if parent == later:
                return  # answered after the cell: its reply was never sent
            if parent != msg_id:
                continue  # the reply of a silent cell queued before this one
            payloads = (msg.get("content") or {}).get("payload") or []
            if any(
                isinstance(p, dict) and p.get("source") == "ask_exit" and not p.get("keepkernel")
                for p in payloads
            ):
                self._exit_asked = True
            return

    @staticmethod
    async def _drain_shell(kc: AsyncKernelClient) -> None:
        # IOPub says all a cell needs but exit() (read by _read_reply): drop the
        # replies queued so far (of silent cells, of cells whose caller went away).
        while True:
            try:
                await kc.get_shell_msg(timeout=0)
            except queue.Empty:
                return

    async def interrupt(self) -> None:
        """Send SIGINT to the kernel: the running cell ends with ``KeyboardInterrupt``."""
        if self._km is not None and await self.is_alive():
            await self._km.interrupt_kernel()

    async def stop(self) -> None:
        """Kill the process, close the channels and delete the kernel's directory. Idempotent."""
        self._stopping = True
        km, self._km = self._km, None
        if km is not None and km.has_kernel:
            await km.shutdown_kernel(now=True)
        # The running cell's reader notices _stopping within POLL_SECONDS and
        # lets go; what it read is still delivered from its spool.
        async with self._channels_lock:
            kc, self._kc = self._kc, None
            if kc is not None:
                kc.stop_channels()
        shutil.rmtree(self.directory, ignore_errors=True)

    def kill_now(self) -> None:
        """Last resort when the event loop that owns the kernel is gone: SIGKILL, delete files."""
        self._stopping = True
        km, self._km = self._km, None
        process = getattr(km.provisioner, "process", None) if km is not None else None
        if isinstance(process, subprocess.Popen):
            process.kill()
            process.wait(timeout=10)
        kc, self._kc = self._kc, None
        if kc is not None:
            kc.stop_channels()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _client(self) -> AsyncKernelClient:
        if self._kc is None or self._stopping:
            raise KernelDied(_STOPPED)
        return self._kc
