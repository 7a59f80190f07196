"""The processes of one sandbox: real host subprocesses, their output fan-out and lifetime.

Each command runs as exactly the ``cmd``/``args`` the SDK sends (``/bin/bash
-l -c <cmd>``) in its own session (so a kill reaches the whole process
group), with the mapped working directory and a small base environment plus
the sandbox's and the request's env vars. Output is fanned out to every
attached stream (the ``Start`` stream and any later ``Connect``) as envd's
multiplexed channels do: each stream has a small bounded queue
(:class:`Subscription`), and while one is full its command's output is not
read, so the command blocks on its pipe until the slowest reader catches up
(a background command's handle that nobody reads holds the command, as on
E2B, instead of filling the server's memory). With nobody attached, output
is read and dropped, which is what lets a background command outlive the
stream the SDK closes. A command whose ``Start`` carried a deadline
(``Connect-Timeout-Ms``) is killed when it passes, attached or not, as envd
does.

With ``pty`` the command gets a pseudo-terminal (its controlling terminal)
whose output arrives as ``pty`` data and which ``Update`` resizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import termios
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.process import process_pb
from protobuf import Oneof

from pytest_kruise_agents.e2b.daemons import (
    MARKER_VAR,
    kill_sandbox_daemons,
    marker_of,
    signal_marked_group,
)
from pytest_kruise_agents.e2b.envd.context import RequestState
from pytest_kruise_agents.e2b.envd.errors import HOST_RESOURCE_ERRNOS
from pytest_kruise_agents.e2b.envd.streams import OpenStreams, check_running
from pytest_kruise_agents.e2b.envvars import (
    SANDBOX_LOCALE_ENV,
    env_vars_problem,
    sandbox_identity_env,
)
from pytest_kruise_agents.e2b.workspace import SandboxStopped, SandboxWorkspace, home_of

__all__ = [
    "DEFAULT_PATH",
    "SUBSCRIPTION_EVENTS",
    "ManagedProcess",
    "ProcessSpec",
    "ProcessTable",
    "PtySize",
    "Subscription",
    "exit_status",
]

_log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_READ_CHUNK = 64 * 1024

SUBSCRIPTION_EVENTS = 16
"""Output events one stream may have waiting (of at most 64 KiB each: 1 MiB a stream)."""

_WRONG_INPUT: Final = {
    "stdin": "error writing to stdin: tty assigned to process"
    " \u2014 input should be written to the pty, not the stdin",
    "pty": "error writing to tty: tty not assigned to process"
    " \u2014 input should be written to the stdin, not the tty",
}
"""envd's answers (``internal``) to input of the wrong kind: ``handleInput`` wraps the errors
of its process handler's ``WriteStdin`` and ``WriteTty`` (envd's source; the references and
the SDKs do not say)."""

Event = process_pb.ProcessEvent


@dataclass(frozen=True, slots=True)
class PtySize:
    """Terminal size in character cells."""

    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """A process as ``Start`` asked for it (what ``List`` reports back)."""

    cmd: str
    args: tuple[str, ...] = ()
    envs: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    tag: str | None = None

    def to_pb(self) -> process_pb.ProcessConfig:
        """The ``ProcessConfig`` message of this spec."""
        return process_pb.ProcessConfig(
            cmd=self.cmd, args=list(self.args), envs=dict(self.envs), cwd=self.cwd
        )


def exit_status(returncode: int) -> process_pb.ProcessEvent.EndEvent:
    """The ``end`` event of a reaped process, worded like Go's ``ProcessState``.

    A signal death reads ``exitCode -1, exited false, status "signal:
    killed"``; a non-zero exit sets ``error`` to the status as envd does.
    """
    if returncode < 0:
        name = (signal.strsignal(-returncode) or f"signal {-returncode}").lower()
        status = f"signal: {name}"
        return process_pb.ProcessEvent.EndEvent(
            exit_code=-1, exited=False, status=status, error=status
        )
    status = f"exit status {returncode}"
    return process_pb.ProcessEvent.EndEvent(
        exit_code=returncode,
        exited=True,
        status=status,
        error=status if returncode else None,
    )


# Typed constructors: mypy cannot infer the Literal field names of a oneof.
def _start_event(pid: int) -> Event:
    return Event(
        event=Oneof[Literal["start"], Event.StartEvent]("start", Event.StartEvent(pid=pid))
    )


def _end_event(end: process_pb.ProcessEvent.EndEvent) -> Event:
    return Event(event=Oneof[Literal["end"], Event.EndEvent]("end", end))


def _keepalive_event() -> Event:
    return Event(event=Oneof[Literal["keepalive"], Event.KeepAlive]("keepalive", Event.KeepAlive()))


def _data_event(kind: str, chunk: bytes) -> Event:
    output: (
        Oneof[Literal["stdout"], bytes]
        | Oneof[Literal["stderr"], bytes]
        | Oneof[Literal["pty"], bytes]
    )
    if kind == "stdout":
        output = Oneof[Literal["stdout"], bytes]("stdout", chunk)
    elif kind == "stderr":
        output = Oneof[Literal["stderr"], bytes]("stderr", chunk)
    else:
        output = Oneof[Literal["pty"], bytes]("pty", chunk)
    data = Event.DataEvent(output=output)
    return Event(event=Oneof[Literal["data"], Event.DataEvent]("data", data))


def _check_env(request: Mapping[str, str], sandbox: Mapping[str, str]) -> None:
    problem = env_vars_problem("process.envs", request)
    if problem is not None:
        raise ConnectError(Code.INVALID_ARGUMENT, problem.message)
    # The create and /init refuse these; a SandboxClaim's envVars or the Python
    # API can still bring one. The request is fine, the sandbox is not.
    problem = env_vars_problem("envVars", sandbox)
    if problem is not None:
        raise ConnectError(Code.FAILED_PRECONDITION, f"the sandbox's {problem.message}")


def _spawn_error(cmd: str, exc: OSError | ValueError) -> ConnectError:
    """The error of a command that could not be started.

    The host running short (descriptors, memory, processes: ``EMFILE``,
    ``EAGAIN``...) is ``internal``, as envd answers a failed ``cmd.Start``;
    anything else (no such program, not executable, a NUL byte) is the
    caller's ``invalid_argument``.
    """
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, OSError) and exc.errno in HOST_RESOURCE_ERRNOS:
        return ConnectError(Code.INTERNAL, f"failed to start {cmd!r}: {reason}")
    return ConnectError(Code.INVALID_ARGUMENT, f"failed to start {cmd!r}: {reason}")


def _set_winsize(fd: int, size: PtySize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))


def _take_controlling_tty() -> None:  # pragma: no cover - runs in the child
    # After setsid (start_new_session) the child has no controlling terminal;
    # make the pty slave (its stdin) one, as creack/pty's Setctty does.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Subscription:
    """The events of one process waiting for one attached stream: a bounded queue.

    :meth:`put` waits while :data:`SUBSCRIPTION_EVENTS` events wait, which
    holds the output pump, and so the command, until the stream sends them;
    only the final ``end`` goes in regardless (:meth:`put_end`). Closing it
    (the client left, the sandbox stopped) drops what waits and wakes both
    sides: :meth:`get` answers ``None``, :meth:`put` returns at once.
    """

    __slots__ = ("_capacity", "_closed", "_events", "_readable", "_room")

    def __init__(self, capacity: int = SUBSCRIPTION_EVENTS) -> None:
        self._capacity = capacity
        self._events: deque[Event] = deque()
        self._closed = False
        self._readable = asyncio.Event()
        self._room = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    @property
    def closed(self) -> bool:
        """Whether the stream left (nothing is queued for it any more)."""
        return self._closed

    async def put(self, event: Event) -> None:
        """Queue ``event``, waiting while the queue is full; dropped once closed."""
        while len(self._events) >= self._capacity and not self._closed:
            self._room.clear()
            await self._room.wait()
        if not self._closed:
            self._events.append(event)
            self._readable.set()

    def put_end(self, event: Event) -> None:
        """Queue the process's last event without waiting (one past the bound at most)."""
        if not self._closed:
            self._events.append(event)
            self._readable.set()

    async def get(self) -> Event | None:
        """The next event, waiting for one; ``None`` once closed."""
        while not self._events and not self._closed:
            self._readable.clear()
            await self._readable.wait()
        if self._closed:
            return None
        event = self._events.popleft()
        self._room.set()
        return event

    def close(self) -> None:
        """Nobody reads any more: drop what waits and wake the reader and the writer."""
        self._closed = True
        self._events.clear()
        self._readable.set()
        self._room.set()


class ManagedProcess:
    """One running command of a sandbox and the streams attached to it."""

    def __init__(
        self,
        spec: ProcessSpec,
        proc: asyncio.subprocess.Process,
        *,
        pty_fd: int | None,
        marker: bytes | None = None,
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.pid = proc.pid
        self.pty_fd = pty_fd
        self._marker = marker
        """The ``VAR=value`` environment entry of the sandbox's processes (:mod:`..daemons`)."""
        self._pty_closed = False
        self.end: process_pb.ProcessEvent.EndEvent | None = None
        self._subscribers: set[Subscription] = set()
        self._finished = asyncio.Event()
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def finished(self) -> bool:
        """Whether the process was reaped and its ``end`` event sent."""
        return self._finished.is_set()

    def subscribe(self) -> Subscription:
        """A bounded queue of this process's events from now on."""
        subscription = Subscription()
        if self.end is not None:
            subscription.put_end(_end_event(self.end))
        else:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering events to ``subscription`` and drop what it holds."""
        self._subscribers.discard(subscription)
        subscription.close()

    def detach_all(self) -> None:
        """Close every subscription (the sandbox stopped): nothing is delivered or kept."""
        subscribers, self._subscribers = self._subscribers, set()
        for subscription in subscribers:
            subscription.close()

    def pending_events(self) -> int:
        """How many events wait in this process's subscriptions (what it holds in memory)."""
        return sum(len(subscription) for subscription in self._subscribers)

    async def _broadcast(self, event: Event) -> None:
        # In turn, each waiting for room: the slowest reader paces the command,
        # as envd's blocking channel sends do. A stream that leaves meanwhile
        # is closed, which releases the wait.
        for subscription in list(self._subscribers):
            await subscription.put(event)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process's whole process group.

        Once the process was reaped (its output may still be open, held by a child),
        the group's number is free again when its last process ends, and the host
        hands it to the next new process: then only the group's processes that carry
        the sandbox's marker are signalled (:func:`signal_marked_group`), never a
        group that took the number. Before the reap the number is the process's own.
        """
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
        elif self._marker is not None:
            signal_marked_group(self.pid, self._marker, signum)

    def set_deadline(self, seconds: float) -> None:
        """Kill the process (group) after ``seconds`` unless it ended before."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(max(seconds, 0.0), self.signal, signal.SIGKILL)

    async def write_pty(self, data: bytes) -> None:
        """Type ``data`` into the process's terminal (``pty`` input).

        A process without a terminal refuses it, as envd's ``WriteTty`` does.
        """
        if self.pty_fd is None:
            raise ConnectError(Code.INTERNAL, _WRONG_INPUT["pty"])
        await _write_fd(self._open_terminal, data)

    async def write_stdin(self, data: bytes) -> None:
        """Feed ``data`` to the process's stdin (``stdin`` input).

        A process with a terminal refuses it, as envd's ``WriteStdin`` does.
        """
        if self.pty_fd is not None:
            raise ConnectError(Code.INTERNAL, _WRONG_INPUT["stdin"])
        stdin = self.proc.stdin
        if stdin is None:
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"process {self.pid} was started without stdin (start it with stdin=True)",
            )
        if stdin.is_closing():
            raise ConnectError(Code.FAILED_PRECONDITION, f"stdin of process {self.pid} is closed")
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ConnectError(
                Code.FAILED_PRECONDITION, f"stdin of process {self.pid} is closed"
            ) from exc

    async def close_stdin(self) -> None:
        """Signal EOF on the process's stdin (idempotent)."""
        if self.pty_fd is not None:
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"process {self.pid} has a terminal: send Ctrl+D (0x04) to end its input",
            )
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.wait_closed()

    def resize(self, size: PtySize) -> None:
        """Resize the process's terminal."""
        if self.pty_fd is None:
            raise ConnectError(Code.FAILED_PRECONDITION, f"process {self.pid} has no terminal")
        _set_winsize(self._open_terminal(), size)

    def _open_terminal(self) -> int:
        """The terminal's master fd, or ``failed_precondition`` once it is closed."""
        if self.pty_fd is None or self._pty_closed:
            raise ConnectError(Code.FAILED_PRECONDITION, "the terminal is closed")
        return self.pty_fd

    def close_terminal(self) -> None:
        """Close the terminal's master (the process was reaped); later input is refused.

        The fd's number is free from then on, and the server's process hands it to the
        next socket or file it opens (the lowest free number): a write or resize after
        this must never reach it. A ``StreamInput`` holds its process and writes whatever
        its client still sends; it once wrote a paused sandbox's terminal input into the
        connection of the SDK's health probe, which the server then answered 400.
        """
        if self.pty_fd is not None and not self._pty_closed:
            self._pty_closed = True
            with contextlib.suppress(OSError):
                os.close(self.pty_fd)

    async def run(self, readers: Sequence[tuple[asyncio.StreamReader, str]]) -> None:
        """Pump output to the subscribers until the process is reaped, then send ``end``.

        Like envd, the command ends once it exited *and* its output closed:
        ``cmd &`` whose child keeps stdout open runs until that child is done.
        """
        pumps = [
            asyncio.create_task(self._pump(reader, kind), name=f"envd-pump-{self.pid}-{kind}")
            for reader, kind in readers
        ]
        try:
            await asyncio.gather(*pumps)
            returncode = await self.proc.wait()
        except asyncio.CancelledError:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            raise
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
        self.end = exit_status(returncode)
        for subscription in self._subscribers:
            subscription.put_end(_end_event(self.end))
        self._subscribers.clear()
        self._finished.set()

    async def _pump(self, reader: asyncio.StreamReader, kind: str) -> None:
        assert kind in ("stdout", "stderr", "pty")
        while True:
            try:
                chunk = await reader.read(_READ_CHUNK)
            except OSError:
                # A pty master reads EIO once the last slave closes: that is EOF.
                return
            if not chunk:
                return
            # Not read further until every attached stream has room for it.
            await self._broadcast(_data_event(kind, chunk))


async def _write_fd(fd_of: Callable[[], int], data: bytes) -> None:
    """Write all of ``data`` to a non-blocking fd (a pty master), yielding while it is full.

    ``fd_of()`` is asked before every write, with no await between: the fd may be closed
    while this waits for room (its number then names whatever was opened next), and
    ``fd_of`` raises then.
    """
    view = memoryview(data)
    while view:
        fd = fd_of()
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await asyncio.sleep(0.005)
            continue
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF):
                raise ConnectError(Code.FAILED_PRECONDITION, "the terminal is closed") from exc
            raise
        view = view[written:]


class ProcessTable:
    """The running processes of one sandbox (a workspace attachment).

    Lives on the event loop of the request that created it; closing it
    (sandbox stop) kills every process group and ends every stream.
    """

    def __init__(self, workspace: SandboxWorkspace) -> None:
        self.workspace = workspace
        self._loop = asyncio.get_running_loop()
        self._procs: dict[int, ManagedProcess] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawned = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the subprocesses belong to."""
        return self._loop

    def processes(self) -> list[ManagedProcess]:
        """The processes still running, by pid."""
        return [p for _, p in sorted(self._procs.items()) if not p.finished]

    def find(self, selector: process_pb.ProcessSelector | None) -> ManagedProcess:
        """The process a ``ProcessSelector`` names (by pid or tag); ``not_found`` otherwise."""
        match selector.selector if selector is not None else None:
            case Oneof(field="pid", value=int() as pid):
                found = self._procs.get(pid)
                if found is not None and not found.finished:
                    return found
                raise ConnectError(Code.NOT_FOUND, f"process with pid {pid} not found")
            case Oneof(field="tag", value=str() as tag):
                for proc in self._procs.values():
                    if proc.spec.tag == tag and not proc.finished:
                        return proc
                raise ConnectError(Code.NOT_FOUND, f"process with tag {tag!r} not found")
            case _:
                raise ConnectError(Code.INVALID_ARGUMENT, "process: a pid or a tag is required")

    def environment(self, spec: ProcessSpec, user: str, cwd: str) -> dict[str, str]:
        """Base env, then the sandbox's env vars, then the request's (which win), then the marker.

        An entry no process can carry is refused naming it, rather than left
        to the spawn's bare "illegal environment variable name".
        """
        ws = self.workspace
        _check_env(spec.envs, ws.env_vars)
        home = str(ws.resolve(home_of(user), user=user))
        env = {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH,
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "PWD": cwd,
            **SANDBOX_LOCALE_ENV,
            **sandbox_identity_env(ws.sandbox_id),
        }
        env.update(ws.env_vars)
        env.update(spec.envs)
        # Last: no env var may hide the command's daemons from the sandbox's stop.
        env[MARKER_VAR] = str(ws.root)
        return env

    async def start(
        self,
        spec: ProcessSpec,
        *,
        state: RequestState,
        stdin: bool,
        pty: PtySize | None = None,
        deadline_s: float | None = None,
    ) -> tuple[ManagedProcess, Subscription]:
        """Spawn ``spec`` and return it with a subscription to its events from the start."""
        ws = self.workspace
        cwd_sandbox = spec.cwd or home_of(state.user)
        cwd = ws.resolve(cwd_sandbox, user=state.user)
        if not cwd.is_dir():
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"cwd {cwd_sandbox!r} does not exist or is not a directory"
            )
        if not spec.cmd:
            raise ConnectError(Code.INVALID_ARGUMENT, "process.cmd is required")
        env = self.environment(spec, state.user, str(cwd))
        master: int | None = None
        slave: int | None = None
        try:
            if pty is not None:
                env.setdefault("TERM", "xterm-256color")
                master, slave = os.openpty()
                _set_winsize(slave, pty)
                proc = await asyncio.create_subprocess_exec(
                    spec.cmd,
                    *spec.args,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_take_controlling_tty,
                )
            else:
                proc = await asyncio.create_subprocess_exec(
                    spec.cmd,
                    *spec.args,
                    stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
        except (OSError, ValueError) as exc:
            # ValueError: a NUL byte in cmd, args, cwd or an env var.
            if master is not None:
                os.close(master)
            raise _spawn_error(spec.cmd, exc) from exc
        finally:
            if slave is not None:
                os.close(slave)

        self._spawned = True
        managed = ManagedProcess(spec, proc, pty_fd=master, marker=marker_of(ws.root))
        readers: list[tuple[asyncio.StreamReader, str]] = []
        if master is not None:
            readers.append((await self._pty_reader(master), "pty"))
        else:
            assert proc.stdout is not None and proc.stderr is not None
            readers += [(proc.stdout, "stdout"), (proc.stderr, "stderr")]
        subscription = managed.subscribe()
        self._procs[managed.pid] = managed
        if deadline_s is not None:
            managed.set_deadline(deadline_s)
        task = asyncio.create_task(self._supervise(managed, readers), name=f"envd-{managed.pid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if ws.stopped:
            # Stopped while the command was being spawned, maybe after this table
            # was closed: the command must not outlive its sandbox.
            managed.signal(signal.SIGKILL)
            managed.unsubscribe(subscription)
            raise SandboxStopped(ws.sandbox_id)
        return managed, subscription

    async def _pty_reader(self, master: int) -> asyncio.StreamReader:
        reader = asyncio.StreamReader()
        # Reading through a dup keeps `master` usable for writes and resizes
        # until the process is reaped, whatever the transport does with its fd.
        await self._loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(master), "rb", 0)
        )
        return reader

    async def _supervise(
        self, managed: ManagedProcess, readers: Sequence[tuple[asyncio.StreamReader, str]]
    ) -> None:
        try:
            await managed.run(readers)
        finally:
            # Only if it is this one: a process started since, its pid the same number
            # (reused once this one was reaped and its group ended), took the entry.
            if self._procs.get(managed.pid) is managed:
                del self._procs[managed.pid]
            managed.close_terminal()

    async def aclose(self) -> None:
        """Kill every process group and every leftover daemon, and wait for the commands to end.

        Their streams are detached first: a pump waiting for a stream that
        does not read lets go, the killed command's output drains and what
        the streams held is freed.
        """
        procs = list(self._procs.values())
        for proc in procs:
            proc.detach_all()
            proc.signal(signal.SIGKILL)
        if self._spawned:
            await kill_sandbox_daemons(self.workspace.root)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._procs.clear()


async def stream_events(
    managed: ManagedProcess,
    subscription: Subscription,
    state: RequestState,
    *,
    keepalive_s: float | None,
) -> AsyncGenerator[Event, None]:
    """``start{pid}``, then the process's events until ``end``, the client leaves or the sandbox stops.

    ``keepalive`` events go out after ``keepalive_s`` of silence (the SDK's
    ``Keepalive-Ping-Interval``). The process itself is never touched here:
    leaving only detaches. A stop of the sandbox ends the stream with
    ``unavailable`` (:func:`~pytest_kruise_agents.e2b.envd.streams.check_running`),
    not with the ``end`` of the command it killed.
    """
    ws = state.workspace
    unregister = state.on_disconnect(subscription.close)
    leave: Callable[[], None] | None = None
    try:
        # Joined first: a stop from now on ends the stream (and one before refuses it).
        leave = ws.attachment(OpenStreams).join(subscription.close)
        check_running(ws)
        yield _start_event(managed.pid)
        while True:
            try:
                async with asyncio.timeout(keepalive_s):
                    event = await subscription.get()
            except TimeoutError:
                yield _keepalive_event()
                continue
            # Whatever woke the stream: once the sandbox stopped, its events are
            # the stop's doing (a command killed), which E2B's dropped connection never sends.
            check_running(ws)
            if event is None:
                return
            yield event
            if isinstance(event.event, Oneof) and event.event.field == "end":
                return
    finally:
        unregister()
        if leave is not None:
            leave()
        managed.unsubscribe(subscription)
