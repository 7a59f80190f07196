"""One ``POST /execute``: run a cell in a context's kernel and emit its NDJSON lines as they come.

Per-execution environment variables are set by a silent cell before the
user's code and restored by another after it, as the e2b server does, so they
apply to this execution only; the sandbox's marker
(:data:`~pytest_kruise_agents.e2b.daemons.MARKER_VAR`) is not one of them, as
for commands. If the client goes away (its timeout, a closed connection) the
emitting task is cancelled and the kernel is interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from pytest_kruise_agents.e2b.daemons import MARKER_VAR
from pytest_kruise_agents.e2b.interpreter.contexts import Context, ContextRegistry
from pytest_kruise_agents.e2b.interpreter.errors import InterpreterError
from pytest_kruise_agents.e2b.interpreter.kernels import Kernel, KernelDied, KernelStartError
from pytest_kruise_agents.e2b.interpreter.outputs import (
    END_OF_EXECUTION,
    count_line,
    error_line,
    line_for_message,
)

__all__ = ["Emit", "execute", "restore_env_code", "set_env_code"]

log = logging.getLogger("pytest_kruise_agents.e2b.interpreter")

Emit = Callable[[Mapping[str, Any]], Awaitable[None]]
"""Write one NDJSON line to the client (flushed at once)."""


def set_env_code(env_vars: Mapping[str, str]) -> str:
    """Python that saves the current values of ``env_vars``' keys and sets the new ones.

    The saved values live on the ``os`` module, not in the user's namespace.
    """
    return (
        "def __kruise_set_env(values):\n"
        "    import os\n"
        "    os._kruise_saved_env = {k: os.environ.get(k) for k in values}\n"
        "    os.environ.update(values)\n"
        f"__kruise_set_env({dict(env_vars)!r})\n"
        "del __kruise_set_env\n"
    )


def restore_env_code() -> str:
    """Python that puts back what :func:`set_env_code` saved (unset keys are removed again)."""
    return (
        "def __kruise_restore_env():\n"
        "    import os\n"
        "    for key, value in getattr(os, '_kruise_saved_env', {}).items():\n"
        "        if value is None:\n"
        "            os.environ.pop(key, None)\n"
        "        else:\n"
        "            os.environ[key] = value\n"
        "    os._kruise_saved_env = {}\n"
        "__kruise_restore_env()\n"
        "del __kruise_restore_env\n"
    )


async def execute(
    registry: ContextRegistry,
    context: Context,
    code: str,
    env_vars: Mapping[str, str] | None,
    emit: Emit,
) -> None:
    """Run ``code`` in ``context`` and emit its lines, ending with ``end_of_execution``.

    Executions in one context run one after another. A kernel that cannot
    start or dies mid-cell is reported as an ``error`` line (the response is
    already 200 by then).
    """
    async with context.lock:
        try:
            kernel = await registry.kernel(context)
        except (KernelStartError, InterpreterError) as exc:
            message = exc.message if isinstance(exc, InterpreterError) else str(exc)
            await emit(error_line(type(exc).__name__, message, ""))
            await emit(END_OF_EXECUTION)
            return
        if env_vars and MARKER_VAR in env_vars:
            # As for commands: no env var may hide the run's daemons from the sandbox's stop.
            env_vars = {k: v for k, v in env_vars.items() if k != MARKER_VAR}
        execution_count = await _run(kernel, code, env_vars, emit)
    if execution_count is not None:
        await emit(count_line(execution_count))
    await emit(END_OF_EXECUTION)


async def _run(
    kernel: Kernel, code: str, env_vars: Mapping[str, str] | None, emit: Emit
) -> int | None:
    execution_count: int | None = None

    async def on_message(msg_type: str, content: dict[str, Any]) -> None:
        nonlocal execution_count
        if msg_type == "execute_input" and isinstance(content.get("execution_count"), int):
            execution_count = content["execution_count"]
        line = line_for_message(msg_type, content)
        if line is not None:
            await emit(line)

    finished = False
    try:
        if env_vars:
            # The kernel runs requests in order: no need to wait for this one.
            kernel.send(set_env_code(env_vars), silent=True)
        await kernel.run_cell(code, on_message)
        finished = True
    except KernelDied as exc:
        finished = True
        await emit(error_line("DeadKernelError", str(exc), ""))
    finally:
        if not finished or env_vars:
            # Runs when the client went away too: a task of its own, awaited
            # shielded, so that the cancellation cannot cut it short.
            cleanup = asyncio.get_running_loop().create_task(
                _after_cell(kernel, interrupt=not finished, restore_env=bool(env_vars))
            )
            with anyio.CancelScope(shield=True):
                await cleanup
    return execution_count


async def _after_cell(kernel: Kernel, *, interrupt: bool, restore_env: bool) -> None:
    try:
        if interrupt:
            await kernel.interrupt()
        if restore_env:
            kernel.send(restore_env_code(), silent=True)
    except KernelDied:
        pass  # nothing to interrupt or restore in a kernel that is gone
    except Exception:
        log.exception("cleaning up after a cell failed")
