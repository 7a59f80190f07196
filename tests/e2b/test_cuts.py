"""Specification of the cut responses' log filter: only a cut marked on purpose goes unlogged."""

from __future__ import annotations

import asyncio
import contextvars
import logging

from starlette.types import Message

from pytest_kruise_agents.e2b.cuts import INCOMPLETE_RESPONSE, CutLogFilter, TrackedSend, mark_cut


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, msg, None, None)


def _kept_after_mark(msg: str) -> bool:
    def marked() -> bool:
        mark_cut()
        return CutLogFilter().filter(_record(msg))

    return contextvars.copy_context().run(marked)


def test_an_unfinished_response_nobody_cut_is_still_logged_as_the_app_bug_it_is() -> None:
    def unmarked() -> bool:
        return CutLogFilter().filter(_record(INCOMPLETE_RESPONSE))

    assert contextvars.copy_context().run(unmarked)


def test_a_response_cut_on_purpose_drops_only_uvicorn_s_unfinished_line() -> None:
    assert not _kept_after_mark(INCOMPLETE_RESPONSE)
    assert _kept_after_mark("Exception in ASGI application")


def test_a_tracked_send_passes_each_message_on_and_says_when_the_response_started() -> None:
    """Before the start an error can still be answered whole; after it, only cut."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def respond() -> list[bool]:
        tracked = TrackedSend(send)
        seen = [tracked.started]
        await tracked({"type": "http.response.start", "status": 200, "headers": []})
        seen.append(tracked.started)
        await tracked({"type": "http.response.body", "body": b"x", "more_body": True})
        seen.append(tracked.started)
        return seen

    assert asyncio.run(respond()) == [False, True, True]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
