"""Standard output whose reader may leave early: ``kruise-agents demo | head -1``.

A reader that has gone only ends the printing, silently: the command goes on,
and its exit status means what it would have meant with a reader. Without
this, Click, Typer and rich answer the closed pipe (``BrokenPipeError``) by
exiting with status 1 and no message, a failure that did not happen.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["ReaderMayLeave", "stdout_reader_may_leave"]


class ReaderMayLeave(io.TextIOBase):
    """A text stream that passes writes to ``stream`` until its reader has gone
    (``BrokenPipeError``), then drops them silently."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self.leave()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.leave()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The wrapped stream's (rich and Click choose what to print by it)."""
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        """The wrapped stream's error handler."""
        return self._stream.errors

    def leave(self) -> None:
        """Print nothing more; point the stream's descriptor at /dev/null.

        Python flushes ``sys.stdout`` at exit: what is still buffered for the gone
        reader must go somewhere that takes it, or the interpreter reports the
        error and exits 120. Called again at the end of
        :func:`stdout_reader_may_leave`, since a pytest run's capture puts back
        the descriptor it saved at the start.
        """
        self.gone = True
        with contextlib.suppress(OSError, ValueError):
            fd = self._stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)


@contextmanager
def stdout_reader_may_leave() -> Iterator[ReaderMayLeave]:
    """``sys.stdout`` as :class:`ReaderMayLeave` for as long as the block runs."""
    saved = sys.stdout
    wrapper = ReaderMayLeave(saved)
    sys.stdout = wrapper
    try:
        yield wrapper
    finally:
        sys.stdout = saved
        if wrapper.gone:
            wrapper.leave()
