"""Reading a request whole and answering in its place: the tools of rewriting middlewares.

A middleware that changes what the E2B app answers (the named breakages of
:mod:`.breakage`, the conformance suite's mutant servers) reads the request
body whole (:func:`read_body`), hands the app a ``receive`` that replays it
(:func:`replay`), captures the app's answer (:func:`call`), edits it, and
sends it on (:func:`reply`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Answer", "call", "json_answer", "read_body", "replay", "reply", "with_query"]


@dataclass
class Answer:
    """An app's captured answer: status, headers and the whole body."""

    status: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON, or ``None`` if it is not."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


async def read_body(receive: Receive) -> bytes:
    """The request's whole body (empty if the client went away first)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then waits on the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # blocks until the client goes away, as the server's would

    return replayed


async def call(app: ASGIApp, scope: Scope, receive: Receive) -> Answer:
    """Run ``app`` on the request and capture its answer instead of sending it."""
    answer = Answer()
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    answer.body = b"".join(chunks)
    return answer


async def reply(send: Send, answer: Answer) -> None:
    """Send ``answer``, with its ``content-length`` made right."""
    headers = [(k, v) for k, v in answer.headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def json_answer(answer: Answer, status: int, body: Any) -> Answer:
    """``answer`` with ``status`` and ``body`` as its JSON body."""
    headers = [(k, v) for k, v in answer.headers if k.lower() != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    return Answer(status, headers, json.dumps(body).encode())


def with_query(
    scope: Scope, edit: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]
) -> Scope:
    """``scope`` with its query string's pairs passed through ``edit``."""
    raw = scope.get("query_string", b"").decode("latin-1")
    pairs = edit(parse_qsl(raw, keep_blank_values=True))
    return {**scope, "query_string": urlencode(pairs).encode("latin-1")}
