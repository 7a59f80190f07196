"""The admin API under ``/_kruise/``: drive the fake cluster from any language.

Behind the admin key (403 for other keys, 401 without a valid key). Apply
and read SandboxSets, SandboxClaims, SandboxTemplates, Sandboxes and Pods (kubectl-like JSON, YAML
or tables), inject and clear faults, read, replace and restore latencies, read and move
the clock, read the claim records. ``docs/server.md`` documents every route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import dump, dump_all, resolve_kind, to_manifest_dict
from pytest_kruise_agents.backends.base import ResourceNotFound
from pytest_kruise_agents.backends.sim import ClockLag
from pytest_kruise_agents.e2b.auth import require_admin
from pytest_kruise_agents.e2b.errors import ApiError, WireJSONResponse
from pytest_kruise_agents.e2b.limits import NestingBoundRoute, check_nesting, too_deep_error
from pytest_kruise_agents.e2b.nesting import yaml_depth_over
from pytest_kruise_agents.e2b.state import ServerState, state_of
from simulator.profile import Profile

__all__ = ["ADMIN_PREFIX", "AdvanceRequest", "FaultRequest", "LatencyRequest", "router"]

ADMIN_PREFIX: Final = "/_kruise"

router = APIRouter(
    prefix=ADMIN_PREFIX,
    dependencies=[Depends(require_admin)],
    tags=["admin"],
    route_class=NestingBoundRoute,
)
"""The admin routes (mounted on the app as they are)."""


class _AdminRequest(BaseModel):
    """Base of the admin bodies: lone surrogates in strings read as U+FFFD, as on the E2B routes."""

    @model_validator(mode="before")
    @classmethod
    def _go_strings(cls, data: Any) -> Any:
        return replace_surrogates(data)


class AdvanceRequest(_AdminRequest):
    """``POST /_kruise/clock/advance``: how far to move virtual time."""

    model_config = ConfigDict(extra="forbid")

    # Strict: a JSON number only. Lax pydantic would read "5", "1_000" and true
    # as seconds, which kruise_clock.advance (check_seconds) refuses.
    seconds: float = Field(ge=0, allow_inf_nan=False, strict=True)


class FaultRequest(_AdminRequest):
    """``POST /_kruise/faults``: a fault ``kind`` and its fields (probability, selector, ...)."""

    model_config = ConfigDict(extra="allow")

    kind: str


class LatencyRequest(_AdminRequest):
    """``PUT /_kruise/latency/{name}``: the new distribution (``"exp(2s)"``, a number, a mapping)."""

    model_config = ConfigDict(extra="forbid")

    value: Any


def _kind(name: str) -> str:
    try:
        return resolve_kind(name)
    except InvalidError as exc:
        raise ApiError(404, exc.reason, field="kind") from exc


async def _found(st: ServerState, field: str, call: Any, *args: Any) -> Any:
    """``call(*args)`` for a route whose path names an object: an absent one is a 404 naming
    ``field``, the path's part that names nothing (as an unknown ``{kind}`` names ``kind``)."""
    try:
        return await st.run("admin", call, *args)
    except ResourceNotFound as exc:
        raise ApiError(404, str(exc), field=field) from exc


def _list_body(objs: list[Any]) -> dict[str, Any]:
    # Keys in Go's map order, as kubectl get -o json prints a List (the items' are too).
    return {
        "apiVersion": "v1",
        "items": [to_manifest_dict(o) for o in objs],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def _clock(st: ServerState) -> dict[str, Any]:
    body: dict[str, Any] = {"now": format_time(st.backend.now()), "mode": st.backend.clock_mode}
    speed = getattr(st.backend, "speed", None)
    if isinstance(speed, int | float):
        body["speed"] = speed
    # Record times are seconds since the epoch: a realtime server's is a wall-clock
    # instant chosen at startup, which clients could not know otherwise.
    epoch = getattr(st.backend, "epoch", None)
    if isinstance(epoch, datetime):
        body["epoch"] = format_time(epoch)
    # Which model runs: two servers differing only in profile answer alike otherwise.
    profile = getattr(getattr(st.backend, "cluster", None), "profile", None)
    if isinstance(profile, Profile):
        body["profile"] = profile.summary()
    # A realtime model with more to run than the wall clock allows falls behind it:
    # record latencies stay virtual, while clients wait that much longer.
    lag = getattr(st.backend, "lag", None)
    behind = lag() if callable(lag) else None
    if isinstance(behind, ClockLag):
        body["lag"] = {"now": behind.now_s, "max": behind.max_s}
    return body


# --------------------------------------------------------------------------- resources


@router.post("/apply", name="admin_apply")
async def apply(request: Request) -> WireJSONResponse:
    """Create or update objects from a YAML or JSON body (``kubectl apply``); return them."""
    st = state_of(request)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # As the config file says it of its own bytes.
        problem = f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        raise ApiError(400, f"body: {problem}", field="body") from exc
    if not text.strip():
        raise ApiError(400, "body: empty; send YAML or JSON manifests", field="body")
    # The route reads its body itself, so NestingBoundRoute cannot measure it: measured
    # here as the loader reads it, JSON if it starts with a bracket, YAML otherwise.
    if text.lstrip().startswith(("{", "[")):
        check_nesting(raw)
    elif (depth := yaml_depth_over(text)) is not None:
        raise RequestValidationError([too_deep_error(depth)])
    objs = await st.run("admin", st.backend.apply, text)
    return WireJSONResponse(_list_body(objs))


@router.get("/resources/{kind}", name="admin_list")
async def list_resources(
    request: Request,
    kind: str,
    namespace: Annotated[str | None, Query(description="Omit for all namespaces")] = None,
    format: Annotated[Literal["json", "yaml", "table"], Query()] = "json",
) -> Response:
    """Objects of ``kind`` (``sbs``, ``sandboxsets``, ``SandboxSet``...) as JSON, YAML or a table."""
    st = state_of(request)
    k = _kind(kind)
    ns = namespace or None
    if format == "table":
        return PlainTextResponse(await st.run("admin", st.backend.table, k, ns))
    objs = await st.run("admin", st.backend.list, k, ns)
    if format == "yaml":
        return PlainTextResponse(dump_all(objs, "yaml"), media_type="application/yaml")
    return WireJSONResponse(_list_body(objs))


@router.get("/resources/{kind}/{namespace}/{name}", name="admin_get")
async def get_resource(
    request: Request,
    kind: str,
    namespace: str,
    name: str,
    format: Annotated[Literal["json", "yaml"], Query()] = "json",
) -> Response:
    """One object (404 naming ``name`` if absent)."""
    st = state_of(request)
    obj = await _found(st, "name", st.backend.get, _kind(kind), name, namespace)
    if format == "yaml":
        return PlainTextResponse(dump(obj, "yaml"), media_type="application/yaml")
    return WireJSONResponse(to_manifest_dict(obj))


@router.delete("/resources/{kind}/{namespace}/{name}", name="admin_delete")
async def delete_resource(
    request: Request, kind: str, namespace: str, name: str
) -> WireJSONResponse:
    """Delete one object (404 naming ``name`` if absent); answers a Kubernetes ``Status``."""
    st = state_of(request)
    k = _kind(kind)
    await _found(st, "name", st.backend.delete, k, name, namespace)
    return WireJSONResponse(
        {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Success",
            "details": {"kind": k, "namespace": namespace, "name": name},
        }
    )


# --------------------------------------------------------------------------- faults, latency


@router.get("/faults", name="admin_faults")
async def list_faults(request: Request) -> WireJSONResponse:
    """The faults in force."""
    st = state_of(request)
    return WireJSONResponse(await st.run("admin", st.backend.faults))


@router.post("/faults", name="admin_inject", status_code=201)
async def inject_fault(body: FaultRequest, request: Request) -> WireJSONResponse:
    """Inject a fault; answers it with its ``id`` (201)."""
    st = state_of(request)
    fields = dict(body.model_extra or {})
    fault = await st.run("admin", st.backend.inject, body.kind, **fields)
    return WireJSONResponse(fault, status_code=201)


@router.delete("/faults", name="admin_clear_faults", status_code=204)
async def clear_faults(request: Request) -> Response:
    """Clear every fault."""
    st = state_of(request)
    await st.run("admin", st.backend.clear_faults, None)
    return Response(status_code=204)


@router.delete("/faults/{fault_id}", name="admin_clear_fault", status_code=204)
async def clear_fault(request: Request, fault_id: str) -> Response:
    """Clear one fault (404 naming ``fault_id`` if there is no such fault)."""
    st = state_of(request)
    await _found(st, "fault_id", st.backend.clear_faults, fault_id)
    return Response(status_code=204)


@runtime_checkable
class _Latencies(Protocol):
    """A backend that reads and restores its latencies (the sim backend does)."""

    def latencies(self) -> list[dict[str, Any]]: ...

    def latency(self, name: str) -> dict[str, Any]: ...

    def restore_latency(self, name: str | None = None) -> None: ...


def _latencies(st: ServerState) -> _Latencies:
    backend = st.backend
    if not isinstance(backend, _Latencies):
        raise ApiError(501, "this backend cannot read or restore its latencies")
    return backend


async def _named(st: ServerState, call: Any, name: str) -> Any:
    """``call(name)`` for a route whose path names a latency: an unknown one is a 404."""
    try:
        return await st.run("admin", call, name)
    except InvalidError as exc:
        # The path names nothing, as an unknown {kind} does: not found, not bad input.
        raise ApiError(404, exc.reason, field="name") from exc


@router.get("/latency", name="admin_latencies")
async def list_latencies(request: Request) -> WireJSONResponse:
    """Every named latency: its value, the profile's, and whether it was changed."""
    st = state_of(request)
    return WireJSONResponse(await st.run("admin", _latencies(st).latencies))


@router.delete("/latency", name="admin_restore_latencies")
async def restore_latencies(request: Request) -> WireJSONResponse:
    """Put every latency back to the profile's value; answers them all (faults stay)."""
    st = state_of(request)
    backend = _latencies(st)
    await st.run("admin", backend.restore_latency, None)
    return WireJSONResponse(await st.run("admin", backend.latencies))


@router.get("/latency/{name}", name="admin_get_latency")
async def get_latency(request: Request, name: str) -> WireJSONResponse:
    """One latency: its value, the profile's, and whether it was changed (404 if unknown)."""
    st = state_of(request)
    return WireJSONResponse(await _named(st, _latencies(st).latency, name))


@router.put("/latency/{name}", name="admin_latency")
async def set_latency(request: Request, name: str, body: LatencyRequest) -> WireJSONResponse:
    """Replace one named latency distribution (``pod.create``, ``image.pull``...).

    An unknown ``name`` is 404 (field ``name``), as GET and DELETE answer it;
    a bad ``value`` 400 naming ``value``.
    """
    st = state_of(request)
    backend = st.backend
    if isinstance(backend, _Latencies):
        await _named(st, backend.latency, name)
    try:
        await st.run("admin", backend.set_latency, name, body.value)
    except InvalidError as exc:
        # The cluster names latencies.<name> and the latency again: the path says which,
        # the body's value is what is wrong.
        reason = exc.reason.removeprefix(f"latency {name!r}: ")
        raise ApiError(400, f"value: {reason}", field="value") from exc
    return WireJSONResponse({"name": name, "value": body.value})


@router.delete("/latency/{name}", name="admin_restore_latency")
async def restore_latency(request: Request, name: str) -> WireJSONResponse:
    """Put one latency back to the profile's value; answers it (404 if unknown)."""
    st = state_of(request)
    backend = _latencies(st)
    await _named(st, backend.restore_latency, name)
    return WireJSONResponse(await st.run("admin", backend.latency, name))


# --------------------------------------------------------------------------- clock, records


@router.get("/clock", name="admin_clock")
async def clock(request: Request) -> WireJSONResponse:
    """``{"now": RFC 3339, "mode": "virtual"|"realtime"}`` (plus ``speed`` and ``epoch``)."""
    st = state_of(request)
    return WireJSONResponse(await st.run("admin", _clock, st))


@router.post("/clock/advance", name="admin_advance")
async def advance(body: AdvanceRequest, request: Request) -> WireJSONResponse:
    """Move virtual time forward; timers due meanwhile fire. 409 in realtime mode."""
    st = state_of(request)
    if st.backend.clock_mode != "virtual":
        raise ApiError(
            409,
            f"the clock is in {st.backend.clock_mode} mode: time follows the wall clock",
            field="seconds",
        )
    await st.run("admin", st.backend.advance, body.seconds)
    return WireJSONResponse(await st.run("admin", _clock, st))


@router.get("/records", name="admin_records")
async def records(request: Request) -> WireJSONResponse:
    """One record per claim: phase times (seconds since the clock's ``epoch``), warm, retries, error."""
    st = state_of(request)
    return WireJSONResponse(await st.run("admin", st.backend.records))
