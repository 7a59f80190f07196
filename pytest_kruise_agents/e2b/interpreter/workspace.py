"""What the code interpreter needs from a sandbox's workspace, and from the workspace registry.

The router hands the interpreter one workspace per request in
``scope["state"]["kruise_workspace"]`` (see
:class:`pytest_kruise_agents.e2b.workspace.SandboxWorkspace`). These protocols
name only the attributes the interpreter reads, so any object with them works
(the tests use a small dataclass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Attachment", "InterpreterWorkspace", "StopHook", "StopHookRegistry"]

StopHook = Callable[[str], Awaitable[None]]
"""``async fn(sandbox_id)`` run when a sandbox is paused or removed."""


class Attachment(Protocol):
    """Live state of one sandbox, closed (``await aclose()`` on ``loop``) when it stops."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    async def aclose(self) -> None: ...


A = TypeVar("A", bound=Attachment)


class InterpreterWorkspace(Protocol):
    """One sandbox's state on the host, as the interpreter sees it."""

    @property
    def sandbox_id(self) -> str:
        """The sandbox id; contexts and kernels are kept per sandbox id."""
        ...

    @property
    def root(self) -> Path:
        """The host directory that plays the sandbox's ``/``."""
        ...

    @property
    def home(self) -> Path:
        """The host directory of ``/home/user``: the default working directory of a kernel."""
        ...

    @property
    def env_vars(self) -> Mapping[str, str]:
        """The sandbox's environment variables (from the create request); every kernel gets them."""
        ...

    @property
    def access_token(self) -> str | None:
        """The envd access token; ``/execute`` then needs it in ``X-Access-Token`` (empty: none)."""
        ...

    @property
    def stopped(self) -> bool:
        """Whether the sandbox was paused or killed since this workspace was handed out.

        A request that reaches the interpreter after that (routed just before
        the stop) must start no kernel: the stop's cleanup has already run.
        """
        ...

    def attachment(self, factory: Callable[[Any], A]) -> A:
        """The attachment ``factory(workspace)`` of this running life, built once.

        It is closed when the sandbox stops; raises ``SandboxStopped`` (a
        ``RuntimeError``) once the sandbox stopped.
        """
        ...

    def resolve(self, path: str) -> Path:
        """Map a sandbox path inside :attr:`root` (relative paths are relative to home).

        Raises an exception (``PathEscapeError``) for a path that would escape
        the root; the interpreter answers it as 400.
        """
        ...


@runtime_checkable
class StopHookRegistry(Protocol):
    """A workspace registry that runs hooks when a sandbox stops (pause, kill, timeout)."""

    def add_stop_hook(self, hook: StopHook) -> None:
        """Run ``hook(sandbox_id)`` whenever a sandbox's processes are stopped."""
        ...
