"""The fake envd: the in-sandbox agent (port 49983) of every fake sandbox.

:func:`make_envd_app` builds one ASGI app for all sandboxes of a
:class:`~pytest_kruise_agents.e2b.workspace.Workspaces`; the router hands each
request its sandbox's workspace in ``scope["state"]["kruise_workspace"]``.
"""

from pytest_kruise_agents.e2b.envd.app import (
    DEFAULT_MAX_CALL_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    WORKSPACE_KEY,
    EnvdApp,
    make_envd_app,
)
from pytest_kruise_agents.e2b.envd.files import DEFAULT_MAX_UPLOAD_BYTES

__all__ = [
    "DEFAULT_MAX_CALL_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "WORKSPACE_KEY",
    "EnvdApp",
    "make_envd_app",
]
