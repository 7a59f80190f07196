"""The code interpreter of each sandbox (port 49999) on real Jupyter kernels.

:func:`make_interpreter_app` builds the ASGI app the sandbox router calls with
the sandbox's workspace in ``scope["state"]["kruise_workspace"]``. Kernels
(ipykernel, one per context) start lazily on a sandbox's first request and
stop with the sandbox (:meth:`InterpreterApp.shutdown_sandbox`).
"""

from pytest_kruise_agents.e2b.interpreter.app import (
    WORKSPACE_STATE_KEY,
    InterpreterApp,
    make_interpreter_app,
)
from pytest_kruise_agents.e2b.interpreter.workspace import InterpreterWorkspace, StopHookRegistry

__all__ = [
    "WORKSPACE_STATE_KEY",
    "InterpreterApp",
    "InterpreterWorkspace",
    "StopHookRegistry",
    "make_interpreter_app",
]
