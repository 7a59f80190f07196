"""Level ``lifecycle``: pause, connect, auto-pause and the sandbox proxy of a stopped sandbox."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
from e2b import Sandbox, SandboxQuery

from pytest_kruise_agents.conformance.clock import ServerClock
from pytest_kruise_agents.conformance.expect import (
    excerpt,
    expect,
    expect_error_body,
    expect_status,
    json_body,
    step,
)
from pytest_kruise_agents.conformance.plugin import check
from pytest_kruise_agents.conformance.sandboxes import Sandboxes
from pytest_kruise_agents.conformance.sdk import create_auto_pause
from pytest_kruise_agents.conformance.target import ENVD_PORT, RUN_KEY, Api, Target
from pytest_kruise_agents.conformance.wire import (
    SANDBOX_FIELDS,
    detail,
    end_at,
    expect_fields,
    expect_unlisted,
    list_all,
    settled,
    state_of,
)

__all__: list[str] = []  # pytest collects the checks; nothing is imported from here


def _pause(api: Api, sid: str) -> None:
    expect_status(api.pause(sid), 204, f"POST /sandboxes/{sid}/pause")


def _shows(sid: str, included: bool, items: list[dict[str, object]]) -> bool:
    return any(i.get("sandboxID") == sid for i in items) == included


def _proxy_message(resp: httpx.Response) -> str:
    """The message the SDK reads from an envd or proxy error (``get_message``): the JSON
    object's string ``message``, else the body's text."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else resp.text


def _sdk_states(target: Target, query: SandboxQuery, ids: set[str]) -> dict[str, str]:
    """The state of each of ``ids`` that ``Sandbox.list(query=query)`` pages through."""
    paginator = Sandbox.list(query=query, **target.sdk_opts())
    found: dict[str, str] = {}
    for _ in range(200):
        if not paginator.has_next:
            break
        for info in paginator.next_items():
            if info.sandbox_id in ids:
                found[info.sandbox_id] = str(getattr(info.state, "value", info.state))
    return found


def _health(api: Api, sid: str) -> httpx.Response:
    return api.sandbox(sid, ENVD_PORT, "GET", "/health")


@check("lifecycle.connect.running")
def test_connect_running(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    # The installed SDK's route (the other SDKs': core.create.other-routes).
    what = f"POST {conformance_api.connect_route(sid)} (running sandbox)"
    resp = conformance_api.connect(sid, 600)
    expect_status(resp, 200, what)
    got = expect_fields(json_body(resp, what), SANDBOX_FIELDS, what)
    expect(got["sandboxID"] == sid, what, f"sandboxID={sid!r}", f"sandboxID={got['sandboxID']!r}")


@check("lifecycle.connect.never-shortens")
def test_connect_never_shortens(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    base = end_at(conformance_api, sid)
    what = f"POST {conformance_api.connect_route(sid)} {{timeout: 60}} with 600 s left"
    expect_status(conformance_api.connect(sid, 60), 200, what)
    after = end_at(conformance_api, sid)
    moved = (after - base).total_seconds()
    expect(
        moved >= -1, what, "endAt unchanged (connect never shortens)", f"endAt moved {moved:+g} s"
    )
    what = f"POST {conformance_api.connect_route(sid)} {{timeout: 1200}} with 600 s left"
    expect_status(conformance_api.connect(sid, 1200), 200, what)
    moved = (end_at(conformance_api, sid) - base).total_seconds()
    expect(moved >= 598, what, "endAt extended by about 600 s", f"endAt moved {moved:+g} s")


@check("lifecycle.pause")
def test_pause(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    sbx = conformance_sandboxes.create(timeout=600)
    sid = sbx.sandbox_id
    _pause(conformance_api, sid)
    # A paused sandbox is described as a running one is, every required field of a
    # SandboxDetail (E2B §2.4): a client asks get_info() of it before resuming it, and the
    # SDK fails on a field missing or null.
    what = f"GET /sandboxes/{sid} after pause"
    state = detail(conformance_api, sid, what)["state"]
    expect(state == "paused", what, "state 'paused'", f"state={state!r}")
    with step(f"get_info() of the paused sandbox {sid}"):
        info = sbx.get_info()
    shown = str(getattr(info.state, "value", info.state))
    expect(shown == "paused", f"get_info() of {sid} after pause", "state paused", shown)
    run = conformance_target.run_filter  # the run's own sandboxes: a team may hold thousands
    for wanted, included in (("paused", True), ("running", False)):
        what = f"GET /v2/sandboxes?state={wanted}&metadata={run} after pause"
        items = settled(
            partial(list_all, conformance_api, {"state": wanted, "metadata": run}, what=what),
            partial(_shows, sid, included),
            within=conformance_target.list_settle,
        )
        ids = [i.get("sandboxID") for i in items]
        expect(
            (sid in ids) == included,
            what,
            f"{sid} {'listed' if included else 'not listed'}",
            "listed" if sid in ids else "not listed",
        )


@check("lifecycle.list.states")
def test_list_both_states(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    running = conformance_sandboxes.create(timeout=600).sandbox_id
    paused = conformance_sandboxes.create(timeout=600).sandbox_id
    _pause(conformance_api, paused)
    run = conformance_target.run_filter  # the run's own sandboxes: a team may hold thousands
    wanted = {running: "running", paused: "paused"}

    def states(items: list[dict[str, object]]) -> dict[str, object]:
        return {
            str(i.get("sandboxID")): i.get("state") for i in items if i.get("sandboxID") in wanted
        }

    # What SandboxQuery(state=[running, paused]) sends: the states joined with a comma; and
    # no state at all (what Sandbox.list() sends without one), which means both.
    for params, what in (
        (
            {"state": "running,paused", "metadata": run},
            f"GET /v2/sandboxes?state=running,paused&metadata={run}",
        ),
        ({"metadata": run}, f"GET /v2/sandboxes?metadata={run} (no state: both states)"),
    ):
        items = settled(
            partial(list_all, conformance_api, params, what=what),
            lambda items: states(items) == wanted,
            within=conformance_target.list_settle,
        )
        expect(
            states(items) == wanted,
            what,
            f"{running} listed running and {paused} listed paused",
            f"{states(items)} among {len(items)} listed",
        )
    what = f"Sandbox.list(query=SandboxQuery(metadata={{{RUN_KEY!r}: <run id>}})) (no state)"
    query = SandboxQuery(metadata={RUN_KEY: conformance_target.run_id})
    with step(what):
        seen = settled(
            partial(_sdk_states, conformance_target, query, set(wanted)),
            lambda seen: seen == wanted,
            within=conformance_target.list_settle,
        )
    expect(seen == wanted, what, f"{running} running and {paused} paused", repr(seen))


@check("lifecycle.pause.conflict")
def test_pause_conflict(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    _pause(conformance_api, sid)
    what = f"POST /sandboxes/{sid}/pause (already paused)"
    resp = conformance_api.pause(sid)
    # E2B answers 409 (the SDK's pause() returns False); the sandbox-manager finds a paused
    # sandbox pausable and answers 204 (Kruise §6.5), which the SDK takes as well (True).
    kruise = conformance_api.kruise_missing() is None
    if kruise and resp.status_code == 204:
        state = state_of(conformance_api, sid)
        expect(
            state == "paused",
            f"GET /sandboxes/{sid} after {what} answered 204",
            "state 'paused' (pausing a paused sandbox changes nothing)",
            "HTTP 404" if state is None else f"state={state!r}",
        )
        return
    expect_status(resp, (409, 204) if kruise else 409, what)
    expect_error_body(resp, what)


@check("lifecycle.connect.resume")
def test_connect_resumes(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    before = end_at(conformance_api, sid)
    _pause(conformance_api, sid)
    what = f"POST {conformance_api.connect_route(sid)} {{timeout: 600}} (paused sandbox)"
    resp = conformance_api.connect(sid, 600)
    expect_status(resp, 201, what)
    expect_fields(json_body(resp, what), SANDBOX_FIELDS, what)
    # Resumed, it lives the connect's timeout from now (Kruise floors it at 300 s): an endAt
    # at least now + 600 s, so no earlier than the create's now + 600 s, read before the pause.
    after = end_at(conformance_api, sid)
    expect(
        after >= before - dt.timedelta(seconds=2),
        f"GET /sandboxes/{sid} after {what}",
        f"endAt at least 600 s after the resume (no earlier than {before:%H:%M:%S}, its "
        "endAt before the pause)",
        f"endAt {after:%H:%M:%S}, {(after - before).total_seconds():+g} s from that",
    )
    state = state_of(conformance_api, sid)
    expect(
        state == "running",
        f"GET /sandboxes/{sid} after connect",
        "state 'running'",
        f"state={state!r}",
    )
    health = _health(conformance_api, sid)
    expect(
        health.is_success, f"GET /health of {sid} after connect", "a 2xx answer", excerpt(health)
    )
    _pause(conformance_api, sid)
    with step(f"Sandbox.connect({sid!r}) of a paused sandbox"):
        again = Sandbox.connect(sid, **conformance_target.sdk_opts())
    expect(again.sandbox_id == sid, "Sandbox.connect", f"sandbox {sid}", again.sandbox_id)
    state = state_of(conformance_api, sid)
    expect(
        state == "running",
        f"GET /sandboxes/{sid} after Sandbox.connect",
        "state 'running'",
        f"state={state!r}",
    )


@check("lifecycle.auto-pause")
def test_auto_pause(
    conformance_api: Api,
    conformance_clock: ServerClock,
    conformance_target: Target,
    conformance_sandboxes: Sandboxes,
) -> None:
    timeout = 30
    with step("create a sandbox that pauses on timeout (lifecycle on_timeout=pause)"):
        sbx = create_auto_pause(
            timeout,
            template=conformance_target.template,
            metadata=conformance_sandboxes.metadata(),
            **conformance_target.sdk_opts(),
        )
    conformance_sandboxes.track(sbx.sandbox_id)
    sid = sbx.sandbox_id
    # Paused when the timeout passes, not before: a server pausing it at once (or halfway)
    # would pass a check that only looks after the deadline.
    for when, passed in (("right after create", 0.0), ("halfway to its timeout", timeout / 2)):
        conformance_clock.advance(passed)
        state = state_of(conformance_api, sid)
        expect(
            state == "running",
            f"GET /sandboxes/{sid} {when} ({timeout} s timeout with autoPause; "
            f"{conformance_clock.describe()})",
            "state 'running' (it pauses when its timeout passes)",
            "HTTP 404" if state is None else f"state={state!r}",
        )
    seen: list[str | None] = []

    def paused() -> bool:
        seen[:] = [state_of(conformance_api, sid)]
        return seen[0] in ("paused", None)

    conformance_clock.wait_for(paused, timeout / 2)
    what = (
        f"GET /sandboxes/{sid} after its {timeout} s timeout with autoPause "
        f"({conformance_clock.describe()})"
    )
    found = seen[0] if seen else "?"
    expect(
        found == "paused",
        what,
        "state 'paused'",
        "HTTP 404 (killed, not paused)" if found is None else f"state={found!r}",
    )
    what = f"POST {conformance_api.connect_route(sid)} (auto-paused sandbox)"
    expect_status(conformance_api.connect(sid, 600), 201, what)
    state = state_of(conformance_api, sid)
    expect(
        state == "running",
        f"GET /sandboxes/{sid} after connect",
        "state 'running'",
        f"state={state!r}",
    )


@check("lifecycle.proxy.not-found")
def test_proxy_not_found(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    paused = conformance_sandboxes.create(timeout=600).sandbox_id
    _pause(conformance_api, paused)
    killed = conformance_sandboxes.create(timeout=600).sandbox_id
    expect_status(conformance_api.kill(killed), 204, f"DELETE /sandboxes/{killed}")
    for sid, how in ((paused, "paused"), (killed, "killed")):
        what = f"GET /health of the {how} sandbox {sid} through the sandbox proxy"
        resp = _health(conformance_api, sid)
        expect_status(resp, 502, what)
        expect(
            "was not found" in _proxy_message(resp),
            what,
            "a body whose message contains 'was not found' (its JSON message, else its text: "
            "the SDK keys on it)",
            excerpt(resp),
        )


@check("lifecycle.is-running")
def test_is_running(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    sbx = conformance_sandboxes.create(timeout=600)
    with step("is_running() of a new sandbox"):
        running = sbx.is_running()
    expect(running is True, "is_running() of a new sandbox", "True", repr(running))
    _pause(conformance_api, sbx.sandbox_id)
    with step("is_running() of a paused sandbox"):
        running = sbx.is_running()
    expect(running is False, "is_running() of a paused sandbox", "False", repr(running))
    other = conformance_sandboxes.create(timeout=600)
    expect_status(
        conformance_api.kill(other.sandbox_id), 204, f"DELETE /sandboxes/{other.sandbox_id}"
    )
    with step("is_running() of a killed sandbox"):
        running = other.is_running()
    expect(running is False, "is_running() of a killed sandbox", "False", repr(running))


@check("lifecycle.kill-paused")
def test_kill_paused(
    conformance_api: Api, conformance_target: Target, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    _pause(conformance_api, sid)
    expect_status(conformance_api.kill(sid), 204, f"DELETE /sandboxes/{sid} (paused)")
    expect_status(conformance_api.get(sid), 404, f"GET /sandboxes/{sid} after killing it paused")
    expect_unlisted(
        conformance_api,
        conformance_target,
        sid,
        f"after DELETE /sandboxes/{sid} (paused)",
        "it answered DELETE with 204",
    )


@check("lifecycle.concurrent")
def test_concurrent_pause_and_connect(
    conformance_api: Api, conformance_sandboxes: Sandboxes
) -> None:
    sid = conformance_sandboxes.create(timeout=600).sandbox_id
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(1, 4):
            pausing = pool.submit(conformance_api.pause, sid)
            connecting = pool.submit(conformance_api.connect, sid, 600)
            for name, resp in (("pause", pausing.result()), ("connect", connecting.result())):
                expect(
                    resp.status_code < 500,
                    f"round {round_}: concurrent {name} of {sid}",
                    "a 2xx or 4xx answer",
                    excerpt(resp),
                )
            state = state_of(conformance_api, sid)
            expect(
                state in ("running", "paused"),
                f"round {round_}: GET /sandboxes/{sid} after concurrent pause and connect",
                "state running or paused",
                f"state={state!r}",
            )
            health = _health(conformance_api, sid)
            serving = health.is_success
            expect(
                serving == (state == "running"),
                f"round {round_}: GET /health of {sid} while GET shows state {state!r}",
                "a 2xx answer" if state == "running" else "HTTP 502",
                excerpt(health),
            )
            if state == "paused":
                expect_status(
                    conformance_api.connect(sid, 600), 201, f"round {round_}: connect to resume"
                )


@check("lifecycle.pause.keeps-files")
def test_pause_keeps_files(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    sbx = conformance_sandboxes.create(timeout=600)
    path = f"conformance-keep-{uuid.uuid4().hex[:8]}.txt"
    content = "kept across pause\n"
    with step(f"files.write({path!r})"):
        sbx.files.write(path, content)
    sid = sbx.sandbox_id
    _pause(conformance_api, sid)
    expect_status(
        conformance_api.connect(sid, 600), 201, f"POST {conformance_api.connect_route(sid)}"
    )
    # Read through the sandbox object from create: e2b 2.8 addresses a sandbox returned by
    # Sandbox.connect without the E2b-Sandbox-Id header that a sandbox URL needs.
    with step(f"files.read({path!r}) after pause and connect"):
        read = sbx.files.read(path)
    expect(read == content, f"files.read({path!r}) after pause and resume", repr(content), read)


def _read_with_connect_token(
    api: Api, sid: str, path: str, answer: httpx.Response, what: str, content: str
) -> None:
    """Fail unless envd serves ``path`` to a request carrying what the SDK's sandbox from
    ``answer`` (a connect's) sends: its ``envdAccessToken``, none when it has none."""
    token = json_body(answer, what).get("envdAccessToken")
    sent = token if isinstance(token, str) else None
    resp = api.sandbox(sid, ENVD_PORT, "GET", "/files", token=sent, params={"path": path})
    label = f"GET /files?path={path} with the envdAccessToken of {what}"
    expect(
        resp.status_code == 200,
        label,
        "HTTP 200 (envd takes the token of the connect answer, which Sandbox.connect sends; "
        + ("it carried one)" if sent else "it carried none)"),
        excerpt(resp),
    )
    expect(resp.text == content, label, repr(content), repr(resp.text[:200]))


@check("lifecycle.connect.token")
def test_connect_token(conformance_api: Api, conformance_sandboxes: Sandboxes) -> None:
    # Sandbox.connect(id) builds its sandbox from the connect answer alone: its envd calls
    # carry that answer's envdAccessToken (E2B §3.7), none when it has none. A connect answer
    # without the token envd wants leaves every envd call of a reconnected client refused.
    sbx = conformance_sandboxes.create(timeout=600)
    sid = sbx.sandbox_id
    path = f"conformance-token-{uuid.uuid4().hex[:8]}.txt"
    content = "read with the connect's token\n"
    with step(f"files.write({path!r})"):
        path = sbx.files.write(path, content).path  # absolute, as envd names it
    route = conformance_api.connect_route(sid)
    what = f"POST {route} (running sandbox)"
    resp = conformance_api.connect(sid, 600)
    expect_status(resp, 200, what)
    _read_with_connect_token(conformance_api, sid, path, resp, what, content)
    _pause(conformance_api, sid)
    what = f"POST {route} (paused sandbox)"
    resp = conformance_api.connect(sid, 600)
    expect_status(resp, 201, what)
    _read_with_connect_token(conformance_api, sid, path, resp, what, content)
