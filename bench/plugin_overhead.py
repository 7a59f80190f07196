"""What the pytest plugin costs: start-up when unused, and per-test fixture overhead.

Prints, each against a baseline measured in the same run:

1. pytest start-up with the plugin installed but unused (a one-test suite
   that uses no fixture), against the same run with ``-p no:kruise_agents``;
   the two are interleaved, and the medians compared (goal: < 50 ms added).
   The other installed plugins (hypothesis, schemathesis, ...) make a run
   slow and noisy, so the comparison is repeated with plugin autoloading off
   and only this plugin loaded with ``-p``;
2. a generated suite of 500 tests each using ``kruise_cluster``: the median
   per-test fixture setup plus teardown, against the same suite without the
   fixture (goal: < 10 ms);
3. a generated suite of 200 tests each creating a sandbox through
   ``kruise_e2b`` and the real E2B SDK (``Sandbox.create()``, one command,
   ``kill()``): the median setup plus teardown, and the median test body
   (goal: < 30 ms for the fixture).

Each suite runs in its own pytest subprocess, from cached bytecode (as an
installed package does; the cache goes to a temporary ``PYTHONPYCACHEPREFIX``);
a tiny conftest records every test's setup, call and teardown durations from
pytest's own reports. The
first test of a suite pays the one-time imports (the simulator, uvicorn, the
SDK) and is reported apart. ``--quick`` runs 100 and 40 tests instead;
``--startup-runs N`` (at least 1, default 21) sets the start-up pairs. The
temporary suites and bytecode caches are removed when the script ends.
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
from pathlib import Path
from typing import Any

from bench_options import positive_int

PYTEST = [sys.executable, "-m", "pytest"]

INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

RECORDER = """\
import json, os

_DURATIONS = {}


def pytest_runtest_logreport(report):
    _DURATIONS.setdefault(report.nodeid, {})[report.when] = report.duration


def pytest_sessionfinish(session):
    with open(os.environ["KRUISE_BENCH_OUT"], "w") as f:
        json.dump(_DURATIONS, f)
"""

TRIVIAL = "def test_nothing():\n    assert True\n"

CLUSTER_TEST = "def test_{i}(kruise_cluster):\n    assert kruise_cluster.now > 0\n"
BARE_TEST = "def test_{i}():\n    assert True\n"

E2B_HEADER = "from e2b import Sandbox\n\n"
E2B_TEST = """
def test_{i}(kruise_e2b):
    sbx = Sandbox.create()
    sbx.commands.run("true")
    sbx.kill()
"""


def _suite(root: Path, name: str, body: str, ini: str = INI) -> Path:
    d = root / name
    d.mkdir()
    (d / "pytest.ini").write_text(ini)
    (d / "conftest.py").write_text(RECORDER)
    (d / "test_suite.py").write_text(body)
    return d


def _run(
    suite: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[float, dict[str, dict[str, float]]]:
    out = suite / "durations.json"
    full = {**os.environ, **(env or {}), "KRUISE_BENCH_OUT": str(out)}
    for var in [k for k in full if k.startswith("PYTEST_KRUISE_")]:
        del full[var]
    # Installed packages run from cached bytecode; keep the cache out of the source tree.
    full.pop("PYTHONDONTWRITEBYTECODE", None)
    full["PYTHONPYCACHEPREFIX"] = str(suite.parent / "pycache")
    start = time.perf_counter()
    proc = subprocess.run(
        [*PYTEST, "-q", "-p", "no:cacheprovider", *extra],
        cwd=suite,
        env=full,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"pytest failed in {suite}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, json.loads(out.read_text())


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def startup(root: Path, runs: int, *, alone: bool) -> dict[str, float]:
    """Wall time of a one-test run with and without the plugin, in interleaved pairs.

    ``added`` is the median of the pairwise differences, which cancels most of
    the machine's drift. ``alone``: every other entry-point plugin is left out
    (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) and this one loaded with ``-p``.
    """
    # Without autoloading there is no pytest-asyncio to know the ini's asyncio option.
    ini = "[pytest]\nfilterwarnings = error\n" if alone else INI
    suite = _suite(root, "startup-alone" if alone else "startup", TRIVIAL, ini)
    on = ["-p", "pytest_kruise_agents.plugin"] if alone else []
    off = [] if alone else ["-p", "no:kruise_agents"]
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"} if alone else {}
    _run(suite, *on, env=env)  # warm the file-system and bytecode caches
    _run(suite, *off, env=env)
    pairs = []
    for i in range(runs):
        # Alternate which goes first, so that neither always runs on a warmer machine.
        if i % 2:
            without = _run(suite, *off, env=env)[0]
            with_plugin = _run(suite, *on, env=env)[0]
        else:
            with_plugin = _run(suite, *on, env=env)[0]
            without = _run(suite, *off, env=env)[0]
        pairs.append((with_plugin, without))
    return {
        "with": statistics.median(p[0] for p in pairs),
        "without": statistics.median(p[1] for p in pairs),
        "added": statistics.median(p[0] - p[1] for p in pairs),
    }


def plugin_import(runs: int) -> float:
    """Median import time of the plugin's modules (``-X importtime``), pytest already imported."""
    code = "import pytest; import pytest_kruise_agents.plugin"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    totals = []
    # The bytecode cache (a few MiB) is this measurement's own: removed when it ends.
    with tempfile.TemporaryDirectory(prefix="kruise-bench-pyc-") as pycache:
        env["PYTHONPYCACHEPREFIX"] = pycache
        for _ in range(runs + 1):
            proc = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", code],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            totals.append(cumulative_us(proc.stderr, "pytest_kruise_agents.plugin") / 1e6)
    return statistics.median(totals[1:])  # the first run writes the bytecode cache


def cumulative_us(importtime: str, module: str) -> int:
    """``module``'s cumulative import time in microseconds, from ``-X importtime`` output."""
    total = 0
    for line in importtime.splitlines():
        # "import time:  self | cumulative | name": the plugin package's own line is cumulative.
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            total = int(parts[1])
    return total


def per_test(durations: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Median setup+teardown and call over all tests but the first; the first apart."""
    rows = [
        (d.get("setup", 0.0) + d.get("teardown", 0.0), d.get("call", 0.0))
        for _, d in sorted(durations.items(), key=lambda kv: int(kv[0].rsplit("_", 1)[1]))
    ]
    rest = rows[1:]
    fixture = sorted(r[0] for r in rest)
    return {
        "tests": len(rows),
        "first_fixture": rows[0][0],
        "fixture_median": statistics.median(fixture),
        "fixture_p90": fixture[int(0.9 * (len(fixture) - 1))],
        "call_median": statistics.median(r[1] for r in rest),
    }


def build_times(runs: int) -> dict[str, float]:
    """Median in-process build of the default test cluster: workers on demand, and all up front.

    The second is how the simulator started controller workers before (500 Sandbox and 500
    SandboxClaim workers per cluster); the event logs of the two are identical.
    """
    from pytest_kruise_agents.plugin.marker import ClusterSpec
    from pytest_kruise_agents.plugin.recipe import RecipeBook
    from simulator.controllers.base import Reconciler

    recipe = RecipeBook().recipe(ClusterSpec())
    on_demand = Reconciler.start_workers

    def up_front(self: Reconciler[Any], count: int) -> None:
        for _ in range(count):
            self.ctx.env.process(self._worker())

    out: dict[str, list[float]] = {"on_demand": [], "up_front": []}
    recipe.build()
    for i in range(2 * runs):
        mode = "on_demand" if i % 2 else "up_front"
        Reconciler.start_workers = on_demand if mode == "on_demand" else up_front  # type: ignore[method-assign]
        start = time.perf_counter()
        recipe.build()
        out[mode].append(time.perf_counter() - start)
    Reconciler.start_workers = on_demand  # type: ignore[method-assign]
    return {mode: statistics.median(times) for mode, times in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 40 tests")
    parser.add_argument(
        "--startup-runs",
        type=positive_int,
        default=21,
        help="interleaved pairs of start-up runs, with and without the plugin (default 21)",
    )
    args = parser.parse_args()
    n_cluster, n_e2b = (100, 40) if args.quick else (500, 200)

    print(
        f"# plugin overhead ({platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()})"
    )
    with tempfile.TemporaryDirectory(prefix="kruise-bench-") as tmp:
        root = Path(tmp)

        s = startup(root, args.startup_runs, alone=False)
        print(
            f"1. start-up, one trivial test, {args.startup_runs} interleaved pairs: "
            f"plugin installed {_ms(s['with'])}, -p no:kruise_agents {_ms(s['without'])}, "
            f"added (median of differences) {_ms(s['added'])} (goal < 50 ms)"
        )
        s = startup(root, args.startup_runs, alone=True)
        print(
            f"   with no other entry-point plugin: -p pytest_kruise_agents.plugin "
            f"{_ms(s['with'])}, without {_ms(s['without'])}, added {_ms(s['added'])}"
        )
        print(f"   the plugin's own import (-X importtime, median): {_ms(plugin_import(7))}")

        cluster = _suite(
            root, "cluster", "".join(CLUSTER_TEST.format(i=i) for i in range(n_cluster))
        )
        bare = _suite(root, "bare", "".join(BARE_TEST.format(i=i) for i in range(n_cluster)))
        wall_c, dur_c = _run(cluster)
        wall_b, dur_b = _run(bare)
        c, b = per_test(dur_c), per_test(dur_b)
        print(
            f"2. {n_cluster} tests using kruise_cluster ({wall_c:.1f} s wall; without the fixture "
            f"{wall_b:.1f} s): setup+teardown median {_ms(c['fixture_median'])} "
            f"(p90 {_ms(c['fixture_p90'])}; without the fixture {_ms(b['fixture_median'])}); "
            f"first test {_ms(c['first_fixture'])} (imports) (goal < 10 ms)"
        )

        built = build_times(50)
        print(
            f"   in-process build of that cluster (median of 50): {_ms(built['on_demand'])} "
            f"with controller workers started on demand, {_ms(built['up_front'])} with all "
            f"1,003 started up front"
        )

        e2b = _suite(root, "e2b", E2B_HEADER + "".join(E2B_TEST.format(i=i) for i in range(n_e2b)))
        wall_e, dur_e = _run(e2b)
        e = per_test(dur_e)
        print(
            f"3. {n_e2b} tests creating a sandbox through kruise_e2b and the SDK "
            f"({wall_e:.1f} s wall): setup+teardown median {_ms(e['fixture_median'])} "
            f"(p90 {_ms(e['fixture_p90'])}); test body (create, one command, kill) median "
            f"{_ms(e['call_median'])}; first test {_ms(e['first_fixture'])} (imports, uvicorn) "
            f"(goal < 30 ms)"
        )


if __name__ == "__main__":
    main()
