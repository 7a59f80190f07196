"""The Connect service ``process.Process`` of the fake envd.

Implements every method of the ``Process`` protocol of the stubs in the
``e2b`` wheel (``e2b/envd/process/process_connect.py``) over the sandbox's
:class:`~pytest_kruise_agents.e2b.envd.processes.ProcessTable`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.process import process_pb
from e2b.envd.process.process_connect import Process
from e2b.envd.process.process_pb import (
    CloseStdinRequest,
    CloseStdinResponse,
    ConnectRequest,
    ConnectResponse,
    ListRequest,
    ListResponse,
    SendInputRequest,
    SendInputResponse,
    SendSignalRequest,
    SendSignalResponse,
    StartRequest,
    StartResponse,
    StreamInputRequest,
    StreamInputResponse,
    UpdateRequest,
    UpdateResponse,
)
from protobuf import Oneof

from pytest_kruise_agents.e2b.envd import context
from pytest_kruise_agents.e2b.envd.errors import guard_stream, guard_unary
from pytest_kruise_agents.e2b.envd.processes import (
    ManagedProcess,
    ProcessSpec,
    ProcessTable,
    PtySize,
    stream_events,
)
from pytest_kruise_agents.e2b.envd.streams import run_until_stopped

__all__ = ["ProcessService"]

_SIGNALS = {process_pb.Signal.SIGKILL: 9, process_pb.Signal.SIGTERM: 15}


def _table() -> ProcessTable:
    return context.current().workspace.attachment(ProcessTable)


def _pty_size(pty: process_pb.PTY | None) -> PtySize | None:
    if pty is None:
        return None
    size = pty.size or process_pb.PTY.Size()
    # envd passes them on as uint16(...) to pty.StartWithSize / Setsize: no range check, a
    # 0x0 window is a valid terminal (the CLI sends {} when its output is not a terminal),
    # and a larger value wraps.
    return PtySize(cols=size.cols & 0xFFFF, rows=size.rows & 0xFFFF)


async def _write_input(managed: ManagedProcess, item: process_pb.ProcessInput | None) -> None:
    """Write ``stdin`` input to the process's stdin, ``pty`` input to its terminal.

    Each kind is refused by a process that takes the other, as envd refuses it.
    """
    match item.input if item is not None else None:
        case Oneof(field="pty", value=bytes() as data):
            await managed.write_pty(bytes(data))
        case Oneof(value=bytes() as data):
            await managed.write_stdin(bytes(data))
        case _:
            raise ConnectError(Code.INVALID_ARGUMENT, "input: stdin or pty bytes are required")


async def _feed(request: AsyncIterator[StreamInputRequest]) -> StreamInputResponse:
    """Write a ``StreamInput``'s ``data`` events, in order, to the process its ``start`` names."""
    managed: ManagedProcess | None = None
    async for message in request:
        match message.event:
            case Oneof(value=StreamInputRequest.StartEvent() as start):
                managed = _table().find(start.process)
            case Oneof(value=StreamInputRequest.DataEvent() as data):
                if managed is None:
                    raise ConnectError(
                        Code.INVALID_ARGUMENT, "StreamInput: the first event must be start"
                    )
                await _write_input(managed, data.input)
            case _:
                pass  # keepalive
    if managed is None:
        raise ConnectError(Code.INVALID_ARGUMENT, "StreamInput: no start event")
    return StreamInputResponse()


class ProcessService(Process):
    """``process.Process``: start, attach to, list, feed, signal and resize commands."""

    @guard_unary
    async def list(
        self, request: ListRequest, ctx: RequestContext[ListRequest, ListResponse], /
    ) -> ListResponse:
        """Every running process with the config it was started with.

        Refused once the sandbox stopped, as the proxy refuses a call after the
        stop: an empty list would read as a running sandbox with nothing in it.
        """
        ws = context.current().workspace
        ws.require_running()
        table = ws.existing_attachment(ProcessTable)
        procs = table.processes() if table is not None else []
        return ListResponse(
            processes=[
                process_pb.ProcessInfo(config=p.spec.to_pb(), pid=p.pid, tag=p.spec.tag)
                for p in procs
            ]
        )

    @guard_stream
    async def start(
        self, request: StartRequest, ctx: RequestContext[StartRequest, StartResponse], /
    ) -> AsyncIterator[StartResponse]:
        """Spawn a command; stream ``start``, its output, and ``end``."""
        state = context.current()
        config = request.process
        if config is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "process: the process config is required")
        spec = ProcessSpec(
            cmd=config.cmd,
            args=tuple(config.args),
            envs=dict(config.envs),
            cwd=config.cwd if config.has_field("cwd") else None,
            tag=request.tag if request.has_field("tag") else None,
        )
        remaining_ms = ctx.timeout_ms
        managed, subscription = await _table().start(
            spec,
            state=state,
            # Older SDKs omit `stdin`; envd then keeps stdin open.
            stdin=request.stdin if request.has_field("stdin") else True,
            pty=_pty_size(request.pty if request.has_field("pty") else None),
            deadline_s=None if remaining_ms is None else remaining_ms / 1000.0,
        )
        deadline = None if remaining_ms is None else time.monotonic() + remaining_ms / 1000.0
        async for event in stream_events(
            managed, subscription, state, keepalive_s=context.keepalive_interval(ctx)
        ):
            ended = isinstance(event.event, Oneof) and event.event.field == "end"
            if ended and deadline is not None and time.monotonic() >= deadline:
                # The deadline killed it: like connect-go once the handler's context has
                # expired, the stream ends with deadline_exceeded, not the end event.
                raise ConnectError(Code.DEADLINE_EXCEEDED, "the command's deadline was exceeded")
            yield StartResponse(event=event)

    @guard_stream
    async def connect(
        self, request: ConnectRequest, ctx: RequestContext[ConnectRequest, ConnectResponse], /
    ) -> AsyncIterator[ConnectResponse]:
        """Attach to a running process: ``start``, then its events from now on.

        The stream ends with ``deadline_exceeded`` at the request's deadline
        (``Connect-Timeout-Ms``); the process runs on.
        """
        state = context.current()
        managed = _table().find(request.process)
        subscription = managed.subscribe()
        events = stream_events(
            managed, subscription, state, keepalive_s=context.keepalive_interval(ctx)
        )
        async for event in context.until_deadline(events, ctx, "Process.Connect"):
            yield ConnectResponse(event=event)

    @guard_unary
    async def update(
        self, request: UpdateRequest, ctx: RequestContext[UpdateRequest, UpdateResponse], /
    ) -> UpdateResponse:
        """Resize a process's terminal."""
        managed = _table().find(request.process)
        size = _pty_size(request.pty if request.has_field("pty") else None)
        if size is not None:
            managed.resize(size)
        return UpdateResponse()

    @guard_unary
    async def stream_input(
        self,
        request: AsyncIterator[StreamInputRequest],
        ctx: RequestContext[StreamInputRequest, StreamInputResponse],
        /,
    ) -> StreamInputResponse:
        """``start{process}``, then ``data`` events written in order to the process.

        A pause or kill of the sandbox ends the stream with ``unavailable``,
        as it ends every other stream, even while it waits for the client's
        next message: the client's ``close()`` then reports the sandbox not
        running, not its input acknowledged.
        """
        workspace = context.current().workspace
        return await run_until_stopped(workspace, lambda: _feed(request))

    @guard_unary
    async def send_input(
        self, request: SendInputRequest, ctx: RequestContext[SendInputRequest, SendInputResponse], /
    ) -> SendInputResponse:
        """Write bytes to a process's stdin (``stdin`` input) or terminal (``pty`` input)."""
        await _write_input(_table().find(request.process), request.input)
        return SendInputResponse()

    @guard_unary
    async def send_signal(
        self,
        request: SendSignalRequest,
        ctx: RequestContext[SendSignalRequest, SendSignalResponse],
        /,
    ) -> SendSignalResponse:
        """SIGKILL or SIGTERM a process's whole process group."""
        signum = _SIGNALS.get(request.signal)
        if signum is None:
            raise ConnectError(
                Code.INVALID_ARGUMENT, "signal: must be SIGNAL_SIGKILL or SIGNAL_SIGTERM"
            )
        _table().find(request.process).signal(signum)
        return SendSignalResponse()

    @guard_unary
    async def close_stdin(
        self,
        request: CloseStdinRequest,
        ctx: RequestContext[CloseStdinRequest, CloseStdinResponse],
        /,
    ) -> CloseStdinResponse:
        """Close a process's stdin (EOF)."""
        await _table().find(request.process).close_stdin()
        return CloseStdinResponse()
