"""Level ``kruise``: the OpenKruise Agents extensions of the E2B API.

Skipped as a whole, with the reason, against a server without them (E2B's own):
:meth:`Api.kruise_missing` asks once whether it serves ``/kruise/api``.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import pytest

from pytest_kruise_agents.conformance.clock import ServerClock
from pytest_kruise_agents.conformance.expect import (
    excerpt,
    expect,
    expect_error_body,
    expect_status,
    json_body,
)
from pytest_kruise_agents.conformance.plugin import check
from pytest_kruise_agents.conformance.sandboxes import Sandboxes
from pytest_kruise_agents.conformance.target import Api, Target
from pytest_kruise_agents.conformance.wire import detail, settled, state_of

__all__: list[str] = []  # pytest collects the checks; nothing is imported from here

E2B_PREFIX = "e2b.agents.kruise.io/"
PREFIX = "/kruise/api"
RESOURCE_KEY = E2B_PREFIX + "sandbox-resource"


@pytest.fixture(autouse=True)
def kruise_served(conformance_api: Api) -> None:
    """Skip the check when the server does not serve the OpenKruise extensions."""
    missing = conformance_api.kruise_missing()
    if missing is not None:
        pytest.skip(missing)


def _rejected(api: Api, made: Sandboxes, metadata: dict[str, str], what: str) -> None:
    resp = api.create(metadata=metadata)
    if resp.status_code == 201:
        made.track(str(resp.json().get("sandboxID")))
    expect_status(resp, 400, what)
    expect_error_body(resp, what)


@check("kruise.api-prefix")
def test_api_prefix(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    route = PREFIX + conformance_api.create_route
    body = conformance_sandboxes.create_raw(prefix=PREFIX, what=f"POST {route}")
    sid = body["sandboxID"]
    expect_status(
        conformance_api.request("GET", f"{PREFIX}/sandboxes/{sid}"),
        200,
        f"GET {PREFIX}/sandboxes/{sid}",
    )
    run = conformance_sandboxes.target.run_filter  # the run's own: a team may hold thousands
    what = f"GET {PREFIX}/v2/sandboxes?metadata={run}"

    def listed() -> list[Any]:
        resp = conformance_api.request(
            "GET", f"{PREFIX}/v2/sandboxes", params={"limit": 100, "metadata": run}
        )
        expect_status(resp, 200, what)
        items = json_body(resp, what)
        return [i.get("sandboxID") for i in items] if isinstance(items, list) else []

    ids = settled(listed, lambda page: sid in page, within=conformance_api.target.list_settle)
    expect(sid in ids, what, f"{sid} listed", ids[:10])
    # The calls of a sandbox's life, as the SDK makes them through E2B_API_URL=.../kruise/api.
    connect = PREFIX + conformance_api.connect_route(sid)
    for path, body, shown, status in (
        (f"{PREFIX}/sandboxes/{sid}/timeout", {"timeout": 600}, "{timeout: 600}", 204),
        (f"{PREFIX}/sandboxes/{sid}/pause", {}, "{}", 204),
        (connect, {"timeout": 600}, "{timeout: 600} (paused sandbox)", 201),
    ):
        resp = conformance_api.request("POST", path, json=body)
        expect_status(resp, status, f"POST {path} {shown}")
    expect_status(
        conformance_api.request("DELETE", f"{PREFIX}/sandboxes/{sid}"),
        204,
        f"DELETE {PREFIX}/sandboxes/{sid}",
    )
    expect_status(conformance_api.get(sid), 404, f"GET /sandboxes/{sid} after the prefixed DELETE")


@check("kruise.sandbox-resource")
def test_sandbox_resource(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    create = f"POST {conformance_api.create_route}"
    body = conformance_sandboxes.create_raw(what=create)
    sid = body["sandboxID"]
    pattern = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
    for what, meta in (
        (create, body.get("metadata")),
        (f"GET /sandboxes/{sid}", detail(conformance_api, sid).get("metadata")),
    ):
        value = meta.get(RESOURCE_KEY) if isinstance(meta, dict) else None
        expect(
            isinstance(value, str) and bool(pattern.match(value)),
            what,
            f"metadata {RESOURCE_KEY} = <namespace>/<name>",
            f"metadata={meta!r}",
        )


@check("kruise.label")
def test_label_metadata(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    body = conformance_sandboxes.create_raw(
        metadata={"label:conformance-team": "blue"}, what="create with label:conformance-team=blue"
    )
    sid = body["sandboxID"]
    meta = detail(conformance_api, sid).get("metadata") or {}
    expect(
        isinstance(meta, dict) and meta.get("conformance-team") == "blue",
        f"GET /sandboxes/{sid}",
        "metadata conformance-team=blue",
        f"metadata={meta!r}",
    )
    _rejected(
        conformance_api,
        conformance_sandboxes,
        {"label:Not A Label!": "x"},
        "create with label:Not A Label!=x",
    )


@check("kruise.reserved-prefix")
def test_reserved_prefix(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    for key in ("agents.kruise.io/conformance", E2B_PREFIX + "conformance-unknown"):
        _rejected(
            conformance_api, conformance_sandboxes, {key: "x"}, f"create with metadata {key}=x"
        )


@check("kruise.claim-timeout")
def test_claim_timeout(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    key = E2B_PREFIX + "claim-timeout-seconds"
    # The check shows only that the key is accepted: a claim timeout shorter than a cold
    # create would fail a slow but valid server, so wait as long as the suite waits for
    # any answer (its request timeout), and never less than 300 s.
    seconds = max(300, math.ceil(conformance_api.target.request_timeout))
    conformance_sandboxes.create_raw(
        metadata={key: str(seconds)}, what=f"create with {key}={seconds}"
    )
    _rejected(conformance_api, conformance_sandboxes, {key: "soon"}, f"create with {key}=soon")


@check("kruise.skip-init-runtime")
def test_skip_init_runtime(conformance_sandboxes: Sandboxes) -> None:
    key = E2B_PREFIX + "skip-init-runtime"
    body = conformance_sandboxes.create_raw(metadata={key: "true"}, what=f"create with {key}=true")
    token = body.get("envdAccessToken")
    expect(not token, f"create with {key}=true", "no envdAccessToken", f"envdAccessToken={token!r}")


@check("kruise.reserve-failed")
def test_reserve_failed(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    flag = E2B_PREFIX + "reserve-failed-sandbox"
    duration = E2B_PREFIX + "reserve-failed-sandbox-for"
    conformance_sandboxes.create_raw(metadata={flag: "true"}, what=f"create with {flag}=true")
    conformance_sandboxes.create_raw(metadata={duration: "1h"}, what=f"create with {duration}=1h")
    _rejected(
        conformance_api, conformance_sandboxes, {duration: "soon"}, f"create with {duration}=soon"
    )


@check("kruise.never-timeout")
def test_never_timeout(
    conformance_api: Api, conformance_clock: ServerClock, conformance_sandboxes: Sandboxes
) -> None:
    key = E2B_PREFIX + "never-timeout"
    body = conformance_sandboxes.create_raw(
        metadata={key: "true"}, timeout=30, what=f"create with {key}=true"
    )
    sid = body["sandboxID"]
    resp = conformance_api.set_timeout(sid, 2)
    expect(
        resp.status_code < 500,
        f"POST /sandboxes/{sid}/timeout {{timeout: 2}}",
        "a 2xx or 4xx answer",
        excerpt(resp),
    )
    conformance_clock.advance(35)
    state = state_of(conformance_api, sid)
    expect(
        state == "running",
        f"GET /sandboxes/{sid} 35 s later ({conformance_clock.describe()})",
        "state 'running' (never-timeout)",
        "HTTP 404 (it timed out)" if state is None else f"state={state!r}",
    )


@check("kruise.no-stock")
def test_no_stock(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    template = conformance_target.no_stock_template
    if not template:
        pytest.skip("no template without stock was given (--no-stock-template)")
    off = {E2B_PREFIX + "create-on-no-stock": "false", E2B_PREFIX + "claim-timeout-seconds": "1"}
    what = f"create from {template!r} with create-on-no-stock=false"
    resp = conformance_api.create(template, metadata=off)
    if resp.status_code == 201:
        conformance_sandboxes.track(str(resp.json().get("sandboxID")))
    expect(resp.status_code >= 400, what, "an error (no ready sandbox to claim)", excerpt(resp))
    expect_error_body(resp, what)
    conformance_sandboxes.create_raw(
        template,
        metadata={"conformance-cold": uuid.uuid4().hex[:6]},
        what=f"create from {template!r} (created on no stock)",
    )
