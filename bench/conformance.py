"""Wall time of the whole E2B conformance suite against the fake server (virtual clock).

Prints, measured in one run:

1. the wall time of ``kruise-agents conformance`` with every level against
   this project's server on the virtual clock (the default cluster plus an
   empty pool for ``kruise.no-stock``), over ``--runs`` runs: min and median
   (goal: under 60 s on 2 cores);
2. where it goes: the checks' own time per level (from the suite's JUnit XML)
   and the rest (interpreter start, imports, collection, server start);
3. the baseline measured in the same run: a bare interpreter importing what
   every run imports (``e2b``, ``e2b_code_interpreter``, ``pytest``), and the
   suite's time as a multiple of it.

The server runs in this process on uvicorn (as in the tests); the suite runs
in a subprocess, as a user runs it. Each run's checks passed, failed and
skipped are printed (and, with ``--json``, given in the JSON line). If any
check fails in any run, or a run fails as a whole, the script shows the
failing checks and the suite's output and exits 1 without timings: a failing
suite's time is not the suite's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from bench_options import positive_int

from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

USER_KEY = "e2b_bench_conformance_user_0000000000000000000000"
ADMIN_KEY = "e2b_bench_conformance_admin_000000000000000000000"
EMPTY_POOL = """apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: empty, namespace: default}
spec:
  replicas: 0
  runtimes: [{name: agent-runtime}]
  template:
    spec:
      containers:
      - name: sandbox
        image: registry.example.com/e2b/empty:v1
"""
KRUISE_AGENTS = Path(sys.executable).with_name("kruise-agents")


class Run(NamedTuple):
    """One run of the suite: its wall time, its checks' time per level, and their outcome."""

    wall: float
    per_level: dict[str, float]
    passed: int
    failed: int
    skipped: int
    failures: list[str]
    """The checks that failed or errored, or why the run failed as a whole."""

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def run_suite(url: str, out: Path) -> Run:
    """One run of the suite, as a user runs it; its output goes to stderr when it fails."""
    junit = out / "conformance.xml"
    cmd = [
        str(KRUISE_AGENTS),
        "conformance",
        "--api-url",
        url,
        "--api-key",
        USER_KEY,
        "--sandbox-url",
        url,
        "--template",
        "base",
        "--no-stock-template",
        "empty",
        "--admin-key",
        ADMIN_KEY,
        "--junit",
        str(junit),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    per_level: dict[str, float] = defaultdict(float)
    passed = failed = skipped = 0
    failures: list[str] = []
    cases = ET.parse(junit).iter("testcase") if junit.exists() else iter(())
    for case in cases:
        level = case.attrib["classname"].removeprefix("conformance.")
        per_level[level] += float(case.attrib["time"])
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(case.attrib["name"])
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        if not failures:  # nothing failed check by check: the run itself did
            failures.append(f"the suite exited {proc.returncode} (its output is above)")
    if passed + failed + skipped == 0 and not failures:
        failures.append("no check ran")
    return Run(wall, dict(per_level), passed, failed, skipped, failures)


def baseline() -> float:
    """Wall seconds of an interpreter importing what every run of the suite imports."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import e2b, e2b_code_interpreter, pytest"],
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def main() -> None:
    """Measure and print (see the module docstring); exit 1 if any check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=positive_int, default=3, help="Runs of the suite (default 3)."
    )
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    args = parser.parse_args()

    backend = SimBackend.default(seed=6, replicas=16)
    backend.apply(EMPTY_POOL)
    settings = Settings(
        api_keys=[
            ApiKey(key=USER_KEY, team="default", id="bench"),
            ApiKey(key=ADMIN_KEY, admin=True, id="admin"),
        ]
    )
    runs: list[Run] = []
    with ServerThread(create_app(backend, settings)) as server, tempfile.TemporaryDirectory() as d:
        for i in range(args.runs):
            out = Path(d) / f"run-{i}"
            out.mkdir()
            runs.append(run_suite(server.url, out))
    backend.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"conformance suite, all levels, virtual clock, {args.runs} runs")
    print(
        "  checks per run (passed/failed/skipped of all): "
        + ", ".join(f"{r.passed}/{r.failed}/{r.skipped} of {r.total}" for r in runs)
    )
    counts = {
        "passed": [r.passed for r in runs],
        "failed": [r.failed for r in runs],
        "skipped": [r.skipped for r in runs],
    }
    failing = [(i, r) for i, r in enumerate(runs, 1) if r.failures]
    if failing:
        # A failing suite's time is not the suite's: no timings, and a non-zero exit.
        for i, r in failing:
            print(f"  run {i} FAILED: {', '.join(r.failures)}")
        if args.json:
            print(json.dumps({"ok": False, "runs": args.runs, **counts}))
        sys.exit(f"conformance: the suite failed in {len(failing)} of {args.runs} runs")

    base = min(baseline() for _ in range(3))
    walls = [r.wall for r in runs]
    best, median = min(walls), statistics.median(walls)
    levels: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        for level, seconds in r.per_level.items():
            levels[level].append(seconds)
    checks = {level: statistics.median(v) for level, v in levels.items()}
    print(f"  wall: min {best:.1f} s, median {median:.1f} s (goal < 60 s)")
    print(
        "  check time per level (median): " + ", ".join(f"{k} {v:.1f} s" for k, v in checks.items())
    )
    print(
        f"  outside the checks (start, imports, collection): {median - sum(checks.values()):.1f} s"
    )
    print(f"baseline: importing e2b, e2b_code_interpreter and pytest: {base:.2f} s")
    print(f"  suite / baseline: {median / base:.1f}x")
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "runs": args.runs,
                    **counts,
                    "wall_min_s": best,
                    "wall_median_s": median,
                    "levels_s": checks,
                    "baseline_s": base,
                }
            )
        )


if __name__ == "__main__":
    main()
