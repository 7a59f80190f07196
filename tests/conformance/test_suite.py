"""The whole suite passes against this project's server, in both clock modes, with every level."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from pytest_kruise_agents.conformance.registry import CHECKS, LEVELS

from .conftest import (
    ADMIN_KEY,
    REALTIME_SPEED,
    ROOT,
    USER_KEY,
    SuiteRun,
    run_cli,
    run_pytest,
    serve,
)

ALL = {c.id for c in CHECKS}
PYTHON_28 = ROOT / ".sdk" / "e2b-2.8" / "bin" / "python"


def _assert_all_pass(run: SuiteRun, wanted: set[str]) -> None:
    failed = {cid: r.message for cid, r in run.results.items() if r.status != "pass"}
    assert not failed, f"{failed}\n{run.output[-4000:]}"
    assert set(run.results) == wanted, run.output[-2000:]


def test_every_check_passes_against_the_fake_server_on_the_virtual_clock(tmp_path: Path) -> None:
    with serve(clock="virtual") as url:
        run = run_cli(url, tmp_path)
    _assert_all_pass(run, ALL)
    assert run.returncode == 0, run.output
    # The terminal table, the Markdown report and the JUnit XML all say so.
    # The table's summary line is the last the command prints: pytest's own (which counts
    # otherwise) is not printed after it.
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert lines[-1].strip() == f"{len(ALL)} passed, 0 failed, 0 skipped", run.output[-2000:]
    assert "core.create" in run.output and "PASS" in run.output
    report = run.report.read_text()
    assert report.startswith("# E2B conformance report")
    assert f"**Result: {len(ALL)} passed, 0 failed, 0 skipped**" in report
    assert "- **Clock**: virtual (admin clock)" in report
    for level in LEVELS:
        assert f"\n## {level} (" in report
    assert "| `core.kill` | PASS |" in report


def test_the_exports_serve_prints_give_the_command_its_keys(tmp_path: Path) -> None:
    """``kruise-agents serve`` prints ``export KRUISE_ADMIN_KEY=...`` with the ``E2B_*`` lines:
    pasted, the documented command finds the admin clock without ``--admin-key`` (on the
    wall clock a virtual-clock server's timeouts would never come)."""
    with serve(clock="virtual") as url:
        env = {"E2B_API_KEY": USER_KEY, "KRUISE_ADMIN_KEY": ADMIN_KEY}
        run = run_cli(url, tmp_path, levels="core", key=False, admin_key=False, env=env)
    _assert_all_pass(run, {c.id for c in CHECKS if c.level == "core"})
    assert "- **Clock**: virtual (admin clock)" in run.report.read_text()


def test_every_check_passes_against_the_fake_server_on_the_realtime_clock(tmp_path: Path) -> None:
    with serve(clock="realtime", speed=REALTIME_SPEED) as url:
        run = run_cli(url, tmp_path)
    _assert_all_pass(run, ALL)
    assert f"- **Clock**: realtime x{REALTIME_SPEED:g} (admin clock)" in run.report.read_text()


def test_the_suite_runs_under_e2b_2_8_through_pytest_pyargs(tmp_path: Path) -> None:
    assert PYTHON_28.exists(), "run `make sdks` to install e2b 2.8.x into .sdk/e2b-2.8"
    version = subprocess.run(
        [str(PYTHON_28), "-c", "import importlib.metadata as m; print(m.version('e2b'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith("2.8."), version
    with serve(clock="virtual") as url:
        run = run_pytest(PYTHON_28, url, tmp_path)
    # e2b-code-interpreter needs e2b >= 2.55: without it the code level is skipped, with the
    # reason; e2b 2.8 always sends a create timeout, so the server's default is never used.
    skipped = {c.id for c in CHECKS if c.level == "code"} | {"core.create.default-timeout"}
    assert run.with_status("skip") == skipped, run.output[-4000:]
    assert run.results["code.run"].message == "e2b-code-interpreter is not installed"
    _assert_all_pass_but(run, skipped=skipped)


def _assert_all_pass_but(run: SuiteRun, *, skipped: set[str]) -> None:
    failed = {cid: r.message for cid, r in run.results.items() if r.status == "fail"}
    assert not failed, f"{failed}\n{run.output[-4000:]}"
    assert run.with_status("pass") == ALL - skipped


def test_list_checks_wait_for_a_list_that_shows_a_change_a_moment_later(tmp_path: Path) -> None:
    """Lists come from caches: with the manager's cache a second behind, the checks still pass.

    On the wall clock a list right after a create misses the new sandbox for
    one watch lag (as the sandbox-manager's informer cache would); the list
    checks ask again until the list shows it, for a bounded time. The server
    runs at x5 with a 5 s lag: the cache is a wall second behind, and the
    checks' waits in server time (sandboxes created a second apart, a 2 s
    timeout) take a fifth of a wall second each.
    """
    with serve(clock="realtime", speed=5.0) as url:
        lag = {
            "kind": "watch_lag",
            "latency": "fixed(5s)",
            "selector": {"informer": "sandbox-manager"},
        }
        r = httpx.post(f"{url}/_kruise/faults", headers={"X-API-Key": ADMIN_KEY}, json=lag)
        assert r.status_code == 201, r.text
        run = run_cli(url, tmp_path, levels="core")
    _assert_all_pass(run, {c.id for c in CHECKS if c.level == "core"})
