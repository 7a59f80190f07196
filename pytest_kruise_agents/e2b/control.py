"""The E2B control plane: the sandbox-manager's routes (reference §6.2) over a Backend.

Every route is served natively (``/sandboxes``) and under ``/kruise/api``
(the app mounts :data:`router` twice). Both create and connect come in v1
(SDK ≤ 2.50) and v2 (SDK ≥ 2.51) forms. Success codes are the ones the SDK
insists on: 201 for create, 204 for kill, timeout and pause, 200/201 for
connect (running/resumed). Errors are the backend's
:class:`~pytest_kruise_agents.claiming.errors.ClaimError` codes, rendered by
:mod:`pytest_kruise_agents.e2b.errors`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote_plus

from fastapi import APIRouter, Header, Path, Query, Request, Response

from pytest_kruise_agents.api.base import parse_time
from pytest_kruise_agents.api.e2b import (
    PAUSE_RETENTION_PATTERN,
    ZERO_TIME,
    ConnectSandbox,
    ConnectSandboxV2,
    Error,
    ListedSandbox,
    NewSandbox,
    NewSandboxV2,
    ResumedSandbox,
    SandboxDetail,
    SandboxLifecycle,
    SandboxNetwork,
    SandboxResponse,
    SandboxTimeoutRequest,
    TemplateBuild,
    TemplateDetail,
    TemplateInfo,
)
from pytest_kruise_agents.backends.base import (
    Caller,
    CreateRequest,
    ListQuery,
    Route,
    SandboxView,
    TemplateView,
)
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.ownership import owns_route, route_not_found_message
from pytest_kruise_agents.claiming.timeouts import parse_retention, validate_timeout_update
from pytest_kruise_agents.e2b.auth import authenticate, secured
from pytest_kruise_agents.e2b.errors import ApiError, WireJSONResponse
from pytest_kruise_agents.e2b.limits import NestingBoundRoute
from pytest_kruise_agents.e2b.network import reported_network
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.e2b.state import state_of

__all__ = [
    "CUSTOMIZED_PREFIX",
    "KNOWN_LIST_PARAMS",
    "PAUSE_RETENTION_HEADER",
    "SANDBOX_PARAM",
    "TEMPLATE_ENVD_VERSION",
    "decode_metadata_filter",
    "list_query",
    "parse_started_after",
    "require_route",
    "response_domain",
    "route_not_found",
    "router",
]

CUSTOMIZED_PREFIX: Final = "/kruise/api"
"""The "customized" protocol's API prefix (reference §6.8)."""

TEMPLATE_ENVD_VERSION: Final = "0.1.1"
"""The ``envdVersion`` of templates, static in the manager (§6.4); sandboxes report the envd's."""

PAUSE_RETENTION_HEADER: Final = "x-e2b-kruise-reserve-paused-sandbox-duration"

SANDBOX_PARAM: Final = "sandboxID"
"""The path parameter of a sandbox's routes (the SDK's name)."""

KNOWN_LIST_PARAMS: Final = frozenset(
    {"metadata", "state", "limit", "nextToken", "order", "template", "startedAfter"}
)
"""``GET /v2/sandboxes`` query keys with a meaning; any other key is a metadata filter."""

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": Error, "description": desc}
    for code, desc in (
        (400, "Bad request: the field and the reason"),
        (401, "Missing or invalid API key"),
        (404, "Not found, or not the caller's"),
        (500, "Server error"),
    )
}


def _errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    out = dict(_ERRORS)
    for code in extra:
        out[code] = {"model": Error, "description": {409: "Conflict", 403: "Forbidden"}[code]}
    return out


router = APIRouter(route_class=NestingBoundRoute)
"""The control-plane routes (mounted natively and under :data:`CUSTOMIZED_PREFIX`)."""


def _path_id(alias: str = SANDBOX_PARAM) -> Any:
    # The SDK's path parameter names (sandboxID, templateID) as the OpenAPI names.
    return Path(alias=alias, min_length=1)


# --------------------------------------------------------------------------- ownership


def route_not_found(sandbox_id: str) -> ApiError:
    """The auth middleware's 404 for a sandbox that is not the caller's (reference §6.1)."""
    return ApiError(404, route_not_found_message(sandbox_id))


def _owns(caller: Caller, route: Route | None) -> bool:
    # The rule the backend applies on each call (the manager's route table).
    if route is None:
        return False
    return owns_route(caller.namespace, caller.user, route.namespace, route.owner)


async def require_route(request: Request, caller: Caller, sandbox_id: str) -> None:
    """404 unless ``sandbox_id`` is routed to ``caller``, before anything of the request is read.

    Upstream's auth middleware checks the route table on every
    ``{sandboxID}`` route before its handler reads the body or a header, so
    an unknown id or another key's sandbox answers this 404 whatever the
    rest of the request holds. The backend checks the same on each call;
    this is for the answers given before the call (a bad body or header).
    """
    st = state_of(request)
    if not _owns(caller, await st.run("control", st.backend.route, sandbox_id)):
        raise route_not_found(sandbox_id)


# --------------------------------------------------------------------------- rendering


def response_domain(request: Request, settings: Settings) -> str | None:
    """The ``domain`` of a response: the configured one, else derived from ``Host`` (§6.8).

    Native requests strip a leading ``api.``; customized (``/kruise/api``)
    requests keep the host as it is, port included. ``""`` configured means null.
    """
    if settings.domain is not None:
        return settings.domain or None
    host = request.headers.get("host", "")
    if not host:
        return None
    if request.scope["path"].startswith(CUSTOMIZED_PREFIX):  # not request.url: built per request
        return host
    return host.removeprefix("api.") or None


def _view_fields(view: SandboxView, settings: Settings) -> dict[str, Any]:
    """The fields every sandbox response model shares, from the backend's view."""
    return {
        "template_id": view.template_id,
        "sandbox_id": view.sandbox_id,
        "envd_version": settings.envd_version,
        "started_at": view.started_at or ZERO_TIME,
        "end_at": view.end_at or ZERO_TIME,
        "cpu_count": view.cpu_count,
        "memory_mb": view.memory_mb,
        "disk_size_mb": view.disk_size_mb,
        "metadata": dict(view.metadata),
        "state": view.state,
    }


def _sandbox(view: SandboxView, domain: str | None, settings: Settings) -> dict[str, Any]:
    return SandboxResponse(
        **_view_fields(view, settings),
        envd_access_token=view.envd_access_token or None,
        domain=domain,
    ).to_wire()


def _listed(view: SandboxView, settings: Settings) -> dict[str, Any]:
    return ListedSandbox(**_view_fields(view, settings)).to_wire()


def _detail(
    view: SandboxView, domain: str | None, settings: Settings, network: SandboxNetwork | None
) -> dict[str, Any]:
    return SandboxDetail(
        **_view_fields(view, settings),
        envd_access_token=view.envd_access_token or None,
        domain=domain,
        lifecycle=SandboxLifecycle(
            on_timeout="pause" if view.auto_pause else "kill", auto_resume=False
        ),
        network=network,
    ).to_wire()


def _build_id(tpl: TemplateView) -> str:
    # Stable per SandboxSet: the SDK parses build ids as UUIDs.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kruise:{tpl.namespace}/{tpl.template_id}"))


def _template_info(tpl: TemplateView) -> TemplateInfo:
    created = tpl.created_at or ZERO_TIME
    return TemplateInfo(
        template_id=tpl.template_id,
        build_id=_build_id(tpl),
        cpu_count=tpl.cpu_count,
        memory_mb=tpl.memory_mb,
        disk_size_mb=tpl.disk_size_mb,
        aliases=[tpl.template_id],
        names=[tpl.template_id],
        created_at=created,
        updated_at=created,
        envd_version=TEMPLATE_ENVD_VERSION,
        build_status="deleting" if tpl.deleting else "ready",
    )


def _template_detail(tpl: TemplateView) -> dict[str, Any]:
    info = _template_info(tpl)
    build = TemplateBuild(
        build_id=info.build_id,
        created_at=info.created_at,
        updated_at=info.updated_at,
        finished_at=info.created_at,
        cpu_count=tpl.cpu_count,
        memory_mb=tpl.memory_mb,
        disk_size_mb=tpl.disk_size_mb,
        envd_version=TEMPLATE_ENVD_VERSION,
    )
    return TemplateDetail(**info.model_dump(), builds=[build]).to_wire()


# --------------------------------------------------------------------------- create


async def _create(request: Request, caller: Caller, body: NewSandboxV2) -> WireJSONResponse:
    st = state_of(request)
    create = CreateRequest(
        template=body.template_id,
        timeout=body.timeout,
        auto_pause=body.auto_pause,
        metadata=dict(body.metadata or {}),
        env_vars=dict(body.env_vars or {}),
        volume_mounts=[{"name": v.name, "path": v.path} for v in body.volume_mounts]
        if body.volume_mounts is not None
        else None,
        allow_internet_access=body.allow_internet_access,
    )
    view = await st.run_for(request, "control", st.backend.create_sandbox, caller, create)
    # Reported by GET /sandboxes/{id} as upstream does; enforced by nothing (see network).
    st.networks.record(view, reported_network(body.network))
    domain = response_domain(request, st.settings)
    return WireJSONResponse(_sandbox(view, domain, st.settings), status_code=201)


@router.post(
    "/sandboxes",
    name="create_sandbox_v1",
    status_code=201,
    response_model=SandboxResponse,
    responses=_errors(403, 409),
    summary="Create a sandbox (v1, SDK ≤ 2.50)",
    openapi_extra=secured(),
)
async def create_sandbox_v1(body: NewSandbox, request: Request) -> WireJSONResponse:
    """Claim a sandbox from the SandboxSet named ``templateID`` (warm, or created on no stock)."""
    caller = authenticate(request)
    return await _create(request, caller, body)


@router.post(
    "/v2/sandboxes",
    name="create_sandbox_v2",
    status_code=201,
    response_model=SandboxResponse,
    responses=_errors(403, 409),
    summary="Create a sandbox (v2, SDK ≥ 2.51)",
    openapi_extra=secured(),
)
async def create_sandbox_v2(body: NewSandboxV2, request: Request) -> WireJSONResponse:
    """Claim a sandbox; ``autoPause`` pauses it at its timeout instead of killing it."""
    caller = authenticate(request)
    return await _create(request, caller, body)


# --------------------------------------------------------------------------- list


def decode_metadata_filter(raw: str) -> dict[str, str]:
    """The ``metadata`` filter as the SDK encodes it (e2b-protocol §2.3).

    The framework has decoded the query once; then the whole value is
    unescaped, split on ``&`` and ``=``, and each key and value unescaped
    again (Go's ``QueryUnescape``: ``+`` is a space).
    """
    out: dict[str, str] = {}
    for pair in unquote_plus(raw).split("&"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ApiError(
                400, f"metadata: invalid filter {pair!r}, expected key=value", field="metadata"
            )
        out[unquote_plus(key)] = unquote_plus(value)
    return out


def parse_started_after(value: str | None) -> datetime | None:
    """``startedAfter``: an ISO 8601 time with an offset (a bare time is taken as UTC)."""
    if value is None or not value.strip():
        return None
    # An unencoded '+' of the offset arrives as a space.
    text = value.strip().replace(" ", "+")
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ApiError(
            400, f"startedAfter: expected an RFC 3339 time, got {value!r}", field="startedAfter"
        ) from exc


def list_query(
    params: list[tuple[str, str]],
    *,
    limit: int | None,
    order: Literal["asc", "desc"] | None,
    started_after: datetime | None,
) -> ListQuery:
    """A :class:`ListQuery` from the raw query items (already type-checked ones passed in)."""
    metadata: dict[str, str] = {}
    states: list[str] = []
    template: str | None = None
    next_token: str | None = None
    for key, value in params:
        if key == "metadata":
            metadata.update(decode_metadata_filter(value))
        elif key == "state":
            states.extend(s.strip() for s in value.split(",") if s.strip())
        elif key == "template":
            template = value or None
        elif key == "nextToken":
            next_token = value or None
        elif key not in KNOWN_LIST_PARAMS:
            # Upstream treats any other query key as one more metadata filter.
            if not key:
                raise ApiError(
                    400, "metadata: a query parameter has an empty name", field="metadata"
                )
            metadata[key] = value
    given: dict[str, Any] = {}
    if states:
        given["states"] = tuple(states)
    if order is not None:
        given["order"] = order
    return ListQuery(
        metadata=metadata,
        limit=100 if limit is None else limit,
        next_token=next_token,
        template=template,
        started_after=started_after,
        **given,
    )


# As E2B publishes it: what the SDK sends, comma-joined. FastAPI cannot declare a
# parameter's style, so the route reads the raw value (list_query) and this is published.
_STATE_PARAM: Final[dict[str, Any]] = {
    "name": "state",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": False,
    "description": "Sandbox states, comma-separated (default: both); another value answers 400",
    "schema": {"type": "array", "items": {"type": "string", "enum": ["running", "paused"]}},
}

# An empty (or blank) startedAfter is taken as not given.
_STARTED_AFTER_SCHEMA: Final[list[dict[str, Any]]] = [
    {"type": "string", "format": "date-time"},
    {"type": "string", "pattern": r"^\s*$"},
]

_NEXT_TOKEN_HEADER: Final[dict[str, Any]] = {
    "X-Next-Token": {
        "description": "The nextToken of the next page; absent on the last page",
        "schema": {"type": "string"},
    }
}


@router.get(
    "/v2/sandboxes",
    name="list_sandboxes",
    response_model=list[ListedSandbox],
    responses={200: {"headers": _NEXT_TOKEN_HEADER}, **_errors()},
    summary="List the caller's sandboxes (one page)",
    openapi_extra={**secured(), "parameters": [_STATE_PARAM]},
)
async def list_sandboxes(
    request: Request,
    metadata: Annotated[
        str | None, Query(description="URL-encoded k=v&k2=v2 filter (exact annotation match)")
    ] = None,
    state: Annotated[str | None, Query(include_in_schema=False)] = None,  # _STATE_PARAM
    order: Annotated[Literal["asc", "desc"] | None, Query(description="By start time")] = None,
    started_after: Annotated[
        str | None,
        Query(
            alias="startedAfter",
            description="RFC 3339 time with offset (inclusive); empty: not given",
            json_schema_extra={"anyOf": _STARTED_AFTER_SCHEMA},
        ),
    ] = None,
    template: Annotated[str | None, Query()] = None,
    next_token: Annotated[str | None, Query(alias="nextToken")] = None,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> WireJSONResponse:
    """One page of sandboxes; the ``X-Next-Token`` header is present when there are more."""
    caller = authenticate(request)
    st = state_of(request)
    query = list_query(
        request.query_params.multi_items(),
        limit=limit,
        order=order,
        started_after=parse_started_after(started_after),
    )
    views, token = await st.run("control", st.backend.list_sandboxes, caller, query)
    headers = {"X-Next-Token": token} if token else None
    return WireJSONResponse([_listed(v, st.settings) for v in views], headers=headers)


# --------------------------------------------------------------------------- one sandbox


@router.get(
    "/sandboxes/{sandboxID}",
    name="get_sandbox",
    response_model=SandboxDetail,
    responses=_errors(),
    summary="Describe a running or paused sandbox",
    openapi_extra=secured(),
)
async def get_sandbox(request: Request, sandbox_id: Annotated[str, _path_id()]) -> WireJSONResponse:
    """The sandbox's detail (404 once it is gone, or if it is another key's)."""
    caller = authenticate(request)
    st = state_of(request)
    view = await st.run("control", st.backend.describe, caller, sandbox_id)
    domain = response_domain(request, st.settings)
    return WireJSONResponse(_detail(view, domain, st.settings, st.networks.of(view)))


@router.delete(
    "/sandboxes/{sandboxID}",
    name="kill_sandbox",
    status_code=204,
    response_class=Response,
    responses=_errors(),
    summary="Kill a sandbox",
    openapi_extra=secured(),
)
async def kill_sandbox(request: Request, sandbox_id: Annotated[str, _path_id()]) -> Response:
    """Delete the sandbox (204; 404 if the caller has no route to it)."""
    caller = authenticate(request)
    st = state_of(request)
    await st.run("control", st.backend.kill, caller, sandbox_id)
    return Response(status_code=204)


@router.post(
    "/sandboxes/{sandboxID}/timeout",
    name="set_timeout",
    status_code=204,
    response_class=Response,
    responses=_errors(),
    summary="Set the sandbox to end `timeout` seconds from now",
    openapi_extra=secured(),
)
async def set_timeout(
    body: SandboxTimeoutRequest,
    request: Request,
    sandbox_id: Annotated[str, _path_id()],
) -> Response:
    """May shorten or extend; upstream answers 500 for every error but 404."""
    caller = authenticate(request)
    st = state_of(request)
    await st.run("control", st.backend.set_timeout, caller, sandbox_id, body.timeout)
    return Response(status_code=204)


@router.post(
    "/sandboxes/{sandboxID}/pause",
    name="pause_sandbox",
    status_code=204,
    response_class=Response,
    responses=_errors(409),
    summary="Pause a running sandbox (204 again if it is already paused)",
    openapi_extra=secured(),
)
async def pause_sandbox(
    request: Request,
    sandbox_id: Annotated[str, _path_id()],
    retention: Annotated[
        str | None,
        Header(
            alias=PAUSE_RETENTION_HEADER,
            description="How long the paused sandbox is kept: 'forever' or a Go duration",
            # Published, checked by the handler: a bad value answers its 400 naming the header.
            json_schema_extra={"anyOf": [{"type": "string", "pattern": PAUSE_RETENTION_PATTERN}]},
        ),
    ] = None,
) -> Response:
    """Pause and wait until paused; processes stop, files stay.

    Any body (the SDK's ``SandboxPauseRequest``, ``{}`` by default) is ignored:
    upstream's handler reads only the retention header (reference §6.2), so a
    malformed or wrong-typed body pauses the sandbox there too.
    """
    caller = authenticate(request)
    st = state_of(request)
    kept = None
    if retention is not None and retention.strip():
        try:
            kept = parse_retention(retention, field=PAUSE_RETENTION_HEADER)
        except ClaimError:
            await require_route(request, caller, sandbox_id)  # the 404 comes before the 400
            raise
    await st.run_for(request, "control", st.backend.pause, caller, sandbox_id, kept)
    return Response(status_code=204)


async def _connect(
    request: Request, caller: Caller, sandbox_id: str, timeout: int | None
) -> WireJSONResponse:
    st = state_of(request)
    view, resumed = await st.run_for(
        request, "control", st.backend.connect, caller, sandbox_id, timeout
    )
    domain = response_domain(request, st.settings)
    return WireJSONResponse(
        _sandbox(view, domain, st.settings), status_code=201 if resumed else 200
    )


_CONNECT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    201: {"model": SandboxResponse, "description": "The sandbox was paused and is resumed"},
    **_errors(409),
}


@router.post(
    "/sandboxes/{sandboxID}/connect",
    name="connect_sandbox_v1",
    status_code=200,
    response_model=SandboxResponse,
    responses=_CONNECT_RESPONSES,
    summary="Connect to a sandbox, resuming it if paused (v1)",
    openapi_extra=secured(),
)
async def connect_sandbox_v1(
    body: ConnectSandbox,
    request: Request,
    sandbox_id: Annotated[str, _path_id()],
) -> WireJSONResponse:
    """200 if it was running (timeout only extended), 201 if it was resumed."""
    caller = authenticate(request)
    return await _connect(request, caller, sandbox_id, body.timeout)


@router.post(
    "/v2/sandboxes/{sandboxID}/connect",
    name="connect_sandbox_v2",
    status_code=200,
    response_model=SandboxResponse,
    responses=_CONNECT_RESPONSES,
    summary="Connect to a sandbox, resuming it if paused (v2)",
    openapi_extra=secured(),
)
async def connect_sandbox_v2(
    request: Request,
    sandbox_id: Annotated[str, _path_id()],
    body: ConnectSandboxV2 | None = None,
) -> WireJSONResponse:
    """200 if it was running (timeout only extended), 201 if it was resumed."""
    caller = authenticate(request)
    return await _connect(request, caller, sandbox_id, body.timeout if body else None)


@router.post(
    "/sandboxes/{sandboxID}/resume",
    name="resume_sandbox",
    status_code=204,
    response_class=Response,
    responses=_errors(409),
    summary="Resume a paused sandbox (deprecated; SDK ≤ 2.6)",
    deprecated=True,
    openapi_extra=secured(),
)
async def resume_sandbox(
    request: Request,
    sandbox_id: Annotated[str, _path_id()],
    body: ResumedSandbox | None = None,
) -> Response:
    """The sandbox-manager answers 204 (the E2B spec says 201 with a Sandbox).

    ``timeout`` absent or 0 resumes for the default; out of 1…max it is a
    body error, which ``/resume`` answers 500 (reference §6.5).
    """
    caller = authenticate(request)
    st = state_of(request)
    try:
        timeout = _resume_timeout(body.timeout if body else None)
    except ApiError:
        await require_route(request, caller, sandbox_id)  # the 404 comes before the body's 500
        raise
    await st.run_for(request, "control", st.backend.resume, caller, sandbox_id, timeout)
    return Response(status_code=204)


def _resume_timeout(timeout: int | None) -> int | None:
    """The ``timeout`` of a ``/resume`` body: ``None`` (the default) if absent or 0.

    Go decodes an absent ``timeout`` as 0, so upstream cannot tell them
    apart: 0 means none given. Anything else out of 1…max seconds is a body
    error, which ``/resume`` answers 500 naming the field, as every body
    error there.
    """
    if not timeout:
        return None
    try:
        validate_timeout_update(timeout)
    except ClaimError as exc:
        raise ApiError(500, exc.message, field="timeout") from exc
    return timeout


# --------------------------------------------------------------------------- templates


@router.get(
    "/templates",
    name="list_templates",
    response_model=list[TemplateInfo],
    responses=_errors(),
    summary="The SandboxSets the caller may claim from",
    openapi_extra=secured(),
)
async def list_templates(request: Request) -> WireJSONResponse:
    """SandboxSets in the caller's namespace (admin: all namespaces)."""
    caller = authenticate(request)
    st = state_of(request)
    templates = await st.run("control", st.backend.templates, caller)
    return WireJSONResponse([_template_info(t).to_wire() for t in templates])


@router.get(
    "/templates/{templateID}",
    name="get_template",
    response_model=TemplateDetail,
    responses=_errors(),
    summary="One template (a SandboxSet) and its build",
    openapi_extra=secured(),
)
async def get_template(
    request: Request,
    template_id: Annotated[str, _path_id("templateID")],
) -> WireJSONResponse:
    """404 if the caller has no SandboxSet of that name."""
    caller = authenticate(request)
    st = state_of(request)
    templates = await st.run("control", st.backend.templates, caller)
    for tpl in templates:
        if tpl.template_id == template_id:
            return WireJSONResponse(_template_detail(tpl))
    raise ApiError(404, f"template {template_id!r} not found")
