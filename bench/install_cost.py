"""What being installed costs a project that does not use what it pays for.

Each figure is the CPU time (user + system) of a fresh subprocess, the least of
``--runs`` runs (default 5) after one warm-up, from cached bytecode (a
temporary ``PYTHONPYCACHEPREFIX``, as an installed package has its ``.pyc``
files), and is printed with its ratio to a baseline measured in the same run:

1. pytest running one test that uses no fixture, in a project whose
   ``pytest.ini`` pins one of the plugin's options (``kruise_seed``,
   ``kruise_profile``, ``kruise_clock = realtime:5``, ``kruise_config``), and
   ``pytest --help`` with ``kruise_config`` set; baseline: the same run with
   an empty ``pytest.ini``. Plugin autoloading is off and the project's two
   plugins are loaded with ``-p`` (the other installed plugins only add noise);
2. ``from simulator.erlang import erlang_c`` and ``import simulator``;
   baseline: ``python -c pass``;
3. importing each pytest plugin once pytest is imported, timed inside the
   process (``time.process_time``; the median of ``--runs`` processes: a few
   milliseconds would drown in a process's start-up); baseline: ``import
   pytest`` in the same process.

``--tree DIR`` measures another checkout (an earlier commit exported with
``git archive``, say): its packages are imported instead of this one's, so the
script run twice, once with ``--tree``, gives before and after on one machine
at one time. CPU time is the figure to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_options import positive_int

ROOT = Path(__file__).resolve().parent.parent

TEST = "def test_one():\n    assert 1 + 1 == 2\n"
CLUSTER = "seed: 42\nnodes: 2\n"
PLUGINS = ["-p", "pytest_kruise_agents.plugin", "-p", "pytest_kruise_agents.conformance.plugin"]
SETTINGS = [
    ("kruise_seed = 7", []),
    ("kruise_profile = openkruise-head", []),
    ("kruise_clock = realtime:5", []),
    ("kruise_config = cluster.yaml", []),
    ("kruise_config = cluster.yaml", ["--help"]),
]


def cpu_ms(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    """Least CPU milliseconds (user + system) of ``runs`` runs of ``argv``, after a warm-up."""
    best = float("inf")
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"install_cost: {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
        spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if i:  # the first run fills the bytecode cache
            best = min(best, spent * 1000)
    return best


def row(what: str, ms: float, base: float) -> None:
    print(f"  {what:<52} {ms:7.1f} ms   x{ms / base:5.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=5, help="runs per figure (least)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to measure")
    args = parser.parse_args()
    tree = args.tree.resolve()
    print(
        f"tree {tree}; Python {platform.python_version()}; {os.cpu_count()} cores; "
        f"load {os.getloadavg()[0]:.1f}; least CPU of {args.runs} runs"
    )
    with tempfile.TemporaryDirectory(prefix="install-cost-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            PYTHONPATH=str(tree),
            PYTHONPYCACHEPREFIX=str(work / "pycache"),
            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        )
        (work / "test_unit.py").write_text(TEST)
        (work / "cluster.yaml").write_text(CLUSTER)
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PLUGINS]

        def run_pytest(ini: str, extra: list[str]) -> float:
            (work / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
            return cpu_ms([*pytest, *extra, "test_unit.py"], env, work, args.runs)

        print("1. pytest, one test using no fixture (baseline: empty pytest.ini)")
        base = run_pytest("", [])
        row("(baseline) no option set", base, base)
        for ini, extra in SETTINGS:
            row(f"{ini} {' '.join(extra)}".strip(), run_pytest(ini, extra), base)

        print("2. imports from the simulator (baseline: python -c pass)")
        python = [sys.executable, "-c"]
        base = cpu_ms([*python, "pass"], env, work, args.runs)
        row("(baseline) python -c pass", base, base)
        for code in ("from simulator.erlang import erlang_c", "import simulator"):
            row(code, cpu_ms([*python, code], env, work, args.runs), base)

        print("3. a plugin's import once pytest is imported, in-process (baseline: import pytest)")
        probe = (
            "import time\n"
            "c0 = time.process_time(); import pytest\n"
            "c1 = time.process_time(); import pytest_kruise_agents.plugin\n"
            "c2 = time.process_time(); import pytest_kruise_agents.conformance.plugin\n"
            "c3 = time.process_time()\n"
            "print((c1 - c0) * 1000, (c2 - c1) * 1000, (c3 - c2) * 1000)\n"
        )
        subprocess.run([*python, probe], env=env, cwd=work, check=True, capture_output=True)
        rows = [
            [
                float(x)
                for x in subprocess.run(
                    [*python, probe], env=env, cwd=work, check=True, capture_output=True, text=True
                ).stdout.split()
            ]
            for _ in range(args.runs)
        ]
        pytest_ms, plugin_ms, conformance_ms = (
            statistics.median(col) for col in zip(*rows, strict=True)
        )
        row("(baseline) import pytest", pytest_ms, pytest_ms)
        row("import pytest_kruise_agents.plugin", plugin_ms, pytest_ms)
        row("import pytest_kruise_agents.conformance.plugin", conformance_ms, pytest_ms)


if __name__ == "__main__":
    main()
