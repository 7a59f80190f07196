"""Authentication: ``X-API-Key`` → the :class:`~pytest_kruise_agents.backends.base.Caller`.

A key acts for its team (namespace) as its own id, which owns the sandboxes it
creates; an admin key acts for the admin team (namespace ``""``: every
namespace). A missing or unknown key answers 401 ``Invalid API Key`` as the
sandbox-manager does. With auth disabled every caller is the admin team with
upstream's admin key id.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from pytest_kruise_agents.backends.base import Caller
from pytest_kruise_agents.e2b.errors import ApiError
from pytest_kruise_agents.e2b.settings import ADMIN_KEY_ID, ApiKey, Settings

__all__ = [
    "API_KEY_HEADER",
    "admin_of",
    "authenticate",
    "caller_of",
    "require_admin",
    "settings_of",
]

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", scheme_name="ApiKeyAuth", auto_error=False)
"""The OpenAPI security scheme (and the header reader) of the control plane."""

INVALID_API_KEY = "Invalid API Key"


def settings_of(request: Request) -> Settings:
    """The settings of the app serving ``request``."""
    settings: Settings = request.app.state.settings
    return settings


def caller_of(settings: Settings, key: str | None) -> Caller:
    """The caller a key stands for, or 401."""
    if not settings.auth_enabled:
        admin = settings.admin_key
        return Caller(namespace="", user=admin.id if admin else ADMIN_KEY_ID)
    found = settings.key(key) if key else None
    if found is None:
        raise ApiError(401, INVALID_API_KEY)
    return Caller(namespace=found.namespace, user=found.id)


async def authenticate(request: Request, key: str | None = Security(API_KEY_HEADER)) -> Caller:
    """FastAPI dependency: the caller of an E2B route (401 on a missing or bad key).

    ``async`` although it never awaits: FastAPI runs a sync dependency in a
    worker thread, a hop that costs more than the lookup itself.
    """
    return caller_of(settings_of(request), key)


def admin_of(settings: Settings, key: str | None) -> ApiKey | None:
    """The admin key ``key`` is (``None`` with auth disabled); 401 if unknown, 403 if not admin."""
    if not settings.auth_enabled:
        return None
    found = settings.key(key) if key else None
    if found is None:
        raise ApiError(401, INVALID_API_KEY)
    if not found.admin:
        raise ApiError(403, "the admin API needs an admin API key")
    return found


async def require_admin(
    request: Request, key: str | None = Security(API_KEY_HEADER)
) -> ApiKey | None:
    """FastAPI dependency of the admin API: 401 without a valid key, 403 for a non-admin key."""
    return admin_of(settings_of(request), key)
