"""The ``/execute`` responses open on a sandbox, and how its stop cuts them.

On E2B a kill, pause or expiry tears the sandbox VM down, and with it the
connection of a ``run_code`` in progress or queued: the SDK reads a
connection error, probes the sandbox, finds it not running and raises its
"the sandbox was killed while the request was in progress"
``TimeoutException``. Here each ``/execute`` response joins its sandbox's
:class:`OpenExecutions` (a workspace attachment, closed on stop, as envd's
open streams are), and the stop wakes it: the response then ends without its
last chunk, so the client's read fails as it does on E2B. The stop closes the
sandbox's parts in turn, and an earlier one may kill the kernel first (envd's
sweep of the sandbox's processes): the response also sends no line once the
workspace reads stopped, which it does before any part closes
(``NdjsonStream``'s ``stopping``). A kernel that dies while its sandbox runs
on is still an in-band ``DeadKernelError`` line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from pytest_kruise_agents.e2b.interpreter.workspace import InterpreterWorkspace

__all__ = ["OpenExecutions", "watch_stop"]


class OpenExecutions:
    """The ``/execute`` responses in progress on one sandbox (a workspace attachment)."""

    def __init__(self, workspace: object) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: set[asyncio.Event] = set()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the responses run on."""
        return self._loop

    @contextmanager
    def watch(self) -> Iterator[asyncio.Event]:
        """An event set when the sandbox stops (already set if it has), for the ``with`` block."""
        event = asyncio.Event()
        if self._closed:
            event.set()
        self._events.add(event)
        try:
            yield event
        finally:
            self._events.discard(event)

    async def aclose(self) -> None:
        """The sandbox stopped: wake every response."""
        self._closed = True
        for event in list(self._events):
            event.set()


@contextmanager
def watch_stop(workspace: InterpreterWorkspace) -> Iterator[asyncio.Event]:
    """An event set when ``workspace``'s sandbox stops (at once if it has stopped already)."""
    if workspace.stopped:
        yield _set_event()
        return
    try:
        executions = workspace.attachment(OpenExecutions)
    except RuntimeError:  # SandboxStopped: the stop came in between
        yield _set_event()
        return
    with executions.watch() as event:
        yield event


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event
