"""The ASGI response of ``POST /execute``: NDJSON lines flushed one by one, cancelled on disconnect.

Starlette's ``StreamingResponse`` only notices a client that went away when
it next writes (ASGI spec 2.4), but a cell may print nothing for minutes. This
response listens for ``http.disconnect`` the whole time and cancels the
producer, which interrupts the kernel.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.e2b.interpreter.outputs import END_OF_EXECUTION, error_line

__all__ = ["NDJSON_MEDIA_TYPE", "NdjsonStream", "Producer", "encode_line"]

log = logging.getLogger("pytest_kruise_agents.e2b.interpreter")

NDJSON_MEDIA_TYPE: Final = "application/x-ndjson"

Producer = Callable[[Callable[[Mapping[str, Any]], Awaitable[None]]], Awaitable[None]]
"""``await produce(emit)``: emits every line of the response, the last included."""


def encode_line(line: Mapping[str, Any]) -> bytes:
    """One NDJSON line: compact JSON and a newline.

    ASCII-only (``\\uXXXX`` escapes) so that any string a kernel sends, lone
    surrogates included, encodes.
    """
    return json.dumps(line, separators=(",", ":")).encode("ascii") + b"\n"


class NdjsonStream(Response):
    """A 200 response whose body is what ``produce`` emits, each line sent as it is emitted."""

    media_type = NDJSON_MEDIA_TYPE

    def __init__(self, produce: Producer) -> None:
        # Not Response.__init__: that would render an empty body and announce
        # ``content-length: 0``; a stream has no length (chunked encoding).
        self.produce = produce
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        disconnected = False

        async def emit(line: Mapping[str, Any]) -> None:
            await send({"type": "http.response.body", "body": encode_line(line), "more_body": True})

        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                nonlocal disconnected
                while (await receive())["type"] != "http.disconnect":
                    pass
                disconnected = True
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            try:
                await self.produce(emit)
            except Exception as exc:
                # Headers are out: the failure can only be reported in-band.
                log.exception("an execution failed")
                await emit(error_line("InternalError", f"{type(exc).__name__}: {exc}", ""))
                await emit(END_OF_EXECUTION)
            group.cancel_scope.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
