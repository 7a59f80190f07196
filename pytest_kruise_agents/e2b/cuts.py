"""Connections cut on purpose: a response ended without its last chunk, logged as nothing wrong.

ASGI has no way to abort a response: an app that returns without finishing
one makes uvicorn close the connection mid-body, which is what E2B's
teardown of a sandbox does to a ``run_code`` in progress (the SDK then
reports the sandbox killed). uvicorn logs each such return at ERROR level
("ASGI callable returned without completing response."), as an app bug.
The response marks its cut with :func:`mark_cut` (in the request's own
context, which uvicorn's log call shares), and :class:`CutLogFilter`, on
uvicorn's error logger, drops that one line for marked requests only.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Final

from starlette.types import Message, Send

__all__ = ["INCOMPLETE_RESPONSE", "CutLogFilter", "TrackedSend", "mark_cut"]

INCOMPLETE_RESPONSE: Final = "ASGI callable returned without completing response."
"""uvicorn's log message for a response an app left unfinished."""

_CUT: ContextVar[bool] = ContextVar("kruise_response_cut", default=False)


def mark_cut() -> None:
    """The response of the current request is cut on purpose (call before returning)."""
    _CUT.set(True)


class CutLogFilter(logging.Filter):
    """Drops uvicorn's "without completing response" line of a request marked by :func:`mark_cut`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == INCOMPLETE_RESPONSE and _CUT.get())


class TrackedSend:
    """An ASGI ``send`` that remembers whether the response has started.

    Before it has, an error can still be answered whole (as JSON); after, the
    only way to end the response early is to cut it (:func:`mark_cut`).
    """

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
