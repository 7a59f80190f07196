"""The open streams of a sandbox (command output, directory watches) and how a stop ends them.

On E2B a pause or kill tears the sandbox's connections down: a stream open on
it ends with an error, whatever it was streaming. The SDK then probes the
sandbox's health, finds it not running and reports that
(``SandboxNotRunningException``); a command's ``end`` event never arrives.
The fake envd does the same: every stream joins the sandbox's
:class:`OpenStreams`, which wakes it when the sandbox stops, and
:func:`check_running` ends it with ``unavailable`` once the workspace is
stopped. A command killed by its user, or ending on its own, still ends its
stream with its ``end`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = ["OpenStreams", "check_running"]


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
