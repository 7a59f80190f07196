"""Following the Connect envelopes of a streaming request body, to tell one cut short.

A Connect stream's body is a run of envelopes: a flags byte, a 4-byte
big-endian length, then that many bytes of message. connectrpc's reader
keeps an unfinished envelope buffered and, when the body ends, drops it
without a word, so a body cut short reads as one with fewer messages (the
caller then gets ``unimplemented`` "unary request has zero messages" or the
handler's "no start event"). connect-go, which envd is built on, refuses it:
``invalid_argument`` "protocol error: incomplete envelope" for a cut prefix,
"protocol error: promised N bytes in enveloped message, got M bytes" for a
cut message. :class:`EnvelopeFraming` counts the bytes as they pass so the
app can answer the same.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PREFIX_BYTES", "EnvelopeFraming"]

PREFIX_BYTES: Final = 5
"""An envelope's prefix: one flags byte and a 4-byte big-endian message length."""


class EnvelopeFraming:
    """Where a body's envelopes stand after the bytes fed so far (nothing is kept but counts)."""

    __slots__ = ("_got", "_prefix", "_size", "largest")

    def __init__(self) -> None:
        self._prefix = bytearray()  # the part of the current prefix seen so far
        self._size = 0  # the length the current message's prefix promised
        self._got = 0  # the bytes of the current message seen so far
        self.largest = 0
        """The largest length a prefix promised so far (known before the message arrives)."""

    def feed(self, data: bytes) -> None:
        """Account for the next ``data`` of the body."""
        view = memoryview(data)
        while view:
            if self._got < self._size:
                take = min(self._size - self._got, len(view))
                self._got += take
            else:
                take = min(PREFIX_BYTES - len(self._prefix), len(view))
                self._prefix += view[:take]
                if len(self._prefix) == PREFIX_BYTES:
                    self._size = int.from_bytes(self._prefix[1:], "big")
                    self.largest = max(self.largest, self._size)
                    self._got = 0
                    self._prefix.clear()
            view = view[take:]

    def problem(self) -> str | None:
        """connect-go's message for a body that ended here, or ``None`` if every envelope is whole."""
        if self._prefix:
            return "protocol error: incomplete envelope: unexpected EOF"
        if self._got < self._size:
            return (
                f"protocol error: promised {self._size} bytes in enveloped message, "
                f"got {self._got} bytes"
            )
        return None
