"""The installed E2B SDKs, and the few calls whose spelling changed between 2.x versions.

The suite runs with any ``e2b`` 2.x from 2.8 on. What differs: SDK <= 2.50
creates with ``POST /sandboxes`` and connects with ``POST
/sandboxes/{id}/connect``, the newer ones with the ``/v2/`` routes; pausing is
``beta_pause()`` before ``pause()`` existed; auto-pause is
``beta_create(auto_pause=True)`` before ``lifecycle=``. Versions compare as the
SDK compares them, with ``packaging.version.Version`` (PEP 440).
``e2b-code-interpreter`` is optional: without it the ``code`` level is skipped.
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata
from types import ModuleType
from typing import Any, Final

from e2b import Sandbox
from packaging.version import InvalidVersion, Version

__all__ = [
    "V2_ROUTES_SINCE",
    "api_status",
    "code_interpreter",
    "create_auto_pause",
    "pause",
    "sdk_versions",
    "uses_v2_routes",
    "version_of",
]

V2_ROUTES_SINCE: Final = Version("2.51")
"""The first SDK version that creates with ``POST /v2/sandboxes`` and connects with
``POST /v2/sandboxes/{id}/connect`` (E2B §2.6)."""


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


def uses_v2_routes(version: str | None = None) -> bool:
    """Whether ``e2b`` ``version`` (default: the installed one) creates and connects with the
    ``/v2/`` routes."""
    text = version if version is not None else version_of("e2b")
    try:
        return Version(text or "0") >= V2_ROUTES_SINCE
    except InvalidVersion:
        return True  # not a release the suite knows: the routes of the newest SDKs


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of the API answer behind an SDK exception (``status_code``, or the
    ``"<status>: <message>"`` the SDK writes), else ``None``."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    head, colon, _rest = str(exc).partition(":")
    return int(head) if colon and head.isdigit() and len(head) == 3 else None


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
