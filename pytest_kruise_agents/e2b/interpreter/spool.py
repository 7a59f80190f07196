"""A first-in first-out queue of byte records whose writer never waits: memory first, then a file.

A kernel's IOPub socket must be read as fast as the kernel writes, whatever
pace the HTTP client reads at: ZeroMQ drops what a subscriber leaves unread
past its high-water mark, so a slow client used to lose whole blocks of a
cell's output. The reader puts each message in a :class:`Spool` and the
client is served from there. Up to ``memory_limit`` bytes wait in memory; the
rest goes to an anonymous temporary file and is read back in order, so a
client that reads slowly, or not at all for a while, costs disk, not memory.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
from collections import deque
from pathlib import Path
from typing import IO, Final

__all__ = ["DEFAULT_MEMORY_LIMIT", "Spool"]

DEFAULT_MEMORY_LIMIT: Final = 4 * 1024 * 1024
"""Bytes of records a spool keeps in memory before it writes the next ones to its file."""

_LENGTH: Final = struct.Struct(">I")
"""A record on file: its length (4 bytes, big-endian), then its bytes."""


class Spool:
    """Records put by one task, taken in the same order by another.

    :meth:`put` never waits. Once the records waiting in memory would pass
    ``memory_limit`` bytes, the next ones go to a temporary file in
    ``directory`` (unlinked at once, so nothing is left behind whatever
    happens), until the reader has caught up with the file. :meth:`close`
    ends the records; :meth:`get` returns ``None`` after the last one, or
    raises the error given to :meth:`close`. Call :meth:`discard` when done.
    One event loop; one writer and one reader.
    """

    def __init__(
        self, *, memory_limit: int = DEFAULT_MEMORY_LIMIT, directory: Path | None = None
    ) -> None:
        if memory_limit < 0:
            raise ValueError(f"memory_limit: must be >= 0, got {memory_limit}")
        self.memory_limit = memory_limit
        self.directory = directory
        self._memory: deque[bytes] = deque()
        self._memory_bytes = 0
        self._file: IO[bytes] | None = None
        self._read_at = 0
        self._write_at = 0
        self._records_on_file = 0
        self._closed = False
        self._error: BaseException | None = None
        self._ready = asyncio.Event()

    @property
    def memory_bytes(self) -> int:
        """Bytes of the records waiting in memory."""
        return self._memory_bytes

    @property
    def file_bytes(self) -> int:
        """Bytes of the records waiting on file (lengths included)."""
        return self._write_at - self._read_at

    def put(self, record: bytes) -> None:
        """Add ``record`` after the others; never waits. Raises ``RuntimeError`` once closed."""
        if self._closed:
            raise RuntimeError("the spool is closed")
        if self._records_on_file or self._memory_bytes + len(record) > self.memory_limit:
            # Records on file are older than any new one: keep the order.
            self._append_to_file(record)
        else:
            self._memory.append(record)
            self._memory_bytes += len(record)
        self._ready.set()

    def close(self, error: BaseException | None = None) -> None:
        """No more records: :meth:`get` ends after the last one (raising ``error`` if given)."""
        if not self._closed:
            self._closed = True
            self._error = error
        self._ready.set()

    async def get(self) -> bytes | None:
        """The oldest record, waiting for one; ``None`` once closed and empty."""
        while True:
            if self._memory:
                record = self._memory.popleft()
                self._memory_bytes -= len(record)
                return record
            if self._records_on_file:
                return self._take_from_file()
            if self._closed:
                if self._error is not None:
                    raise self._error
                return None
            self._ready.clear()
            await self._ready.wait()

    def discard(self) -> None:
        """Close the spool, drop every record and close the file (the reader went away, or is done)."""
        self.close()
        self._memory.clear()
        self._memory_bytes = 0
        self._records_on_file = 0
        self._read_at = self._write_at = 0
        if self._file is not None:
            self._file.close()
            self._file = None

    # Plain blocking writes and reads: records are small and land in the page
    # cache, cheaper than a thread hop per record.

    def _append_to_file(self, record: bytes) -> None:
        if self._file is None:
            # Kept open across calls, closed by discard().
            self._file = tempfile.TemporaryFile(dir=self.directory, prefix="spool-")  # noqa: SIM115
        self._file.seek(self._write_at)
        self._file.write(_LENGTH.pack(len(record)))
        self._file.write(record)
        self._write_at = self._file.tell()
        self._records_on_file += 1

    def _take_from_file(self) -> bytes:
        assert self._file is not None
        self._file.seek(self._read_at)
        (length,) = _LENGTH.unpack(self._file.read(_LENGTH.size))
        record = self._file.read(length)
        self._read_at = self._file.tell()
        self._records_on_file -= 1
        if not self._records_on_file:
            # Caught up: start the file over, so it never grows past one backlog.
            self._file.seek(0)
            self._file.truncate()
            self._read_at = self._write_at = 0
        return record
