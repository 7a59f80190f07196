"""The conformance suite against this project's server: serve it here, run the suite as a user would.

The server (the fake cluster behind the E2B app, optionally wrapped in one
named breakage) runs on uvicorn in this process; the suite runs in a
subprocess through ``kruise-agents conformance`` (or pytest under another
interpreter) and its results are read back from its JUnit XML.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from pytest_kruise_agents.backends.base import ClockMode
from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.breakage import break_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from .mutants import Mutant

ROOT = Path(__file__).resolve().parents[2]
KRUISE_AGENTS = Path(sys.executable).with_name("kruise-agents")
USER_KEY = "e2b_conformance_user_000000000000000000000000000000"
ADMIN_KEY = "e2b_conformance_admin_00000000000000000000000000000"
NO_STOCK = "empty"
FILLER_KEY = "team-filler"
"""Metadata key of the sandboxes :func:`fill_team` makes: the team's others, not the run's."""
REALTIME_SPEED = 20.0
"""Virtual seconds per wall second in realtime mode: timeouts of tens of seconds take a second or two."""

EMPTY_POOL = f"""apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: {NO_STOCK}, namespace: default}}
spec:
  replicas: 0
  runtimes: [{{name: agent-runtime}}]
  template:
    spec:
      containers:
      - name: sandbox
        image: registry.example.com/e2b/{NO_STOCK}:v1
"""


Wrap = Callable[["ASGIApp"], "ASGIApp"]
"""A test's own ASGI middleware around the served app (a fault no named breakage has)."""


@contextmanager
def serve(
    *,
    clock: ClockMode = "virtual",
    speed: float = 1.0,
    breakage: str | None = None,
    wrap: Wrap | None = None,
    mutant: Mutant | None = None,
    auth: bool = True,
    nodes: int = 4,
) -> Iterator[str]:
    """Serve the default cluster (plus the empty pool ``empty``) on 127.0.0.1; yield its URL.

    ``breakage`` names one of the server's breakages; ``mutant`` (:mod:`.mutants`) and
    ``wrap`` are the tests' own middlewares around it.
    """
    backend = SimBackend.default(seed=6, replicas=16, clock=clock, speed=speed, nodes=nodes)
    backend.apply(EMPTY_POOL)
    settings = Settings(
        auth_enabled=auth,
        api_keys=[
            ApiKey(key=USER_KEY, team="default", id="conformance"),
            ApiKey(key=ADMIN_KEY, admin=True, id="admin"),
        ],
    )
    app = create_app(backend, settings)
    served = break_app(app, breakage, backend=backend, settings=settings) if breakage else app
    if mutant is not None:
        served = mutant(served, backend, USER_KEY)
    if wrap is not None:
        served = wrap(served)
    thread = ServerThread(served).start()
    try:
        yield thread.url
    finally:
        thread.stop()
        backend.close()


def fill_team(url: str, count: int) -> None:
    """Create ``count`` sandboxes of the team that are not the suite's (metadata
    :data:`FILLER_KEY`), never timing out: a busy team, as the suite may find one."""
    body: dict[str, Any] = {
        "templateID": "base",
        "timeout": 86400,
        "metadata": {FILLER_KEY: "yes", "e2b.agents.kruise.io/never-timeout": "true"},
        "envVars": {},
    }
    with httpx.Client(timeout=120) as client:
        for _ in range(count):
            resp = client.post(url + "/v2/sandboxes", headers={"X-API-Key": USER_KEY}, json=body)
            assert resp.status_code == 201, resp.text


@dataclass(frozen=True)
class Result:
    """How one check ended, from the suite's JUnit XML."""

    status: str  # "pass", "fail", "skip" or "error" (interrupted before it ended)
    message: str


@dataclass(frozen=True)
class SuiteRun:
    """The outcome of one run of the suite."""

    returncode: int
    output: str
    results: dict[str, Result]
    junit: Path
    report: Path

    def with_status(self, status: str) -> set[str]:
        """The ids of the checks that ended with ``status``."""
        return {cid for cid, r in self.results.items() if r.status == status}


def read_junit(path: Path) -> dict[str, Result]:
    """Check id → result, from the suite's JUnit XML."""
    results: dict[str, Result] = {}
    for case in ET.parse(path).iter("testcase"):
        failure, skipped, error = case.find("failure"), case.find("skipped"), case.find("error")
        if error is not None:
            results[case.attrib["name"]] = Result("error", error.attrib.get("message", ""))
        elif failure is not None:
            results[case.attrib["name"]] = Result("fail", failure.attrib.get("message", ""))
        elif skipped is not None:
            results[case.attrib["name"]] = Result("skip", skipped.attrib.get("message", ""))
        else:
            results[case.attrib["name"]] = Result("pass", "")
    return results


def check_seconds(path: Path) -> dict[str, float]:
    """Check id → how long it took (seconds), from the suite's JUnit XML."""
    return {
        case.attrib["name"]: float(case.attrib.get("time", "nan"))
        for case in ET.parse(path).iter("testcase")
    }


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The suite must not pick up a developer's real E2B settings (nor an admin key).
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("E2B_") and k != "KRUISE_ADMIN_KEY"
    }
    env.update(extra or {})
    return env


def cli_command(
    url: str,
    out: Path,
    *,
    levels: str | None = None,
    api_url: str | None = None,
    key: bool = True,
    admin_key: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``kruise-agents conformance`` command line of :func:`run_cli` (``extra`` appended)."""
    junit, report = out / "conformance.xml", out / "conformance.md"
    cmd = [
        str(KRUISE_AGENTS),
        "conformance",
        "--api-url",
        api_url or url,
        *(["--api-key", USER_KEY] if key else []),
        "--sandbox-url",
        url,
        "--template",
        "base",
        "--no-stock-template",
        NO_STOCK,
        *(["--admin-key", ADMIN_KEY] if admin_key else []),
        "--junit",
        str(junit),
        "--report",
        str(report),
    ]
    if levels:
        cmd += ["--levels", levels]
    return cmd + list(extra)


def run_refused(*options: str) -> subprocess.CompletedProcess[str]:
    """``kruise-agents conformance --api-url <a port nobody serves> --template base`` plus
    ``options``: for the options refused before any check runs."""
    return subprocess.run(
        [
            str(KRUISE_AGENTS),
            "conformance",
            "--api-url",
            "http://127.0.0.1:9",
            "--template",
            "base",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )


def run_cli(
    url: str,
    out: Path,
    *,
    levels: str | None = None,
    api_url: str | None = None,
    key: bool = True,
    admin_key: bool = True,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> SuiteRun:
    """``kruise-agents conformance`` against ``url`` with every option a user would pass
    (``api_url`` instead of ``url`` for the API; no ``--api-key`` unless ``key``, no
    ``--admin-key`` unless ``admin_key``; ``extra`` options and ``env`` variables added)."""
    junit, report = out / "conformance.xml", out / "conformance.md"
    cmd = cli_command(
        url, out, levels=levels, api_url=api_url, key=key, admin_key=admin_key, extra=extra
    )
    proc = subprocess.run(
        cmd,
        cwd=out,
        env=clean_env({"COLUMNS": "200", **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    assert junit.exists(), output
    return SuiteRun(proc.returncode, output, read_junit(junit), junit, report)


def suite_pytest_command(python: Path | str, *, plugin: bool = True) -> list[str]:
    """The suite's pytest form under ``python``: the checks by ``--pyargs``, the plugin by ``-p``
    (``plugin=False``: by its entry point, for an interpreter that has this package installed)."""
    return [
        str(python),
        "-m",
        "pytest",
        *(["-p", "pytest_kruise_agents.conformance.plugin"] if plugin else []),
        "--pyargs",
        "pytest_kruise_agents.conformance",
        "-c",
        os.devnull,
        "-p",
        "no:cacheprovider",
        "-q",
    ]


def run_pytest(
    python: Path,
    url: str,
    out: Path,
    *,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> SuiteRun:
    """``pytest --pyargs pytest_kruise_agents.conformance`` under ``python`` (this checkout on
    its path, the plugin loaded with ``-p``), as a user of another SDK would run it (``extra``
    options and ``env`` variables added)."""
    junit = out / "conformance.xml"
    cmd = [
        *suite_pytest_command(python),
        "--tb=short",
        "--kruise-conformance-api-url",
        url,
        "--kruise-conformance-sandbox-url",
        url,
        "--kruise-conformance-no-stock-template",
        NO_STOCK,
        "--kruise-conformance-admin-key",
        ADMIN_KEY,
        "--kruise-conformance-junit",
        str(junit),
        *extra,
    ]
    given = {"PYTHONPATH": str(ROOT), "E2B_API_KEY": USER_KEY, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        cmd, cwd=out, env=clean_env(given), capture_output=True, text=True, timeout=timeout
    )
    output = proc.stdout + proc.stderr
    assert junit.exists(), output
    return SuiteRun(proc.returncode, output, read_junit(junit), junit, out / "none.md")
