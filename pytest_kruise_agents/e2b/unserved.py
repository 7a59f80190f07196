"""The E2B API routes this server does not serve: authenticated, then 501 "not supported".

Routes that E2B's API (e2b-protocol.md §2.2, §7) or the sandbox-manager
(reference §6.2) has and this server does not. A bare 404 ``no route`` there
reads to the SDK as "not found": ``get_metrics``, ``update_network``,
``create_snapshot`` and ``fork`` raised ``SandboxNotFoundException`` on a
running sandbox, ``Template.exists`` and ``Secret.exists`` answered ``False``,
``Volume.destroy`` ``False``, and a wrong API key got "not found" instead of
401 (an unmatched path skips authentication). Each route here instead
authenticates (401), then, if it names a sandbox, checks its route as the
auth middleware does on every sandbox route (404 only when it is not the
caller's), then answers
501 ``{"code", "message"}`` naming the call and why. The SDK raises
``SandboxException("501: ... is not supported by this server: ...")`` (or its
``VolumeException``/``SecretException``/``TemplateException``) and does not
retry it (it retries 429, 502, 503 and 504 only; 503 would also read "please
retry"). A path that is no E2B route at all still answers the plain 404.

Every route is mounted natively and under ``/kruise/api``, as the served ones
are, except the customized-only traffic-token route (reference §6.2).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from fastapi import Request, Response
from fastapi.routing import APIRoute

from pytest_kruise_agents.e2b.auth import authenticate
from pytest_kruise_agents.e2b.control import CUSTOMIZED_PREFIX, SANDBOX_PARAM, require_route
from pytest_kruise_agents.e2b.errors import ApiError

__all__ = ["NOT_SUPPORTED_STATUS", "UNSERVED", "Unserved", "routes"]

NOT_SUPPORTED_STATUS: Final = 501
"""HTTP 501 Not Implemented: the SDK shows it with the message and does not retry it."""


@dataclass(frozen=True, slots=True)
class Unserved:
    """One unserved route: method, path (``{sandboxID}`` for a sandbox), the call, and why."""

    method: str
    path: str
    call: str
    """What reaches it: the SDK call, or the upstream feature."""
    reason: str
    customized_only: bool = False
    """Served by upstream under ``/kruise/api`` only (``path`` carries the prefix)."""
    first: bool = False
    """Must be matched before the served routes, one of which would otherwise take its path."""

    @property
    def message(self) -> str:
        """The 501 answer's message."""
        return (
            f"{self.call} ({self.method} {self.path}) is not supported by this server "
            f"(pytest-kruise-agents): {self.reason}"
        )


_TEMPLATES = "templates are the cluster's SandboxSets: apply one through the admin API"
_SNAPSHOTS = "snapshots (Checkpoints) and clones are not modelled"
_VOLUMES = (
    "E2B volumes are not modelled (the sandbox-manager's volume routes are disabled); "
    "create's volumeMounts is accepted and mounts nothing"
)
_SECRETS = "E2B secrets are not modelled"
_KEYS = "teams and API keys come from the server's config file"

UNSERVED: Final[tuple[Unserved, ...]] = (
    # Before GET /sandboxes/{sandboxID}, which would read it as the sandbox "metrics".
    Unserved(
        "GET", "/sandboxes/metrics", "Sandbox metrics", "no resource usage is measured", first=True
    ),
    Unserved(
        "GET", "/sandboxes/{sandboxID}/metrics", "get_metrics", "no resource usage is measured"
    ),
    Unserved(
        "GET",
        "/sandboxes",
        "Sandbox.list of SDK 1.x (v1)",
        "list with GET /v2/sandboxes, as SDK 2.x does (upstream's sandbox-manager serves no "
        "v1 list either)",
    ),
    Unserved(
        "PUT",
        "/sandboxes/{sandboxID}/network",
        "update_network",
        "egress rules are not modelled (upstream writes TrafficPolicy objects)",
    ),
    Unserved("POST", "/sandboxes/{sandboxID}/snapshots", "create_snapshot", _SNAPSHOTS),
    Unserved("GET", "/snapshots", "list_snapshots", _SNAPSHOTS),
    Unserved("DELETE", "/templates/{templateID}", "delete_snapshot", _SNAPSHOTS),
    Unserved("POST", "/sandboxes/{sandboxID}/fork", "fork", "forking a sandbox is not modelled"),
    Unserved("GET", "/sandboxes/{sandboxID}/logs", "Sandbox logs", "sandbox logs are not kept"),
    Unserved("GET", "/v2/sandboxes/{sandboxID}/logs", "Sandbox logs", "sandbox logs are not kept"),
    Unserved(
        "POST",
        "/sandboxes/{sandboxID}/refreshes",
        "Sandbox refresh",
        "set the timeout instead (POST /sandboxes/{sandboxID}/timeout)",
    ),
    # Template building and naming: the SandboxSets are the templates.
    Unserved(
        "GET",
        "/templates/aliases/{alias}",
        "Template.exists",
        "templates are the cluster's SandboxSets: GET /templates/{templateID} looks one up "
        "(200, or 404), as upstream, which serves no alias route either",
    ),
    Unserved("GET", "/default-templates", "default templates", _TEMPLATES),
    Unserved("GET", "/v2/templates", "Template listing (v2)", _TEMPLATES),
    Unserved("POST", "/v3/templates", "Template.build", _TEMPLATES),
    Unserved("PATCH", "/templates/{templateID}", "Template update", _TEMPLATES),
    Unserved("PATCH", "/v2/templates/{templateID}", "Template update", _TEMPLATES),
    Unserved("POST", "/v2/templates/{templateID}/builds/{buildID}", "Template.build", _TEMPLATES),
    Unserved(
        "GET", "/templates/{templateID}/builds/{buildID}/status", "Template build", _TEMPLATES
    ),
    Unserved("GET", "/templates/{templateID}/builds/{buildID}/logs", "Template build", _TEMPLATES),
    Unserved("GET", "/templates/{templateID}/files/{hash}", "Template build", _TEMPLATES),
    Unserved("POST", "/templates/tags", "Template tags", _TEMPLATES),
    Unserved("DELETE", "/templates/tags", "Template tags", _TEMPLATES),
    Unserved("GET", "/templates/{templateID}/tags", "Template tags", _TEMPLATES),
    Unserved("GET", "/templates/{templateID}/tags/count", "Template tags", _TEMPLATES),
    Unserved("GET", "/templates/{templateID}/tags/exists", "Template tags", _TEMPLATES),
    Unserved("GET", "/templates/{templateID}/tags/groups", "Template tags", _TEMPLATES),
    Unserved("GET", "/templates/{templateID}/tags/{tag}/assignments", "Template tags", _TEMPLATES),
    Unserved("GET", "/volumes", "Volume.list", _VOLUMES),
    Unserved("POST", "/volumes", "Volume.create", _VOLUMES),
    Unserved("GET", "/volumes/{volumeID}", "Volume.connect / get_info", _VOLUMES),
    Unserved("DELETE", "/volumes/{volumeID}", "Volume.destroy", _VOLUMES),
    Unserved("GET", "/secrets", "Secret.list", _SECRETS),
    Unserved("POST", "/secrets", "Secret.create", _SECRETS),
    Unserved("GET", "/secrets/{secretID}", "Secret.get_info / exists", _SECRETS),
    Unserved("POST", "/secrets/{secretID}", "Secret.update", _SECRETS),
    Unserved("DELETE", "/secrets/{secretID}", "Secret.destroy", _SECRETS),
    # The sandbox-manager's own routes (reference §6.2).
    Unserved("GET", "/teams", "teams", _KEYS),
    Unserved("GET", "/api-keys", "API keys", _KEYS),
    Unserved("POST", "/api-keys", "API keys", _KEYS),
    Unserved("GET", "/api-keys/compatible", "API keys", _KEYS),
    Unserved("DELETE", "/api-keys/{apiKeyID}", "API keys", _KEYS),
    Unserved(
        "GET",
        "/browser/{sandboxID}/json/version",
        "the browser's CDP handshake",
        "no browser runs in a fake sandbox",
    ),
    Unserved("GET", "/debug", "the manager's debug info", "there is no manager process to debug"),
    Unserved(
        "POST",
        CUSTOMIZED_PREFIX + "/sandboxes/{sandboxID}/traffic-access-token",
        "traffic access tokens",
        "traffic tokens are not modelled",
        customized_only=True,
    ),
)
"""Every unserved route, in the order they are matched (after the served ones but ``first``)."""


def _endpoint(route: Unserved) -> Callable[[Request], Awaitable[Response]]:
    async def unserved(request: Request) -> Response:
        caller = authenticate(request)
        sandbox_id = request.path_params.get(SANDBOX_PARAM)
        if sandbox_id is not None:
            # "Not found" only when it is true: the auth middleware's route check (404).
            await require_route(request, caller, sandbox_id)
        raise ApiError(NOT_SUPPORTED_STATUS, route.message)

    unserved.__doc__ = f"501: {route.message}"
    return unserved


def routes(prefix: str, *, first: bool) -> tuple[APIRoute, ...]:
    """The unserved routes under ``prefix`` (``""`` or ``/kruise/api``), ``first`` ones or the rest.

    Built once and shared by every app, as the served routes are: an
    ``APIRoute`` takes a while to build (its path regex, its dependencies), and
    the plugin builds an app per test.
    """
    return _routes(prefix, first)


@functools.cache
def _routes(prefix: str, first: bool) -> tuple[APIRoute, ...]:
    out = []
    for route in UNSERVED:
        if route.first != first or (route.customized_only and prefix != CUSTOMIZED_PREFIX):
            continue
        path = route.path if route.customized_only else prefix + route.path
        name = f"unserved {route.method} {route.path}"
        out.append(
            APIRoute(
                path,
                _endpoint(route),
                methods=[route.method],
                name=name,
                include_in_schema=False,
            )
        )
    return tuple(out)
