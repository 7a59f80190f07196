"""Who may act on a sandbox: the auth middleware's route check and its 404 (reference §6.1).

Upstream's sandbox-manager keeps a route table (sandbox id → namespace,
owner); its auth middleware answers every ``{sandboxID}`` route with a 404
unless the route exists, is in the API key's team namespace (the admin team,
namespace ``""``, spans them all) and is owned by that very key. There is no
admin bypass of the owner check: an admin key sees only its own sandboxes.
The sandbox-manager's operations and the E2B server's early check (before a
bad body or header is answered) both decide with :func:`owns_route` and
answer with :data:`ROUTE_NOT_FOUND`.
"""

from __future__ import annotations

from typing import Final

from pytest_kruise_agents.claiming.errors import NotFoundError

__all__ = [
    "ROUTE_NOT_FOUND",
    "owns_route",
    "route_not_found",
    "route_not_found_message",
]

ROUTE_NOT_FOUND: Final = "Sandbox route not found, maybe it is crashed or killed"
"""The 404 message of an unknown, foreign or hidden sandbox, before ``": <sandbox id>"``."""


def owns_route(
    namespace: str, user: str, route_namespace: str | None, route_owner: str | None
) -> bool:
    """Whether the caller (team ``namespace``, ``""`` for admin; API key id ``user``) owns a route.

    ``route_namespace`` is ``None`` when there is no route for the sandbox id;
    ``route_owner`` is the owner annotation's value (``None`` when absent: a
    pool sandbox is nobody's).
    """
    return (
        route_namespace is not None
        and (not namespace or route_namespace == namespace)
        and route_owner == user
    )


def route_not_found_message(sandbox_id: str) -> str:
    """The 404 message for ``sandbox_id``."""
    return f"{ROUTE_NOT_FOUND}: {sandbox_id}"


def route_not_found(sandbox_id: str) -> NotFoundError:
    """The 404 the sandbox-manager answers for an unknown, foreign or hidden sandbox."""
    return NotFoundError(route_not_found_message(sandbox_id))
