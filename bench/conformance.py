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
in a subprocess, as a user runs it.
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


def run_suite(url: str, out: Path) -> tuple[float, dict[str, float], int, int]:
    """One run: (wall seconds, check seconds per level, checks passed, checks run)."""
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
    passed = total = 0
    for case in ET.parse(junit).iter("testcase"):
        per_level[case.attrib["classname"].removeprefix("conformance.")] += float(
            case.attrib["time"]
        )
        total += 1
        if case.find("failure") is None and case.find("skipped") is None:
            passed += 1
    if proc.returncode != 0:
        print(proc.stdout[-3000:], file=sys.stderr)
    return wall, dict(per_level), passed, total


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
    """Measure and print (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Runs of the suite (default 3).")
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
    walls: list[float] = []
    levels: dict[str, list[float]] = defaultdict(list)
    counts: list[tuple[int, int]] = []
    with ServerThread(create_app(backend, settings)) as server, tempfile.TemporaryDirectory() as d:
        for i in range(args.runs):
            out = Path(d) / f"run-{i}"
            out.mkdir()
            wall, per_level, passed, total = run_suite(server.url, out)
            walls.append(wall)
            counts.append((passed, total))
            for level, seconds in per_level.items():
                levels[level].append(seconds)
    backend.close()
    base = min(baseline() for _ in range(3))

    best, median = min(walls), statistics.median(walls)
    checks = {level: statistics.median(v) for level, v in levels.items()}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"conformance suite, all levels, virtual clock, {args.runs} runs")
    print(f"  checks passed per run: {', '.join(f'{p}/{t}' for p, t in counts)}")
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
                    "wall_min_s": best,
                    "wall_median_s": median,
                    "levels_s": checks,
                    "baseline_s": base,
                    "runs": args.runs,
                }
            )
        )


if __name__ == "__main__":
    main()
