"""A server may differ from this project's and still be right: the suite passes it, skips what
it does not offer with the reason, and fails only what it gets wrong, saying so truly.

Each server is this project's wrapped in one :mod:`.variants` middleware (hunt GF's false
positives and negatives of the suite).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_kruise_agents.conformance.plugin import sweep
from pytest_kruise_agents.conformance.registry import CHECKS, dependents
from pytest_kruise_agents.conformance.target import LIST_SETTLE_S, Api, Target
from pytest_kruise_agents.e2b.rewriting import call, json_answer, reply

from . import variants
from .conftest import USER_KEY, Wrap, check_seconds, run_cli, run_pytest, serve
from .test_suite import PYTHON_28

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


def _level(*levels: str) -> set[str]:
    return {c.id for c in CHECKS if c.level in levels}


@pytest.mark.parametrize(
    ("wrap", "levels"),
    [
        # envdVersion "v0.2.10": PEP 440, read by the SDK as 0.2.10.
        pytest.param(variants.envd_v_prefix, "core", id="envd-version-v-prefix"),
        # limit is a maximum: a page before the last may hold fewer.
        pytest.param(variants.short_pages, "core", id="short-list-pages"),
        # The SDK reads the HTTP status of an API error, never its code.
        pytest.param(variants.error_code_zero, "core", id="error-code-zero"),
        # No /kruise/api, newest first without order: E2B's own server.
        pytest.param(variants.plain_e2b, "core", id="plain-e2b"),
        # The SDK reads the text of a proxy 502 that is no JSON.
        pytest.param(variants.text_502, "lifecycle", id="text-proxy-502"),
        # The SDK takes the envd token from the create answer.
        pytest.param(variants.token_on_create_only, "envd", id="token-on-create-only"),
    ],
)
def test_a_valid_server_passes_every_check_of_the_level(
    wrap: Wrap, levels: str, tmp_path: Path
) -> None:
    with serve(wrap=wrap) as url:
        run = run_cli(url, tmp_path, levels=levels)
    assert run.with_status("pass") == _level(*levels.split(",")), run.output[-3000:]
    assert run.returncode == 0


@pytest.mark.parametrize(
    ("wrap", "status"),
    [
        # This project's server, as the sandbox-manager (Kruise §6.5): 204, the SDK's True.
        pytest.param(None, 204, id="kruise-204"),
        # A plain E2B server: 409, the SDK's False.
        pytest.param(variants.plain_e2b, 409, id="plain-e2b-409"),
    ],
)
def test_a_server_answering_a_pause_of_a_paused_sandbox_as_its_kind_does_passes_lifecycle(
    wrap: Wrap | None, status: int, tmp_path: Path
) -> None:
    """The sandbox-manager finds an already paused sandbox pausable and answers 204, which a
    server with the OpenKruise extensions may; E2B answers 409. Each passes the level."""
    with serve(wrap=wrap) as url:
        with httpx.Client(base_url=url, headers={"X-API-Key": USER_KEY}, timeout=60) as client:
            sid = client.post("/sandboxes", json={"templateID": "base"}).json()["sandboxID"]
            assert client.post(f"/sandboxes/{sid}/pause", json={}).status_code == 204
            assert client.post(f"/sandboxes/{sid}/pause", json={}).status_code == status
            client.delete(f"/sandboxes/{sid}")
        run = run_cli(url, tmp_path, levels="lifecycle")
    assert run.with_status("pass") == _level("lifecycle"), run.output[-3000:]
    assert run.returncode == 0


def test_a_server_without_the_kruise_extensions_answering_204_fails_the_pause_conflict(
    tmp_path: Path,
) -> None:
    """Without ``/kruise/api`` the server is taken for a plain E2B server, which answers 409 to
    a pause of a paused sandbox: the sandbox-manager's 204 fails there (and only that check,
    with its dependents)."""
    with serve(wrap=variants.no_kruise) as url:
        run = run_cli(url, tmp_path, levels="lifecycle")
    broken = "lifecycle.pause.conflict"
    assert run.with_status("fail") == {broken} | (dependents(broken) & set(run.results)), (
        run.output[-3000:]
    )
    assert "expected HTTP 409, but saw HTTP 204" in run.results[broken].message
    assert run.returncode == 1


def test_a_server_without_the_kruise_extensions_skips_the_kruise_level_with_the_reason(
    tmp_path: Path,
) -> None:
    with serve(wrap=variants.no_kruise) as url:
        run = run_cli(url, tmp_path, levels="kruise")
    assert run.with_status("skip") == _level("kruise"), run.output[-3000:]
    reason = (
        "the server does not serve the OpenKruise extensions (GET /kruise/api/v2/sandboxes "
        "answered HTTP 404); leave kruise out of --levels"
    )
    assert {r.message for r in run.results.values()} == {reason}
    assert run.returncode == 0


def test_a_server_without_the_code_template_skips_the_code_level_with_the_reason(
    tmp_path: Path,
) -> None:
    with serve() as url:
        run = run_cli(url, tmp_path, levels="code", extra=["--code-template", "no-such-code"])
    assert run.with_status("skip") == _level("code"), run.output[-3000:]
    message = run.results["code.run"].message
    assert message.startswith(
        "the server has no template 'no-such-code' to run the code interpreter (create answered 400: "
    ), message
    assert message.endswith("pass --code-template, or leave code out of --levels"), message
    assert run.returncode == 0


def test_a_plain_e2b_server_listing_oldest_first_by_default_fails_the_default_order(
    tmp_path: Path,
) -> None:
    """Oldest first is the sandbox-manager's order (Kruise §6.7), accepted from a server with
    its extensions only: E2B lists newest first."""
    with serve(wrap=variants.no_kruise) as url:
        run = run_cli(url, tmp_path, levels="core")
    assert run.with_status("fail") == {"core.list.order.default"}, run.output[-3000:]
    message = run.results["core.list.order.default"].message
    assert "expected startedAt descending (newest first, the default order), but saw" in message


def test_a_server_with_only_the_v2_routes_fails_only_the_other_routes_check(
    tmp_path: Path,
) -> None:
    """What e2b >= 2.51 calls is all there: only the check of the older SDKs' routes fails."""
    with serve(wrap=variants.v2_only) as url:
        run = run_cli(url, tmp_path, levels="core,lifecycle")
    assert run.with_status("fail") == {"core.create.other-routes"}, run.output[-3000:]
    assert run.results["core.create.other-routes"].message == (
        "POST /sandboxes (the create route of e2b 2.20 to 2.50): expected HTTP 201, but saw "
        'HTTP 404 {"code": 404, "message": "Not Found"}'
    )


def test_under_e2b_2_8_a_server_with_only_the_v1_routes_fails_only_the_other_routes_check(
    tmp_path: Path,
) -> None:
    """The sandbox-manager's routes (Kruise §6.2) are all e2b 2.8 calls; the server's default
    timeout is never used by it (it always sends one), so that check is skipped."""
    with serve(wrap=variants.v1_only) as url:
        run = run_pytest(
            PYTHON_28, url, tmp_path, extra=["--kruise-conformance-levels", "core,lifecycle"]
        )
    assert run.with_status("fail") == {"core.create.other-routes"}, run.output[-3000:]
    message = run.results["core.create.other-routes"].message
    assert message.startswith("POST /v2/sandboxes (the create route of e2b >= 2.51): expected")
    assert run.with_status("skip") == {"core.create.default-timeout"}
    assert run.results["core.create.default-timeout"].message.startswith(
        "e2b 2.8.1 creates with POST /sandboxes and always sends a timeout (300 s)"
    )


def test_the_other_routes_check_names_the_sdks_of_the_routes_it_calls() -> None:
    """A suite whose own calls take the older routes (``Api(v2_routes=False)``, whatever the
    installed SDK) checks the /v2/ ones as the routes of e2b >= 2.51."""
    from pytest_kruise_agents.conformance.expect import CheckFailed
    from pytest_kruise_agents.conformance.sandboxes import Sandboxes
    from pytest_kruise_agents.conformance.test_core import test_create_other_routes

    with serve(wrap=variants.v1_only) as url:
        target = Target(api_url=url, api_key=USER_KEY, sandbox_url=url, run_id="older-routes")
        api = Api(target, v2_routes=False)
        made = Sandboxes(target, api)
        try:
            with pytest.raises(CheckFailed) as info:
                test_create_other_routes(api, made)
        finally:
            made.cleanup()
            api.close()
    assert str(info.value).startswith(
        "POST /v2/sandboxes (the create route of e2b >= 2.51): expected HTTP 201, but saw HTTP 404"
    ), info.value


def test_a_list_ignoring_started_after_template_and_joined_states_fails_those_checks(
    tmp_path: Path,
) -> None:
    """Each check asks the list again for the ``--list-settle`` seconds given (1 s), not for
    the default 10 s, before it fails."""
    with serve(wrap=variants.list_lax) as url:
        run = run_cli(url, tmp_path, levels="core,lifecycle", extra=["--list-settle", "1"])
    wanted = {"core.list.started-after", "core.list.template", "lifecycle.list.states"}
    assert run.with_status("fail") == wanted, run.output[-3000:]
    took = check_seconds(run.junit)
    assert all(took[cid] < LIST_SETTLE_S for cid in wanted), took
    messages = {cid: run.results[cid].message for cid in wanted}
    assert "started at" in messages["core.list.started-after"]
    assert ", before it, but saw [" in messages["core.list.started-after"]
    assert "(of template 'base'), but saw [" in messages["core.list.template"]
    assert "listed paused, but saw {} among 0 listed" in messages["lifecycle.list.states"]


NULLED: list[str] = []
"""The sandboxes :func:`_null_metadata` listed with ``"metadata": null``."""


def _null_metadata(app: ASGIApp) -> ASGIApp:
    """Every list item has ``"metadata": null`` (its id goes to :data:`NULLED`)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v2/sandboxes":
            await app(scope, receive, send)
            return
        answer = await call(app, scope, receive)
        items = answer.json()
        if isinstance(items, list) and items:
            for item in items:
                item["metadata"] = None
                NULLED.append(item["sandboxID"])
            answer = json_answer(answer, answer.status, items)
        await reply(send, answer)

    return middleware


def test_the_final_sweep_kills_what_the_run_made_also_when_listed_with_null_metadata() -> None:
    """The sweep goes past every item with ``"metadata": null`` and kills those the run
    created; one made by another client of the same filter stays: nothing says it is the
    run's."""
    with serve(wrap=_null_metadata) as url:
        target = Target(api_url=url, api_key=USER_KEY, sandbox_url=url, run_id="sweep-null")
        api, other = Api(target), Api(target)
        try:
            made = [api.create("base").json()["sandboxID"] for _ in range(2)]
            foreign = other.create("base").json()["sandboxID"]
            NULLED.clear()
            sweep(api)
            left = {sid: api.get(sid).status_code for sid in [*made, foreign]}
        finally:
            api.close()
            other.close()
    assert set(NULLED) == {*made, foreign}
    assert left == {made[0]: 404, made[1]: 404, foreign: 200}
