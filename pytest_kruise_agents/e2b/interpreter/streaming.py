"""The ASGI response of ``POST /execute``: NDJSON lines flushed one by one, cancelled on disconnect.

Starlette's ``StreamingResponse`` only notices a client that went away when
it next writes (ASGI spec 2.4), but a cell may print nothing for minutes. This
response listens for ``http.disconnect`` the whole time and cancels the
producer, which interrupts the kernel. It also listens for its sandbox's
stop, and then cuts the connection (:mod:`.stops`); a line emitted once the
stop has begun cuts it too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final, Literal

import anyio
import anyio.lowlevel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.e2b.cuts import mark_cut
from pytest_kruise_agents.e2b.interpreter.outputs import END_OF_EXECUTION, error_line

__all__ = ["NDJSON_MEDIA_TYPE", "CutStream", "NdjsonStream", "Producer", "StopWatch", "encode_line"]

log = logging.getLogger("pytest_kruise_agents.e2b.interpreter")

NDJSON_MEDIA_TYPE: Final = "application/x-ndjson"

Producer = Callable[[Callable[[Mapping[str, Any]], Awaitable[None]]], Awaitable[None]]
"""``await produce(emit)``: emits every line of the response, the last included."""

StopWatch = Callable[[], AbstractContextManager[asyncio.Event]]
"""``with watch_stop() as stopped``: ``stopped`` is set when the sandbox stops."""

_Ending = Literal["complete", "disconnected", "cut"]


def encode_line(line: Mapping[str, Any]) -> bytes:
    """One NDJSON line: compact JSON and a newline.

    ASCII-only (``\\uXXXX`` escapes) so that any string a kernel sends, lone
    surrogates included, encodes.
    """
    return json.dumps(line, separators=(",", ":")).encode("ascii") + b"\n"


class NdjsonStream(Response):
    """A 200 response whose body is what ``produce`` emits, each line sent as it is emitted.

    ``watch_stop()`` gives an event set when the sandbox stops (see
    :mod:`.stops`): the response is then cut, without its last chunk, as
    E2B's teardown cuts the connection. ``stopping()`` says whether the
    sandbox's stop has begun: a line emitted from then on is not sent, the
    response is cut instead. A client gone before ``produce``
    starts (while its kernel started) never has ``produce`` run: the client
    got its timeout, so its code must not run after it (a retry would run it twice).
    """

    media_type = NDJSON_MEDIA_TYPE

    def __init__(
        self,
        produce: Producer,
        *,
        watch_stop: StopWatch | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        # Not Response.__init__: that would render an empty body and announce
        # ``content-length: 0``; a stream has no length (chunked encoding).
        self.produce = produce
        self.watch_stop = watch_stop or _never_stopped
        self.stopping = stopping or _not_stopping
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            with self.watch_stop() as stopped:
                ending = await self._stream(receive, send, stopped)
        except asyncio.CancelledError:
            # The server is stopping: uvicorn cancels the requests still open
            # after its grace period, and its sandboxes stop with it. The run
            # ends as a stop ends it (raised on, uvicorn would log a traceback).
            ending = "cut"
        if ending == "complete":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif ending == "cut":
            # Returning without the last chunk makes the server close the
            # connection mid-body, on purpose: no error to log.
            mark_cut()
        # "disconnected": nobody to answer.

    async def _stream(self, receive: Receive, send: Send, stopped: asyncio.Event) -> _Ending:
        ending: _Ending = "complete"

        async with anyio.create_task_group() as group:

            async def emit(line: Mapping[str, Any]) -> None:
                nonlocal ending
                if self.stopping():
                    # A stop closes the sandbox's parts one after another: the
                    # kernel may die (the command side's sweep kills it) before
                    # the stop event is set. What the run reports since (a
                    # DeadKernelError) is not for a sandbox that is gone.
                    ending = "cut"
                    group.cancel_scope.cancel()
                    await anyio.lowlevel.checkpoint()
                body = encode_line(line)
                await send({"type": "http.response.body", "body": body, "more_body": True})

            async def watch_disconnect() -> None:
                nonlocal ending
                while (await receive())["type"] != "http.disconnect":
                    pass
                ending = "disconnected"
                group.cancel_scope.cancel()

            async def watch_stop() -> None:
                nonlocal ending
                await stopped.wait()
                ending = "cut"
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            group.start_soon(watch_stop)
            # The watchers look first: a disconnect or stop already known ends
            # the response before ``produce`` sends any code to a kernel.
            await anyio.lowlevel.checkpoint()
            if ending == "complete":
                await self._produce(emit)
            group.cancel_scope.cancel()
        return ending

    async def _produce(self, emit: Callable[[Mapping[str, Any]], Awaitable[None]]) -> None:
        try:
            await self.produce(emit)
        except Exception as exc:
            # Headers are out: the failure can only be reported in-band.
            log.exception("an execution failed")
            await emit(error_line("InternalError", f"{type(exc).__name__}: {exc}", ""))
            await emit(END_OF_EXECUTION)


class CutStream(NdjsonStream):
    """A response cut at once: its sandbox stopped before the execution began."""

    def __init__(self) -> None:
        super().__init__(_produce_nothing, watch_stop=_stopped_already)


@contextmanager
def _never_stopped() -> Iterator[asyncio.Event]:
    yield asyncio.Event()


def _not_stopping() -> bool:
    return False


@contextmanager
def _stopped_already() -> Iterator[asyncio.Event]:
    event = asyncio.Event()
    event.set()
    yield event


async def _produce_nothing(emit: Callable[[Mapping[str, Any]], Awaitable[None]]) -> None:
    return None
