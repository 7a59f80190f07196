"""Consoles whose reader may leave early: ``kruise-agents plan ... | head -1``.

Rich's console answers a closed pipe by exiting with status 1, which for
``plan`` means "no size meets the goals", and Python then complains about the
unflushed stream on its way out. A command's files and its exit status must
not depend on whether someone still reads its tables: this console stops
printing, silently, and the command goes on.
"""

from __future__ import annotations

import contextlib
import os

from rich.console import Console

__all__ = ["PipeSafeConsole"]


class PipeSafeConsole(Console):
    """A rich console that goes quiet when its reader has gone (EPIPE, EIO) instead of exiting."""

    def _check_buffer(self) -> None:
        # Rich catches only EPIPE; a terminal that hung up (SIGHUP, a closed
        # ssh session) answers EIO, and the reader is gone all the same.
        try:
            super()._check_buffer()
        except OSError:
            self.on_broken_pipe()

    def on_broken_pipe(self) -> None:
        """Print nothing more; point the stream at /dev/null so that no later flush fails."""
        self.quiet = True
        # Python flushes sys.stdout (and sys.stderr) at exit: what is still
        # buffered for the gone reader must go somewhere that takes it, or
        # the interpreter prints an error and exits 120.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = self.file.fileno()  # none for an in-memory stream (tests): nothing to redirect
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
