"""The checks a mutation test found too lax (or too strict) now tell the servers apart.

Each mutant (:mod:`.mutants`) is a server the suite used to judge wrongly: one
that gets a behaviour wrong and passed, or one that conforms and failed. Against
a wrong one, the check of that behaviour fails with a message saying what it
expected and what it saw, and only the checks depending on it (or, for
timestamps every check reading one, ``also``) fail with it; a conforming one
passes every check of the level.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_kruise_agents.conformance.registry import CHECKS, dependents

from .conftest import run_cli, serve
from .mutants import MUTANTS

WRONG = [
    pytest.param(
        "envd-token-reads-only",
        "envd",
        "envd.auth.token",
        "envd filesystem ListDir RPC without X-Access-Token: expected HTTP 401, but saw HTTP 200",
        set(),
        id="envd-token-reads-only",
    ),
    pytest.param(
        "auth-only-list-create",
        "core",
        "core.auth",
        "(unknown sandbox) without X-API-Key: expected HTTP 401, but saw HTTP 404",
        set(),
        id="auth-only-list-create",
    ),
    pytest.param(
        "auto-pause-immediate",
        "lifecycle",
        "lifecycle.auto-pause",
        "right after create (30 s timeout with autoPause; virtual (admin clock)): expected state "
        "'running' (it pauses when its timeout passes), but saw state='paused'",
        set(),
        id="auto-pause-immediate",
    ),
    pytest.param(
        "download-first-64k",
        "envd",
        "envd.files.write-read",
        "expected the 1048576 bytes written, but saw 65536 bytes (wrote 1048576)",
        set(),
        id="download-first-64k",
    ),
    *(
        pytest.param(
            name,
            "core",
            "core.get",
            f"startedAt: expected an RFC 3339 timestamp, but saw '{example}",
            {"core.list.order", "core.list.order.default", "core.list.started-after"},
            id=name,
        )
        for name, example in (("ts-basic", "20260101T"), ("ts-week", "2026-W"))
    ),
    pytest.param(
        "resume-ignores-timeout",
        "lifecycle",
        "lifecycle.connect.resume",
        "expected endAt at least 600 s after the resume",
        set(),
        id="resume-ignores-timeout",
    ),
    pytest.param(
        "kruise-prefix-partial",
        "kruise",
        "kruise.api-prefix",
        "/timeout {timeout: 600}: expected HTTP 204, but saw HTTP 404",
        set(),
        id="kruise-prefix-partial",
    ),
    pytest.param(
        "envd-ignore-cwd",
        "envd",
        "envd.commands.cwd",
        "cwd=",
        set(),
        id="envd-ignore-cwd",
    ),
    pytest.param(
        "envd-ignore-stdin",
        "envd",
        "envd.commands.stdin",
        "send_stdin",
        set(),
        id="envd-ignore-stdin",
    ),
    pytest.param(
        "envd-connect-broken",
        "envd",
        "envd.commands.connect",
        "commands.connect(",
        set(),
        id="envd-connect-broken",
    ),
    pytest.param(
        "envd-upload-needs-path",
        "envd",
        "envd.files.write-many",
        "files.write_files(",
        set(),
        id="envd-upload-needs-path",
    ),
    pytest.param(
        "envd-list-no-config",
        "envd",
        "envd.commands.background",
        "expected cmd '/bin/bash' and args ['-l', '-c',",
        set(),
        id="envd-list-no-config",
    ),
    pytest.param(
        # The search of the list by command found nothing, and the check passed vacuously.
        "envd-no-deadline-list-no-config",
        "envd",
        "envd.commands.timeout",
        "still running as pid",
        {"envd.commands.background"} | dependents("envd.commands.background"),
        id="envd-no-deadline-list-no-config",
    ),
    pytest.param(
        "code-drop-stderr",
        "code",
        "code.logs",
        "stderr logs: expected 'to-err\\n', but saw ''",
        set(),
        id="code-drop-stderr",
    ),
    pytest.param(
        "code-stderr-as-stdout",
        "code",
        "code.logs",
        "stdout logs: expected 'to-out\\n', but saw 'to-out\\nto-err\\n'",
        set(),
        id="code-stderr-as-stdout",
    ),
    pytest.param(
        "code-text-only",
        "code",
        "code.display",
        "expected a result with html '<b>conformance</b>'",
        set(),
        id="code-text-only",
    ),
    pytest.param(
        "code-no-exec-count",
        "code",
        "code.execution-count",
        "execution_count: expected an integer, but saw None",
        set(),
        id="code-no-exec-count",
    ),
    pytest.param(
        "list-keeps-killed",
        "core",
        "core.kill",
        "not listed (it answered DELETE with 204), but saw it listed (state 'running')",
        set(),
        id="list-keeps-killed",
    ),
    pytest.param(
        "list-keeps-killed-paused",
        "core,lifecycle",
        "lifecycle.kill-paused",
        "not listed (it answered DELETE with 204), but saw it listed (state 'paused')",
        set(),
        id="list-keeps-killed-paused",
    ),
    pytest.param(
        "list-drops-metadata",
        "core",
        "core.list",
        "expected its metadata conformance-note='a b&c=d/e%f', but saw metadata=None",
        set(),
        id="list-drops-metadata",
    ),
    pytest.param(
        "list-default-running-only",
        "core,lifecycle",
        "lifecycle.list.states",
        "(no state: both states): expected",
        set(),
        id="list-default-running-only",
    ),
    pytest.param(
        "next-page-drops-filter",
        "core",
        "core.list.pagination",
        "expected only sandboxes with metadata conformance-run=",
        set(),
        id="next-page-drops-filter",
    ),
    pytest.param(
        "auth-open-v1-create",
        "core",
        "core.auth",
        "POST /sandboxes (the create route of e2b 2.20 to 2.50) without X-API-Key: expected "
        "HTTP 401 (or 404 or 405: a route the server does not serve), but saw HTTP 201",
        set(),
        id="auth-open-v1-create",
    ),
    pytest.param(
        "auth-open-kruise-prefix",
        "core",
        "core.auth",
        "GET /kruise/api/v2/sandboxes without X-API-Key: expected HTTP 401, but saw HTTP 200",
        set(),
        id="auth-open-kruise-prefix",
    ),
    pytest.param(
        "unknown-404-500",
        "core",
        "core.unknown-sandbox",
        "(unknown sandbox): expected HTTP 404, but saw HTTP 500",
        set(),
        id="unknown-404-500",
    ),
    pytest.param(
        "list-metadata-substring",
        "core",
        "core.list.metadata",
        "exactly [",
        set(),
        id="list-metadata-substring",
    ),
    pytest.param(
        "paused-detail-no-end",
        "core,lifecycle",
        "lifecycle.pause",
        "after pause: expected 'endAt' of type str, but saw endAt=None",
        set(),
        id="paused-detail-no-end",
    ),
    pytest.param(
        "connect-drops-token",
        "core,lifecycle,envd",
        "lifecycle.connect.token",
        "expected HTTP 200 (envd takes the token of the connect answer",
        set(),
        id="connect-drops-token",
    ),
    pytest.param(
        "envd-user-only",
        "envd",
        "envd.user",
        "commands.run('echo as-root', user='root'): expected success, but saw "
        "AuthenticationException",
        set(),
        id="envd-user-only",
    ),
]


@pytest.mark.parametrize(("mutant", "levels", "broken", "message", "also"), WRONG)
def test_a_server_getting_the_behaviour_wrong_fails_its_check(
    mutant: str, levels: str, broken: str, message: str, also: set[str], tmp_path: Path
) -> None:
    with serve(mutant=MUTANTS[mutant]) as url:
        # On the virtual clock a list shows a change at once: a list check that fails asks
        # again for one second, not ten (as in test_breakages).
        run = run_cli(url, tmp_path, levels=levels, extra=["--list-settle", "1"])
    assert run.returncode == 1, run.output[-3000:]
    failed = run.with_status("fail")
    assert broken in failed, run.output[-3000:]
    assert failed <= {broken} | dependents(broken) | also, run.output[-3000:]
    assert message in run.results[broken].message, run.results[broken].message
    for cid in failed & dependents(broken):
        assert run.results[cid].message.startswith("blocked: depends on "), run.results[cid]


@pytest.mark.parametrize("mutant", ["order-stable-ties", "ts-lower-z"])
def test_a_conforming_server_passes_every_check_of_the_level(mutant: str, tmp_path: Path) -> None:
    """Sandboxes started at one instant listed in id order both ways (E2B orders by startedAt
    only); timestamps with a lower-case ``t`` and ``z`` (RFC 3339 §5.6 allows them)."""
    with serve(mutant=MUTANTS[mutant]) as url:
        run = run_cli(url, tmp_path, levels="core")
    assert run.with_status("pass") == {c.id for c in CHECKS if c.level == "core"}, run.output
    assert run.returncode == 0
