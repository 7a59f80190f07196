"""The installed E2B SDKs, and the few calls whose spelling changed between 2.x versions.

The suite runs with any ``e2b`` 2.x from 2.8 on. What differs: SDK <= 2.50
creates with ``POST /sandboxes`` and the newer ones with ``POST
/v2/sandboxes``; pausing is ``beta_pause()`` before ``pause()`` existed;
auto-pause is ``beta_create(auto_pause=True)`` before ``lifecycle=``.
``e2b-code-interpreter`` is optional: without it the ``code`` level is skipped.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata
from types import ModuleType
from typing import Any, Final

from e2b import Sandbox

from pytest_kruise_agents.conformance.wire import release

__all__ = [
    "CREATE_V2_SINCE",
    "code_interpreter",
    "create_auto_pause",
    "create_route",
    "pause",
    "sdk_versions",
    "version_of",
]

CREATE_V2_SINCE: Final = (2, 51)
"""The first SDK version that creates with ``POST /v2/sandboxes``."""


def version_of(dist: str) -> str | None:
    """The installed version of a distribution, or ``None``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def sdk_versions() -> dict[str, str]:
    """``{"e2b": "2.63.0", "e2b-code-interpreter": "2.11.5"}`` for the installed SDKs."""
    out = {}
    for dist in ("e2b", "e2b-code-interpreter"):
        found = version_of(dist)
        if found:
            out[dist] = found
    return out


def create_route() -> str:
    """The create route the installed SDK calls."""
    return "/v2/sandboxes" if release(version_of("e2b") or "0") >= CREATE_V2_SINCE else "/sandboxes"


def pause(sbx: Sandbox, **opts: Any) -> Any:
    """Pause with the SDK (``pause()``, or ``beta_pause()`` on SDKs that lack it).

    ``opts`` are the connection options: ``beta_pause`` of SDK 2.8 does not
    reuse the sandbox's own connection.
    """
    method = getattr(sbx, "pause", None) or sbx.beta_pause
    return method(**opts)


def create_auto_pause(timeout: int, **kwargs: Any) -> Sandbox:
    """Create a sandbox that pauses at its timeout, as the installed SDK spells it."""
    if "lifecycle" in inspect.signature(Sandbox.create).parameters:
        return Sandbox.create(timeout=timeout, lifecycle={"on_timeout": "pause"}, **kwargs)
    beta_create: Any = Sandbox.beta_create  # type: ignore[attr-defined]
    sbx: Sandbox = beta_create(timeout=timeout, auto_pause=True, **kwargs)
    return sbx


def code_interpreter() -> ModuleType | None:
    """The ``e2b_code_interpreter`` module, or ``None`` if it is not installed."""
    try:
        return importlib.import_module("e2b_code_interpreter")
    except ImportError:
        return None
