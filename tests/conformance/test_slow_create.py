"""The suite against servers whose create is slow but valid, or whose clock it may not move.

A cold create (no warm sandbox: pod, image pull, runtime init) takes tens of seconds on a
real cluster and moves a virtual clock as far; the checks must pass such a server, and a
timing check that fails must say which clock it ran on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from pytest_kruise_agents.e2b.rewriting import call, json_answer, read_body, replay, reply

from .conftest import (
    ADMIN_KEY,
    REALTIME_SPEED,
    USER_KEY,
    SuiteRun,
    clean_env,
    read_junit,
    serve,
    suite_pytest_command,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from pytest_kruise_agents.backends.base import Backend

PYTHON: Final = Path(sys.executable)
COLD_CREATE_S: Final = 40
"""How long the slow servers here take to claim a sandbox (server seconds)."""
CLAIM_TIMEOUT_KEY: Final = "e2b.agents.kruise.io/claim-timeout-seconds"


def _is_create(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and scope["path"] in ("/sandboxes", "/v2/sandboxes", "/kruise/api/sandboxes")
        and (b"x-api-key", USER_KEY.encode()) in scope["headers"]
    )


def _deadline_server(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """A create whose claim timeout is shorter than its cold create answers 500 "context
    deadline exceeded", as the real server does; any other create is served."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_create(scope):
            await app(scope, receive, send)
            return
        raw = await read_body(receive)
        metadata = (json.loads(raw or b"{}").get("metadata") or {}) if raw else {}
        given = metadata.get(CLAIM_TIMEOUT_KEY, "")
        answer = await call(app, scope, replay(raw, receive))
        if given.isdigit() and int(given) < COLD_CREATE_S:
            body = {"code": 500, "message": "context deadline exceeded"}
            answer = json_answer(answer, 500, body)
        await reply(send, answer)

    return served


def _cold_create_server(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Every create answers :data:`COLD_CREATE_S` virtual seconds after its claim (the lock,
    from which endAt counts): the clock moves between the claim and the answer."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_create(scope):
            await app(scope, receive, send)
            return
        raw = await read_body(receive)
        answer = await call(app, scope, replay(raw, receive))
        await anyio.to_thread.run_sync(backend.advance, COLD_CREATE_S)
        await reply(send, answer)

    return served


SLOW_ANSWER_S: Final = 2.0
"""How long after its claim the slow-answer server's create answers (wall seconds): 40 server
seconds at x20, past the 30 s timeout of ``lifecycle.auto-pause``, whose failure then shows at
its first look, instead of after the 15 wall seconds it sleeps for half that timeout."""


def _slow_answer_server(app: ASGIApp, backend: Backend, key: str) -> ASGIApp:
    """Every create answers :data:`SLOW_ANSWER_S` wall seconds after its claim."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_create(scope):
            await app(scope, receive, send)
            return
        raw = await read_body(receive)
        answer = await call(app, scope, replay(raw, receive))
        await anyio.sleep(SLOW_ANSWER_S)
        await reply(send, answer)

    return served


def _only(out: Path, url: str, level: str, name: str, *, admin_key: bool = True) -> SuiteRun:
    """The one check ``name`` of ``level`` in pytest form under this interpreter (which loads
    the plugin by its entry point), with the admin key only if ``admin_key``."""
    out.mkdir(exist_ok=True)
    junit = out / "conformance.xml"
    cmd = [
        *suite_pytest_command(PYTHON, plugin=False),
        "--tb=short",
        "--kruise-conformance-api-url",
        url,
        "--kruise-conformance-sandbox-url",
        url,
        *(["--kruise-conformance-admin-key", ADMIN_KEY] if admin_key else []),
        "--kruise-conformance-levels",
        level,
        "-k",
        name,
        "--kruise-conformance-junit",
        str(junit),
    ]
    env = clean_env({"E2B_API_KEY": USER_KEY, "COLUMNS": "200"})
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert junit.exists(), output
    return SuiteRun(proc.returncode, output, read_junit(junit), junit, out / "none.md")


def test_claim_timeout_passes_a_server_whose_cold_create_is_slow(tmp_path: Path) -> None:
    """``kruise.claim-timeout`` only shows the key is accepted: it passes a server whose create
    takes 40 s and honours the claim timeout it is given."""
    with serve(mutant=_deadline_server) as url:
        run = _only(tmp_path, url, "kruise", "test_claim_timeout")
    assert run.with_status("pass") == {"kruise.claim-timeout"}, run.output[-3000:]


def test_set_timeout_allows_the_server_time_a_cold_create_took(tmp_path: Path) -> None:
    """On a virtual clock a cold create moves server time 40 s between the claim (endAt counts
    from it) and its answer: ``core.timeout`` allows it, read from the server's clock."""
    with serve(mutant=_cold_create_server) as url:
        run = _only(tmp_path, url, "core", "test_set_timeout")
    assert run.with_status("pass") == {"core.timeout"}, run.output[-3000:]


def test_timing_failures_without_the_admin_key_name_the_clock_and_the_key(
    tmp_path: Path,
) -> None:
    """A realtime x20 server (its creates answering two wall seconds after the claim) run without
    its admin key: the suite counts server time on the wall clock, so ``core.timeout`` and
    ``lifecycle.auto-pause`` fail, and each failure says why (the admin clock refused the
    keys; pass ``--kruise-conformance-admin-key``)."""
    with serve(clock="realtime", speed=REALTIME_SPEED, mutant=_slow_answer_server) as url:
        core = _only(tmp_path / "core", url, "core", "test_set_timeout", admin_key=False)
        life = _only(tmp_path / "life", url, "lifecycle", "test_auto_pause", admin_key=False)
    for run, cid in ((core, "core.timeout"), (life, "lifecycle.auto-pause")):
        assert run.with_status("fail") == {cid}, run.output[-3000:]
        message = run.results[cid].message
        assert "refused the keys given" in message, message
        assert "--kruise-conformance-admin-key" in message, message
