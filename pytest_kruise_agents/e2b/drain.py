"""Read the rest of a request's body before answering it with an error.

An app may refuse a request on its headers alone (a missing token, a sandbox
that is gone, an upload declared too large) while the client is still sending
the body. The E2B SDK's HTTP stack (hyper, under ``pyqwest``) then drops the
connection while it reads the answer, and the SDK raises ``httpx.ReadError``
instead of the typed error the answer carries: measured on a quiet machine,
about one unauthenticated ``files.write`` in 200.

:class:`DrainBeforeErrorMiddleware` holds back the start of an error answer
(status >= 400) until the request body has been read to its end, discarding
it, up to ``max_bytes``; past that the answer goes out anyway, as Go's HTTP
server gives up after 256 KiB. A client that sent ``Expect: 100-continue``
and whose body nobody asked for is answered at once: it sends no body after
a final status.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_DRAIN_BYTES", "DrainBeforeErrorMiddleware", "expects_continue"]

DEFAULT_DRAIN_BYTES: Final = 4 * 1024 * 1024
"""The most body an error answer waits for (beyond it the client may see a reset)."""


class DrainBeforeErrorMiddleware:
    """ASGI middleware: an error answer goes out only after the request body was read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_DRAIN_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ended = False
        asked = False

        async def tracked_receive() -> Message:
            nonlocal ended, asked
            asked = True
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                ended = True
            return message

        async def draining_send(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and message["status"] >= 400
                and not ended
                and (asked or not expects_continue(scope))
            ):
                drained = 0
                while not ended and drained <= self.max_bytes:
                    drained += len((await tracked_receive()).get("body", b""))
            await send(message)

        await self.app(scope, tracked_receive, draining_send)


def expects_continue(scope: Scope) -> bool:
    """Whether the request waits for ``100 Continue`` before it sends its body."""
    return any(
        name.lower() == b"expect" and value.strip().lower() == b"100-continue"
        for name, value in scope["headers"]
    )
