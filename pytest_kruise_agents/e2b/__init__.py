"""The E2B-compatible server: control plane, sandbox traffic router, envd and code interpreter.

:func:`create_app` builds the ASGI app from a backend and :class:`Settings`;
``kruise-agents serve`` runs it on uvicorn (:mod:`pytest_kruise_agents.e2b.serve`).
"""

from pytest_kruise_agents.e2b.app import E2BApp, create_app
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

__all__ = ["ApiKey", "E2BApp", "Settings", "create_app"]
