"""Level ``core``: auth, create, get, list, kill, timeout and error bodies of the control plane."""

from __future__ import annotations

import contextlib
import uuid
from functools import partial
from typing import Any, Final

import pytest
from e2b import AuthenticationException, Sandbox, SandboxInfo, SandboxQuery
from e2b.exceptions import NotFoundException, SandboxException

from pytest_kruise_agents.conformance.clock import ServerClock
from pytest_kruise_agents.conformance.expect import (
    excerpt,
    expect,
    expect_error_body,
    expect_status,
    fail,
    json_body,
    step,
)
from pytest_kruise_agents.conformance.plugin import check
from pytest_kruise_agents.conformance.sandboxes import Sandboxes
from pytest_kruise_agents.conformance.sdk import version_of
from pytest_kruise_agents.conformance.target import (
    KRUISE_PREFIX,
    RUN_KEY,
    Api,
    Target,
    connect_route,
    create_route,
    sdks_calling,
)
from pytest_kruise_agents.conformance.wire import (
    LISTED_FIELDS,
    SANDBOX_FIELDS,
    detail,
    end_at,
    envd_version_ok,
    expect_fields,
    expect_unlisted,
    list_all,
    parse_time,
    settled,
)

__all__: list[str] = []  # pytest collects the checks; nothing is imported from here


_ORDER_GAP_S: Final = 1.0
"""Server seconds between the creates of ``core.list.order``: distinct startedAt values."""


def _missing_id() -> str:
    return f"conformance-missing-{uuid.uuid4().hex[:10]}"


def _ids(items: list[dict[str, object]]) -> list[str]:
    return [str(i.get("sandboxID")) for i in items]


def _exactly(wanted: set[str], ids: list[str]) -> bool:
    return set(ids) == wanted and len(ids) == len(wanted)


def _lists_all_of(wanted: set[str], items: list[dict[str, object]]) -> bool:
    return wanted <= set(_ids(items))


def _state_listing(sid: str, state: str, included: bool, items: list[dict[str, object]]) -> bool:
    """Whether a ``state=`` list shows only that state, and ``sid`` exactly when ``included``."""
    return all(i.get("state") == state for i in items) and (sid in _ids(items)) == included


def _run_query(target: Target) -> SandboxQuery:
    """The SDK's query of the run's own sandboxes (what ``target.run_filter`` is on the wire)."""
    return SandboxQuery(metadata={RUN_KEY: target.run_id})


def _expect_listed(items: list[dict[str, object]], what: str) -> None:
    """Fail unless every item is a ListedSandbox (every required field), running or paused."""
    for item in items:
        expect_fields(item, LISTED_FIELDS, f"{what}: item")
        expect(
            item["state"] in ("running", "paused"),
            f"{what}: item {item['sandboxID']}",
            "state running or paused",
            f"state={item['state']!r}",
        )


def _sdk_infos(target: Target, query: SandboxQuery) -> dict[str, SandboxInfo]:
    """Every sandbox ``Sandbox.list(query=query)`` pages through, by id."""
    paginator = Sandbox.list(query=query, **target.sdk_opts())
    found: dict[str, SandboxInfo] = {}
    for _ in range(200):
        if not paginator.has_next:
            break
        found.update((s.sandbox_id, s) for s in paginator.next_items())
    return found


def _sdk_ids(
    target: Target, query: SandboxQuery | None = None, limit: int | None = None
) -> list[str]:
    paginator = Sandbox.list(query=query, limit=limit, **target.sdk_opts())
    found: list[str] = []
    for _ in range(200):
        if not paginator.has_next:
            break
        found.extend(s.sandbox_id for s in paginator.next_items())
    return found


@check("core.errors")
def test_error_bodies(conformance_api: Api) -> None:
    missing = _missing_id()
    for method, path, body in (
        ("GET", f"/sandboxes/{missing}", None),
        ("DELETE", f"/sandboxes/{missing}", None),
        ("POST", f"/sandboxes/{missing}/timeout", {"timeout": 60}),
    ):
        what = f"{method} {path} (unknown sandbox)"
        resp = conformance_api.request(method, path, json=body)
        expect_status(resp, 404, what)
        expect_error_body(resp, what)
    what = f"POST {conformance_api.create_route} without templateID"
    resp = conformance_api.request(
        "POST", conformance_api.create_route, json={"metadata": {}, "envVars": {}}
    )
    expect(resp.status_code >= 400, what, "an error status", excerpt(resp))
    expect_error_body(resp, what)


@check("core.unknown-sandbox")
def test_unknown_sandbox(conformance_api: Api, conformance_target: Target) -> None:
    # A client keeping a sandbox id reconnects to it later: a 404 is what tells it the sandbox
    # is gone (the SDK's SandboxNotFoundException), where a 500 reads as a server fault.
    missing = _missing_id()
    for method, path, body in (
        ("POST", conformance_api.connect_route(missing), {"timeout": 300}),
        ("POST", f"/sandboxes/{missing}/pause", {}),
    ):
        what = f"{method} {path} (unknown sandbox)"
        resp = conformance_api.request(method, path, json=body)
        expect_status(resp, 404, what)
        expect_error_body(resp, what)
    what = f"Sandbox.connect({missing!r}) (unknown sandbox)"
    wanted = "SandboxNotFoundException (NotFoundException in older SDKs)"
    try:
        Sandbox.connect(missing, **conformance_target.sdk_opts())
    except NotFoundException:
        return
    except Exception as exc:
        fail(what, wanted, f"{type(exc).__name__}: {exc}")
    fail(what, wanted, "a connected sandbox")


Call = tuple[str, str, dict[str, object] | None]
"""A request of a check: method, path and JSON body."""


def _sandbox_routes(api: Api, sid: str) -> list[Call]:
    """Every route the installed SDK calls on one sandbox: method, path and the body it sends."""
    return [
        ("GET", f"/sandboxes/{sid}", None),
        ("POST", f"/sandboxes/{sid}/timeout", {"timeout": 30}),
        ("POST", api.connect_route(sid), {"timeout": 3600}),
        ("POST", f"/sandboxes/{sid}/pause", {}),
        ("DELETE", f"/sandboxes/{sid}", None),
    ]


def _unknown_keys() -> list[tuple[str, str]]:
    """``(key, label)``: no ``X-API-Key`` at all, and one no server has issued."""
    bad_key = f"conformance-invalid-key-{uuid.uuid4().hex}"
    return [("", "without X-API-Key"), (bad_key, "with an unknown X-API-Key")]


_UNSERVED: Final = (404, 405)
"""What a server answers for a route it does not serve (the other SDK generation's)."""


def _expect_refused(
    api: Api,
    call: Call,
    key: str,
    label: str,
    *,
    unserved: bool = False,
    made: Sandboxes | None = None,
) -> None:
    """Fail unless ``call`` with ``key`` answers 401 with a JSON error; with ``unserved``,
    a 404 or 405 (a route the server does not serve) passes too. A sandbox a refused create
    made anyway goes to ``made``, to be killed."""
    method, path, body = call
    what = f"{method} {path} {label}"
    resp = api.request(method, path, key=key, json=body)
    if made is not None and resp.status_code == 201:
        with contextlib.suppress(ValueError, AttributeError):
            made.track(str(resp.json().get("sandboxID")))
    if unserved and resp.status_code in _UNSERVED:
        return
    also = " (or 404 or 405: a route the server does not serve)" if unserved else ""
    expect(resp.status_code == 401, what, f"HTTP 401{also}", excerpt(resp))
    expect_error_body(resp, what)


def _prefixed(api: Api, calls: list[Call]) -> list[Call]:
    """``calls`` under :data:`KRUISE_PREFIX` when the server also serves the E2B routes there
    (the sandbox-manager's second mount, Kruise §6.1) and the API URL is not that mount
    already; else none."""
    if api.target.api_url.endswith(KRUISE_PREFIX) or api.kruise_missing() is not None:
        return []
    return [(method, KRUISE_PREFIX + path, body) for method, path, body in calls]


@check("core.auth")
def test_auth(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    # The key is checked before the sandbox is looked up: an unknown caller gets 401 on
    # every route, never the 404 that would tell which sandboxes exist. Every route: also
    # under /kruise/api, the second mount where a middleware is easily missed, and the other
    # SDK generation's create when the server serves it.
    api = conformance_api
    create: dict[str, object] = {
        "templateID": conformance_target.template,
        "metadata": conformance_sandboxes.metadata(),
    }
    calls: list[Call] = [("GET", "/v2/sandboxes", None), ("POST", api.create_route, create)]
    on_missing = _sandbox_routes(api, _missing_id())
    other = not api.v2_routes
    other_create: Call = ("POST", create_route(other), create)
    for key, label in _unknown_keys():
        for call in calls + _prefixed(api, calls):
            _expect_refused(api, call, key, label, made=conformance_sandboxes)
        for call in on_missing + _prefixed(api, on_missing):
            _expect_refused(api, call, key, f"(unknown sandbox) {label}")
        said = f"(the create route of {sdks_calling(other)}) {label}"
        _expect_refused(api, other_create, key, said, unserved=True, made=conformance_sandboxes)
    bad_key = _unknown_keys()[1][0]
    opts = {**conformance_target.sdk_opts(), "api_key": bad_key}
    try:
        sbx = Sandbox.create(
            template=conformance_target.template, metadata=conformance_sandboxes.metadata(), **opts
        )
    except AuthenticationException:
        return
    except Exception as exc:
        fail(
            "Sandbox.create with an unknown API key",
            "AuthenticationException",
            f"{type(exc).__name__}: {exc}",
        )
    conformance_sandboxes.track(sbx.sandbox_id)
    fail("Sandbox.create with an unknown API key", "AuthenticationException", "a new sandbox")


def _expect_sandbox(body: dict[str, Any], what: str) -> None:
    """Fail unless ``body`` is a ``Sandbox`` the SDK takes: the required fields, an
    ``envdVersion`` it accepts, a domain that is null or a string."""
    expect_fields(body, SANDBOX_FIELDS, what)
    expect(
        envd_version_ok(body["envdVersion"]),
        what,
        "a PEP 440 envdVersion >= 0.1.0 (the SDK refuses older ones)",
        f"envdVersion={body['envdVersion']!r}",
    )
    domain = body.get("domain")
    expect(
        domain is None or isinstance(domain, str),
        what,
        "a domain that is null or a string",
        f"domain={domain!r}",
    )


@check("core.create")
def test_create(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    # The installed SDK's route only: a server need not serve the other SDKs' routes for
    # this one to work (core.create.other-routes tells whether it does).
    what = f"POST {conformance_api.create_route}"
    _expect_sandbox(conformance_sandboxes.create_raw(what=what), what)
    route = f"SDK route POST {conformance_api.create_route}"
    sbx = conformance_sandboxes.create(what=f"Sandbox.create ({route})")
    expect(bool(sbx.sandbox_id), "Sandbox.create", "a sandbox id", repr(sbx.sandbox_id))


@check("core.create.other-routes")
def test_create_other_routes(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    other = not conformance_api.v2_routes  # the generation the suite's own calls do not use
    create = create_route(other)
    what = f"POST {create} (the create route of {sdks_calling(other)})"
    body = conformance_sandboxes.create_raw(route=create, what=what)
    _expect_sandbox(body, what)
    sid = body["sandboxID"]
    path = connect_route(sid, other)
    what = f"POST {path} (the connect route of {sdks_calling(other)}; running sandbox)"
    resp = conformance_api.request("POST", path, json={"timeout": 600})
    expect_status(resp, 200, what)
    got = expect_fields(json_body(resp, what), SANDBOX_FIELDS, what)
    expect(got["sandboxID"] == sid, what, f"sandboxID={sid!r}", f"sandboxID={got['sandboxID']!r}")


@check("core.create.unknown-template")
def test_create_unknown_template(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    name = f"conformance-no-such-template-{uuid.uuid4().hex[:8]}"
    what = f"POST /v2/sandboxes from template {name!r}"
    resp = conformance_api.create(name)
    if resp.status_code == 201:
        conformance_sandboxes.track(str(resp.json().get("sandboxID")))
    expect_status(resp, (400, 404), what)
    expect_error_body(resp, what)
    try:
        sbx = Sandbox.create(
            template=name,
            metadata=conformance_sandboxes.metadata(),
            **conformance_target.sdk_opts(),
        )
    except SandboxException:
        return
    except Exception as exc:
        fail(
            f"Sandbox.create(template={name!r})",
            "SandboxException",
            f"{type(exc).__name__}: {exc}",
        )
    conformance_sandboxes.track(sbx.sandbox_id)
    fail(f"Sandbox.create(template={name!r})", "SandboxException", "a new sandbox")


@check("core.get")
def test_get(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    meta = {"conformance-note": "a b&c=d/e%f", "conformance-plain": "plain"}
    sbx = conformance_sandboxes.create(metadata=meta, timeout=600)
    sid = sbx.sandbox_id
    what = f"GET /sandboxes/{sid}"
    body = detail(conformance_api, sid, what)
    expect(body["sandboxID"] == sid, what, f"sandboxID={sid!r}", f"sandboxID={body['sandboxID']!r}")
    expect(body["state"] == "running", what, "state 'running'", f"state={body['state']!r}")
    parse_time(body["startedAt"], f"{what}: startedAt")
    parse_time(body["endAt"], f"{what}: endAt")
    _expect_metadata(body.get("metadata") or {}, meta, what)
    with step(f"get_info() of {sid}"):
        info = sbx.get_info()
    expect(info.sandbox_id == sid, "get_info()", f"sandbox_id={sid!r}", info.sandbox_id)
    for key, value in meta.items():
        expect(
            info.metadata.get(key) == value,
            "get_info()",
            f"metadata {key}={value!r}",
            f"metadata={info.metadata!r}",
        )


@check("core.auth.refused")
def test_auth_refused_calls_change_nothing(
    conformance_api: Api, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    before = detail(conformance_api, sid)
    # Each call would change the sandbox if it ran: shorten or extend its timeout, pause or
    # kill it. Refused, none may have run, whatever the answer said. The same calls under
    # /kruise/api, and the other SDK generation's connect, unless the server serves neither.
    calls = _sandbox_routes(conformance_api, sid)
    other = not conformance_api.v2_routes
    other_connect: Call = ("POST", connect_route(sid, other), {"timeout": 3600})
    for key, label in _unknown_keys():
        for call in calls + _prefixed(conformance_api, calls):
            _expect_refused(conformance_api, call, key, label)
        said = f"(the connect route of {sdks_calling(other)}) {label}"
        _expect_refused(conformance_api, other_connect, key, said, unserved=True)
    what = f"GET /sandboxes/{sid} after the refused calls"
    resp = conformance_api.get(sid)
    expect(
        resp.status_code != 404,
        what,
        "HTTP 200 (a refused DELETE kills nothing)",
        excerpt(resp),
    )
    after = detail(conformance_api, sid, what)
    expect(
        after["state"] == "running",
        what,
        "state 'running' (a refused pause pauses nothing)",
        f"state={after['state']!r}",
    )
    moved = (
        parse_time(after["endAt"], f"{what}: endAt") - parse_time(before["endAt"], "endAt")
    ).total_seconds()
    expect(
        abs(moved) <= 1,
        what,
        "endAt unchanged (a refused timeout or connect sets no timeout)",
        f"endAt moved by {moved:+g} s",
    )


@check("core.create.default-timeout")
def test_create_default_timeout(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    if not conformance_api.v2_routes:
        pytest.skip(
            f"e2b {version_of('e2b')} creates with POST /sandboxes and always sends a timeout "
            "(300 s): the server's default is never used"
        )
    body = conformance_sandboxes.create_raw(what="POST /v2/sandboxes without a timeout")
    sid = body["sandboxID"]
    info = detail(conformance_api, sid)
    started = parse_time(info["startedAt"], "startedAt")
    ended = parse_time(info["endAt"], "endAt")
    lifetime = (ended - started).total_seconds()
    expect(
        abs(lifetime - 300) <= 2,
        f"GET /sandboxes/{sid} after a create without timeout",
        "endAt - startedAt = 300 s",
        f"{lifetime:g} s (startedAt={info['startedAt']}, endAt={info['endAt']})",
    )


def _expect_metadata(got: object, wanted: dict[str, str], what: str) -> None:
    """Fail unless ``got`` is a metadata object holding every pair of ``wanted`` unchanged."""
    for key, value in wanted.items():
        expect(
            isinstance(got, dict) and got.get(key) == value,
            what,
            f"its metadata {key}={value!r}",
            f"metadata={got!r}",
        )


@check("core.list")
def test_list(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    meta = {"conformance-note": "a b&c=d/e%f"}
    sid = conformance_sandboxes.create(metadata=meta).sandbox_id
    # Listed as GET shows it: the run's key (what the list matched) and the create metadata,
    # which Sandbox.list() hands the user as SandboxInfo.metadata.
    own = {**meta, RUN_KEY: conformance_target.run_id}
    # One item of the unfiltered list shows the route answers without a filter; the new
    # sandbox is looked for among the run's own only: a team may hold thousands of others.
    what = "GET /v2/sandboxes?limit=1"
    resp = conformance_api.list({"limit": 1})
    expect_status(resp, 200, what)
    page = json_body(resp, what)
    expect(isinstance(page, list), what, "a JSON array", repr(page)[:300])
    _expect_listed(page, what)
    what = f"GET /v2/sandboxes?metadata={conformance_target.run_filter}"
    items = settled(
        partial(list_all, conformance_api, {"metadata": conformance_target.run_filter}, what=what),
        partial(_lists_all_of, {sid}),
        within=conformance_target.list_settle,
    )
    _expect_listed(items, what)
    expect(sid in _ids(items), what, f"the new sandbox {sid}", _ids(items))
    item = next(i for i in items if i.get("sandboxID") == sid)
    _expect_metadata(item.get("metadata"), own, f"{what}: item {sid}")
    what = f"Sandbox.list(query=SandboxQuery(metadata={{{RUN_KEY!r}: <run id>}}))"
    with step(what):
        infos = settled(
            partial(_sdk_infos, conformance_target, _run_query(conformance_target)),
            lambda infos: sid in infos,
            within=conformance_target.list_settle,
        )
    expect(sid in infos, what, f"the new sandbox {sid}", sorted(infos))
    _expect_metadata(infos[sid].metadata, own, f"{what}: SandboxInfo of {sid}")


@check("core.list.metadata")
def test_list_metadata_filter(conformance_target: Target, conformance_sandboxes: Sandboxes) -> None:
    tag = uuid.uuid4().hex[:12]
    odd = "a b&c=d/e%f"
    first = conformance_sandboxes.create(metadata={"conformance-tag": tag, "conformance-kind": odd})
    # Each value also holds the one queried, as a prefix (odd) or suffix (tag): matches are
    # exact, so neither may be listed by it.
    second = conformance_sandboxes.create(
        metadata={"conformance-tag": tag, "conformance-kind": odd + "-other"}
    )
    conformance_sandboxes.create(metadata={"conformance-tag": "x" + tag, "conformance-kind": odd})
    for query, wanted in (
        ({"conformance-tag": tag}, {first.sandbox_id, second.sandbox_id}),
        ({"conformance-tag": tag, "conformance-kind": odd}, {first.sandbox_id}),
    ):
        what = f"Sandbox.list(query=SandboxQuery(metadata={query!r}))"
        with step(what):
            found = settled(
                partial(_sdk_ids, conformance_target, SandboxQuery(metadata=query)),
                partial(_exactly, wanted),
                within=conformance_target.list_settle,
            )
        expect(
            set(found) == wanted and len(found) == len(wanted),
            what,
            f"exactly {sorted(wanted)}",
            f"{len(found)} sandboxes: {sorted(found)[:8]}",
        )


@check("core.list.state")
def test_list_state_filter(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create().sandbox_id
    run = conformance_target.run_filter  # the run's own sandboxes: a team may hold thousands
    for state, included in (("running", True), ("paused", False)):
        what = f"GET /v2/sandboxes?state={state}&metadata={run}"
        items = settled(
            partial(list_all, conformance_api, {"state": state, "metadata": run}, what=what),
            partial(_state_listing, sid, state, included),
            within=conformance_target.list_settle,
        )
        others = [i.get("state") for i in items if i.get("state") != state]
        expect(
            not others, what, f"only {state} sandboxes", f"states {sorted(set(map(str, others)))}"
        )
        present = sid in _ids(items)
        expect(
            present == included,
            what,
            f"the running sandbox {sid} {'listed' if included else 'not listed'}",
            "it listed" if present else "it missing",
        )


@check("core.list.order")
def test_list_order(
    conformance_api: Api,
    conformance_target: Target,
    conformance_clock: ServerClock,
    conformance_sandboxes: Sandboxes,
) -> None:
    made: list[str] = []
    for _ in range(3):
        made.append(conformance_sandboxes.create().sandbox_id)
        # A second between creates: sandboxes started at one instant may list in any order
        # (E2B §2.3 orders by startedAt only), and an order check of ties proves nothing.
        conformance_clock.advance(_ORDER_GAP_S)
    run = conformance_target.run_filter  # the run's own sandboxes: a team may hold thousands
    for order, newest_first in (("asc", False), ("desc", True)):
        what = f"GET /v2/sandboxes?order={order}&metadata={run}"
        items = settled(
            partial(list_all, conformance_api, {"order": order, "metadata": run}, what=what),
            partial(_lists_all_of, set(made)),
            within=conformance_target.list_settle,
        )
        expect(
            _lists_all_of(set(made), items),
            what,
            f"the new sandboxes {made}",
            _ids(items),
        )
        times = [parse_time(i.get("startedAt"), f"{what}: startedAt") for i in items]
        expect(
            times == sorted(times, reverse=newest_first),
            what,
            f"startedAt {'descending (newest first)' if newest_first else 'ascending'}",
            [t.isoformat() for t in times][:10],
        )


@check("core.list.order.default")
def test_list_default_order(
    conformance_api: Api,
    conformance_target: Target,
    conformance_clock: ServerClock,
    conformance_sandboxes: Sandboxes,
) -> None:
    made: list[str] = []
    for _ in range(2):
        made.append(conformance_sandboxes.create().sandbox_id)
        conformance_clock.advance(_ORDER_GAP_S)  # distinct startedAt values, as core.list.order
    run = conformance_target.run_filter  # the run's own sandboxes: a team may hold thousands
    what = f"GET /v2/sandboxes?metadata={run} (no order)"
    items = settled(
        partial(list_all, conformance_api, {"metadata": run}, what=what),
        partial(_lists_all_of, set(made)),
        within=conformance_target.list_settle,
    )
    expect(_lists_all_of(set(made), items), what, f"the new sandboxes {made}", _ids(items))
    times = [parse_time(i.get("startedAt"), f"{what}: startedAt") for i in items]
    if times == sorted(times, reverse=True):
        return
    # The sandbox-manager sorts by claim time, oldest first, whatever is asked (Kruise
    # §6.7): a server with its extensions may keep that order; any other must not.
    kruise = conformance_api.kruise_missing() is None
    expect(
        kruise and times == sorted(times),
        what,
        "startedAt descending (newest first, the default order)"
        + (" or ascending (the sandbox-manager's order)" if kruise else ""),
        [t.isoformat() for t in times][:10],
    )


@check("core.list.started-after")
def test_list_started_after(
    conformance_api: Api,
    conformance_target: Target,
    conformance_clock: ServerClock,
    conformance_sandboxes: Sandboxes,
) -> None:
    first = conformance_sandboxes.create().sandbox_id
    conformance_clock.advance(_ORDER_GAP_S)
    second = conformance_sandboxes.create().sandbox_id
    # The server's own startedAt values: no clock but the server's is compared.
    started = {
        sid: parse_time(detail(conformance_api, sid)["startedAt"], f"{sid}: startedAt")
        for sid in (first, second)
    }
    since = started[second].isoformat()
    # Only a sandbox started before the time can be left out (a server whose time did not
    # move between the creates started both at once).
    excluded = {first} if started[first] < started[second] else set()
    run = conformance_target.run_filter
    what = f"GET /v2/sandboxes?startedAfter={since}&metadata={run}"

    def holds(items: list[dict[str, object]]) -> bool:
        ids = _ids(items)
        return second in ids and not excluded.intersection(ids)

    items = settled(
        partial(list_all, conformance_api, {"startedAfter": since, "metadata": run}, what=what),
        holds,
        within=conformance_target.list_settle,
    )
    ids = _ids(items)
    expect(second in ids, what, f"{second}, started at that time (startedAfter is inclusive)", ids)
    expect(
        not excluded.intersection(ids),
        what,
        f"not {first}, started at {started[first].isoformat()}, before it",
        ids,
    )


@check("core.list.template")
def test_list_template_filter(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create().sandbox_id
    run = conformance_target.run_filter
    template = conformance_target.template
    what = f"GET /v2/sandboxes?template={template}&metadata={run}"
    items = settled(
        partial(list_all, conformance_api, {"template": template, "metadata": run}, what=what),
        partial(_lists_all_of, {sid}),
        within=conformance_target.list_settle,
    )
    expect(sid in _ids(items), what, f"the new sandbox {sid} of template {template!r}", _ids(items))
    other = f"conformance-no-such-template-{uuid.uuid4().hex[:8]}"
    what = f"GET /v2/sandboxes?template={other}&metadata={run}"
    resp = conformance_api.list({"template": other, "metadata": run})
    if resp.status_code in (400, 404):  # a template the server does not know may be an error
        expect_error_body(resp, what)
        return
    expect_status(resp, (200, 400, 404), what)
    page = json_body(resp, what)
    expect(isinstance(page, list), what, "a JSON array", repr(page)[:300])
    expect(sid not in _ids(page), what, f"not {sid} (of template {template!r})", _ids(page))


@check("core.list.pagination")
def test_list_pagination(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    made = {conformance_sandboxes.create().sandbox_id for _ in range(5)}
    # Only the run's own sandboxes are paged: a team may already hold hundreds, and
    # paging them all two at a time would be slow and hit the page cap on a good server.
    run = conformance_target.run_filter
    settled(
        lambda: _ids(list_all(conformance_api, {"metadata": run})),
        lambda ids: made <= set(ids),
        within=conformance_target.list_settle,
    )
    limit = 2
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        pages += 1
        params: dict[str, object] = {"limit": limit, "metadata": run}
        if token:
            params["nextToken"] = token
        what = f"GET /v2/sandboxes page {pages} (limit={limit}, metadata={run})"
        resp = conformance_api.list(params)
        expect_status(resp, 200, what)
        items = json_body(resp, what)
        expect(isinstance(items, list), what, "a JSON array", repr(items)[:200])
        expect(len(items) <= limit, what, f"at most {limit} items", f"{len(items)} items")
        # The filter holds on every page, not only the first: a token that keeps only a
        # position would leak the team's other sandboxes into the later ones.
        for item in items:
            meta = item.get("metadata")
            expect(
                isinstance(meta, dict) and meta.get(RUN_KEY) == conformance_target.run_id,
                what,
                f"only sandboxes with metadata {run}",
                f"{item.get('sandboxID')} with metadata {meta!r}",
            )
        seen.extend(_ids(items))
        token = resp.headers.get("x-next-token") or None
        if token is None:
            break
        # A page may hold fewer than the limit and still have a next one (limit is a
        # maximum; Kubernetes list chunking does the same): the SDK only follows the token.
        if pages >= 500:
            fail("GET /v2/sandboxes", "a last page without X-Next-Token", "500 pages")
    dupes = sorted({s for s in seen if seen.count(s) > 1})
    expect(not dupes, "paging with nextToken", "each sandbox once", f"repeated {dupes}")
    missing = sorted(made.difference(seen))
    expect(
        not missing,
        "paging with nextToken",
        f"all {len(made)} new sandboxes across the pages (X-Next-Token on every page but the last)",
        f"{len(seen)} sandboxes on {pages} page(s), missing {missing}",
    )
    with step(f"Sandbox.list(limit={limit}) paginator"):
        listed = settled(
            lambda: _sdk_ids(conformance_target, _run_query(conformance_target), limit=limit),
            lambda ids: made <= set(ids),
            within=conformance_target.list_settle,
        )
    missing = sorted(made.difference(listed))
    expect(not missing, f"Sandbox.list(limit={limit})", "every new sandbox", f"missing {missing}")


@check("core.kill")
def test_kill(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create().sandbox_id
    expect_status(conformance_api.kill(sid), 204, f"DELETE /sandboxes/{sid}")
    expect_status(conformance_api.get(sid), 404, f"GET /sandboxes/{sid} after DELETE")
    # The list is what Sandbox.list() shows: a killed sandbox must leave it too, not only GET.
    expect_unlisted(
        conformance_api,
        conformance_target,
        sid,
        f"after DELETE /sandboxes/{sid}",
        "it answered DELETE with 204",
    )
    expect_status(conformance_api.kill(sid), 404, f"a second DELETE /sandboxes/{sid}")
    other = conformance_sandboxes.create()
    with step(f"kill() of {other.sandbox_id}"):
        killed = other.kill()
    expect(killed is True, "kill() of a running sandbox", "True", repr(killed))


@check("core.timeout")
def test_set_timeout(
    conformance_api: Api, conformance_clock: ServerClock, conformance_sandboxes: Sandboxes
) -> None:
    # endAt counts from the lock (upstream §5.2), before the create answers, and from each
    # request's "now" after: allow the server time passed since the create was sent, read
    # from the server's clock when the suite can (a cold create moves a virtual one 5-40 s).
    started = conformance_clock.mark()
    sbx = conformance_sandboxes.create(timeout=600)
    sid = sbx.sandbox_id
    base = end_at(conformance_api, sid)

    def slack() -> float:
        return conformance_clock.server_seconds_since(started) + 2

    clock = conformance_clock.describe()
    for seconds, shift in ((1200, 600), (120, -480)):
        what = f"POST /sandboxes/{sid}/timeout {{timeout: {seconds}}} ({clock})"
        expect_status(conformance_api.set_timeout(sid, seconds), 204, what)
        moved = (end_at(conformance_api, sid) - base).total_seconds()
        expect(
            shift - 2 <= moved <= shift + slack(),
            what,
            f"endAt moved by {shift:+d} s (now + {seconds} s)",
            f"endAt moved by {moved:+g} s",
        )
    with step(f"set_timeout(900) of {sid}"):
        sbx.set_timeout(900)
    moved = (end_at(conformance_api, sid) - base).total_seconds()
    expect(
        300 - 2 <= moved <= 300 + slack(),
        f"set_timeout(900) ({clock})",
        "endAt moved by +300 s",
        f"{moved:+g} s",
    )
    missing = _missing_id()
    what = f"POST /sandboxes/{missing}/timeout (unknown sandbox)"
    expect_status(conformance_api.set_timeout(missing, 60), 404, what)


@check("core.timeout.enforced")
def test_timeout_enforced(
    conformance_api: Api,
    conformance_target: Target,
    conformance_clock: ServerClock,
    conformance_sandboxes: Sandboxes,
) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    seconds = 2
    expect_status(conformance_api.set_timeout(sid, seconds), 204, f"POST /sandboxes/{sid}/timeout")
    last: list[int] = []

    def gone() -> bool:
        last[:] = [conformance_api.get(sid).status_code]
        return last[0] == 404

    ended = conformance_clock.wait_for(gone, seconds)
    expect(
        ended,
        f"GET /sandboxes/{sid} after its {seconds} s timeout ({conformance_clock.describe()})",
        "HTTP 404",
        f"HTTP {last[0] if last else '?'} {conformance_clock.grace:g} s after the deadline",
    )
    expect_unlisted(
        conformance_api,
        conformance_target,
        sid,
        "after the timeout",
        f"its {seconds} s timeout passed",
    )
