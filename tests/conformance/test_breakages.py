"""The suite can fail: against a server with one behaviour broken, exactly that check fails.

Each named breakage (:mod:`pytest_kruise_agents.e2b.breakage`) gets one
behaviour wrong. The suite must then fail the check of that behaviour, with
a message saying what it expected and what it saw, fail the checks that
depend on it as "blocked", and pass every other check.

The suite runs with ``--list-settle 1``: on the virtual clock a list shows a
change at once, and a list check that fails asks again for one second, not ten.

The ``code`` level (real Jupyter kernels, by far the costliest) runs only
against the breakage of the code interpreter: no other breakage touches
port 49999, and leaving it out also shows that ``--levels`` runs exactly the
chosen levels.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.conformance.registry import CHECKS, by_id, dependents
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.breakage import BREAKAGES, break_app
from pytest_kruise_agents.e2b.settings import Settings

from .conftest import USER_KEY, SuiteRun, run_cli, run_pytest, serve

BROKEN_CHECK = {
    "auth-open": "core.auth",
    "error-body-shape": "core.errors",
    "create-200": "core.create",
    "unknown-template-500": "core.create.unknown-template",
    "default-timeout-3600": "core.create.default-timeout",
    "list-ignores-metadata": "core.list.metadata",
    "list-ignores-order": "core.list.order",
    "no-next-token": "core.list.pagination",
    "kill-200": "core.kill",
    "timeout-not-enforced": "core.timeout.enforced",
    "connect-shortens": "lifecycle.connect.never-shortens",
    "pause-twice-resumes": "lifecycle.pause.conflict",
    "resume-200": "lifecycle.connect.resume",
    "auto-pause-kills": "lifecycle.auto-pause",
    "proxy-502-body": "lifecycle.proxy.not-found",
    "envd-no-token-check": "envd.auth.token",
    "code-loses-state": "code.state",
    "label-ignored": "kruise.label",
    "never-timeout-ignored": "kruise.never-timeout",
}
"""Each breakage and the check it breaks."""

EXPECTED_MESSAGE = {
    "create-200": "expected HTTP 201, but saw HTTP 200",
    "kill-200": "expected HTTP 204, but saw HTTP 200",
    "pause-twice-resumes": "but saw state='running'",
    "resume-200": "expected HTTP 201, but saw HTTP 200",
    "unknown-template-500": "expected HTTP 400 or 404, but saw HTTP 500",
    "auth-open": "expected HTTP 401, but saw HTTP 200",
    "envd-no-token-check": "expected HTTP 401, but saw HTTP 200",
    "no-next-token": "X-Next-Token on every page but the last",
    "proxy-502-body": "message contains 'was not found'",
    "error-body-shape": 'an error body {"code": <integer>, "message": "..."} (integer code)',
    "auto-pause-kills": "expected state 'paused', but saw HTTP 404 (killed, not paused)",
    "never-timeout-ignored": "but saw HTTP 404 (it timed out)",
    "default-timeout-3600": "expected endAt - startedAt = 300 s, but saw 3600 s",
}
"""For some breakages, a piece of the failure message a reader relies on."""

_COUNTS = re.compile(r"\b\d+ (passed|failed|skipped|errors?|deselected)\b")


def _summary_lines(output: str) -> list[str]:
    """The lines of ``output`` that count checks (the suite's summary, pytest's)."""
    return [line.strip() for line in output.splitlines() if _COUNTS.search(line)]


def _suite_summary(run: SuiteRun) -> str:
    counts = [len(run.with_status(s)) for s in ("pass", "fail", "skip")]
    return "{} passed, {} failed, {} skipped".format(*counts)


def test_every_breakage_is_covered_and_breaks_a_known_check() -> None:
    assert set(BROKEN_CHECK) == set(BREAKAGES)
    assert set(BROKEN_CHECK.values()) <= {c.id for c in CHECKS}
    assert len(set(BROKEN_CHECK.values())) == len(BROKEN_CHECK)


def test_an_unknown_breakage_is_refused_with_the_choices() -> None:
    backend = SimBackend.default(replicas=1)
    try:
        settings = Settings()
        with pytest.raises(ValueError, match="unknown breakage 'nope'; choose from auth-open, "):
            break_app(create_app(backend, settings), "nope", backend=backend, settings=settings)
    finally:
        backend.close()


def test_a_breakage_holds_on_every_path_of_its_route() -> None:
    """The suite creates on ``/v2/sandboxes``, an SDK on ``/sandboxes``, a client behind the
    ``/kruise/api`` prefix on either: the broken create answers 200 on each of them."""
    body = {"templateID": "base", "timeout": 60}
    with serve(breakage="create-200") as url, httpx.Client(timeout=120) as client:
        for path in ("/sandboxes", "/v2/sandboxes", "/kruise/api/sandboxes"):
            resp = client.post(url + path, headers={"X-API-Key": USER_KEY}, json=body)
            assert resp.status_code == 200, (path, resp.text)


def test_the_error_body_breakage_reshapes_every_control_plane_error() -> None:
    """A 400 and a 401 as well as a 404: every error answers ``{"error": ...}`` without code."""
    with serve(breakage="error-body-shape") as url, httpx.Client(timeout=120) as client:
        unknown = client.get(url + "/sandboxes/nope", headers={"X-API-Key": USER_KEY})
        no_key = client.get(url + "/v2/sandboxes")
        bad = client.post(url + "/sandboxes", headers={"X-API-Key": USER_KEY}, json={})
    for resp, status in ((unknown, 404), (no_key, 401), (bad, 400)):
        assert resp.status_code == status, resp.text
        assert set(resp.json()) == {"error"}, resp.text


@pytest.mark.parametrize("breakage", sorted(BROKEN_CHECK))
def test_a_breakage_fails_exactly_its_check_and_the_checks_depending_on_it(
    breakage: str, tmp_path: Path
) -> None:
    broken = BROKEN_CHECK[breakage]
    levels: tuple[str, ...] = ("core", "lifecycle", "envd", "kruise")
    if by_id(broken).level == "code":
        levels += ("code",)
    with serve(breakage=breakage) as url:
        run = run_cli(url, tmp_path, levels=",".join(levels), extra=["--list-settle", "1"])
    assert run.returncode == 1, run.output[-3000:]
    assert set(run.results) == {c.id for c in CHECKS if c.level in levels}
    blocked = dependents(broken) & set(run.results)
    assert run.with_status("fail") == {broken} | blocked, run.output[-5000:]
    assert run.with_status("skip") == set(), run.output[-3000:]
    message = run.results[broken].message
    assert "expected" in message and "but saw" in message, message
    assert breakage not in EXPECTED_MESSAGE or EXPECTED_MESSAGE[breakage] in message, message
    for cid in blocked:
        assert run.results[cid].message.startswith("blocked: depends on "), run.results[cid]
    # One summary, the suite's: no second one of pytest's counting blocked checks as errors.
    assert _summary_lines(run.output) == [_suite_summary(run)], run.output[-3000:]


def test_a_blocked_check_is_a_failure_in_pytest_s_own_output_too(tmp_path: Path) -> None:
    """With ``--verbose`` pytest's detail is kept (a line per check, the traceback of the
    failed check) but the only summary is the suite's, and a blocked check shows as FAILED
    with its reason, not as a setup error; the pytest form's own summary counts it failed."""
    levels = "core,kruise"
    for name in ("cli", "pytest"):
        (tmp_path / name).mkdir()
    with serve(breakage="kill-200") as url:
        verbose = run_cli(url, tmp_path / "cli", levels=levels, extra=["--verbose"])
        plain = run_pytest(
            Path(sys.executable),
            url,
            tmp_path / "pytest",
            extra=["--kruise-conformance-levels", levels],
            # Here the plugin is installed as well: load it once, by the command's -p.
            env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        )
    blocked = dependents("core.kill") & set(verbose.results)
    assert blocked and verbose.with_status("fail") == {"core.kill"} | blocked
    out = verbose.output
    assert "test_core.py::test_kill FAILED" in out, out[-3000:]
    assert "test_kruise.py::test_api_prefix FAILED" in out, out[-3000:]
    assert "CheckFailed: DELETE /sandboxes/" in out  # the failed check's traceback
    assert "\nblocked: depends on core.kill, which failed\n" in out  # the blocked one's reason
    assert "DependencyFailed" not in out and "ERROR" not in out
    assert _summary_lines(out) == [_suite_summary(verbose)], out[-3000:]
    assert plain.with_status("fail") == verbose.with_status("fail")
    failed = len(plain.with_status("fail"))
    assert re.search(rf"\b{failed} failed, \d+ passed, \d+ deselected in ", plain.output), (
        plain.output[-3000:]
    )
    assert " error" not in _summary_lines(plain.output)[-1], plain.output[-3000:]
