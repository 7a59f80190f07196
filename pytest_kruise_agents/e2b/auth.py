"""Authentication: ``X-API-Key`` → the :class:`~pytest_kruise_agents.backends.base.Caller`.

A key acts for its team (namespace) as its own id, which owns the sandboxes it
creates; an admin key acts for the admin team (namespace ``""``: every
namespace). A missing or unknown key answers 401 ``Invalid API Key`` as the
sandbox-manager does. With auth disabled every caller is the admin team with
upstream's admin key id.

The control-plane routes call :func:`authenticate` themselves rather than
declaring it as a FastAPI dependency: solving a dependency (and its header
sub-dependency) on every request costs more than the lookup. They declare
:func:`secured` instead, and :func:`security_schemes` completes the OpenAPI
document, so the schema is what the dependency would have produced.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Security
from fastapi.encoders import jsonable_encoder
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
    "secured",
    "security_schemes",
    "settings_of",
]

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", scheme_name="ApiKeyAuth", auto_error=False)
"""The OpenAPI security scheme (and the header reader of the admin API)."""


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


def authenticate(request: Request) -> Caller:
    """The caller of an E2B route (401 on a missing or bad key); each route calls it first."""
    return caller_of(settings_of(request), request.headers.get(API_KEY_HEADER.model.name))


def secured() -> dict[str, Any]:
    """``openapi_extra`` of a control-plane route: it needs the API key (module docstring)."""
    return {"security": [{API_KEY_HEADER.scheme_name: []}]}


def security_schemes() -> dict[str, Any]:
    """``components.securitySchemes`` of the OpenAPI document (the API key header)."""
    return {
        API_KEY_HEADER.scheme_name: jsonable_encoder(
            API_KEY_HEADER.model, by_alias=True, exclude_none=True
        )
    }


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
