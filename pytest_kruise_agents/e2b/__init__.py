"""The E2B-compatible server: control plane, sandbox traffic router, envd and code interpreter.

:func:`create_app` builds the ASGI app from a backend and :class:`Settings`;
``kruise-agents serve`` runs it on uvicorn (:mod:`pytest_kruise_agents.e2b.serve`).

The names below are imported when first used (PEP 562): a module of the package
(``e2b.config``, which the pytest plugin reads a config file with) loads without
the app, FastAPI and Starlette.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_kruise_agents.e2b.app import E2BApp, create_app
    from pytest_kruise_agents.e2b.settings import ApiKey, Settings

__all__ = ["ApiKey", "E2BApp", "Settings", "create_app"]

_LAZY = {
    "ApiKey": "pytest_kruise_agents.e2b.settings",
    "E2BApp": "pytest_kruise_agents.e2b.app",
    "Settings": "pytest_kruise_agents.e2b.settings",
    "create_app": "pytest_kruise_agents.e2b.app",
}
"""Each name of ``__all__`` → the module it lives in."""

if not TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above: a misspelt name stays an error.

    def __getattr__(name: str) -> object:
        """Import a name of the package when it is first used (PEP 562)."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """The module's attributes and every name of ``__all__``, imported or not."""
        return sorted({*globals(), *__all__})
