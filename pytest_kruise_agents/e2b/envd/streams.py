"""The open streams of a sandbox (command output, directory watches) and how a stop ends them.

On E2B a pause or kill tears the sandbox's connections down: a stream open on
it ends with an error, whatever it was streaming. The SDK then probes the
sandbox's health, finds it not running and reports that
(``SandboxNotRunningException``); a command's ``end`` event never arrives.
The fake envd does the same: every stream joins the sandbox's
:class:`OpenStreams`, which wakes it when the sandbox stops, and
:func:`check_running` ends it with ``unavailable`` once the workspace is
stopped. A command killed by its user, or ending on its own, still ends its
stream with its ``end`` event. A file download (:class:`CutOnStop`) joins
too: the stop cuts its body off. A client stream (``StreamInput``) runs under
:func:`run_until_stopped`: the stop ends it while it waits for the client's
next message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.e2b.cuts import TrackedSend, mark_cut
from pytest_kruise_agents.e2b.workspace import SandboxStopped, SandboxWorkspace

__all__ = ["CutOnStop", "OpenStreams", "check_running", "run_until_stopped"]

T = TypeVar("T")


def check_running(workspace: SandboxWorkspace) -> None:
    """Raise what ends a stream once its sandbox stopped (paused or killed)."""
    if workspace.stopped:
        # Not the proxy's "not found": the SDK cannot tell a dropped connection
        # from a network failure, so it probes the sandbox's health, finds it
        # not running and reports that (SandboxNotRunningException).
        raise ConnectError(
            Code.UNAVAILABLE,
            f"the connection to sandbox {workspace.sandbox_id} ended before the "
            "stream completed: the sandbox was paused or killed",
        )


class OpenStreams:
    """The open streams of one sandbox (a workspace attachment).

    Closing it (the sandbox's pause or kill, a recycled sandbox's kill
    included) wakes every stream, which then ends with :func:`check_running`'s
    error: left open, a watch went on reporting the deletion of the sandbox's
    files, then the files of whoever got the recycled sandbox next, and a
    command's stream reported the command killed rather than the sandbox gone.
    """

    def __init__(self, workspace: SandboxWorkspace) -> None:
        self.workspace = workspace
        self._loop = asyncio.get_running_loop()
        self._wakers: set[Callable[[], None]] = set()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the streams run on."""
        return self._loop

    def join(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` when the sandbox stops (now if it has); returns a leave function."""
        if self._closed:
            wake()
            return lambda: None
        self._wakers.add(wake)
        return lambda: self._wakers.discard(wake)

    async def aclose(self) -> None:
        """Wake every stream: the sandbox stopped."""
        self._closed = True
        wakers, self._wakers = self._wakers, set()
        for wake in wakers:
            wake()


async def run_until_stopped(workspace: SandboxWorkspace, run: Callable[[], Awaitable[T]]) -> T:
    """``run()``'s result, unless the sandbox stops first or meanwhile: then :func:`check_running`'s error.

    For a call that waits on its client rather than on the sandbox (the
    ``StreamInput`` client stream): nothing of the sandbox wakes it, so the
    stop must, as E2B's teardown drops its connection. ``run()`` is cancelled
    at the stop; however it ended once the stop began (a write to the stdin
    of a command the stop killed, or even cleanly) reads as the stop too.
    """
    stopped = asyncio.Event()
    # Joined first: a stop from now on ends the call (and one before refuses it).
    leave = workspace.attachment(OpenStreams).join(stopped.set)
    try:
        check_running(workspace)
        task = asyncio.ensure_future(run())
        waker = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait({task, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, waker):
                pending.cancel()
            await asyncio.gather(task, waker, return_exceptions=True)
    finally:
        leave()
    # Even after a clean end: a stop begun meanwhile (the sandbox is marked
    # stopped before its commands are killed and its streams woken) dropped
    # E2B's connection before the answer could leave.
    check_running(workspace)
    return task.result()


class CutOnStop(Response):
    """``inner`` (a file's bytes), cut mid-body if its sandbox stops while it is sent.

    E2B's teardown drops the connection of a download in progress; here the
    response joins the sandbox's :class:`OpenStreams` and, woken by the stop,
    stops sending and returns without the last chunk, which makes the server
    close the connection (:func:`~pytest_kruise_agents.e2b.cuts.mark_cut`):
    the client's read fails. The stop is heard even while a send waits for a
    client that does not read. Stopped before the headers went out, it answers
    what the proxy answers for a stopped sandbox (502).
    """

    def __init__(self, inner: Response, workspace: SandboxWorkspace) -> None:
        # Not Response.__init__: ``inner`` renders the headers and body.
        self.inner = inner
        self.workspace = workspace
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stopped = asyncio.Event()
        tracked = TrackedSend(send)
        try:
            leave = self.workspace.attachment(OpenStreams).join(stopped.set)
        except SandboxStopped:
            stopped.set()
            leave = _stay
        try:
            cut = await _run_until(stopped, lambda: self.inner(scope, receive, tracked))
        finally:
            leave()
        if not cut:
            return
        if not tracked.started:
            error = SandboxStopped(self.workspace.sandbox_id)
            gone = JSONResponse({"code": 502, "message": str(error)}, status_code=502)
            await gone(scope, receive, send)
            return
        mark_cut()  # returning mid-body is the cut, on purpose: no error to log


async def _run_until(stopped: asyncio.Event, run: Callable[[], Awaitable[None]]) -> bool:
    """Await ``run()`` unless ``stopped`` is set first (or meanwhile); whether it was cut short."""
    if stopped.is_set():
        return True
    cut = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal cut
            await stopped.wait()
            cut = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await run()
        group.cancel_scope.cancel()
    return cut


def _stay() -> None:
    """Leave nothing: the response never joined."""
